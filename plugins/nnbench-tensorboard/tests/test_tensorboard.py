"""The TensorBoard plugin, installed: ``nnbench export --to tensorboard -o DIR`` and live runs write event files
that TensorBoard's own reader loads, with scalars per trial and per seed group and the HParams dashboard's data;
writing again duplicates nothing; a tracker that is off or fails costs the run nothing.

These tests need the plugin installed (``pip install ./plugins/nnbench-tensorboard``): they fail, never skip,
without it.
"""

from __future__ import annotations

import json
import sqlite3
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from scipy import stats
from tensorboard.backend.event_processing.event_multiplexer import EventMultiplexer
from tensorboard.plugins.hparams import api_pb2, metadata

import nnbench
from nnbench.cli import cli
from nnbench.storage.store import ResultStore
from nnbench.tracking.live import TrackerWarning

GRID = {"task": "iris,wine", "arch": "fnn", "activation": "relu,gelu", "optimizer": "adam", "seeds": 3, "epochs": 2,
        "workers": 1, "quiet": True}
RUN_FLAGS = ["--task", "iris", "--arch", "fnn", "--activation", "relu,gelu", "--optimizer", "adam", "--seeds", "2",
             "--epochs", "2", "--workers", "1", "-q"]


@pytest.fixture(autouse=True)
def only_this_plugin(monkeypatch: pytest.MonkeyPatch) -> None:
    """The installed TensorBoard plugin, found through its entry point, and no other; its live logging on."""
    monkeypatch.setenv("NNBENCH_PLUGINS", "tensorboard")
    monkeypatch.delenv("NNBENCH_TENSORBOARD", raising=False)
    monkeypatch.delenv("NNBENCH_TENSORBOARD_DIR", raising=False)


