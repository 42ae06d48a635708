"""nnbench: evidence about neural-network components.

Public API: :data:`hookimpl` for plugins, the spec types a plugin registers (components, kinds,
report sections), the trial and result types lifecycle hooks receive, and :func:`run`,
:func:`report`, :func:`findings` and :func:`compare` for scripts and notebooks. Importing
``nnbench`` loads neither torch nor pandas.
"""

from __future__ import annotations

from typing import Any

from nnbench.api import compare, findings, load_task, report, run
from nnbench.contract.errors import NNBenchError
from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.release import VERSION
from nnbench.contract.section import ReportSection
from nnbench.contract.specs import (
    STAGES,
    Activation,
    Architecture,
    Component,
    Device,
    ExecutorOption,
    ExecutorSpec,
    ExporterSpec,
    InputSpec,
    Kind,
    Loss,
    Optimizer,
    Schedule,
    SearchRange,
    Task,
    TaskData,
)
from nnbench.contract.trial import EpochRecord, Trial, TrialResult

__version__ = VERSION



def __getattr__(name: str) -> Any:
    # Helpers for task authors that need numpy and torch load on first use.
    if name == "make_task_data":
        from nnbench.planning.task_data import make_task_data  # torch: importing nnbench loads none

        return make_task_data
    raise AttributeError(f"module 'nnbench' has no attribute {name!r}")


__all__ = [
    "STAGES",
    "Activation",
    "Architecture",
    "Component",
    "Device",
    "EpochRecord",
    "ExecutorOption",
    "ExecutorSpec",
    "ExporterSpec",
    "InputSpec",
    "Kind",
    "Loss",
    "NNBenchError",
    "Optimizer",
    "ReportSection",
    "Schedule",
    "SearchRange",
    "Task",
    "TaskData",
    "Trial",
    "TrialResult",
    "__version__",
    "compare",
    "findings",
    "hookimpl",
    "load_task",
    "make_task_data",
    "report",
    "run",
]
