"""nnbench: evidence about neural-network components.

Public API: :data:`hookimpl` for plugins, the component spec types, :func:`run` for notebooks.
"""

from __future__ import annotations

from typing import TYPE_CHECKING, Any

import pluggy

from nnbench.components import (
    Activation,
    Architecture,
    Device,
    ExecutorSpec,
    InputSpec,
    Loss,
    Optimizer,
    Task,
    TaskData,
)
from nnbench.errors import NNBenchError

__version__ = "0.1.0"

hookimpl = pluggy.HookimplMarker("nnbench")
"""Decorator marking a plugin's hook implementations."""

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.report import Report


def run(**axes: Any) -> pd.DataFrame:
    """Run a grid from Python and return one row per trial as a DataFrame.

    Takes the same axes as ``nnbench run`` (``task="digits"``, ``arch=["fnn", "cnn"]``,
    ``seeds=2``, ``store="results.db"``, ...); see :func:`nnbench.runner.run_grid`.
    """
    from nnbench.runner import run_from_python

    return run_from_python(**axes)


def report(*run_ids: str, store: str = "nnbench.db") -> Report:
    """Build the HTML report of ``run_ids`` (default: the latest run) from ``store``.

    The returned :class:`nnbench.report.Report` displays inline in a notebook and has
    ``.save(path)``.
    """
    from nnbench.plugins import make_plugin_manager
    from nnbench.report import build_report
    from nnbench.store import ResultStore

    with ResultStore(store) as results:
        return build_report(results, results.resolve_runs(list(run_ids)), make_plugin_manager())


__all__ = [
    "Activation",
    "Architecture",
    "Device",
    "ExecutorSpec",
    "InputSpec",
    "Loss",
    "NNBenchError",
    "Optimizer",
    "Task",
    "TaskData",
    "__version__",
    "hookimpl",
    "report",
    "run",
]
