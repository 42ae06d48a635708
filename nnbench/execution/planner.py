"""The planner: a batch of trials into one :class:`~nnbench.contract.executor.WorkPlan`, computed once.

It groups the trials into stacks (:mod:`nnbench.execution.stacks`), makes the work items (a stack, or one trial:
seeds that train one by one go out one item each, so they spread over the workers), estimates each item's training
time (:mod:`nnbench.execution.costs`), chooses the executor and how many items train at once, and says what it
decided in notes for the user. The items wait in a :class:`WorkQueue`, longest first; what the run measures as it
goes re-orders the items not yet started.

Worker counts: ``--workers N`` CPU workers (auto: one per core, for ``--threads`` torch threads each), no more than
there are CPU items; in this process when one worker is asked for, or for auto when the grid is too small to pay for
worker processes (one item, or under :data:`PARALLEL_SECONDS` of estimated training). Accelerators and a time limit
always take workers (only a worker process stuck inside a component can be stopped).
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator, Sequence
from dataclasses import dataclass, replace

from nnbench.contract.executor import TrainJob, WorkItem, WorkPlan, device_kind
from nnbench.contract.run_options import RunOptions
from nnbench.contract.trial import Trial, TrialResult
from nnbench.execution.costs import CostModel, is_accelerator
from nnbench.execution.stacks import stack_groups, stacking
from nnbench.loading.catalogue import Catalogue
from nnbench.machine import usable_cores

PARALLEL_SECONDS = 2.0
"""Below this much estimated training, starting worker processes costs more than it saves."""
RELEARN = 0.2
"""A measured trial whose configuration's estimate moves by more than this share re-orders the waiting items."""


class WorkQueue:
    """The items of a plan waiting to train: items that must train apart first, then the longest first, kept per
    device they ask for, so that taking one costs the same however many wait. As results arrive (:meth:`learn`),
    a measurement that moves an estimate by more than :data:`RELEARN` has the estimates of the items still
    waiting made again and re-orders them, so that an architecture found to be slow is not left to the end."""

    def __init__(self, items: Iterable[WorkItem], cost: CostModel) -> None:
        self.cost = cost
        self._serial = itertools.count()
        self._by_device: dict[str, list[tuple[tuple[bool, float, int], WorkItem]]] = {}  # the next one last
        self._count = 0
        for item in items:
            self._by_device.setdefault(item.device, []).append((self._key(item), item))
            self._count += 1
        self._sort()

    def _key(self, item: WorkItem) -> tuple[bool, float, int]:
        return (not item.isolated, -item.seconds, next(self._serial))

    def _queues(self, device: str | None) -> list[list[tuple[tuple[bool, float, int], WorkItem]]]:
        """The queues of items that ``device`` can train (see :meth:`WorkSource.take`)."""
        if device is None:
            return [queue for queue in self._by_device.values() if queue]
        return [queue for name in dict.fromkeys((device, device_kind(device)))
                if (queue := self._by_device.get(name))]

    def take(self, device: str | None = None) -> WorkItem | None:
        queues = self._queues(device)
        if not queues:
            return None
        self._count -= 1
        return min(queues, key=lambda queue: queue[-1][0]).pop()[1]

    def devices(self) -> list[str]:
        return [name for name, queue in self._by_device.items() if queue]

    def waiting(self, device: str | None = None) -> int:
        return self._count if device is None else sum(len(queue) for queue in self._queues(device))

    def learn(self, result: TrialResult) -> None:
        """Take a finished trial's timing into the estimates of the waiting items."""
        before = self.cost.seconds(result.trial)
        self.cost.learn(result)
        if abs(self.cost.seconds(result.trial) - before) <= RELEARN * before:
            return
        for name, queue in self._by_device.items():
            self._by_device[name] = [(key, replace(item, seconds=estimate(item.trials, item.stacked, self.cost)))
                                     for key, item in queue]
        self._sort()

    def __iter__(self) -> Iterator[WorkItem]:
        waiting = [entry for queue in self._by_device.values() for entry in queue]
        return iter([item for _, item in sorted(waiting, key=lambda entry: entry[0])])

    def __len__(self) -> int:
        return self._count

    def _sort(self) -> None:
        """Order every queue, ties kept in the order the items came (across devices too)."""
        waiting = sorted((entry for queue in self._by_device.values() for entry in queue), key=lambda entry: entry[0])
        for queue in self._by_device.values():
            queue.clear()
        for _, item in waiting:
            self._by_device[item.device].append((self._key(item), item))
        for queue in self._by_device.values():
            queue.reverse()


def estimate(trials: Sequence[Trial], stacked: bool, cost: CostModel) -> float:
    """Estimated seconds an item of ``trials`` trains."""
    return cost.item_seconds(trials, stacked)


