"""The hook implementations nnbench finds through this distribution's ``nnbench`` entry point.

Loading the plugin imports neither TensorBoard nor nnbench's tracking code: they load when a run starts with
tracking on, or when ``nnbench export --to tensorboard`` runs.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from nnbench import ExporterSpec, NNBenchError, hookimpl

if TYPE_CHECKING:
    from nnbench import Trial, TrialResult
    from nnbench.tracking.records import TrackedRun
    from nnbench_tensorboard.live import TensorBoardLive

SWITCH = "NNBENCH_TENSORBOARD"
"""Set to ``off`` to stop logging runs live (``nnbench export --to tensorboard`` still works)."""
FOLDER = "NNBENCH_TENSORBOARD_DIR"
"""A log folder for every run's live events (each run in a folder of its own, named by its id); unset, a run's
events go beside its report, in ``REPORT_DIR/RUN/tensorboard``."""
_live: list[TensorBoardLive] = []


def live() -> TensorBoardLive:
    """This process's live logger (made on first use)."""
    if not _live:
        from nnbench_tensorboard.live import TensorBoardLive

        _live.append(TensorBoardLive(SWITCH, FOLDER))
    return _live[0]


def export(runs: Sequence[TrackedRun], output: Path | None) -> str:
    from nnbench_tensorboard.writer import EventsWriter

    if output is None or output.is_file():
        raise NNBenchError(f"--to tensorboard writes a folder of event files: give -o FOLDER"
                           f"{f', not the file {output}' if output is not None else ''}")
    writer = EventsWriter(output)
    return writer.export(runs)


@hookimpl
def register_exporters(register: Callable[[ExporterSpec], None]) -> None:
    register(ExporterSpec("tensorboard", export, "TensorBoard: scalars per trial and per seed group, the HParams "
                                                 "table over the grid's axes", output="a folder of event files"))


@hookimpl
def before_run(run_id: str, trials: list[Trial]) -> None:
    live().before_run(run_id, trials)


@hookimpl
def after_trial(trial: Trial, result: TrialResult) -> None:
    live().after_trial(trial, result)


@hookimpl
def after_run(run_id: str, results: list[TrialResult]) -> None:
    live().after_run(run_id, results)
