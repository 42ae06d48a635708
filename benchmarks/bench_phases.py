"""Where the time of a small run goes, phase by phase: the fixed costs around its training.

    python benchmarks/bench_phases.py                 # the tutorial's network, 16 seeds stacked, 100 epochs
    python benchmarks/bench_phases.py --repeats 5 -- --task iris --seeds 3 --epochs 20

Each repeat runs ``nnbench run ... --workers 1 --no-report -q`` in a fresh interpreter with timers around its
phases: Python's own start, importing nnbench, loading the plugins, planning the grid (torch's import comes with
the devices), opening the store, training (the trials' own stored ``train_time``, and what their items spent
around it: data, models, the first optimizer's import of ``torch._dynamo``, held-out scoring), the summary
(pandas and scipy's import, the leaderboard, the findings) and the rest. The medians are printed with the
machine's load: compare figures measured in one run of this script, never across machines or loads.
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TUTORIAL = ["--task", "toy", "--arch", "fnn", "--set", "arch.fnn.hidden=[2]", "--activation", "relu", "--optimizer",
            "adam", "--seeds", "16", "--epochs", "100"]

PROBE = r"""
import json, sqlite3, sys, time
began = time.perf_counter()
phases = {}

def timed(owner, name, phase):
    original = getattr(owner, name)
    def wrapper(*args, **kwargs):
        start = time.perf_counter()
        try:
            return original(*args, **kwargs)
        finally:
            phases[phase] = phases.get(phase, 0.0) + time.perf_counter() - start
    setattr(owner, name, wrapper)

import nnbench.cli
phases["import nnbench"] = time.perf_counter() - began
from nnbench import progress, session
from nnbench.execution import job
from nnbench.storage import store
timed(session.Session, "__init__", "load the plugins")
timed(session.Session, "plan", "plan the grid (torch's import with the devices)")
timed(store.ResultStore, "__init__", "open the store")
timed(job.ItemTraining, "__call__", "train the items")
timed(progress.ConsoleProgress, "finished", "the summary: leaderboard and findings")
sys.argv = ["nnbench", "run", *sys.argv[2:], "--workers", "1", "--no-report", "-q", "--store", sys.argv[1]]
try:
    nnbench.cli.main()
except SystemExit:
    pass
phases["total after Python started"] = time.perf_counter() - began
with sqlite3.connect(sys.argv[sys.argv.index("--store") + 1]) as db:
    phases["train_time stored"] = db.execute("SELECT SUM(train_time) FROM trials").fetchone()[0]
print(json.dumps(phases))
"""


def run_once(arguments: list[str]) -> dict[str, float]:
    with tempfile.TemporaryDirectory() as folder:
        store = Path(folder) / "phases.db"
        env = {**os.environ, "NNBENCH_PLUGINS": "none"}
        start = time.perf_counter()
        done = subprocess.run([sys.executable, "-c", PROBE, str(store), *arguments], capture_output=True,
                              text=True, env=env, cwd=folder, timeout=600, check=True)
        wall = time.perf_counter() - start
        phases: dict[str, float] = json.loads(done.stdout.strip().splitlines()[-1])
        bare = time.perf_counter()
        subprocess.run([sys.executable, "-c", "pass"], check=True)
        phases["Python's own start"] = time.perf_counter() - bare
        phases["wall clock"] = wall
        return phases


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("arguments", nargs="*", help="nnbench run's grid arguments (after --); default: the tutorial's")
    args = parser.parse_args()
    arguments = args.arguments or TUTORIAL
    runs = [run_once(arguments) for _ in range(args.repeats)]
    median = {name: statistics.median(run[name] for run in runs) for name in runs[0]}
    items, stored = median["train the items"], median["train_time stored"]
    rest = median["total after Python started"] - sum(median[name] for name in (
        "import nnbench", "load the plugins", "plan the grid (torch's import with the devices)", "open the store",
        "train the items", "the summary: leaderboard and findings"))
    one, five, _ = os.getloadavg()
    print(f"nnbench run {' '.join(arguments)} --workers 1 --no-report: median of {args.repeats} "
          f"(load {one:.2f}/{five:.2f})")
    shown = [("Python's own start", median["Python's own start"]), ("import nnbench", median["import nnbench"]),
             ("load the plugins", median["load the plugins"]),
             ("plan the grid (torch's import with the devices)",
              median["plan the grid (torch's import with the devices)"]),
             ("open the store", median["open the store"]),
             ("training steps (the trials' stored train_time)", stored),
             ("around them in the items (data, models, torch._dynamo, scoring)", items - stored),
             ("the summary: leaderboard and findings", median["the summary: leaderboard and findings"]),
             ("the rest (store writes, grid records, exit)", rest)]
    for name, seconds in shown:
        print(f"  {name:<66} {seconds:6.2f} s")
    print(f"  {'wall clock':<66} {median['wall clock']:6.2f} s")
    return 0


if __name__ == "__main__":
    sys.exit(main())
