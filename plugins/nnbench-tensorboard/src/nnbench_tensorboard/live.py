"""Logging a run to TensorBoard while it trains: each trial once stored, the seed groups and the HParams
experiment when it ends."""

from __future__ import annotations

import os
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nnbench.tracking.live import LiveTracker

if TYPE_CHECKING:
    from nnbench import Trial
    from nnbench.tracking.records import TrackedRun, TrackedTrial
    from nnbench_tensorboard.writer import EventsWriter

REPORTS = Path("reports")  # where `nnbench run` puts reports unless --report-dir says otherwise


class TensorBoardLive(LiveTracker):
    """Live TensorBoard logging: beside the run's report (``REPORT_DIR/RUN/tensorboard``), or in the log folder
    the environment variable ``folder_variable`` names (each run in a folder of its own there)."""

    def __init__(self, switch: str, folder_variable: str) -> None:
        super().__init__("TensorBoard", switch)
        self.folder_variable = folder_variable
        self.writer: EventsWriter | None = None
        self.folder = Path()

    def start(self, run_id: str, trials: Sequence[Trial]) -> None:
        from nnbench_tensorboard.writer import EventsWriter

        shared = os.environ.get(self.folder_variable)
        if shared:
            self.writer, self.folder = EventsWriter(Path(shared)), Path(shared) / run_id
        else:
            logdir = report_dir() / run_id / "tensorboard"
            self.writer, self.folder = EventsWriter(logdir), logdir

    def log_trial(self, trial: TrackedTrial) -> None:
        assert self.writer is not None and self.run_id is not None
        self.writer.trial(self.folder, self.run_id, trial)
        self.writer.save()

    def finish(self, run: TrackedRun) -> None:
        assert self.writer is not None
        for group in run.groups:
            self.writer.group(self.folder, run.run_id, group)
        self.writer.experiment()
        self.writer.save()


def report_dir() -> Path:
    """The ``--report-dir`` of the ``nnbench run`` command this process runs, else ``reports``."""
    import click

    context = click.get_current_context(silent=True)
    given = context.params.get("report_dir") if context is not None else None
    return Path(given) if given else REPORTS
