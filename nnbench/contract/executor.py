"""The executor contract: a work plan in, every result to a sink out. An executor author reads this module.

An executor is what an :class:`~nnbench.contract.specs.ExecutorSpec`'s ``factory()`` returns: an object with
``run(plan, sink)``. nnbench's planner computes the :class:`WorkPlan` once per batch of trials: which trials
train together (:class:`WorkItem`: the seeds of one configuration as one stack, or one trial, with its estimated
training time), how many items may train at once, the time limit and the executor's own options. ``plan.train``
trains one item in any process and returns one :class:`~nnbench.contract.trial.TrialResult` per trial of it; it is
picklable, so it can go to a worker process, a pool or a cluster task as it is (in another process it loads the
run's plugins once, from what it carries). ``run`` must:

1. take items with ``plan.items.take(device)`` as capacity frees up (the longest first; the order changes as the
   run learns how long things take, so take an item only when it can start);
2. call ``sink.claim(item.trials)`` immediately before training an item, and train only the trials it returns
   (``item.only(granted)``; none: skip the item): another run on the same store may be training the others;
3. hand every result to ``sink.result(result)`` as soon as it is known. A trial whose training raised or whose
   process died gets ``failed_result(trial, "failed", cause)``, the cause in words, and the other items go on;
4. honour the time limit: ``plan.train`` itself stops a trial that trains past ``plan.timeout`` seconds (status
   ``timeout``), counting from when its training starts, wherever it runs; an executor that can stop a process
   stuck inside a component kills it once ``plan.deadline(item)`` has passed and stores ``timeout`` results;
5. stop at once, leaving the rest untrained, when ``sink.result`` raises :class:`GridStopped` (the failure budget
   is spent) or the user interrupts; what was stored stays stored, and the next run resumes.

Every claimed trial yields exactly one result. Only the process that runs the executor writes the store (through
the sink); the executor never opens it.

A minimal executor over :mod:`concurrent.futures`::

    class PoolExecutor:
        def run(self, plan: WorkPlan, sink: ResultSink) -> None:
            with ProcessPoolExecutor(max(1, plan.workers)) as pool:
                running = {}
                while True:
                    while len(running) < max(1, plan.workers) and (item := plan.items.take()) is not None:
                        if granted := sink.claim(item.trials):
                            running[pool.submit(plan.train, item.only(granted))] = granted
                    if not running:
                        return
                    done, _ = wait(running, return_when=FIRST_COMPLETED)
                    for future in done:
                        trials = running.pop(future)
                        try:
                            results = future.result()
                        except Exception as exc:
                            results = [failed_result(t, "failed", f"{type(exc).__name__}: {exc}") for t in trials]
                        for result in results:
                            sink.result(result)
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any, Protocol

from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import Trial, TrialResult

TIMEOUT_GRACE = 1.5
"""How far past its time limit a process stuck inside a component is left before its executor kills it
(``plan.train`` stops a trial that is still stepping at the limit itself)."""


@dataclass(frozen=True)
class WorkItem:
    """Trials that one worker trains at once: the seeds of one configuration, or one trial.

    :param trials: the trials, one configuration's seeds (in stack order) or one trial.
    :param stacked: whether they train as one stack (decided by the planner from the components'
        declarations, never by a measurement, so the same trials always train the same way); ``False``
        trains them one after another.
    :param seconds: the estimated training time of the whole item.
    :param reason: why trials that could share a stack train one by one (recorded with their results).
    :param isolated: train in a process of its own even when the run trains in this one: the item holds a
        trial that failed before, or was in training when an earlier run's process died.
    """

    trials: tuple[Trial, ...]
    stacked: bool = False
    seconds: float = 0.0
    reason: str | None = None
    isolated: bool = False

    @property
    def device(self) -> str:
        return self.trials[0].device

    def only(self, trials: Sequence[Trial]) -> WorkItem:
        """This item reduced to ``trials`` (what a claim granted), its estimate shrunk in proportion."""
        kept = tuple(t for t in self.trials if t in set(trials))
        if len(kept) == len(self.trials):
            return self
        return replace(self, trials=kept, stacked=self.stacked and len(kept) > 1,
                       seconds=self.seconds * len(kept) / len(self.trials))


class WorkSource(Protocol):
    """The items of a plan, handed out one at a time, longest first."""

    def take(self, device: str | None = None) -> WorkItem | None:
        """The next item to train (on ``device``; ``None``: any device), or ``None`` when none waits."""
        ...

    def devices(self) -> list[str]:
        """The devices that have items waiting."""
        ...

    def waiting(self, device: str | None = None) -> int:
        """How many items wait (for ``device``; ``None``: in all)."""
        ...


class TrainJob(Protocol):
    """Trains one work item in any process: ``job(item)`` returns one result per trial of ``item``, in order.
    It never raises for a problem inside a trial (that trial's result says ``failed``)."""

    def __call__(self, item: WorkItem) -> list[TrialResult]: ...


@dataclass(frozen=True)
class WorkPlan:
    """What an executor receives: the work of one batch of trials, planned once.

    :param executor: the executor's name.
    :param items: the work items, taken one at a time (see :class:`WorkSource`).
    :param train: trains one item, in this process or any other (see :class:`TrainJob`).
    :param workers: how many CPU items may train at once (worker processes, tasks, pool slots); ``0`` means one
        at a time in this process.
    :param per_device: items that may train at once on each accelerator (``None``: the executor measures it).
    :param threads: torch threads per training process.
    :param timeout: seconds a trial may train (``None``: no limit); a stack of ``n`` trials gets ``n`` times it.
    :param options: the executor's own options (``--address`` of Ray), by name; ``None`` where not given.
    :param notes: what the user was told about this plan.
    """

    executor: str
    items: WorkSource
    train: TrainJob
    workers: int = 0
    per_device: int | None = None
    threads: int = 1
    timeout: float | None = None
    options: Mapping[str, Any] = field(default_factory=dict)
    notes: tuple[str, ...] = ()

    def deadline(self, item: WorkItem) -> float | None:
        """Seconds after an item starts training past which its process may be killed: its time limit (shared
        by a stack's members) and a grace period in which the trainer stops it itself."""
        if self.timeout is None:
            return None
        return self.timeout * len(item.trials) * TIMEOUT_GRACE + 2.0


class ResultSink(Protocol):
    """Where an executor delivers results: the run that started it, which alone writes the store."""

    def claim(self, trials: Sequence[Trial], *, here: bool = False) -> list[Trial]:
        """Called immediately before training ``trials`` (an item, or part of one): the ones to train (none:
        skip them). ``here``: they train in this very process, so that, should it die, the next run knows
        which trial was training in it."""
        ...

    def result(self, result: TrialResult) -> None:
        """A trial's result; raises :class:`GridStopped` when the run must stop."""
        ...

    def log(self, message: str) -> None:
        """Something the user should know, in one line."""
        ...


class Executor(Protocol):
    """Trains the items of a plan; every claimed trial yields exactly one result through the sink."""

    def run(self, plan: WorkPlan, sink: ResultSink) -> None: ...


class GridStopped(Exception):
    """The sink asked to stop (``--fail-fast`` / ``--max-failures``)."""


class WorkerStartError(NNBenchError):
    """Worker processes die before they can take work (a broken installation or plugin)."""


def failed_result(trial: Trial, status: str, cause: str) -> TrialResult:
    """The result of a trial that produced none of its own: its process died (``failed``) or it was stopped
    (``timeout``); ``cause`` says why, in words."""
    return TrialResult(trial, status, error=cause)
