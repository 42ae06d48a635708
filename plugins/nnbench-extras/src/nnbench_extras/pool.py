"""The ``pool`` executor: work items on a :mod:`concurrent.futures` process pool, written against the executor
contract alone (:mod:`nnbench.contract.executor`).

Each item goes to the pool as ``plan.train(item)`` once a slot is free (so the plan's order, longest first, holds);
the job loads the run's plugins in each pool process once. A trial whose process dies, or whose item raises, is
stored as failed with the cause; the job itself stops a trial at ``--timeout``.
"""

from __future__ import annotations

import multiprocessing
from concurrent.futures import FIRST_COMPLETED, Future, ProcessPoolExecutor, wait

from nnbench.contract.executor import ResultSink, WorkPlan, failed_result
from nnbench.contract.trial import Trial, TrialResult


class PoolExecutor:
    """Trains a plan's items on a process pool of ``plan.workers`` processes (at least one)."""

    def run(self, plan: WorkPlan, sink: ResultSink) -> None:
        slots = max(1, plan.workers)
        # spawn: the pool's processes start clean, whatever threads this process runs
        pool = ProcessPoolExecutor(slots, mp_context=multiprocessing.get_context("spawn"))
        running: dict[Future[list[TrialResult]], list[Trial]] = {}
        try:
            while True:
                while len(running) < slots and (item := plan.items.take()) is not None:
                    granted = sink.claim(item.trials)
                    if granted:
                        running[pool.submit(plan.train, item.only(granted))] = granted
                if not running:
                    return
                done, _ = wait(running, return_when=FIRST_COMPLETED)
                for future in done:
                    trials = running.pop(future)
                    for result in _results(future, trials):
                        sink.result(result)
        finally:
            pool.shutdown(wait=False, cancel_futures=True)


def _results(future: Future[list[TrialResult]], trials: list[Trial]) -> list[TrialResult]:
    try:
        return future.result()
    except Exception as exc:  # the item raised, or its process died (BrokenProcessPool)
        return [failed_result(trial, "failed", f"the pool's process did not finish it: {type(exc).__name__}: {exc}")
                for trial in trials]
