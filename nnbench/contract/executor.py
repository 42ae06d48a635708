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
   stuck inside a component kills it once ``plan.deadline(item)`` has passed since the item started (never while
   it waits for a slot) and stores ``timeout`` results;
5. stop at once, leaving the rest untrained, when ``sink.result`` raises :class:`GridStopped` (the failure budget
   is spent) or the user interrupts; what was stored stays stored, and the next run resumes. An executor that
   loses the machines it trains on (a cluster's head) raises :class:`ExecutorLost`: the run is marked
   ``interrupted`` and the next run resumes.

Every claimed trial yields exactly one result. Only the process that runs the executor writes the store (through
the sink); the executor never opens it.

**Devices.** A trial asks for a device *kind* (``cpu``, ``cuda``: any device of that kind where it trains) or, on
this machine only, one device (``cuda:1``); :func:`device_kind` tells them apart. ``plan.items.take("cuda:1")``
hands out the items that device can train (those that ask for ``cuda:1`` or for ``cuda``), and ``item.on("cuda:1")``
tells ``plan.train`` to train the item there; an item that names no device trains on its process's current device
of its kind (on Ray, the GPU Ray gave the process). ``plan.train`` records in each result's ``training`` record the
``node`` (host name) and the ``device`` it trained on; an executor adds what it knows besides (Ray: the node's id).

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
    where: str | None = None
    """The device the executor chose for the item (``cuda:1``, as the process that trains it names it); ``None``:
    that process's current device of the kind its trials ask for."""

    @property
    def device(self) -> str:
        """The device its trials ask for: a kind (``cuda``) or one device of this machine (``cuda:1``)."""
        return self.trials[0].device

    def on(self, device: str) -> WorkItem:
        """This item, to train on ``device`` (one that :meth:`WorkSource.take` handed it out for)."""
        return replace(self, where=device)

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
        """The next item ``device`` can train (one device, ``cuda:1``: the items that ask for it or for its kind;
        a kind, ``cuda``: the items that ask for it; ``None``: any), or ``None`` when none waits."""
        ...

    def devices(self) -> list[str]:
        """The devices that items waiting ask for (kinds, or devices of this machine)."""
        ...

    def waiting(self, device: str | None = None) -> int:
        """How many items wait that ``device`` can train (as for :meth:`take`; ``None``: in all)."""
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
    :param workers: how many CPU items may train at once: this machine's worker processes (``0``: one at a time in
        this process), or, for an executor whose trials run elsewhere, at most that many (``0``: as many as its
        CPUs allow).
    :param per_device: items that may train at once on each accelerator (``None``: the executor measures it, or
        takes one).
    :param threads: torch threads per training process.
    :param timeout: seconds a trial may train (``None``: no limit); a stack of ``n`` trials gets ``n`` times it.
    :param options: the executor's own options (``--address`` of Ray), by name; ``None`` where not given.
    :param notes: what the user was told about this plan.
    :param local_devices: this machine's devices (``cpu``, ``cuda:0``, ``cuda:1``), where an executor that trains
        here places the items that ask for a kind.
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
    local_devices: tuple[str, ...] = ("cpu",)

    def places(self, device: str) -> list[str]:
        """The devices of this machine that train the items asking for ``device`` (a kind: each device of it)."""
        if device in self.local_devices:
            return [device]
        return [d for d in self.local_devices if device_kind(d) == device] or [device]

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


class ExecutorLost(NNBenchError):
    """The executor lost the machines it trains on (a cluster's head went away): the run stops at once, is marked
    ``interrupted``, and the next run resumes it."""


def device_kind(device: str) -> str:
    """The kind of a device: ``cuda`` of ``cuda:1``; a kind is its own kind."""
    return device.split(":", 1)[0]


def failed_result(trial: Trial, status: str, cause: str) -> TrialResult:
    """The result of a trial that produced none of its own: its process died (``failed``) or it was stopped
    (``timeout``); ``cause`` says why, in words."""
    return TrialResult(trial, status, error=cause)
