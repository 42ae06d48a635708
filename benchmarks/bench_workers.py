"""Two worker processes against one on a CPU-bound grid (target: at least 1.6x faster), same metrics.

Runs the same `nnbench run` command twice in fresh stores, once with ``--workers 1`` and once with
``--workers 2``, times each whole command (start-up and worker spawning included) and checks that
every trial has identical metrics in both stores.

    python benchmarks/bench_workers.py [--epochs 60]

The grid must be long enough (here about 40 s with one worker) for the workers' start-up, about a
second, to matter little.
"""

from __future__ import annotations

import argparse
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET = 1.6
GRID = ["--task", "digits,moons,spirals", "--arch", "fnn", "--activation", "relu,tanh,gelu,silu",
        "--optimizer", "sgd,adam", "--seeds", "3", "--batch-size", "32", "--no-vectorize", "--no-report", "--quiet"]


def timed_run(workers: int, folder: Path, epochs: int) -> tuple[float, dict[str, tuple[float, float]]]:
    store = folder / f"workers{workers}.db"
    command = [sys.executable, "-m", "nnbench", "run", *GRID, "--epochs", str(epochs), "--workers", str(workers),
               "--store", str(store)]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "NNBENCH_PLUGINS": "none"})
    elapsed = time.perf_counter() - start
    with sqlite3.connect(store) as db:
        metrics = {row[0]: (row[1], row[2]) for row in db.execute("SELECT trial_id, metric, train_loss FROM trials")}
    return elapsed, metrics


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--epochs", type=int, default=60)
    args = parser.parse_args()
    with tempfile.TemporaryDirectory() as tmp:
        one, metrics_one = timed_run(1, Path(tmp), args.epochs)
        two, metrics_two = timed_run(2, Path(tmp), args.epochs)
    same = metrics_one == metrics_two
    print(f"grid: {len(metrics_one)} trials, {args.epochs} epochs each, on {os.cpu_count()} cores")
    print(f"--workers 1: {one:6.1f} s")
    print(f"--workers 2: {two:6.1f} s")
    print(f"speed-up: {one / two:.2f}x (target >= {TARGET}x) {'ok' if one / two >= TARGET else 'MISSED'}")
    print(f"identical metrics per trial: {'yes' if same else 'NO'}")
    if not same:
        sys.exit(1)


if __name__ == "__main__":
    main()
