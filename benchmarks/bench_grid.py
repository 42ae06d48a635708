"""A 1,000-trial grid end to end, report included (target: under 60 s on 2 cores; the aim is 45 s).

    python benchmarks/bench_grid.py [--repeats 3] [--workers 2]

10 activations x 5 optimizers x 4 learning rates x 5 seeds of the digits MLP, 15 epochs, as one
``nnbench run`` in a fresh store (start-up, planning, training, storing and the HTML report). Prints
each repetition, the median, the machine's load average, and how the run trained (from the stored
``training`` records: stacked or one by one, and the stacks' sizes).
"""

from __future__ import annotations

import argparse
import collections
import json
import os
import sqlite3
import statistics
import subprocess
import sys
import tempfile
import time
from pathlib import Path

TARGET, AIM = 60.0, 45.0
GRID = ["--task", "digits", "--arch", "fnn",
        "--activation", "relu,leaky_relu,elu,selu,gelu,silu,mish,softplus,tanh,sigmoid",
        "--optimizer", "sgd,momentum,adam,adamw,rmsprop", "--lr", "0.1,0.01,0.001,0.0001",
        "--seeds", "5", "--epochs", "15"]


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--workers", default="2",
                        help="worker processes (default 2, the figure's setting; auto is nnbench's default)")
    args = parser.parse_args()
    times, loads = [], []
    with tempfile.TemporaryDirectory(prefix="nnbench-grid-") as tmp:
        folder = Path(tmp)
        for i in range(args.repeats):
            store = folder / f"grid{i}.db"
            one, five, _ = os.getloadavg()
            loads.append(f"{one:.2f}/{five:.2f}")
            start = time.perf_counter()
            subprocess.run([sys.executable, "-m", "nnbench", "run", *GRID, "--workers", args.workers, "--quiet",
                            "--store", str(store), "--report-dir", str(folder / "reports")], check=True,
                           stdout=subprocess.DEVNULL, cwd=folder, env={**os.environ, "NNBENCH_PLUGINS": "none"})
            times.append(time.perf_counter() - start)
            print(f"  run {i + 1}: {times[-1]:.1f} s (load {loads[-1]})", flush=True)
        with sqlite3.connect(folder / "grid0.db") as db:
            rows = db.execute("SELECT status, training FROM trials").fetchall()
    modes = collections.Counter()
    for _status, training in rows:
        record = json.loads(training) if training else {}
        modes[f"{record.get('mode')} x{record.get('members')}"] += 1
    median = statistics.median(times)
    verdict = "ok" if median < TARGET else "MISSED"
    print(f"1,000-trial grid, --workers {args.workers}, report included: {median:.1f} s median of {args.repeats} "
          f"(target < {TARGET:g} s {verdict}; aim < {AIM:g} s {'met' if median < AIM else 'not met'}); "
          f"{len(rows)} trials stored; trained {dict(modes)}")
    return 0 if median < TARGET and len(rows) == 1000 else 1


if __name__ == "__main__":
    sys.exit(main())
