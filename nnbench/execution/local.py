"""This machine's executor: ``inline`` (in this process) and ``processes`` (local worker processes) are one path.

Items are taken from the plan's queue as capacity frees up and claimed just before they train. With ``plan.workers``
0 the one slot is this process: each item trains here, one after another, except items the plan isolates (a trial
that failed before, or was in training when an earlier run's process died), which train in a worker process of
their own, where a crash costs them alone. Otherwise ``plan.workers`` worker processes serve the CPU items, and each
accelerator gets ``plan.per_device`` workers of its own (unset: one, which first measures how many trials the
device can train at once). Workers are forked from a preloaded server (:mod:`nnbench.execution.launching`); each
talks to this process over its own pipe, so a worker killed mid-message harms no other.

Items that ask for a device kind (``cuda``) go to the workers of every device of that kind here (``cuda:0``,
``cuda:1``), each item placed on its worker's device.

A worker that dies is replaced and the trials it held are stored as ``failed`` with the cause; a worker still busy
past its item's deadline (``plan.deadline``: the trainer stops a trial at its limit itself, so this only happens
inside a component that never returns) is killed and its trials stored as ``timeout``. The grid goes on.
"""

from __future__ import annotations

import time
import warnings
from collections.abc import Callable
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any

from nnbench.contract.executor import ResultSink, WorkerStartError, WorkItem, WorkPlan, failed_result
from nnbench.contract.trial import Trial, TrialResult
from nnbench.execution.costs import is_accelerator
from nnbench.execution.launching import worker_context, worker_settings
from nnbench.execution.messages import describe_exit, result_from_dict
from nnbench.execution.worker import worker_main
from nnbench.loading.plugins import PluginHookWarning
from nnbench.machine import usable_cores

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

POLL_SECONDS = 0.2


def with_company(result: TrialResult, concurrent: int, slots: int) -> TrialResult:
    """``result`` with how many trials trained on its device at once, and how many could without sharing it,
    added to its ``training`` record."""
    result.training = {**(result.training or {}), "concurrent": concurrent, "slots": slots}
    return result


@dataclass
class _Worker:
    device: str
    process: BaseProcess
    conn: Connection
    ready: bool = False
    item: WorkItem | None = None
    remaining: dict[str, Trial] = field(default_factory=dict)
    clock: float = 0.0  # when the running item started training (its deadline counts from here)
    peak: int = 0  # the most items in training on this device at once while this one was


