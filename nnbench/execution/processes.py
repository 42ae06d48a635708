"""The ``processes`` executor: local worker processes, forked from a preloaded server.

Work is planned as :class:`~nnbench.execution.scheduling.WorkItem`\\ s, longest first: a seed group
that trains one by one goes out as one item per seed, so its seeds train on different workers; a
group whose stacking choice is not known yet goes to one worker, which measures it, trains the
stack or keeps its first seed and hands the others back to be shared out. ``workers`` processes
serve CPU trials; each accelerator gets ``per_device`` workers of its own (or, unset, one that
first measures how many trials the device can train at once). A worker that dies or runs past
the time limit is replaced and the trials it held are stored as ``failed`` or ``timeout`` with the
cause; the grid goes on. The time limit counts from when a trial starts training, never the
worker's start-up or the choice of stacking; a stack of ``n`` trials gets ``n`` times the limit,
as its time is shared among them. Each worker talks to the parent over its own pipe, so a worker
killed mid-message harms no other.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from nnbench.contract.trial import Trial
from nnbench.execution.executors import ExecutorOptions, ResultSink, WorkerStartError, with_company
from nnbench.execution.launching import worker_context, worker_settings
from nnbench.execution.messages import describe_exit, failed_result, result_from_dict
from nnbench.execution.scheduling import (
    CostModel,
    WorkItem,
    fill_workers,
    is_accelerator,
    items_of,
    longest_first,
    plan_items,
)
from nnbench.loading.plugins import PluginHookWarning
from nnbench.machine import usable_cores
from nnbench.training.calibration import StackingChoice, StackingChoices, calibration_key

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess


@dataclass
class _Worker:
    device: str
    process: BaseProcess
    conn: Connection
    ready: bool = False
    item: WorkItem | None = None
    remaining: dict[str, Trial] = field(default_factory=dict)
    clock: float = 0.0  # when the running time limit started: the item's arrival, then each start
    covers: int = 1  # trials the running clock is for (a stack's members share it)
    peak: int = 0  # the most items in training on this device at once while this one was


class ProcessExecutor:
    """Trains work items in worker processes; see the module docstring."""

    POLL_SECONDS = 0.2

    def __init__(self, options: ExecutorOptions) -> None:
        if options.catalogue is None:
            raise ValueError("the processes executor needs the catalogue of the running session to plan its work")
        self.options, self.catalogue = options, options.catalogue
        self.plugins = options.plugin_blobs()
        self.context = worker_context()
        self.choices = options.choices if options.choices is not None else StackingChoices()
        self.cost = options.cost or CostModel(self.catalogue)
        self.queues: dict[str, deque[WorkItem]] = {}
        self.target: dict[str, int] = {}  # workers wanted per device
        self.measured: set[str] = set()  # accelerators whose capacity is known (or being measured)
        self.claimed: set[str] = set()
        self.is_accelerator = is_accelerator  # which devices get workers of their own (replaceable in tests)

    # -- planning --------------------------------------------------------------------------------

    def _plan(self, units: Sequence[Sequence[Trial]]) -> None:
        options = self.options
        by_device: dict[str, list[Sequence[Trial]]] = {}
        for unit in units:
            by_device.setdefault(unit[0].device, []).append(unit)
        for device, device_units in by_device.items():
            if self.is_accelerator(device):
                count = options.per_device or 1
                if options.per_device:
                    self.measured.add(device)
            else:
                count = max(1, options.workers)
            items = plan_items(device_units, self.catalogue, self.choices, options.vectorize, self.cost)
            self.queues[device] = deque(fill_workers(items, count, self.catalogue, self.choices, self.cost))
            self.target[device] = count

    def _slots(self, device: str) -> int:
        return 1 if self.is_accelerator(device) else max(1, usable_cores() // self.options.threads)

    # -- the run ---------------------------------------------------------------------------------

    def _start(self, device: str) -> _Worker:
        from nnbench.execution.worker import worker_main

        parent, child = self.context.Pipe()
        process = self.context.Process(  # type: ignore[attr-defined]
            target=worker_main,
            args=(child, self.options.threads, self.plugins, self.options.vectorize, worker_settings()),
            name=f"nnbench-worker-{device}", daemon=True,
        )
        process.start()
        child.close()
        return _Worker(device, process, parent)

    def run(self, units: Sequence[Sequence[Trial]], sink: ResultSink) -> None:
        self._plan(units)
        workers: list[_Worker] = []
        for device, queue in self.queues.items():
            workers += [self._start(device) for _ in range(min(self.target[device], len(queue)))]
        try:
            while any(self.queues.values()) or any(w.item for w in workers):
                for worker in workers:
                    if worker.ready and worker.item is None:
                        self._assign(worker, workers, sink)
                self._poll(workers, sink)
                for i, worker in enumerate(workers):
                    if self._ended(worker, sink) and self.queues[worker.device]:
                        workers[i] = self._start(worker.device)
                workers = [w for w in workers if not w.conn.closed]
                workers += self._grow(workers)
        finally:
            self._stop(workers)

    def _grow(self, workers: list[_Worker]) -> list[_Worker]:
        """Start the workers a device's measured capacity asks for, while it has work waiting."""
        started = []
        for device, queue in self.queues.items():
            present = sum(w.device == device for w in workers)
            idle = sum(w.device == device and w.item is None for w in workers)
            for _ in range(min(self.target[device] - present, len(queue) - idle)):
                started.append(self._start(device))
        return started

    def _next(self, device: str, workers: list[_Worker]) -> WorkItem | None:
        """The longest waiting item, passing over groups whose choice another worker is measuring
        right now (it will decide them in a moment)."""
        measuring = {w.item.key for w in workers if w.item is not None and w.item.undecided}
        queue = self.queues[device]
        for item in queue:
            if not (item.undecided and item.key in measuring):
                queue.remove(item)
                return item
        return None

    def _assign(self, worker: _Worker, workers: list[_Worker], sink: ResultSink) -> None:
        while (item := self._next(worker.device, workers)) is not None:
            fresh = [t for t in item.trials if t.trial_id not in self.claimed]
            claimed = [t for t in item.trials if t.trial_id in self.claimed]
            granted = claimed + (sink.claim(fresh) if fresh else [])
            self.claimed.update(t.trial_id for t in granted)
            if not granted:
                continue
            if len(granted) < len(item.trials):  # another run holds some: a smaller group, decided anew
                key = calibration_key(granted, self.catalogue) if len(granted) > 1 else None
                item = WorkItem(granted, self.choices.get(key) if key else None,
                                item.seconds * len(granted) / len(item.trials), key)
            measure = self.is_accelerator(worker.device) and worker.device not in self.measured
            if measure:
                self.measured.add(worker.device)
            worker.item, worker.remaining = item, {t.trial_id: t for t in item.trials}
            worker.clock, worker.covers = time.monotonic(), 1
            busy = [w for w in workers if w.device == worker.device and w.item is not None]
            for other in busy:
                other.peak = max(other.peak, len(busy))
            worker.conn.send(item.message(measure))
            return

    def _poll(self, workers: list[_Worker], sink: ResultSink) -> None:
        by_conn = {w.conn: w for w in workers}
        for ready in wait(list(by_conn), timeout=self.POLL_SECONDS):
            self._drain(by_conn[ready], sink)  # type: ignore[index]

    def _drain(self, worker: _Worker, sink: ResultSink) -> None:
        """Handle every message the worker has sent so far. Only reading can fail for a dead worker
        (noticed and reported by ``_ended``); an error while handling a message is the run's own."""
        while True:
            try:
                if not worker.conn.poll():
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):
                return
            self._handle(worker, message, sink)

    def _handle(self, worker: _Worker, message: tuple[Any, ...], sink: ResultSink) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "log":
            sink.log(message[1])
        elif kind == "warning":  # a plugin's lifecycle hook raised in the worker
            warnings.warn(message[1], PluginHookWarning, stacklevel=2)
        elif kind == "started":
            worker.clock, worker.covers = time.monotonic(), max(1, len(message[1]))
        elif kind == "choice":
            self._learn(message[1], StackingChoice(**message[2]), worker, sink)
        elif kind == "release":
            self._requeue(worker, message[1], StackingChoice(**message[2]))
        elif kind == "capacity":
            self.target[worker.device] = max(1, int(message[1]))
            sink.log(f"{worker.device}: {message[1]} trials train at once (measured: {message[2]}; "
                     "--per-device N to choose)")
        elif kind == "result":
            result = result_from_dict(message[1])
            worker.remaining.pop(result.trial.trial_id, None)
            sink.result(with_company(result, max(1, worker.peak), self._slots(worker.device)))
        elif kind == "done":
            worker.item, worker.remaining, worker.peak = None, {}, 0

    def _learn(self, key: str, choice: StackingChoice, worker: _Worker, sink: ResultSink) -> None:
        """Keep a choice a worker measured; say it once; apply it to the groups still waiting."""
        if self.choices.put(key, choice) and worker.item is not None:
            sink.log(choice.describe(worker.item.trials[0], len(worker.item.trials)))
        queue = self.queues[worker.device]
        waiting: list[WorkItem] = []
        for item in queue:
            waiting += items_of(item.trials, choice, self.cost, key) if item.undecided and item.key == key else [item]
        queue.clear()
        queue.extend(longest_first(waiting))

    def _requeue(self, worker: _Worker, trial_ids: list[str], choice: StackingChoice) -> None:
        """Trials a worker handed back: first in line, one item each (they are as long as its own)."""
        for trial_id in reversed(trial_ids):
            trial = worker.remaining.pop(trial_id)
            self.queues[worker.device].appendleft(WorkItem([trial], choice, self.cost.seconds(trial)))

    def _ended(self, worker: _Worker, sink: ResultSink) -> bool:
        """End a worker that died or overran its time, reporting the trials it held as failed/timeout."""
        timeout = self.options.timeout
        if worker.process.is_alive():
            if not timeout or worker.item is None or time.monotonic() - worker.clock <= timeout * worker.covers:
                return False
            self._drain(worker, sink)  # results that made it in time count as results
            if worker.item is None or time.monotonic() - worker.clock <= timeout * worker.covers:
                return False
            self._kill(worker)
            status = "timeout"
            share = f" ({worker.covers} trials stacked: {timeout * worker.covers:g} s)" if worker.covers > 1 else ""
            cause = f"ran past --timeout {timeout:g} s per trial{share} and was stopped"
        else:
            worker.process.join(1)
            self._drain(worker, sink)  # what it sent before dying still counts
            status, cause = "failed", describe_exit(worker.process.exitcode)
            if not worker.ready:
                raise WorkerStartError(
                    f"a worker process could not start: {cause}; see the messages above. From a Python "
                    "script, call nnbench.run(..., workers=N) under `if __name__ == \"__main__\":`"
                )
        held = list(worker.remaining.values())
        worker.conn.close()
        for trial in held:
            sink.result(with_company(failed_result(trial, status, cause), max(1, worker.peak),
                                     self._slots(worker.device)))
        return True

    def _kill(self, worker: _Worker) -> None:
        worker.process.kill()
        worker.process.join(5)

    def _stop(self, workers: list[_Worker]) -> None:
        """End every worker at once: they hold nothing (results are already sent), and waiting for
        torch to tear down in each would cost the run most of a second."""
        for worker in workers:
            self._kill(worker)
            worker.conn.close()
