"""A per-epoch CSV log of every trial, written only when asked.

Set ``NNBENCH_EXTRAS_CSV_DIR`` to a folder and each trial writes ``<folder>/<trial id>.csv``: one
row per epoch with the trial's configuration and every field of its epoch record. Unset (the
default), nothing is written, so runs do not leave files behind. One file per trial keeps worker
processes from writing to the same file; a retrained trial starts its file afresh.
"""

from __future__ import annotations

import csv
import dataclasses
import os
from pathlib import Path
from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnbench import EpochRecord, Trial

ENV_VAR = "NNBENCH_EXTRAS_CSV_DIR"


def log_folder() -> Path | None:
    """The folder named by ``NNBENCH_EXTRAS_CSV_DIR``, or ``None`` when logging is off."""
    folder = os.environ.get(ENV_VAR)
    return Path(folder).expanduser() if folder else None


def write_epoch(folder: Path, trial: Trial, record: EpochRecord) -> Path:
    """Append ``record`` to the trial's CSV file in ``folder`` (starting it at epoch 1) and return its path."""
    config = {key: value for key, value in trial.config().items() if key != "params"}
    row = {"trial_id": trial.trial_id, **config, **dataclasses.asdict(record)}
    path = folder / f"{trial.trial_id}.csv"
    start = record.epoch == 1 or not path.exists()
    folder.mkdir(parents=True, exist_ok=True)
    with path.open("w" if start else "a", newline="") as out:
        writer = csv.DictWriter(out, fieldnames=list(row))
        if start:
            writer.writeheader()
        writer.writerow(row)
    return path
