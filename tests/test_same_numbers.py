"""Same trial, same numbers: whether seeds train stacked is decided from the trial, never timed, so inline and
worker processes on a loaded machine store the same numbers to the bit, and the choice is recorded."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pandas as pd

import nnbench

GRID = {"task": ["spirals", "moons"], "arch": "fnn", "activation": ["relu", "tanh"], "optimizer": ["adam", "sgd"],
        "epochs": 2, "seeds": 3, "quiet": True}
NUMBERS = ["train_loss", "val_loss", "val_metric", "test_loss", "metric", "best_epoch", "epochs_run"]


def stored(path: Path, **options: object) -> pd.DataFrame:
    frame = nnbench.run(store=str(path), **{**GRID, **options}).set_index("trial_id").sort_index()
    frame["mode"] = frame["training"].map(lambda t: json.loads(t)["mode"])
    return frame


def test_inline_and_two_workers_on_a_loaded_machine_store_the_same_numbers(tmp_path: Path) -> None:
    inline = stored(tmp_path / "inline.db", workers=1)
    # a process spinning on every core while the workers train: load must not change a stored number
    spinners = [subprocess.Popen([sys.executable, "-c", "while True: pass"]) for _ in range(2)]
    try:
        workers = stored(tmp_path / "workers.db", workers=2)
    finally:
        for spinner in spinners:
            spinner.kill()
            spinner.wait()
    assert len(inline) == 24 and list(inline.index) == list(workers.index)
    assert set(inline["status"]) == {"ok"}
    assert list(inline["mode"]) == list(workers["mode"]) and set(inline["mode"]) == {"stacked"}
    for column in NUMBERS:
        assert inline[column].tolist() == workers[column].tolist(), column  # to the bit


def test_turning_stacking_off_is_the_one_change_of_choice_and_it_is_recorded(tmp_path: Path) -> None:
    stacked = stored(tmp_path / "a.db", workers=1, arch="fnn", activation="relu", optimizer="adam")
    alone = stored(tmp_path / "b.db", workers=1, arch="fnn", activation="relu", optimizer="adam", vectorize=False)
    assert set(stacked["mode"]) == {"stacked"} and set(alone["mode"]) == {"one_by_one"}
    assert list(stacked.index) == list(alone.index)  # how a trial trained is not part of its id
    difference = (stacked["test_loss"] - alone["test_loss"]).abs().max()
    assert difference < 1e-5
