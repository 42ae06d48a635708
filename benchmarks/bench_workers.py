"""The whole machine: each figure of "use the whole machine", a ratio of times measured in this one run.

    python benchmarks/bench_workers.py                      # every figure (about 15 minutes on 2 cores)
    python benchmarks/bench_workers.py --only startup,small --repeats 3

Figures (``--only``):

- ``default``: the default ``nnbench run`` (``--workers auto``) against ``nnbench run --workers 1``
  (target: at least 1.7x faster), report included, and identical metrics per trial;
- ``cnn``: 4 seeds of the digits CNN (15 epochs), ``--workers 2`` against ``--workers 1`` (target 1.7x),
  and the ceiling of that ratio: the 2-worker run's fixed cost (a 1-epoch run's time) plus half the
  training that the 14 further epochs add to the 1-worker run;
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


def medians(commands: dict[str, Sequence[str]], repeats: int, folder: Path,
            loads: list[str] | None = None) -> tuple[dict[str, float], dict[str, dict[str, tuple[float, float]]]]:
    """Run the named commands in turn, ``repeats`` rounds; each one's median time and its last metrics."""
    times: dict[str, list[float]] = {name: [] for name in commands}
    metrics: dict[str, dict[str, tuple[float, float]]] = {}
    for _ in range(repeats):
        for name, arguments in commands.items():
            if loads is not None:
                loads.append(load())
            elapsed, metrics[name] = timed(arguments, folder, name)
            times[name].append(elapsed)
    return {name: statistics.median(values) for name, values in times.items()}, metrics


def compare(label: str, fast: Sequence[str], slow: Sequence[str], target: float, repeats: int,
            folder: Path) -> tuple[bool, float, float]:
    """Alternate the two commands; print the ratio of the slow one's median to the fast one's.
    Returns whether the target was met with the same metrics, and the two medians."""
    loads: list[str] = []
    median, metrics = medians({"slow": slow, "fast": fast}, repeats, folder, loads)
    fast_time, slow_time = median["fast"], median["slow"]
    ratio = slow_time / fast_time
    same = _same(metrics["fast"], metrics["slow"])
    verdict = "ok" if ratio >= target else "MISSED"
    print(f"  {label:<58} {ratio:5.2f}x   target >= {target}x {verdict}  ({fast_time:.1f}s vs {slow_time:.1f}s, "
          f"median of {repeats}; {', '.join(loads[:2])} ... {loads[-1]}; same metrics: {'yes' if same else 'NO'})",
          flush=True)
    return ratio >= target and same, fast_time, slow_time


def ceiling(arguments: Sequence[str], slow_time: float, repeats: int, folder: Path) -> None:
    """The most ``--workers 2`` could gain on ``arguments`` (a run of several epochs whose ``--workers 1``
    median is ``slow_time``): the same runs with one epoch give what each costs besides its training;
    the 2-worker run keeps its fixed part and, at best, halves the extra epochs' training."""
    one = [*arguments, "--epochs", "1"]
    median, _ = medians({"one": [*one, "--workers", "1"], "two": [*one, "--workers", "2"]}, repeats, folder)
    training = max(0.0, slow_time - median["one"])
    best = slow_time / (median["two"] + training / 2)
    print(f"  {'  ceiling: fixed cost with 2 workers + half the training':<58} {best:5.2f}x   "
          f"({median['two']:.1f}s for a 1-epoch run with 2 workers; {median['one']:.1f}s with 1, so "
          f"{training:.1f}s of training)", flush=True)


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
    from nnbench.execution.job import ItemTraining
    from nnbench.execution.worker import worker_main

    def start(context: object) -> float:
        parent, child = context.Pipe()  # type: ignore[attr-defined]
        begin = time.perf_counter()
        process = context.Process(target=worker_main, args=(child, ItemTraining(),  # type: ignore[attr-defined]
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
                          args.repeats, folder)[0]
        if "cnn" in sections:
            seeds = [*CNN, "--seeds", "4"]
            met, _fast, slow = compare("4 seeds of the digits CNN, --workers 2 vs 1", [*seeds, "--workers", "2"],
                                       [*seeds, "--workers", "1"], 1.7, args.repeats, folder)
            ok &= met
            ceiling(seeds, slow, args.repeats, folder)
        if "small" in sections:
            small = [*CNN, "--seeds", "4", "--epochs", "4"]
            ok &= compare("4 CNN trials on digits, 4 epochs, --workers 2 vs 1", [*small, "--workers", "2"],
                          [*small, "--workers", "1"], 1.2, args.repeats, folder)[0]
    if "startup" in sections:
        startup(args.repeats)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
