"""CSV files as tasks, and `nnbench list` filters and JSON."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner

import nnbench
from nnbench.cli import cli
from nnbench.planning.csvtask import CSVTaskError, csv_task


@pytest.fixture
def table(tmp_path: Path) -> Path:
    rng = np.random.default_rng(0)
    n = 240
    frame = pd.DataFrame({"width": rng.normal(size=n), "depth": rng.integers(1, 5, n),
                          "optimizer": rng.choice(["adam", "sgd", "rmsprop"], n)})
    frame["converged"] = np.where((frame.width > 0) | (frame.optimizer == "adam"), "yes", "no")
    frame["loss"] = 2 * frame.width - frame.depth + rng.normal(scale=0.1, size=n)
    frame["stage"] = rng.choice(["a", "b", "c"], n)
    path = tmp_path / "runs.csv"
    frame.to_csv(path, index=False)
    return path


def test_kinds_are_inferred_and_features_encoded(table: Path) -> None:
    task, params = csv_task(f"csv:{table}", "converged", None)
    assert task.kind == "binary" and task.num_classes == 2
    assert task.input_shape == (3 + 3 + 3,)  # width, depth, loss; optimizer and stage one-hot
    assert params["target"] == "converged" and len(params["sha256"]) == 16
    assert csv_task(f"csv:{table}", "loss", None)[0].kind == "regression"
    assert csv_task(f"csv:{table}", "stage", None)[0].kind == "multiclass"
    data = task.load()
    assert len(data.x_train) + len(data.x_val) + len(data.x_test) == 240
    assert abs(float(data.x_train[:, 0].mean())) < 0.1  # standardized with training statistics


@pytest.mark.parametrize(("edit", "target", "message"), [
    (None, "missing", "has no column 'missing'; its columns: width, depth, optimizer"),
    ("single", "converged", r"has a single class \('yes'\)"),
    ("garbage", "converged", "column 'width' of .* is numeric but row 5 holds 'oops'"),
    (None, "", "needs --target COLUMN"),
    ("binary3", "stage", "has 3 classes, not 2"),
])
def test_bad_tables_are_clear_errors(table: Path, edit: str | None, target: str, message: str) -> None:
    frame = pd.read_csv(table)
    kind = None
    if edit == "single":
        frame["converged"] = "yes"
    elif edit == "garbage":
        frame["width"] = frame["width"].astype(object)
        frame.loc[3, "width"] = "oops"
    elif edit == "binary3":
        kind = "binary"
    frame.to_csv(table, index=False)
    with pytest.raises(CSVTaskError, match=message):
        csv_task(f"csv:{table}", target, kind)


def test_a_missing_file_is_a_clear_error(tmp_path: Path) -> None:
    with pytest.raises(CSVTaskError, match="absent.csv does not exist"):
        csv_task(f"csv:{tmp_path / 'absent.csv'}", "y", None)


def test_a_csv_task_runs_from_the_command_line_and_in_workers(table: Path, tmp_path: Path,
                                                              monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNBENCH_PLUGINS", "none")
    monkeypatch.chdir(tmp_path)
    args = ["run", "--task", f"csv:{table}", "--target", "converged", "--arch", "fnn", "--activation", "relu",
            "--optimizer", "adam", "--lr", "0.01", "--seeds", "2", "--epochs", "10", "--quiet"]
    result = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert result.exit_code == 0, result.output
    assert f"csv:{table} → converged — test accuracy" in result.output
    pooled = nnbench.run(task=f"csv:{table}", target="converged", arch="fnn", activation="relu", optimizer="adam",
                         lr="0.01", seeds=2, epochs=10, store=tmp_path / "pool.db", workers=2)
    inline = pd.read_sql("SELECT * FROM trials", __import__("sqlite3").connect(tmp_path / "nnbench.db"))
    assert sorted(pooled["metric"]) == sorted(inline["metric"])
    assert pooled["metric"].min() > 0.8


def test_editing_the_file_means_new_trials(table: Path, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("NNBENCH_PLUGINS", "none")
    axes: dict[str, Any] = {"task": f"csv:{table}", "target": "loss", "arch": "fnn", "activation": "relu",
                            "optimizer": "adam", "seeds": 1, "epochs": 2, "store": tmp_path / "r.db"}
    first = nnbench.run(**axes)
    frame = pd.read_csv(table)
    frame.loc[0, "loss"] += 1
    frame.to_csv(table, index=False)
    second = nnbench.run(**axes)
    assert first["trial_id"][0] != second["trial_id"][0]


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False, env={"NNBENCH_PLUGINS": "none"})


def test_list_filters_by_plugin_and_wildcard_and_prints_json() -> None:
    by_plugin = invoke("list", "--plugin", "nnbench.builtin.losses")
    assert "losses (9)" in by_plugin.output and "activations (0)" in by_plugin.output
    wildcard = invoke("list", "adam*")
    assert "optimizers (3)" in wildcard.output and "activations" not in wildcard.output
    rows = json.loads(invoke("list", "tasks", "--json").output)
    assert {"kind": "task", "name": "digits"}.items() <= next(r for r in rows if r["name"] == "digits").items()
    assert all(r["plugin"].startswith("nnbench.") for r in rows)
    bad = invoke("list", "--plugin", "nope")
    assert bad.exit_code == 1 and "no component matches plugin 'nope'" in bad.output


def test_plugins_json_names_hooks_and_components() -> None:
    described = {p["name"]: p for p in json.loads(invoke("plugins", "--json").output)}
    tasks = described["nnbench.builtin.tasks"]
    assert tasks["source"] == "builtin" and tasks["hooks"] == ["register_tasks"]
    assert "digits" in tasks["components"]["tasks"]
    assert described["nnbench.builtin.executors"]["components"]["executors"] == ["inline", "processes", "ray"]


@pytest.mark.parametrize(("edit", "target", "message"), [
    ("rare", "stage", "class 'z' of target column 'stage' .* has only 1 row"),
    ("constant", "loss", "target column 'loss' of .* is constant"),
    ("empty_text", "converged", "column 'optimizer' of .* has 1 empty values"),
])
def test_tables_a_split_cannot_serve_are_refused(table: Path, edit: str, target: str, message: str) -> None:
    frame = pd.read_csv(table)
    if edit == "rare":
        frame.loc[0, "stage"] = "z"
    elif edit == "constant":
        frame["loss"] = 1.5
    else:
        frame.loc[0, "optimizer"] = None
    frame.to_csv(table, index=False)
    with pytest.raises(CSVTaskError, match=message):
        csv_task(f"csv:{table}", target, None)
