"""How long the rest of a run will take, as the progress bar says it.

The planner's items carry estimates from the cost model (:mod:`nnbench.execution.costs`: stored timings of similar
trials where the store has some, else the architectures' own cost estimates, corrected by what the run measures).
Before anything has finished, the time left is those estimates laid out over the slots that train at once, longest
first, as the executor takes them. As items finish, every estimate is scaled by how long the finished items took
(start to last result: building, training, evaluating, storing) against what the cost model, which has learned from
them meanwhile, estimates for them now. The first item of each slot also pays for what a process does once (loading
data, warming up), so until a later item has finished only its training counts. An item in training counts what is
left of it. The forecast only ever informs the user: nothing a trial stores depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from nnbench.contract.executor import WorkItem
from nnbench.contract.trial import Trial, TrialResult
from nnbench.execution.costs import CostModel, steady_seconds
from nnbench.execution.planner import estimate

OVERDUE_SHARE = 0.1  # an item past its estimate is taken to need this share of its estimate more
RECENT = 64  # the finished items learned from: the latest, so the forecast follows a machine that gets busier


@dataclass
class _Training:
    """An item from its start to its last result."""

    trials: tuple[Trial, ...]
    stacked: bool
    started: float
    order: int  # how many items started before it
    waiting: set[str] = field(default_factory=set)  # trial ids without a result yet
    ended: float = 0.0
    train_time: float = 0.0  # its trials' training seconds at their steady pace (costs.steady_seconds)



class Forecast:
    """The seconds left of one batch of work (see the module docstring): ``items`` is the plan's queue (the items
    not taken yet, their estimates kept up to date as the run learns), ``slots`` how many items train at once."""

    def __init__(self, items: Iterable[WorkItem], cost: CostModel, slots: int,
                 clock: Callable[[], float] = time.monotonic) -> None:
        self.items, self.cost, self.slots, self.clock = items, cost, max(1, slots), clock
        planned = list(items)
        self.trial_ids = {t.trial_id for item in planned for t in item.trials}
        self._stacked = {t.trial_id: item.stacked for item in planned for t in item.trials}
        self._training: dict[str, _Training] = {}  # trial id -> its item's training
        self._started = 0
        self.done: list[_Training] = []

    def started(self, trials: Sequence[Trial]) -> None:
        """An item (or the part of it that was claimed) starts training."""
        if not trials:
            return
        training = _Training(tuple(trials), self._stacked.get(trials[0].trial_id, False) and len(trials) > 1,
                             self.clock(), self._started, {t.trial_id for t in trials})
        self._started += 1
        self._training.update({t.trial_id: training for t in trials})

    def finished(self, result: TrialResult) -> None:
        """A trial's result arrived."""
        training = self._training.pop(result.trial.trial_id, None)
        if training is None:
            return
        training.waiting.discard(result.trial.trial_id)
        training.train_time += steady_seconds(result)
        if not training.waiting:
            training.ended = self.clock()
            self.done.append(training)

    def pace(self) -> float:
        """Wall seconds per estimated second: how long the latest finished items took, start to last result,
        against the cost model's estimates of them as it is now. The first item of each slot also did what a
        process does once (loading data, warming up): until a later item has finished, only the training of the
        first ones counts, at its steady pace. 1 before any item has finished."""
        later = [t for t in self.done if t.order >= self.slots][-RECENT:]
        if later:
            took = sum(t.ended - t.started for t in later)
            estimated = sum(estimate(t.trials, t.stacked, self.cost) for t in later)
        else:
            took = sum(t.train_time for t in self.done[-RECENT:])
            estimated = sum(estimate(t.trials, t.stacked, self.cost) for t in self.done[-RECENT:])
        return took / estimated if took > 0 and estimated > 0 else 1.0

    def seconds_left(self) -> float:
        """The estimated wall seconds until every item of the batch has trained."""
        pace, now = self.pace(), self.clock()
        running = {id(t): t for t in self._training.values()}.values()
        slots = []
        for training in running:
            whole = estimate(training.trials, training.stacked, self.cost) * pace
            slots.append(max(whole - (now - training.started), OVERDUE_SHARE * whole))
        slots = [0.0] * max(0, self.slots - len(slots)) + sorted(slots)
        for item in self.items:  # the queue's order is the order items are taken in
            slots.sort()
            slots[0] += item.seconds * pace
        return max(slots, default=0.0)