class LocalExecutor:
    """Trains a plan's items on this machine; see the module docstring."""

    def __init__(self) -> None:
        self.context = worker_context()
        self.target: dict[str, int] = {}  # workers wanted per device
        self.measured: set[str] = set()  # accelerators whose capacity is known (or being measured)
        self.is_accelerator: Callable[[str], bool] = is_accelerator  # replaceable in tests

    def begin(self, plan: WorkPlan, sink: ResultSink) -> None:
        """Take ``plan`` and ``sink`` for a run (``run`` does; tests step through a run from here)."""
        self.plan, self.sink = plan, sink
        self.isolated: list[WorkItem] = []  # in this process's run: items waiting for a worker of their own
        self.held: WorkItem | None = None  # in this process's run: the next item to train here

    def run(self, plan: WorkPlan, sink: ResultSink) -> None:
        self.begin(plan, sink)
        workers: list[_Worker] = []
        try:
            while plan.items.waiting() or self.isolated or self.held or any(w.item for w in workers):
                self._here(workers)
                for device in self._devices():
                    workers += self._grow(device, workers)
                for worker in workers:
                    if worker.ready and worker.item is None:
                        self._assign(worker, workers)
                self._poll(workers)
                for i, worker in enumerate(workers):
                    if self._ended(worker) and (plan.items.waiting(worker.device) or self.isolated):
                        workers[i] = self._start(worker.device)
                workers = [w for w in workers if not w.conn.closed]
                workers = self._retire(workers)
        finally:
            self._stop(workers)

    def _devices(self) -> list[str]:
        """This machine's devices that items waiting ask for (a kind: each of its devices here)."""
        asked = [*self.plan.items.devices(), *(["cpu"] if self.isolated else [])]
        return list(dict.fromkeys(place for device in asked for place in self.plan.places(device)))

    # -- this process --------------------------------------------------------------------------

    def _here(self, workers: list[_Worker]) -> None:
        """With no workers planned: train the next item in this process, once the isolated items (taken first)
        have trained in a worker of their own and that worker is gone."""
        if self.plan.workers:
            return
        if self.held is None:
            while (item := self.plan.items.take()) is not None and item.isolated:
                self.isolated.append(item)
            self.held = item
        if self.held is None or self.isolated or workers:
            return
        item, self.held = self.held, None
        granted = self.sink.claim(item.trials, here=True)
        if granted:
            for result in self.plan.train(item.only(granted)):
                self.sink.result(with_company(result, 1, self._slots(item.device)))

    # -- worker processes ------------------------------------------------------------------------

    def _wanted(self, device: str) -> int:
        """Workers this device should have now."""
        if device not in self.target:
            if self.is_accelerator(device):
                self.target[device] = self.plan.per_device or 1
                if self.plan.per_device:
                    self.measured.add(device)
            else:
                self.target[device] = self.plan.workers
        return self.target[device]

    def _grow(self, device: str, workers: list[_Worker]) -> list[_Worker]:
        """Start the workers ``device`` asks for while it has items waiting (in this process's run: one, for the
        isolated items)."""
        present = [w for w in workers if w.device == device]
        idle = sum(w.item is None for w in present)
        if self.plan.workers or self.is_accelerator(device):
            wanted, waiting = self._wanted(device), self.plan.items.waiting(device)
        else:
            wanted, waiting = int(bool(self.isolated)), len(self.isolated)
        return [self._start(device) for _ in range(min(wanted - len(present), waiting - idle))]

    def _retire(self, workers: list[_Worker]) -> list[_Worker]:
        """In this process's run, the worker of the isolated items goes as soon as they are done."""
        if self.plan.workers or self.isolated:
            return workers
        idle = [w for w in workers if w.item is None and not self.is_accelerator(w.device)]
        self._stop(idle)
        return [w for w in workers if w not in idle]

    def _slots(self, device: str) -> int:
        return 1 if self.is_accelerator(device) else max(1, usable_cores() // self.plan.threads)

    def _start(self, device: str) -> _Worker:
        parent, child = self.context.Pipe()
        process = self.context.Process(  # type: ignore[attr-defined]
            target=worker_main, args=(child, self.plan.train, worker_settings()),
            name=f"nnbench-worker-{device}", daemon=True,
        )
        process.start()
        child.close()
        return _Worker(device, process, parent)

    def _next(self, device: str) -> WorkItem | None:
        if self.plan.workers == 0 and not self.is_accelerator(device):
            return self.isolated.pop(0) if self.isolated else None
        return self.plan.items.take(device)

    def _assign(self, worker: _Worker, workers: list[_Worker]) -> None:
        while (item := self._next(worker.device)) is not None:
            granted = self.sink.claim(item.trials)
            if not granted:
                continue
            item = item.only(granted).on(worker.device)
            measure = self.is_accelerator(worker.device) and worker.device not in self.measured
            if measure:
                self.measured.add(worker.device)
            worker.item, worker.remaining = item, {t.trial_id: t for t in item.trials}
            worker.clock = time.monotonic()
            busy = [w for w in workers if w.device == worker.device and w.item is not None]
            for other in busy:
                other.peak = max(other.peak, len(busy))
            worker.conn.send((item, measure))
            return

    def _poll(self, workers: list[_Worker]) -> None:
        by_conn = {w.conn: w for w in workers}
        if not by_conn:
            return
        for ready in wait(list(by_conn), timeout=POLL_SECONDS):
            self._drain(by_conn[ready])  # type: ignore[index]

    def _drain(self, worker: _Worker) -> None:
        """Handle every message the worker has sent so far. Only reading can fail for a dead worker
        (noticed and reported by ``_ended``); an error while handling a message is the run's own."""
        while True:
            try:
                if not worker.conn.poll():
                    return
                message = worker.conn.recv()
            except (EOFError, OSError):
                return
            self._handle(worker, message)

    def _handle(self, worker: _Worker, message: tuple[Any, ...]) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "log":
            self.sink.log(message[1])
        elif kind == "warning":  # a plugin's lifecycle hook raised in the worker
            warnings.warn(message[1], PluginHookWarning, stacklevel=2)
        elif kind == "started":
            worker.clock = time.monotonic()
        elif kind == "capacity":
            self.target[worker.device] = max(1, int(message[1]))
            self.sink.log(f"{worker.device}: {message[1]} trials train at once (measured: {message[2]}; "
                          "--per-device N to choose)")
        elif kind == "result":
            result = result_from_dict(message[1])
            worker.remaining.pop(result.trial.trial_id, None)
            self.sink.result(with_company(result, max(1, worker.peak), self._slots(worker.device)))
        elif kind == "done":
            worker.item, worker.remaining, worker.peak = None, {}, 0

    def _ended(self, worker: _Worker) -> bool:
        """End a worker that died or overran its item's deadline, reporting the trials it held."""
        if worker.process.is_alive():
            deadline = self.plan.deadline(worker.item) if worker.item is not None else None
            if deadline is None or time.monotonic() - worker.clock <= deadline:
                return False
            self._drain(worker)  # results that made it in time count as results
            if worker.item is None or time.monotonic() - worker.clock <= deadline:
                return False
            self._kill(worker)
            status = "timeout"
            cause = (f"ran past --timeout {self.plan.timeout:g} s per trial inside a component that did not return, "
                     "and its worker was stopped")
        else:
            worker.process.join(1)
            self._drain(worker)  # what it sent before dying still counts
            status, cause = "failed", describe_exit(worker.process.exitcode)
            if not worker.ready:
                raise WorkerStartError(
                    f"a worker process could not start: {cause}; see the messages above. From a Python "
                    "script, call nnbench.run(..., workers=N) under `if __name__ == \"__main__\":`"
                )
        held = list(worker.remaining.values())
        worker.conn.close()
        for trial in held:
            self.sink.result(with_company(failed_result(trial, status, cause), max(1, worker.peak),
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
