"""The hook implementations nnbench finds through this distribution's ``nnbench`` entry point.

Loading the plugin imports neither MLflow nor nnbench's tracking code: they load when a run starts with
tracking on, or when ``nnbench export --to mlflow`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nnbench import ExporterSpec, hookimpl

if TYPE_CHECKING:
    from nnbench import Trial, TrialResult
    from nnbench.tracking.records import TrackedRun
    from nnbench_mlflow.live import MlflowLive

SWITCH = "NNBENCH_MLFLOW"
"""Set to ``off`` to stop logging runs live (``nnbench export --to mlflow`` still works)."""
_live: list[MlflowLive] = []


def live() -> MlflowLive:
    """This process's live logger (made on first use)."""
    if not _live:
        from nnbench_mlflow.live import MlflowLive

        _live.append(MlflowLive(SWITCH))
    return _live[0]


def export(runs: Sequence[TrackedRun], output: Path | None) -> str:
    from nnbench_mlflow.writer import MlflowWriter

    return MlflowWriter().export(runs)


@hookimpl
def register_exporters(register: Callable[[ExporterSpec], None]) -> None:
    register(ExporterSpec("mlflow", export, "MLflow: a run per nnbench run, nested runs per trial and per seed group "
                                            "(to MLFLOW_TRACKING_URI, else MLflow's default)"))


@hookimpl
def before_run(run_id: str, trials: list[Trial]) -> None:
    live().before_run(run_id, trials)


@hookimpl
def after_trial(trial: Trial, result: TrialResult) -> None:
    live().after_trial(trial, result)


@hookimpl
def after_run(run_id: str, results: list[TrialResult]) -> None:
    live().after_run(run_id, results)
