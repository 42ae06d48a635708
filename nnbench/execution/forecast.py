"""How long the rest of a run will take, as the progress bar says it.

The planner's items carry estimates from the cost model (:mod:`nnbench.execution.costs`: stored timings of similar
trials where the store has some, else the architectures' own cost estimates, corrected by what the run measures).
Before anything has finished, the time left is those estimates laid out over the slots that train at once, longest
first, as the executor takes them. Once items finish, two things are learned from them: how their training time
compares with what the cost model, which has learned from them meanwhile, estimates for them now; and how long an
item takes besides training (building, evaluating, storing), from the items that did not start a process's work
(the first item of each slot also pays for loading data and warming up, once). An item in training counts what is
left of it. The forecast only ever informs the user: nothing a trial stores depends on it.
"""

from __future__ import annotations

import time
from collections.abc import Callable, Iterable, Sequence
from dataclasses import dataclass, field

from nnbench.contract.executor import WorkItem
from nnbench.contract.trial import Trial, TrialResult
from nnbench.execution.costs import CostModel
from nnbench.execution.planner import estimate

OVERDUE_SHARE = 0.1  # an item past its estimate is taken to need this share of its estimate more


@dataclass
class _Training:
    """An item from its start to its last result."""

    trials: tuple[Trial, ...]
    stacked: bool
    started: float
    order: int  # how many items started before it
    waiting: set[str] = field(default_factory=set)  # trial ids without a result yet
    ended: float = 0.0
    train_time: float = 0.0  # its trials' training seconds, as they report them

    @property
    def overhead(self) -> float:
        return max(0.0, self.ended - self.started - self.train_time)


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
        training.train_time += max(0.0, result.train_time or 0.0)
        if not training.waiting:
            training.ended = self.clock()
            self.done.append(training)

    def pace(self) -> float:
        """Training seconds per estimated second: how the finished items' training compares with the cost model's
        estimates of them as it is now (1 before any has finished)."""
        took = sum(t.train_time for t in self.done)
        estimated = sum(estimate(t.trials, t.stacked, self.cost) for t in self.done)
        return took / estimated if took > 0 and estimated > 0 else 1.0

    def overhead(self) -> float:
        """The seconds an item takes besides training: the median over the finished items that were not the first
        of a slot (0 before one has finished: the first ones' also holds what a process does once)."""
        later = sorted(t.overhead for t in self.done if t.order >= self.slots)
        return later[len(later) // 2] if later else 0.0

    def seconds_left(self) -> float:
        """The estimated wall seconds until every item of the batch has trained."""
        pace, overhead, now = self.pace(), self.overhead(), self.clock()
        running = {id(t): t for t in self._training.values()}.values()
        slots = []
        for training in running:
            whole = estimate(training.trials, training.stacked, self.cost) * pace + overhead
            slots.append(max(whole - (now - training.started), OVERDUE_SHARE * whole))
        slots = [0.0] * max(0, self.slots - len(slots)) + sorted(slots)
        for item in self.items:  # the queue's order is the order items are taken in
            slots.sort()
            slots[0] += item.seconds * pace + overhead
        return max(slots, default=0.0)
