"""Executors: how work units (trials that differ only by seed) are scheduled.

An executor's ``run(units, sink)`` trains every unit and hands each :class:`TrialResult` to the
sink as soon as it is known; only the parent process (the sink) writes the store. Immediately
before it starts training a unit, or a part of one, an executor calls ``sink.claim(trials)`` and
trains only the trials that returns. Three are built in: ``inline`` (this process), ``processes``
(local worker processes forked from a preloaded server, see :mod:`nnbench.execution.processes`)
and ``ray`` (a Ray cluster, see :mod:`nnbench.execution.ray`). Others register through the
``register_executors`` hook.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any, Protocol

from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.execution.messages import pack_plugins

if TYPE_CHECKING:
    from nnbench.execution.scheduling import CostModel
    from nnbench.loading.catalogue import Catalogue
    from nnbench.training.calibration import StackingChoices


class ResultSink(Protocol):
    """Where executors deliver results; raising :class:`GridStopped` from ``result`` stops the grid."""

    def claim(self, trials: Sequence[Trial]) -> list[Trial]:
        """Called immediately before training ``trials`` (a unit or part of one): the ones to train
        (none: skip them), so that no two runs train the same trial: another run on the same store
        may be training the others."""
        ...

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
    """Everything an executor may need; each executor uses what applies to it.

    ``workers`` are the worker processes for CPU trials and ``per_device`` those for each accelerator
    (``None``: as many as a short measurement on the device finds it can keep busy).
    """

    workers: int = 1
    per_device: int | None = 1
    threads: int = 1  # torch threads per training process
    timeout: float | None = None
    vectorize: bool = True
    extra: dict[str, Any] = field(default_factory=dict)  # the executor's own options, by name
    extra_plugins: list[Any] = field(default_factory=list)  # registered in this process only
    catalogue: Catalogue | None = None  # the parent's: for executors that train here, and for planning
    on_epoch: Callable[[Trial, EpochRecord], None] | None = None
    test_each_epoch: bool = False  # something reads every epoch's test numbers (an after_epoch hook)
    choices: StackingChoices | None = None  # the run's stacking choices, kept across its executions
    cost: CostModel | None = None  # estimated training times, for ordering work longest first

    def plugin_blobs(self) -> list[bytes]:
        """The in-process plugins, packed for workers in other processes (see :func:`pack_plugins`)."""
        return pack_plugins(self.extra_plugins)


def with_company(result: TrialResult, concurrent: int, slots: int) -> TrialResult:
    """``result`` with how many trials trained on its device at once, and how many could without
    sharing it, added to its ``training`` record."""
    result.training = {**(result.training or {}), "concurrent": concurrent, "slots": slots}
    return result


# -- inline ------------------------------------------------------------------------------------------


class InlineExecutor:
    """Trains every unit in this process, one after another."""

    def __init__(self, options: ExecutorOptions) -> None:
        if options.catalogue is None:
            raise ValueError("the inline executor needs the catalogue of the running session")
        self.options, self.catalogue = options, options.catalogue

    def run(self, units: Sequence[Sequence[Trial]], sink: ResultSink) -> None:
        import torch

        from nnbench.machine import usable_cores
        from nnbench.training.calibration import StackingChoices
        from nnbench.training.ensemble import train_group

        options = self.options
        choices = options.choices if options.choices is not None else StackingChoices()
        slots = max(1, usable_cores() // options.threads)
        previous = torch.get_num_threads()
        torch.set_num_threads(options.threads)
        try:
            for unit in units:
                trials = sink.claim(list(unit))
                if not trials:
                    continue
                for result in train_group(trials, self.catalogue, options.on_epoch, options.vectorize, sink.log,
                                          choices=choices, test_each_epoch=options.test_each_epoch):
                    sink.result(with_company(result, 1, slots))
        finally:
            torch.set_num_threads(previous)  # a notebook keeps its own setting