@pytest.fixture(scope="module")
def stored(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """The issue's grid, stored without any tracker."""
    path = tmp_path_factory.mktemp("store") / "results.db"
    with pytest.MonkeyPatch.context() as patch:
        patch.setenv("NNBENCH_PLUGINS", "none")
        nnbench.run(store=path, **GRID)
    return path


def read(logdir: Path) -> EventMultiplexer:
    """The log folder as TensorBoard reads it."""
    multiplexer = EventMultiplexer(size_guidance={"scalars": 0, "tensors": 0})
    multiplexer.AddRunsFromDirectory(str(logdir))
    multiplexer.Reload()
    return multiplexer


def scalars(multiplexer: EventMultiplexer, run: str, tag: str) -> list[tuple[int, float]]:
    return [(event.step, event.value) for event in multiplexer.Scalars(run, tag)]


def sessions(multiplexer: EventMultiplexer) -> dict[str, Any]:
    """Each run's HParams session (hyper-parameters and group), and the experiment under the key ``experiment``."""
    found: dict[str, Any] = {}
    for run, tags in multiplexer.PluginRunToTagToContent(metadata.PLUGIN_NAME).items():
        if metadata.EXPERIMENT_TAG in tags:
            found["experiment"] = metadata.parse_experiment_plugin_data(tags[metadata.EXPERIMENT_TAG])
        if metadata.SESSION_START_INFO_TAG in tags:
            start = metadata.parse_session_start_info_plugin_data(tags[metadata.SESSION_START_INFO_TAG])
            end = metadata.parse_session_end_info_plugin_data(tags[metadata.SESSION_END_INFO_TAG])
            hparams = {name: value.WhichOneof("kind") and getattr(value, value.WhichOneof("kind"))
                       for name, value in start.hparams.items()}
            found[run] = {"hparams": hparams, "group": start.group_name, "status": end.status}
    return found


def assert_points(points: list[tuple[int, float]], steps: Any, values: Any) -> None:
    """A scalar's points are at ``steps`` with ``values`` (to the float32 precision TensorBoard keeps)."""
    assert [step for step, _ in points] == list(steps)
    assert [value for _, value in points] == pytest.approx(list(values), rel=1e-6)


def export(store: Path, output: Path, *runs: str) -> str:
    result = CliRunner().invoke(cli, ["export", "--to", "tensorboard", "-o", str(output), *runs, "--store", str(store)])
    assert result.exit_code == 0, result.output
    return result.output


def test_export_writes_scalars_per_trial_and_seed_group_and_the_hparams_table(stored: Path, tmp_path: Path) -> None:
    said = export(stored, tmp_path / "tb")
    assert "(12 trials, 4 seed groups)" in said and "16 sessions written" in said
    board = read(tmp_path / "tb")
    found = sessions(board)
    with ResultStore(stored, readonly=True) as store:
        (run_id,) = store.run_ids()
        trials = store.trials().set_index("trial_id")
        epochs = store.epochs()
    trial_runs = {run: s for run, s in found.items() if run != "experiment" and s["hparams"]["kind"] == "trial"}
    group_runs = {run: s for run, s in found.items() if run != "experiment" and s["hparams"]["kind"] == "seed group"}
    assert len(trial_runs) == 12 and len(group_runs) == 4
    for run, session in trial_runs.items():
        assert run.startswith(f"{run_id}/") and session["status"] == api_pb2.STATUS_SUCCESS
        trial = trials.loc[session["group"]]  # a trial's session is named by its id
        hparams = session["hparams"]
        assert (hparams["task"], hparams["activation"], hparams["seed"], hparams["lr"]) == (
            trial["task"], trial["activation"], trial["seed"], pytest.approx(trial["lr"]))
        assert scalars(board, run, "metric")[-1][1] == pytest.approx(trial["metric"], rel=1e-6)
        curve = epochs[epochs["trial_id"] == session["group"]]
        assert_points(scalars(board, run, "epoch/val_metric"), curve["epoch"], curve["val_metric"])
    for run, session in group_runs.items():
        hparams = session["hparams"]
        assert "seed" not in hparams and hparams["seeds"] == 3
        members = trials[(trials["task"] == hparams["task"]) & (trials["activation"] == hparams["activation"])]
        values = members["metric"].to_numpy()
        low, high = stats.t.interval(0.95, 2, loc=values.mean(), scale=stats.sem(values))
        for tag, expected in (("metric/mean", values.mean()), ("metric/ci_low", low), ("metric/ci_high", high),
                              ("metric/n", 3), ("val_metric/std", np.std(members["val_metric"], ddof=1))):
            assert_points(scalars(board, run, tag), [0], [expected])
        per_epoch = epochs[epochs["trial_id"].isin(members.index)].groupby("epoch")["val_metric"].mean()
        assert_points(scalars(board, run, "epoch/val_metric/mean"), per_epoch.index, per_epoch)
    experiment = found["experiment"]
    domains = {info.name: [v.string_value or v.number_value for v in info.domain_discrete.values]
               for info in experiment.hparam_infos}
    assert domains["task"] == ["iris", "wine"] and domains["activation"] == ["gelu", "relu"]
    assert domains["seed"] == [0, 1, 2] and domains["kind"] == ["seed group", "trial"]
    assert {"arch", "optimizer", "lr", "batch_size", "epochs", "device"} <= set(domains)
    metrics = [info.name.tag for info in experiment.metric_infos]
    assert metrics[:5] == ["metric", "metric/mean", "metric/ci_low", "metric/ci_high", "metric/n"]


def event_files(logdir: Path) -> list[Path]:
    """The event files of the sessions under ``logdir`` (the experiment's, at its root, aside)."""
    return sorted(path for path in logdir.rglob("events.out.tfevents.*") if path.parent != logdir)


def test_exporting_twice_duplicates_nothing_and_a_trial_trained_again_is_rewritten(stored: Path,
                                                                                 tmp_path: Path) -> None:
    export(stored, tmp_path / "tb")
    files = event_files(tmp_path / "tb")
    assert "0 sessions written, 16 already there with the same numbers" in export(stored, tmp_path / "tb")
    assert event_files(tmp_path / "tb") == files and len(files) == 16  # no session written again
    assert len(list((tmp_path / "tb").glob("events.out.tfevents.*"))) == 1  # the experiment, rewritten
    copy = tmp_path / "again.db"
    copy.write_bytes(stored.read_bytes())
    with ResultStore(copy) as store:
        trial = store.trials().iloc[0]
    with sqlite3.connect(copy) as db:
        db.execute("UPDATE trials SET metric = 0.25 WHERE trial_id = ?", (trial["trial_id"],))
    assert "2 sessions written, 14 already there" in export(copy, tmp_path / "tb")
    board = read(tmp_path / "tb")
    assert len(event_files(tmp_path / "tb")) == 16
    (run,) = [run for run, s in sessions(board).items() if run != "experiment" and s["group"] == trial["trial_id"]]
    assert scalars(board, run, "metric") == [(2, 0.25)]  # one point: the old one is gone


def test_export_wants_a_folder(stored: Path, tmp_path: Path) -> None:
    (tmp_path / "file.txt").write_text("")
    for args, expected in ((["-o", str(tmp_path / "file.txt")], "--to tensorboard writes a folder of event files: "
                                                                   "give -o FOLDER, not the file"),
                           ([], "--to tensorboard writes a folder of event files: give it with -o")):
        result = CliRunner().invoke(cli, ["export", "--to", "tensorboard", *args, "--store", str(stored)])
        assert result.exit_code == 1 and expected in result.output, result.output


def test_a_run_logs_itself_beside_its_report(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    result = CliRunner().invoke(cli, ["run", *RUN_FLAGS, "--report-dir", "pages"], catch_exceptions=False)
    assert result.exit_code == 0, result.output
    with ResultStore(tmp_path / "nnbench.db", readonly=True) as store:
        (run_id,) = store.run_ids()
    logdir = tmp_path / "pages" / run_id / "tensorboard"
    assert (tmp_path / "pages" / run_id / "index.html").is_file()
    found = sessions(read(logdir))
    kinds = pd.Series([s["hparams"]["kind"] for run, s in found.items() if run != "experiment"]).value_counts()
    assert kinds.to_dict() == {"trial": 4, "seed group": 2} and "experiment" in found


def test_runs_share_the_log_folder_the_environment_names(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNBENCH_TENSORBOARD_DIR", str(tmp_path / "logs"))
    for activation in ("relu", "tanh"):
        flags = [*RUN_FLAGS, "--no-report"]
        flags[flags.index("relu,gelu")] = activation
        assert CliRunner().invoke(cli, ["run", *flags], catch_exceptions=False).exit_code == 0
    with ResultStore(tmp_path / "nnbench.db", readonly=True) as store:
        run_ids = store.run_ids()
    assert sorted(p.name for p in (tmp_path / "logs").iterdir() if p.is_dir()) == sorted(run_ids)
    experiment = sessions(read(tmp_path / "logs"))["experiment"]
    (activation,) = [info for info in experiment.hparam_infos if info.name == "activation"]
    assert [v.string_value for v in activation.domain_discrete.values] == ["relu", "tanh"]  # both runs
    assert not (tmp_path / "reports").exists()


def test_switched_off_the_plugin_writes_nothing(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    monkeypatch.setenv("NNBENCH_TENSORBOARD", "off")
    result = CliRunner().invoke(cli, ["run", *RUN_FLAGS, "--no-report"], catch_exceptions=False)
    assert result.exit_code == 0
    assert sorted(p.name for p in tmp_path.iterdir()) == ["nnbench.db"]


def test_a_log_folder_that_cannot_be_written_costs_one_warning_and_never_the_run(
        tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (tmp_path / "a-file").write_text("not a folder")
    monkeypatch.setenv("NNBENCH_TENSORBOARD_DIR", str(tmp_path / "a-file" / "logs"))
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = nnbench.run(task="moons", arch="fnn", activation="relu,tanh", optimizer="adam", seeds=2, epochs=1,
                            workers=1, quiet=True, store=tmp_path / "results.db")
    said = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(said) == 1 and said[0].startswith("TensorBoard tracking failed and is off for the rest of this run "
                                                 "(NotADirectoryError: ")
    assert len(frame) == 4 and set(frame["status"]) == {"ok"}


def test_the_entry_point_names_the_plugin_module() -> None:
    result = CliRunner().invoke(cli, ["plugins", "--json"], catch_exceptions=False)
    (info,) = [p for p in json.loads(result.output) if p["name"] == "tensorboard"]
    assert info["distribution"] == "nnbench-tensorboard" and info["components"] == {"exporters": ["tensorboard"]}
    assert {"before_run", "after_trial", "after_run", "register_exporters"} <= set(info["hooks"])
