"""Executors: how work units (trials that differ only by seed) are scheduled.

An executor's ``run(units, sink)`` trains every unit and hands each :class:`TrialResult` to the
sink as soon as it is known; only the parent process (the sink) writes the store. Three are built
in: ``inline`` (this process), ``processes`` (local worker processes, one pool per device) and
``ray`` (a Ray cluster, see :mod:`nnbench.execution.ray`). Others register through the
``register_executors`` hook.
"""

from __future__ import annotations

import time
import warnings
from collections import deque
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from multiprocessing.connection import Connection, wait
from typing import TYPE_CHECKING, Any, Protocol

from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.execution.messages import describe_exit, failed_result, pack_plugins, result_from_dict
from nnbench.loading.plugins import PluginHookWarning

if TYPE_CHECKING:
    from multiprocessing.process import BaseProcess

    from nnbench.loading.catalogue import Catalogue


class ResultSink(Protocol):
    """Where executors deliver results; raising :class:`GridStopped` from ``result`` stops the grid.

    An executor calls ``claim(unit)`` immediately before it starts training a unit and trains only the
    trials it returns (another run on the same store may be training the others).
    """

    def claim(self, trials: Sequence[Trial]) -> list[Trial]: ...

    def result(self, result: TrialResult) -> None: ...

    def log(self, message: str) -> None: ...


class Executor(Protocol):
    """Trains work units; every trial of every unit yields exactly one result through the sink."""

    def run(self, units: Sequence[Sequence[Trial]], sink: ResultSink) -> None: ...


class GridStopped(Exception):
    """The sink asked to stop (``--fail-fast`` / ``--max-failures``)."""


class WorkerStartError(NNBenchError):
    """Worker processes die before they can take work (a broken installation or plugin)."""


@dataclass
class ExecutorOptions:
    """Everything an executor may need; each executor uses what applies to it."""

    workers: int = 1
    threads: int = 1  # torch threads per training process
    timeout: float | None = None
    vectorize: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # the executor's own options, by name
    extra_plugins: list[Any] = field(default_factory=list)  # registered in this process only
    catalogue: Catalogue | None = None  # the parent's, for executors that train in this process
    on_epoch: Callable[[Trial, EpochRecord], None] | None = None

    def plugin_blobs(self) -> list[bytes]:
        """The in-process plugins, packed for workers in other processes (see :func:`pack_plugins`)."""
        return pack_plugins(self.extra_plugins)


# -- inline ------------------------------------------------------------------------------------------


class InlineExecutor:
    """Trains every unit in this process, one after another."""

    def __init__(self, options: ExecutorOptions) -> None:
        if options.catalogue is None:
            raise ValueError("the inline executor needs the catalogue of the running session")
        self.options, self.catalogue = options, options.catalogue

    def run(self, units: Sequence[Sequence[Trial]], sink: ResultSink) -> None:
        import torch

        from nnbench.training.ensemble import train_group

        previous = torch.get_num_threads()
        torch.set_num_threads(self.options.threads)
        try:
            for unit in units:
                claimed = sink.claim(unit)
                if not claimed:
                    continue
                for result in train_group(claimed, self.catalogue, self.options.on_epoch, self.options.vectorize,
                                          sink.log):
                    sink.result(result)
        finally:
            torch.set_num_threads(previous)  # a notebook keeps its own setting


# -- local worker processes --------------------------------------------------------------------------


@dataclass
class _Worker:
    device: str
    process: BaseProcess
    conn: Connection
    ready: bool = False
    unit: list[Trial] | None = None
    remaining: dict[str, Trial] = field(default_factory=dict)
    started: float = 0.0


def _main_guard_hint() -> str:
    """For a script (not a notebook, whose main module workers never re-run): the guard spawn needs."""
    import sys

    if getattr(sys.modules.get("__main__"), "__file__", None):
        return (". A worker re-runs the script that started it: call nnbench.run(..., workers=N) under "
                "`if __name__ == \"__main__\":`")
    return ""


