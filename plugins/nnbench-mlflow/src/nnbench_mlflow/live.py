"""Logging a run to MLflow while it trains: the parent run when it starts, each trial once stored, the seed
groups when it ends."""

from __future__ import annotations

from collections.abc import Sequence
from typing import TYPE_CHECKING

from nnbench.tracking.live import LiveTracker

if TYPE_CHECKING:
    from nnbench import Trial
    from nnbench.tracking.records import TrackedRun, TrackedTrial
    from nnbench_mlflow.writer import MlflowWriter


class MlflowLive(LiveTracker):
    """Live MLflow logging, to MLflow's own settings (``MLFLOW_TRACKING_URI``, ``MLFLOW_EXPERIMENT_NAME``)."""

    def __init__(self, switch: str) -> None:
        super().__init__("MLflow", switch)
        self.writer: MlflowWriter | None = None
        self.parent = ""

    def start(self, run_id: str, trials: Sequence[Trial]) -> None:
        from nnbench_mlflow.writer import MlflowWriter

        self.writer = MlflowWriter()
        self.parent = self.writer.parent(run_id, "running", self.environment, {}, {})

    def log_trial(self, trial: TrackedTrial) -> None:
        assert self.writer is not None and self.run_id is not None
        self.writer.trial(self.parent, self.run_id, trial, {})

    def finish(self, run: TrackedRun) -> None:
        assert self.writer is not None
        existing = self.writer.existing(run.run_id)
        for group in run.groups:
            self.writer.group(self.parent, run.run_id, group, existing)
        self.writer.end(self.parent, run.status)
