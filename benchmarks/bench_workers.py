"""The whole machine: each figure of "use the whole machine", a ratio of times measured in this one run.

    python benchmarks/bench_workers.py                      # every figure (about 15 minutes on 2 cores)
    python benchmarks/bench_workers.py --only startup,small --repeats 3

Figures (``--only``):

- ``default``: the default ``nnbench run`` (``--workers auto``) against ``nnbench run --workers 1``
  (target: at least 1.7x faster), report included, and identical metrics per trial;
- ``cnn``: 4 seeds of the digits CNN (15 epochs), ``--workers 2`` against ``--workers 1`` (target 1.7x);
- ``small``: 4 CNN trials on digits, 4 epochs, ``--workers 2`` against ``--workers 1`` (target 1.2x);
- ``startup``: what one worker costs before it can train: a spawned Python process against one forked
  from the preloaded server (and what the server itself takes to start, overlapped with planning).

Every comparison alternates its two commands, ``--repeats`` times each (default 3), in fresh stores,
and reports the ratio of their medians; the machine's load average is printed next to each figure,
since a machine shared with other work slows both sides, but not always alike.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from collections.abc import Sequence
from pathlib import Path

SECTIONS = ("default", "cnn", "small", "startup")
CNN = ["--task", "digits", "--arch", "cnn", "--activation", "relu", "--optimizer", "adam"]


def load() -> str:
    one, five, _fifteen = os.getloadavg()
    return f"load {one:.2f}/{five:.2f}"


def timed(arguments: Sequence[str], folder: Path, name: str) -> tuple[float, dict[str, tuple[float, float]]]:
    """Wall time of one ``nnbench run`` in a fresh store, and its trials' metrics."""
    store = folder / f"{name}.db"
    store.unlink(missing_ok=True)
    command = [sys.executable, "-m", "nnbench", "run", *arguments, "--store", str(store), "--quiet",
               "--report-dir", str(folder / "reports")]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, cwd=folder,
                   env={**os.environ, "NNBENCH_PLUGINS": "none"})
    elapsed = time.perf_counter() - start
    with sqlite3.connect(store) as db:
        metrics = {row[0]: (row[1], row[2]) for row in db.execute("SELECT trial_id, metric, train_loss FROM trials")}
    return elapsed, metrics


def compare(label: str, fast: Sequence[str], slow: Sequence[str], target: float, repeats: int,
            folder: Path) -> bool:
    """Alternate the two commands; print the ratio of the slow one's median to the fast one's."""
    times: dict[str, list[float]] = {"fast": [], "slow": []}
    metrics: dict[str, dict[str, tuple[float, float]]] = {}
    loads = []
    for _ in range(repeats):
        for name, arguments in (("slow", slow), ("fast", fast)):
            loads.append(load())
            elapsed, metrics[name] = timed(arguments, folder, name)
            times[name].append(elapsed)
    fast_time, slow_time = statistics.median(times["fast"]), statistics.median(times["slow"])
    ratio = slow_time / fast_time
    same = _same(metrics["fast"], metrics["slow"])
    verdict = "ok" if ratio >= target else "MISSED"
    print(f"  {label:<58} {ratio:5.2f}x   target >= {target}x {verdict}  ({fast_time:.1f}s vs {slow_time:.1f}s, "
          f"median of {repeats}; {', '.join(loads[:2])} ... {loads[-1]}; same metrics: {'yes' if same else 'NO'})",
          flush=True)
    return ratio >= target and same


def _same(one: dict[str, tuple[float, float]], two: dict[str, tuple[float, float]], rel: float = 1e-4) -> bool:
    """The same trials with the same metrics (stacked and one-by-one training may round differently)."""
    if one.keys() != two.keys():
        return False
    for key, (metric, loss) in one.items():
        other_metric, other_loss = two[key]
        if abs(metric - other_metric) > 0.01 or abs(loss - other_loss) > rel * max(1.0, abs(loss)):
            return False
    return True


def startup(repeats: int) -> None:
    """Time from starting a worker to its ``ready``: spawned, and forked from the (running) server."""
    import multiprocessing

    from nnbench.execution import launching
    from nnbench.execution.worker import worker_main

    def start(context: object) -> float:
        parent, child = context.Pipe()  # type: ignore[attr-defined]
        begin = time.perf_counter()
        process = context.Process(target=worker_main, args=(child, 1, [], True,  # type: ignore[attr-defined]
                                                            launching.worker_settings()), daemon=True)
        process.start()
        child.close()
        parent.recv()  # ("ready",)
        took = time.perf_counter() - begin
        process.kill()
        process.join()
        return took

    begin = time.perf_counter()
    launching.prestart()
    server = launching.worker_context()
    first = start(server)  # waits for the server's imports
    boot = time.perf_counter() - begin
    forked = statistics.median(start(server) for _ in range(repeats))
    spawned = statistics.median(start(multiprocessing.get_context("spawn")) for _ in range(repeats))
    print(f"  {'a spawned worker, start to ready':<58} {spawned:5.2f}s   ({load()})")
    print(f"  {'a worker forked from the preloaded server, start to ready':<58} {forked:5.2f}s   "
          f"{spawned / forked:.0f}x cheaper")
    print(f"  {'the server itself, started to first worker ready':<58} {boot:5.2f}s   (first worker {first:.2f}s;"
          " a run starts it while it plans the grid)")


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(SECTIONS), help=f"comma-separated: {', '.join(SECTIONS)}")
    parser.add_argument("--repeats", type=int, default=3)
    args = parser.parse_args()
    sections = [s for s in args.only.split(",") if s]
    unknown = sorted(set(sections) - set(SECTIONS))
    if unknown:
        parser.error(f"unknown section {unknown[0]!r}; sections: {', '.join(SECTIONS)}")
    print(f"nnbench, whole machine: {os.cpu_count()} CPUs, {load()}", flush=True)
    ok = True
    with tempfile.TemporaryDirectory(prefix="nnbench-workers-") as tmp:
        folder = Path(tmp)
        if "default" in sections:
            ok &= compare("default nnbench run vs --workers 1 (default grid, report)", [], ["--workers", "1"], 1.7,
                          args.repeats, folder)
        if "cnn" in sections:
            ok &= compare("4 seeds of the digits CNN, --workers 2 vs 1", [*CNN, "--seeds", "4", "--workers", "2"],
                          [*CNN, "--seeds", "4", "--workers", "1"], 1.7, args.repeats, folder)
        if "small" in sections:
            small = [*CNN, "--seeds", "4", "--epochs", "4"]
            ok &= compare("4 CNN trials on digits, 4 epochs, --workers 2 vs 1", [*small, "--workers", "2"],
                          [*small, "--workers", "1"], 1.2, args.repeats, folder)
    if "startup" in sections:
        startup(args.repeats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