class ProcessExecutor:
    """Trains units in worker processes started with ``spawn`` (safe with CUDA).

    ``workers`` processes serve CPU trials; each accelerator gets its own worker, so units for
    ``cuda:1`` run only there. A worker that dies or runs past the time limit is replaced and the
    trials it held are stored as ``failed`` or ``timeout`` with the cause; the grid goes on. Each
    worker talks to the parent over its own pipe, so a worker killed mid-message harms no other.
    """

    POLL_SECONDS = 0.2

    def __init__(self, options: ExecutorOptions) -> None:
        self.options = options
        self.plugins = options.plugin_blobs()
        import multiprocessing

        self.context = multiprocessing.get_context("spawn")

    def _start(self, device: str) -> _Worker:
        from nnbench.execution.worker import worker_main

        parent, child = self.context.Pipe()
        process = self.context.Process(
            target=worker_main, args=(child, self.options.threads, self.plugins, self.options.vectorize),
            name=f"nnbench-worker-{device}", daemon=True,
        )
        process.start()
        child.close()
        return _Worker(device, process, parent)

    def run(self, units: Sequence[Sequence[Trial]], sink: ResultSink) -> None:
        queues: dict[str, deque[list[Trial]]] = {}
        for unit in units:
            queues.setdefault(unit[0].device, deque()).append(list(unit))
        cpu_workers = max(1, self.options.workers)
        workers: list[_Worker] = []
        for device, queue in queues.items():
            count = cpu_workers if device == "cpu" else 1
            workers += [self._start(device) for _ in range(min(count, len(queue)))]
        try:
            while any(queues.values()) or any(w.unit for w in workers):
                for worker in workers:
                    while worker.ready and worker.unit is None and queues[worker.device]:
                        claimed = sink.claim(queues[worker.device].popleft())
                        if claimed:
                            self._assign(worker, claimed)
                self._poll(workers, sink)
                for i, worker in enumerate(workers):
                    if self._ended(worker, sink) and queues[worker.device]:
                        workers[i] = self._start(worker.device)
                workers = [w for w in workers if not w.conn.closed]
        finally:
            self._stop(workers)

    def _assign(self, worker: _Worker, unit: list[Trial]) -> None:
        worker.unit = unit
        worker.remaining = {t.trial_id: t for t in unit}
        worker.started = time.monotonic()
        worker.conn.send([t.config() for t in unit])

    def _poll(self, workers: list[_Worker], sink: ResultSink) -> None:
        by_conn = {w.conn: w for w in workers}
        for ready in wait(list(by_conn), timeout=self.POLL_SECONDS):
            self._drain(by_conn[ready], sink)  # type: ignore[index]

    def _drain(self, worker: _Worker, sink: ResultSink) -> None:
        """Handle every message the worker has sent so far."""
        try:
            while worker.conn.poll():
                self._handle(worker, worker.conn.recv(), sink)
        except (EOFError, OSError):
            pass  # the worker died; _ended notices and reports it

    def _handle(self, worker: _Worker, message: tuple[Any, ...], sink: ResultSink) -> None:
        kind = message[0]
        if kind == "ready":
            worker.ready = True
        elif kind == "log":
            sink.log(message[1])
        elif kind == "warning":  # a plugin's lifecycle hook raised in the worker
            warnings.warn(message[1], PluginHookWarning, stacklevel=2)
        elif kind == "result":
            result = result_from_dict(message[1])
            worker.remaining.pop(result.trial.trial_id, None)
            sink.result(result)
        elif kind == "done":
            worker.unit, worker.remaining = None, {}

    def _ended(self, worker: _Worker, sink: ResultSink) -> bool:
        """End a worker that died or overran its time, reporting the trials it held as failed/timeout."""
        if worker.process.is_alive():
            budget = self.options.timeout * len(worker.unit) if self.options.timeout and worker.unit else None
            if budget is None or time.monotonic() - worker.started <= budget:
                return False
            self._drain(worker, sink)  # results that made it in time count as results
            if worker.unit is None:
                return False
            self._kill(worker)
            status = "timeout"
            cause = f"ran past --timeout {self.options.timeout:g} s per trial and was stopped"
        else:
            worker.process.join(1)
            self._drain(worker, sink)  # what it sent before dying still counts
            status, cause = "failed", describe_exit(worker.process.exitcode)
            if not worker.ready:
                raise WorkerStartError(f"a worker process could not start: {cause}; see the messages above"
                                       + _main_guard_hint())
        held = list(worker.remaining.values())
        worker.conn.close()
        for trial in held:
            sink.result(failed_result(trial, status, cause))
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
