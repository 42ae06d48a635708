"""Seeds stacked against one by one, per architecture, and what the planner picks from the declarations.

    python benchmarks/bench_stacking.py                    # CPU: 16 seeds of each built-in architecture
    python benchmarks/bench_stacking.py --device cuda --seeds 64 --only fnn,cnn

For each case, ``train_item`` trains the same seeds stacked and one by one, on
one torch thread, alternating the two, ``--repeats`` times; the figure is the ratio of the medians.
Next to it: what the planner decides for the same group from the architecture's ``stacks_from``, and
whether every seed's final numbers agree between the two ways (they must, to float tolerance).
The target: 16 seeds of the Elman RNN on ``parity`` at least 2x faster stacked.
"""

from __future__ import annotations

import argparse
import math
import os
import statistics
import sys
import time
from typing import Any

import torch

from nnbench.execution.stacks import stacking
from nnbench.loading.catalogue import Catalogue, collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.training.ensemble import train_item
from nnbench.training.trainer import synchronize

CASES: dict[str, tuple[dict[str, Any], float]] = {
    "fnn": ({"task": "digits", "arch": "fnn", "epochs": 5}, 0.0),
    "cnn": ({"task": "digits", "arch": "cnn", "epochs": 3}, 0.0),
    "rnn": ({"task": "parity", "arch": "rnn", "activation": "tanh", "epochs": 5}, 2.0),
    "lstm": ({"task": "digits", "arch": "lstm", "epochs": 3}, 0.0),
    "gru": ({"task": "digits", "arch": "gru", "epochs": 3}, 0.0),
}


def seeds(catalogue: Catalogue, count: int, device: str, **axes: Any) -> list[Any]:
    base = {"activation": "relu", "optimizer": "adam", "seeds": count, "batch_size": 32, "device": device}
    trials, _ = expand_grid(build_grid(None, [], domain=catalogue.domain, **{**base, **axes}), catalogue)
    return trials


def measure(catalogue: Catalogue, trials: list[Any], repeats: int, device: str) -> tuple[float, float, list[Any],
                                                                                       list[Any]]:
    """Median seconds stacked and one by one, and the last results of each."""
    def stacked() -> list[Any]:
        return train_item(trials, catalogue, stacked=True)

    def alone() -> list[Any]:
        return train_item(trials, catalogue, stacked=False)

    times: dict[str, list[float]] = {"stacked": [], "alone": []}
    results: dict[str, list[Any]] = {}
    stacked()  # warm-up: data loading, first calls
    for _ in range(repeats):
        for name, run in (("stacked", stacked), ("alone", alone)):
            synchronize(torch.device(device))
            start = time.perf_counter()
            results[name] = run()
            synchronize(torch.device(device))
            times[name].append(time.perf_counter() - start)
    return statistics.median(times["stacked"]), statistics.median(times["alone"]), results["stacked"], results[
        "alone"]


def agree(one: list[Any], two: list[Any]) -> bool:
    return all(a.status == b.status and math.isclose(a.train_loss, b.train_loss, rel_tol=1e-3)
               and abs(a.metric - b.metric) <= 0.01 for a, b in zip(one, two, strict=True))


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--only", default=",".join(CASES))
    parser.add_argument("--seeds", type=int, default=16)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--device", default="cpu")
    args = parser.parse_args()
    device = "cuda:0" if args.device == "cuda" else args.device
    torch.set_num_threads(1)  # as nnbench's workers train
    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False))
    one, five, _ = os.getloadavg()
    name = torch.cuda.get_device_name(torch.device(device)) if device.startswith("cuda") else "1 torch thread"
    print(f"stacked vs one by one: {args.seeds} seeds on {device} ({name}), torch {torch.__version__}, "
          f"load {one:.2f}/{five:.2f}", flush=True)
    ok = True
    for case in [c for c in args.only.split(",") if c]:
        axes, target = CASES[case]
        trials = seeds(catalogue, args.seeds, device, **axes)
        decision = stacking(trials, catalogue)
        together, apart, stacked, alone = measure(catalogue, trials, args.repeats, device)
        speedup = apart / together
        met = speedup >= target if target else None
        verdict = {True: "ok", False: "MISSED", None: ""}[met]
        goal = f"target >= {target}x" if target else ""
        print(f"  {case:<5} {axes['task']:<7} {speedup:5.2f}x  {goal:<14} {verdict:<6} ({together:.2f}s stacked vs "
              f"{apart:.2f}s one by one; the planner picks {'stacked' if decision.stacked else 'one by one'}"
              f"{f' ({decision.reason})' if decision.reason else ''}; same numbers: "
              f"{'yes' if agree(stacked, alone) else 'NO'})",
              flush=True)
        ok &= met is not False and agree(stacked, alone)
    return 0 if ok else 1


if __name__ == "__main__":
    sys.exit(main())
