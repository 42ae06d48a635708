"""The run's result sink: claims each item before it trains, commits each result, and tells one observer.

An executor hands every result to :class:`StoringSink` (the :class:`~nnbench.contract.executor.ResultSink` of a
run), which writes it to the store in one transaction, calls the ``after_trial`` hooks, tells the run's observer and
the plan's queue, and stops the grid past the failure budget. Trials that another live run on the same store is
training are set aside (``elsewhere``) and waited for once this run's own work is done.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING

from nnbench.contract.executor import GridStopped
from nnbench.contract.trial import Trial, TrialResult
from nnbench.loading.catalogue import Catalogue
from nnbench.loading.plugins import LifecycleHooks
from nnbench.observer import RunObserver
from nnbench.storage.store import ResultStore

if TYPE_CHECKING:
    from nnbench.session import RunOutcome

COUNTED_AS_FAILURES = ("failed", "timeout")
WAIT_SECONDS = 0.5  # how often a run looks again at trials another run is training


class StoringSink:
    """Claims, stores and reports the results of one run (see the module docstring)."""

    def __init__(self, store: ResultStore, outcome: RunOutcome, catalogue: Catalogue, max_failures: int | None,
                 observer: RunObserver, hooks: LifecycleHooks) -> None:
        self.store, self.outcome, self.catalogue = store, outcome, catalogue
        self.max_failures, self.observer, self.hooks = max_failures, observer, hooks
        self.failures = 0
        self.replacing: dict[str, str] = {}  # finished trials this run retrains (--force), as stored
        self.elsewhere: dict[str, Trial] = {}
        self.listeners: list[Callable[[TrialResult], None]] = []  # the plan's queue learns from each result
        self.said: set[str] = set()  # reasons already told, so each is told once
        self.here: bool | None = None  # whether the trials in training now train in this process

    def claim(self, trials: Sequence[Trial], *, here: bool = False) -> list[Trial]:
        """The trials of an item this run may train now; those another live run trains are set aside,
        and those another run stored since this one planned are covered as reused."""
        if here != self.here:
            self.here = here
            self.observer.training_location(here)
        mine = self.store.claim(self.outcome.run_id, trials, self.replacing, in_process=here)
        if mine:
            self.observer.started(mine)
        if len(mine) < len(trials):
            chosen = {t.trial_id for t in mine}
            rest = [t for t in trials if t.trial_id not in chosen]
            busy = self.store.claimed_elsewhere(self.outcome.run_id, [t.trial_id for t in rest])
            self._cover([t for t in rest if t.trial_id not in busy])
            if busy and not self.elsewhere:
                self.log(f"{len(busy)} trials are being trained by another run on {self.store.path}; this run "
                         "trains the others and then waits for them")
            self.elsewhere.update({t.trial_id: t for t in rest if t.trial_id in busy})
        return mine

    def settle_elsewhere(self) -> list[Trial]:
        """Wait until some trial that another run was training is stored (covered here as reused) or
        released (returned, to be trained by this run)."""
        while True:
            waiting = list(self.elsewhere.values())
            busy = self.store.claimed_elsewhere(self.outcome.run_id, [t.trial_id for t in waiting])
            done = self.store.finished_at(t.trial_id for t in waiting if t.trial_id not in busy)
            settled = [t for t in waiting if t.trial_id not in busy]
            if settled:
                for trial in settled:
                    del self.elsewhere[trial.trial_id]
                self._cover([t for t in settled if t.trial_id in done and self.replacing.get(t.trial_id)
                             != done[t.trial_id]])
                return [t for t in settled if t.trial_id not in done
                        or self.replacing.get(t.trial_id) == done[t.trial_id]]
            time.sleep(WAIT_SECONDS)

    def _cover(self, trials: list[Trial]) -> None:
        if trials:
            self.store.link_trials(self.outcome.run_id, [t.trial_id for t in trials])
            self.outcome.plan.reused.extend(trials)

    def result(self, result: TrialResult) -> None:
        if not result.metric_name:
            result.metric_name = self.catalogue.tasks.get(result.trial.task).metric
        self.store.save_result(self.outcome.run_id, result)
        self.outcome.results.append(result)
        self.hooks("after_trial", trial=result.trial, result=result)
        self.observer.result(result)
        self._tell_reason(result)
        for listener in self.listeners:
            listener(result)
        self.failures += result.status in COUNTED_AS_FAILURES
        if self.max_failures is not None and self.failures > self.max_failures:
            raise GridStopped(f"{self.failures} trials failed or timed out (--max-failures {self.max_failures})")

    def pruned(self, results: Sequence[TrialResult]) -> None:
        """Store the trials a race pruned (status ``pruned``, never trained): neither failed nor finished, so they
        count against no failure budget and a run without a race trains them."""
        for result in results:
            self.store.save_result(self.outcome.run_id, result)
            self.outcome.results.append(result)
            self.observer.result(result)

    def _tell_reason(self, result: TrialResult) -> None:
        """Say once why seeds planned as one stack trained one by one (found as the stack was proven)."""
        reason = (result.training or {}).get("reason")
        if reason and reason not in self.said:
            self.said.add(reason)
            trial = result.trial
            self.log(f"seeds of {trial.task} {trial.label()} trained one at a time: {reason}")

    def log(self, message: str) -> None:
        self.outcome.log.append(message)
        self.observer.log(message)
