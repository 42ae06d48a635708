"""How long ``build_report`` takes on a large store: 5,000 trials of 10 epochs each (target: < 30 s).

The store is synthetic, written through ``ResultStore`` without training: 2 tasks (one accuracy,
one RMSE) x 2 architectures x 25 activations x 5 optimizers x 2 learning rates x 5 seeds, with a
few diverged and failed trials and some skipped combinations.

    python benchmarks/bench_report.py [--output report.html] [--store bench.db] [--run-end] [--forked]

``--run-end`` also times what ``nnbench run`` does after its last trial on this store: the findings it
prints, then the report, as nnbench does it (the report reuses the findings' pairwise evidence) against
the same with that evidence computed twice, alternating, in this one process. ``--forked`` times the
report with its sections built at once in forked children (one per usable core, as nnbench does
on Linux) against drawn one after another, alternating, 3 of each.
"""

from __future__ import annotations

import argparse
import itertools
import statistics
import tempfile
import time
from pathlib import Path

import numpy as np

from nnbench.analysis import verdicts
from nnbench.analysis.frames import with_variants
from nnbench.contract.trial import EpochRecord, Skipped, Trial, TrialResult
from nnbench.reporting import build_report
from nnbench.reporting import forked as forked_sections
from nnbench.storage.store import ResultStore

TARGET_SECONDS = 30.0
EPOCHS = 10
TASKS = {"spirals": "accuracy", "sine": "rmse"}
ARCHS = ["fnn", "cnn"]
ACTIVATIONS = [f"act{i:02d}" for i in range(25)]
OPTIMIZERS = ["sgd", "momentum", "adam", "adamw", "rmsprop"]
LRS = [0.01, 0.1]
SEEDS = range(5)


def synthetic_result(rng: np.random.Generator, task: str, arch: str, activation: str, optimizer: str, lr: float,
                     seed: int) -> TrialResult:
    metric_name = TASKS[task]
    trial = Trial(task, arch, activation, "mse" if metric_name == "rmse" else "cross_entropy", optimizer, lr, 64,
                  EPOCHS, seed, "cpu", {"arch": {}, "optimizer": {}})
    quality = 0.6 + 0.01 * ACTIVATIONS.index(activation) + 0.03 * OPTIMIZERS.index(optimizer) - 0.05 * (lr > 0.05)
    final = float(np.clip(quality + rng.normal(0, 0.03), 0.05, 0.99))
    status, error = "ok", None
    draw = rng.random()
    if draw < 0.01:
        status, error = "diverged", "non-finite loss at epoch 4 (train nan, test nan)"
    elif draw < 0.015:
        status, error = "failed", "Traceback (most recent call last):\n  ...\nRuntimeError: CUDA out of memory"
    epochs = 4 if status != "ok" else EPOCHS
    epoch_time = 0.02 * (3 if arch == "cnn" else 1) * (1 + rng.random() * 0.1)
    curve = []
    for epoch in range(1, epochs + 1):
        progress = final * (1 - 0.7 ** epoch)
        metric = progress if metric_name == "accuracy" else 1.0 - progress
        curve.append(EpochRecord(epoch=epoch, train_loss=2.0 * 0.75 ** epoch, test_loss=2.1 * 0.75 ** epoch,
                                 metric=metric, epoch_time=epoch_time))
    if status == "diverged":
        curve[-1] = EpochRecord(epoch=epochs, train_loss=float("nan"), test_loss=float("nan"), metric=float("nan"),
                                epoch_time=epoch_time)
    last = curve[-1]
    return TrialResult(trial, status, metric_name, last.metric if status == "ok" else None, last.train_loss,
                       last.test_loss, n_params=5000 if arch == "fnn" else 20000, train_time=epoch_time * epochs,
                       throughput=2000 / epoch_time, error=error, curve=curve if status != "failed" else [])