def work_items(trials: list[Trial], catalogue: Catalogue, vectorize: bool, cost: CostModel,
               isolated: Iterable[str] = ()) -> tuple[list[WorkItem], list[str]]:
    """The work items of ``trials`` and a note per reason that seeds which could share a stack train one by one."""
    apart = set(isolated)
    items: list[WorkItem] = []
    reasons: dict[str, int] = {}
    for group in stack_groups(trials, catalogue):
        decision = stacking(group, catalogue, vectorize)
        if decision.stacked:
            items.append(WorkItem(tuple(group), True, estimate(group, True, cost),
                                  isolated=any(t.trial_id in apart for t in group)))
            continue
        if decision.reason:
            reasons[decision.reason] = reasons.get(decision.reason, 0) + 1
        items += [WorkItem((t,), False, estimate([t], False, cost), decision.reason, t.trial_id in apart)
                  for t in group]
    notes = [f"{count} group{'s' if count > 1 else ''} of seeds that could share a stack "
             f"train{'' if count > 1 else 's'} one seed at a time: {reason}" for reason, count in reasons.items()]
    return items, notes


@dataclass(frozen=True)
class LocalExecutors:
    """This machine's two executors, by name: the one that trains in this process and the one with workers."""

    here: str
    workers: str

    @classmethod
    def of(cls, catalogue: Catalogue) -> LocalExecutors:
        scopes = {entry.spec.scope: entry.spec.name for entry in catalogue.executors.entries() if entry.spec.scope}
        return cls(scopes["this_process"], scopes["local_workers"])

    def may_start_workers(self, options: RunOptions) -> bool:
        """Whether a run with ``options`` may start local worker processes (so their server can start early)."""
        if options.executor == self.workers:
            return True
        if options.executor == self.here:
            return options.timeout is not None or (options.workers or 1) > 1
        return options.executor is None and (options.workers != 1 or options.timeout is not None)


@dataclass(frozen=True)
class Workers:
    """The executor of a plan and how many items train at once on CPUs (``0``: in this process), with notes."""

    executor: str
    cpu: int
    notes: tuple[str, ...] = ()


def choose_workers(options: RunOptions, items: Sequence[WorkItem], local: LocalExecutors,
                   cores: int | None = None) -> Workers:
    """The executor and CPU workers for ``items`` (see the module docstring)."""
    cores = cores or usable_cores()
    wanted = max(1, cores // options.threads)
    cpu_items = [item for item in items if not is_accelerator(item.device)]
    accelerated = len(cpu_items) < len(items)
    notes: list[str] = []
    if options.per_device is not None and not accelerated and items:
        notes.append(f"--per-device {options.per_device} applies to accelerators, and this grid trains on the CPU only")
    if options.executor not in (None, local.here, local.workers):  # trials train elsewhere: --workers at once at most
        return Workers(str(options.executor), options.workers or 0, tuple(notes))
    requested = options.workers or (1 if options.executor == local.here else None)
    stoppable = accelerated or options.timeout is not None  # only a worker process can be stopped
    if requested is None:
        seconds = sum(item.seconds for item in cpu_items)
        if not stoppable and (wanted == 1 or len(cpu_items) < 2 or seconds < PARALLEL_SECONDS):
            if wanted > 1 and cpu_items and options.executor != local.workers:
                plural = "s" if len(cpu_items) != 1 else ""
                notes.append(f"training in this process: {len(cpu_items)} work item{plural} of about {seconds:.1f} s "
                             "in all would not pay for starting worker processes (--workers N starts them anyway)")
            if options.executor != local.workers:
                return Workers(local.here, 0, tuple(notes))
        return Workers(local.workers, max(1, min(wanted, len(cpu_items))), tuple(notes))
    if requested == 1 and not stoppable and options.executor != local.workers:
        return Workers(local.here, 0, tuple(notes))
    cpu = max(1, min(requested, len(cpu_items)))
    if requested > len(cpu_items) and cpu_items:
        plural = "s" if len(cpu_items) != 1 else ""
        notes.append(f"--workers {requested}: only {len(cpu_items)} work item{plural} can train at once here, so "
                     f"{'1 worker starts' if cpu == 1 else f'{cpu} workers start'}")
    if cpu == 1 and options.threads > cores:  # no company: the one worker's own threads outnumber the cores
        notes.append(f"--threads {options.threads} is more than the {cores} cores here: the worker's threads share "
                     f"cores, which slows its steps (--threads {cores} or fewer would not)")
    elif cpu * options.threads > cores:  # the workers that start, not those asked for, decide whether cores are shared
        notes.append(f"{cpu} workers with --threads {options.threads} need more than the {cores} cores here: "
                     "workers share cores, so their timings are measured in company")
    return Workers(local.workers, cpu, tuple(notes))


def plan_work(trials: list[Trial], catalogue: Catalogue, options: RunOptions, cost: CostModel, train: TrainJob, *,
              isolated: Iterable[str] = (), cores: int | None = None) -> WorkPlan:
    """The work plan of ``trials``: items, executor, workers and notes, computed once (see the module docstring)."""
    items, notes = work_items(trials, catalogue, options.vectorize, cost, isolated)
    workers = choose_workers(options, items, LocalExecutors.of(catalogue), cores)
    spec_options = {o.name for o in catalogue.executors.get(workers.executor).options}
    return WorkPlan(workers.executor, WorkQueue(items, cost), train, workers.cpu, options.per_device, options.threads,
                    options.timeout, {name: options.extra.get(name) for name in spec_options},
                    (*workers.notes, *notes), tuple(catalogue.devices))

