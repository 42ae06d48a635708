"""The MLflow plugin, installed: a run logs itself live into a SQLite tracking store, read back with MLflow's own
client; ``nnbench export --to mlflow`` finds what is there and duplicates nothing; a tracker that is off or down
costs the run nothing.

These tests need the plugin installed (``pip install ./plugins/nnbench-mlflow``): they fail, never skip, without
it.
"""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from collections import Counter
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from mlflow import MlflowClient
from mlflow.entities import Run
from nnbench_mlflow.writer import EXPERIMENT
from scipy import stats

import nnbench
from nnbench.cli import cli
from nnbench.contract.trial import TRIAL_AXES
from nnbench.storage.store import ResultStore

DONE_WHEN = ["--task", "iris,wine", "--arch", "fnn", "--activation", "relu,gelu", "--optimizer", "adam", "--seeds",
             "3", "--epochs", "2"]


def nnbench_command(*args: str, cwd: Path, **env: str) -> subprocess.CompletedProcess[str]:
    """``nnbench ARGS`` in a fresh process, the installed plugins loaded as a user's would be."""
    environment = {k: v for k, v in os.environ.items() if k not in ("NNBENCH_PLUGINS", "NNBENCH_MLFLOW")}
    environment.update({"NNBENCH_TENSORBOARD": "off", **env})
    return subprocess.run([sys.executable, "-m", "nnbench", *args], cwd=cwd, env=environment, capture_output=True,
                          text=True, timeout=600)


def all_runs(uri: str) -> list[Run]:
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name(EXPERIMENT)
    assert experiment is not None
    return list(client.search_runs([experiment.experiment_id], max_results=1000))


def by_kind(runs: list[Run]) -> dict[str, list[Run]]:
    found: dict[str, list[Run]] = {}
    for run in runs:
        found.setdefault(run.data.tags["nnbench.kind"], []).append(run)
    return found


@pytest.fixture(scope="module")
def logged(tmp_path_factory: pytest.TempPathFactory) -> dict[str, Any]:
    """The issue's grid, run with the plugin installed and MLFLOW_TRACKING_URI set to a SQLite file."""
    folder = tmp_path_factory.mktemp("live")
    uri = f"sqlite:///{folder / 'mlflow.db'}"
    done = nnbench_command("run", *DONE_WHEN, "--store", "results.db", "--no-report", "-q", "--workers", "1",
                           cwd=folder, MLFLOW_TRACKING_URI=uri)
    assert done.returncode == 0, done.stderr
    assert "warning" not in done.stderr.lower(), done.stderr
    return {"folder": folder, "uri": uri, "store": folder / "results.db"}


def test_a_run_leaves_one_parent_twelve_trials_and_four_seed_groups_with_intervals(logged: dict[str, Any]) -> None:
    runs = by_kind(all_runs(logged["uri"]))
    assert {kind: len(found) for kind, found in runs.items()} == {"run": 1, "trial": 12, "seed-group": 4}
    (parent,) = runs["run"]
    with ResultStore(logged["store"], readonly=True) as store:
        (run_id,) = store.run_ids()
        trials = store.trials()
    assert parent.data.tags["nnbench.run_id"] == run_id and parent.info.status == "FINISHED"
    assert parent.data.tags["nnbench.env.nnbench"] == nnbench.__version__
    for nested in (*runs["trial"], *runs["seed-group"]):
        assert nested.data.tags["mlflow.parentRunId"] == parent.info.run_id
    # each seed group: the mean, the 95% t-interval and n of the test metric, as computed from the store
    for group in runs["seed-group"]:
        params, metrics = group.data.params, group.data.metrics
        members = trials[(trials["task"] == params["task"]) & (trials["activation"] == params["activation"])]
        values = members["metric"].to_numpy()
        low, high = stats.t.interval(0.95, len(values) - 1, loc=values.mean(), scale=stats.sem(values))
        assert metrics["metric/n"] == 3 and metrics["metric/mean"] == pytest.approx(values.mean())
        assert (metrics["metric/ci_low"], metrics["metric/ci_high"]) == pytest.approx((low, high))
        assert metrics["val_metric/std"] == pytest.approx(np.std(members["val_metric"], ddof=1))
        assert "seed" not in params and params["seeds"] == "3"
        assert sorted(group.data.tags["nnbench.members"].split(",")) == sorted(members["trial_id"])


def test_a_trial_run_holds_every_axis_its_curve_its_numbers_and_where_it_ran(logged: dict[str, Any]) -> None:
    client = MlflowClient(logged["uri"])
    with ResultStore(logged["store"], readonly=True) as store:
        trials = store.trials().set_index("trial_id")
        epochs = store.epochs()
    for run in by_kind(all_runs(logged["uri"]))["trial"]:
        tags, params, metrics = run.data.tags, run.data.params, run.data.metrics
        stored = trials.loc[tags["nnbench.trial_id"]]
        assert {ax.name for ax in TRIAL_AXES} <= set(params) and params["arch.hidden"] == "[64, 64]"
        assert (params["task"], params["seed"], params["activation"]) == (stored["task"], str(stored["seed"]),
                                                                          stored["activation"])
        assert metrics["metric"] == pytest.approx(stored["metric"]) and tags["nnbench.status"] == "ok"
        assert run.info.status == "FINISHED" and tags["nnbench.env.host"] and tags["nnbench.env.torch"]
        history = client.get_metric_history(run.info.run_id, "epoch/train_loss")
        curve = epochs[epochs["trial_id"] == tags["nnbench.trial_id"]]
        assert [(m.step, m.value) for m in sorted(history, key=lambda m: m.step)] == pytest.approx(
            list(zip(curve["epoch"], curve["train_loss"], strict=True)))