def write_synthetic_store(path: Path) -> int:
    rng = np.random.default_rng(0)
    combos = list(itertools.product(TASKS, ARCHS, ACTIVATIONS, OPTIMIZERS, LRS))
    skipped = [Skipped({"task": task, "arch": "lstm", "activation": act}, f"architecture lstm reads sequences; "
                       f"task {task} offers vectors") for task, act in itertools.product(TASKS, ACTIVATIONS)]
    with ResultStore(path) as store:
        store.start_run("bench", {"task": list(TASKS), "arch": ARCHS, "activation": ACTIVATIONS,
                                  "optimizer": OPTIMIZERS, "lr": LRS, "seeds": len(SEEDS), "epochs": EPOCHS},
                        {"nnbench": "bench", "torch": "-", "python": "-", "host": "bench", "devices": {"cpu": "-"}},
                        len(combos) * len(SEEDS), skipped)
        count = 0
        for combo in combos:
            for seed in SEEDS:
                store.save_result("bench", synthetic_result(rng, *combo, seed))
                count += 1
        store.finish_run("bench")
    return count


def run_end(store: ResultStore, shared: bool) -> float:
    """Seconds for the findings a run prints and then its report; ``shared=False`` forgets the
    findings' evidence before the report, as if the two computed it each on its own."""
    verdicts._recent.clear()
    start = time.perf_counter()
    verdicts.findings(with_variants(store.trials(["bench"])))
    if not shared:
        verdicts._recent.clear()
    build_report(store, ["bench"])
    return time.perf_counter() - start


def timed_report(store: ResultStore, forked: bool) -> float:
    """Seconds for the report, its sections forked (as nnbench builds it) or built one after another."""
    verdicts._recent.clear()
    cores = forked_sections.usable_cores
    if not forked:
        forked_sections.usable_cores = lambda: 1
    try:
        start = time.perf_counter()
        build_report(store, ["bench"])
        return time.perf_counter() - start
    finally:
        forked_sections.usable_cores = cores


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--output", type=Path, help="also write the report here")
    parser.add_argument("--store", type=Path, help="keep the synthetic store at this path (default: a temp file)")
    parser.add_argument("--run-end", action="store_true", help="also time a run's findings and report, shared "
                        "evidence against computed twice (3 of each, alternating)")
    parser.add_argument("--forked", action="store_true", help="also time the report with its sections "
                        "forked against drawn one after another (3 of each, alternating)")
    args = parser.parse_args()
    ends: dict[bool, list[float]] = {True: [], False: []}
    reports: dict[bool, list[float]] = {True: [], False: []}
    with tempfile.TemporaryDirectory() as scratch:
        path = args.store or Path(scratch) / "bench.db"
        path.unlink(missing_ok=True)
        start = time.perf_counter()
        count = write_synthetic_store(path)
        print(f"wrote {count:,} trials x {EPOCHS} epochs in {time.perf_counter() - start:.1f} s")
        with ResultStore(path) as store:
            start = time.perf_counter()
            report = build_report(store, ["bench"])
            seconds = time.perf_counter() - start
            for _ in range(3 if args.run_end else 0):
                for shared in (False, True):
                    ends[shared].append(run_end(store, shared))
            for _ in range(3 if args.forked else 0):
                for forked in (False, True):
                    reports[forked].append(timed_report(store, forked))
    if args.output:
        report.save(args.output)
    verdict = "within" if seconds < TARGET_SECONDS else "OVER"
    print(f"build_report: {seconds:.1f} s for {count:,} trials ({verdict} the {TARGET_SECONDS:.0f} s target); "
          f"page {len(report.html) / 2**20:.1f} MiB")
    if args.run_end:
        once, twice = statistics.median(ends[True]), statistics.median(ends[False])
        print(f"a run's end (findings, then the report): {once:.1f} s with the evidence shared against {twice:.1f} s "
              f"computed twice: {twice / once:.2f}x (median of 3)")
    if args.forked:
        forked, serial = statistics.median(reports[True]), statistics.median(reports[False])
        print(f"the report with its sections forked ({forked_sections.usable_cores()} cores, "
              f"{'allowed' if forked_sections.can_fork() else 'NOT allowed here'}): {forked:.1f} s against "
              f"{serial:.1f} s one after another: {serial / forked:.2f}x (median of 3)")


if __name__ == "__main__":
    main()