def test_exporting_after_the_live_run_or_twice_duplicates_nothing(logged: dict[str, Any],
                                                                  monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setenv("MLFLOW_TRACKING_URI", logged["uri"])
    monkeypatch.setenv("NNBENCH_PLUGINS", "mlflow")
    before = Counter(r.info.run_id for r in all_runs(logged["uri"]))
    for _ in range(2):
        result = CliRunner().invoke(cli, ["export", "--to", "mlflow", "--store", str(logged["store"])])
        assert result.exit_code == 0, result.output
        assert "0 MLflow runs written, 16 already there with the same numbers" in result.output
    assert Counter(r.info.run_id for r in all_runs(logged["uri"])) == before


def test_export_writes_a_store_to_a_fresh_tracking_store_and_replaces_a_trial_trained_again(
        logged: dict[str, Any], tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    uri = f"sqlite:///{tmp_path / 'fresh.db'}"
    monkeypatch.setenv("MLFLOW_TRACKING_URI", uri)
    monkeypatch.setenv("MLFLOW_EXPERIMENT_NAME", "from-the-store")
    monkeypatch.setenv("NNBENCH_PLUGINS", "mlflow")
    store = tmp_path / "results.db"
    store.write_bytes(logged["store"].read_bytes())
    result = CliRunner().invoke(cli, ["export", "--to", "mlflow", "--all", "--store", str(store)])
    assert result.exit_code == 0 and "experiment 'from-the-store': 16 MLflow runs written" in result.output, \
        result.output
    client = MlflowClient(uri)
    experiment = client.get_experiment_by_name("from-the-store")
    first = {r.data.tags.get("nnbench.trial_id") or r.data.tags.get("nnbench.group"): r
             for r in client.search_runs([experiment.experiment_id], max_results=1000)}
    with sqlite3.connect(store) as db:  # the trial trained again, with other numbers
        trial_id = db.execute("SELECT trial_id FROM trials ORDER BY rowid LIMIT 1").fetchone()[0]
        db.execute("UPDATE trials SET metric = 0.125 WHERE trial_id = ?", (trial_id,))
    again = CliRunner().invoke(cli, ["export", "--to", "mlflow", "--all", "--store", str(store)])
    assert "2 MLflow runs written, 14 already there" in again.output, again.output  # the trial and its group
    runs = client.search_runs([experiment.experiment_id], max_results=1000)
    assert Counter(r.data.tags["nnbench.kind"] for r in runs) == {"run": 1, "trial": 12, "seed-group": 4}
    (trial,) = [r for r in runs if r.data.tags.get("nnbench.trial_id") == trial_id]
    assert trial.data.metrics["metric"] == 0.125 and trial.info.run_id != first[trial_id].info.run_id
    assert client.get_run(first[trial_id].info.run_id).info.lifecycle_stage == "deleted"


def test_switched_off_the_plugin_logs_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNBENCH_PLUGINS", "mlflow")
    monkeypatch.setenv("NNBENCH_MLFLOW", "off")
    monkeypatch.setenv("MLFLOW_TRACKING_URI", f"sqlite:///{tmp_path / 'mlflow.db'}")
    frame = nnbench.run(task="moons", arch="fnn", activation="relu", optimizer="adam", seeds=2, epochs=1, workers=1,
                        quiet=True, store=tmp_path / "results.db")
    assert len(frame) == 2
    assert sorted(p.name for p in tmp_path.iterdir()) == ["results.db"]


def test_a_tracking_server_that_is_down_costs_one_warning_line_and_never_the_run(tmp_path: Path) -> None:
    done = nnbench_command("run", "--task", "moons", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer",
                           "adam", "--seeds", "2", "--epochs", "1", "--store", "results.db", "--no-report", "-q",
                           "--workers", "1", cwd=tmp_path, MLFLOW_TRACKING_URI="http://127.0.0.1:9",
                           MLFLOW_HTTP_REQUEST_MAX_RETRIES="0", MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    assert done.returncode == 0, done.stderr
    warned = [line for line in done.stderr.splitlines() if line.startswith("warning:")]
    assert len(warned) == 1 and warned[0].startswith("warning: MLflow tracking failed and is off for the rest of "
                                                     "this run (MlflowException: "), done.stderr
    assert "`nnbench export --to mlflow` catches up later" in warned[0]
    with ResultStore(tmp_path / "results.db", readonly=True) as store:
        assert len(store.trials()) == 4 and store.runs()["status"].tolist() == ["finished"]
    down = nnbench_command("export", "--to", "mlflow", "--store", "results.db", cwd=tmp_path,
                           MLFLOW_TRACKING_URI="http://127.0.0.1:9", MLFLOW_HTTP_REQUEST_MAX_RETRIES="0",
                           MLFLOW_HTTP_REQUEST_TIMEOUT="5")
    assert down.returncode == 1
    assert down.stderr.strip().startswith("Error: exporting to mlflow failed: MlflowException: ")
    assert len(down.stderr.strip().splitlines()) == 1


def test_the_entry_point_names_the_plugin_module(tmp_path: Path) -> None:
    listed = nnbench_command("plugins", "--json", cwd=tmp_path)
    assert listed.returncode == 0, listed.stderr
    (info,) = [p for p in json.loads(listed.stdout) if p["name"] == "mlflow"]
    assert info["distribution"] == "nnbench-mlflow" and info["components"] == {"exporters": ["mlflow"]}
    assert {"before_run", "after_trial", "after_run", "register_exporters"} <= set(info["hooks"])
