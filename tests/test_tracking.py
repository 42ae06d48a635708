"""What trackers receive: trials and seed groups with their intervals, the same from a live run as from the store;
``nnbench export --to`` finding exporters through the ``register_exporters`` hook; live logging that a failing
tracker never stops."""

from __future__ import annotations

import dataclasses
import math
import warnings
from pathlib import Path
from typing import Any

import numpy as np
import pytest
from click.testing import CliRunner
from scipy import stats

import nnbench
from nnbench import ExporterSpec, hookimpl
from nnbench.cli import cli
from nnbench.storage.store import ResultStore
from nnbench.tracking.live import LiveTracker, TrackerWarning
from nnbench.tracking.reading import from_store, live_trials
from nnbench.tracking.records import from_result
from nnbench.tracking.seed_groups import seed_groups

SMALL = {"task": "moons", "arch": "fnn", "activation": "relu,tanh", "optimizer": "adam", "seeds": 3, "epochs": 2,
         "workers": 1, "quiet": True}


def reference_interval(values: list[float]) -> tuple[float, float]:
    """The 95% t-interval of the mean, computed independently of nnbench."""
    return stats.t.interval(0.95, len(values) - 1, loc=np.mean(values), scale=stats.sem(values))


def test_a_seed_group_holds_the_mean_interval_and_n_of_every_metric_over_its_ok_trials(trial_result: Any) -> None:
    metrics = [0.6, 0.7, 0.9]
    results = [trial_result(seed=s, metric=m) for s, m in enumerate(metrics)]
    results.append(trial_result(seed=3, metric=0.1, status="failed"))
    results += [trial_result(activation="tanh", seed=s, metric=0.5 + s / 10) for s in range(2)]
    trials = live_trials("run-1", results, {})
    relu, tanh = seed_groups(trials)
    assert relu.members == tuple(t.trial_id for t in trials[:4]) and relu.seeds == (0, 1, 2, 3)
    assert relu.statuses == {"ok": 3, "failed": 1} and "seed" not in relu.axes and relu.axes["activation"] == "relu"
    interval = relu.metrics["metric"]
    assert interval.n == 3 and math.isclose(interval.mean, np.mean(metrics))
    assert math.isclose(interval.std, np.std(metrics, ddof=1))
    low, high = reference_interval(metrics)
    assert math.isclose(interval.low, low) and math.isclose(interval.high, high)
    # every epoch of the curve too (the failed trial's curve counts for nothing)
    epoch_two = dict(relu.curve["metric"])[2]
    assert epoch_two.n == 3 and math.isclose(epoch_two.mean, np.mean([m * 2 / 3 for m in metrics]))
    assert tanh.metrics["metric"].n == 2 and tanh.key != relu.key


def test_one_seed_has_a_mean_but_no_interval(trial_result: Any) -> None:
    (group,) = seed_groups(live_trials("run-1", [trial_result(metric=0.8)], {}))
    assert group.metrics["metric"].mean == 0.8 and group.metrics["metric"].n == 1
    assert group.metrics["metric"].low is None and group.metrics["metric"].high is None


def test_tuning_trials_belong_to_no_seed_group_and_tuned_ones_to_their_own(protocol_result: Any) -> None:
    results = [protocol_result(seed=0, role="tune", lr=1e-3, index=0), protocol_result(seed=0, role="tune", lr=1e-2,
                                                                                          index=1)]
    results += [protocol_result(seed=s, role="final", lr=1e-2) for s in range(2)]
    results += [protocol_result(seed=s) for s in range(2)]
    trials = live_trials("run-1", results, {})
    assert [t.group is None for t in trials] == [True, True, False, False, False, False]
    tuned, default = seed_groups(trials)
    assert {t.protocol for t in trials if t.group == tuned.key} == {"tuned"} and len(tuned.members) == 2
    assert {t.protocol for t in trials if t.group == default.key} == {"default"} and len(default.members) == 2


def test_a_stored_trial_reads_as_the_live_one_and_a_retrained_one_does_not(tmp_path: Path, trial_result: Any,
                                                                         catalogue: Any) -> None:
    results = [trial_result(seed=s, metric=0.5 + s / 10, peak_memory=1000 + s) for s in range(3)]
    results[2].trial = dataclasses.replace(results[2].trial, components={"initializer": "xavier_uniform"},
                                           params={**results[2].trial.params, "code": {"activation": "mine==1.0"}})
    environment = {"host": "testhost", "torch": "2.13.0"}
    with ResultStore(tmp_path / "s.db", axes=catalogue.domain.axes) as store:
        store.start_run("run-1", {}, environment, len(results), [])
        for result in results:
            store.save_result("run-1", result)
        store.finish_run("run-1")
        (run,) = from_store(store, ["run-1"])
    live = [from_result(r, "run-1", environment) for r in results]
    assert [t.trial_id for t in run.trials] == [t.trial_id for t in live]
    for stored, fresh in zip(run.trials, live, strict=True):
        assert stored.fingerprint == fresh.fingerprint
        assert (stored.group, stored.axes, stored.params, stored.code) == (fresh.group, fresh.axes, fresh.params,
                                                                           fresh.code)
    assert run.trials[2].axes["initializer"] == "xavier_uniform" and run.trials[2].code == {"activation": "mine==1.0"}
    assert run.trials[0].environment["host"] == "testhost"
    again = dataclasses.replace(results[0], metric=0.51)
    assert from_result(again, "run-1", environment).fingerprint != live[0].fingerprint
    assert [g.members for g in run.groups] == [tuple(t.trial_id for t in live[:2]), (live[2].trial_id,)]


class RecordingExporter:
    """An exporter that keeps what it was given."""

    def __init__(self, output: str = "") -> None:
        self.calls: list[tuple[list[Any], Path | None]] = []
        self.output = output

    @hookimpl
    def register_exporters(self, register: Any) -> None:
        register(ExporterSpec("recorder", self.export, "keeps what it is given", output=self.output))

    def export(self, runs: list[Any], output: Path | None) -> str:
        self.calls.append((list(runs), output))
        return f"recorded {sum(len(r.trials) for r in runs)} trials"


@pytest.fixture
def small_store(tmp_path: Path, store_writer: Any, trial_result: Any) -> Path:
    store_writer(tmp_path / "s.db", [trial_result(seed=s, metric=0.5 + s / 10) for s in range(3)]).close()
    return tmp_path / "s.db"


def test_export_to_finds_the_exporter_a_plugin_registers(nnbench_plugin: Any, small_store: Path) -> None:
    exporter = nnbench_plugin(RecordingExporter(), "recorder-plugin")
    result = CliRunner().invoke(cli, ["export", "--to", "recorder", "--store", str(small_store)],
                                catch_exceptions=False)
    assert result.exit_code == 0 and "recorded 3 trials" in result.output
    (runs, output), = exporter.calls
    assert output is None and [r.run_id for r in runs] == ["run-1"]
    (group,) = runs[0].groups
    assert group.metrics["metric"].n == 3
    listed = CliRunner().invoke(cli, ["list", "exporters"], catch_exceptions=False)
    assert "recorder" in listed.output and "recorder-plugin" in listed.output


def test_an_unknown_or_uninstalled_tracker_is_one_line_naming_the_installed_ones(nnbench_plugin: Any,
                                                                                 small_store: Path) -> None:
    nnbench_plugin(RecordingExporter(), "recorder-plugin")
    for name, expected in (("mlflow", "no tracker 'mlflow' is installed; installed trackers: recorder ("),
                           ("recordr", "did you mean 'recorder'? installed trackers: recorder")):
        result = CliRunner().invoke(cli, ["export", "--to", name, "--store", str(small_store)])
        assert result.exit_code == 1
        lines = result.output.strip().splitlines()
        assert len(lines) == 1 and expected in lines[0], result.output


def test_export_checks_the_output_each_exporter_takes(nnbench_plugin: Any, small_store: Path, tmp_path: Path) -> None:
    nnbench_plugin(RecordingExporter(output="a folder"), "recorder-plugin")
    cases = {("--to", "recorder"): "--to recorder writes a folder: give it with -o",
             ("--to", "recorder", "--bundle", "b.zip"): "give either --to TRACKER or --bundle FILE",
             ("--bundle", "b.zip", "-o", "x.csv"): "--bundle names the file to write; leave out -o",
             ("--epochs", "--to", "recorder", "-o", "d"): "--epochs is for -o FILE.csv|.parquet",
             (): "say where to export: -o FILE.csv|.parquet, --to TRACKER or --bundle FILE"}
    for args, expected in cases.items():
        result = CliRunner().invoke(cli, ["export", *args, "--store", str(small_store)])
        assert result.exit_code == 1 and expected in result.output, (args, result.output)
    result = CliRunner().invoke(cli, ["export", "--to", "recorder", "-o", str(tmp_path / "out"), "--store",
                                      str(small_store)])
    assert result.exit_code == 0 and "recorded 3 trials" in result.output


class FailingExporter:
    @hookimpl
    def register_exporters(self, register: Any) -> None:
        def export(runs: Any, output: Any) -> str:
            raise ConnectionError("tracking server down")

        register(ExporterSpec("down", export))


def test_an_exporter_that_fails_is_one_line(nnbench_plugin: Any, small_store: Path) -> None:
    nnbench_plugin(FailingExporter(), "down-plugin")
    result = CliRunner().invoke(cli, ["export", "--to", "down", "--store", str(small_store)])
    assert result.exit_code == 1
    assert result.output.strip() == "Error: exporting to down failed: ConnectionError: tracking server down"


class RecordingTracker(LiveTracker):
    """A live tracker whose hooks record what it was told; ``fail_at`` names a step that raises."""

    def __init__(self, fail_at: str = "") -> None:
        super().__init__("Recorder", "NNBENCH_RECORDER")
        self.fail_at = fail_at
        self.events: list[tuple[str, Any]] = []

    def start(self, run_id: str, trials: Any) -> None:
        self._step("start", (run_id, len(trials)))

    def log_trial(self, trial: Any) -> None:
        self._step("trial", trial)

    def finish(self, run: Any) -> None:
        self._step("finish", run)

    def _step(self, name: str, value: Any) -> None:
        if name == self.fail_at:
            raise OSError("No space left on device")
        self.events.append((name, value))

    @hookimpl
    def before_run(self, run_id: str, trials: list[Any]) -> None:
        LiveTracker.before_run(self, run_id, trials)

    @hookimpl
    def after_trial(self, trial: Any, result: Any) -> None:
        LiveTracker.after_trial(self, trial, result)

    @hookimpl
    def after_run(self, run_id: str, results: list[Any]) -> None:
        LiveTracker.after_run(self, run_id, results)


def test_a_live_tracker_hears_each_stored_trial_and_the_seed_groups_at_the_end(nnbench_plugin: Any,
                                                                               tmp_path: Path) -> None:
    tracker = nnbench_plugin(RecordingTracker(), "recording-tracker")
    frame = nnbench.run(store=tmp_path / "r.db", **SMALL)
    names = [name for name, _ in tracker.events]
    assert names == ["start", *["trial"] * 6, "finish"]
    trials = [value for name, value in tracker.events if name == "trial"]
    assert sorted(t.trial_id for t in trials) == sorted(frame["trial_id"])
    run = tracker.events[-1][1]
    assert [len(g.members) for g in run.groups] == [3, 3] and all(g.metrics["metric"].n == 3 for g in run.groups)
    assert trials[0].environment["nnbench"] == nnbench.__version__
    with ResultStore(tmp_path / "r.db", readonly=True) as store:
        (stored,) = from_store(store, store.run_ids())
    by_id = {t.trial_id: t.fingerprint for t in stored.trials}
    assert {t.trial_id: t.fingerprint for t in trials} == by_id  # exporting later finds each trial unchanged


def test_a_tracker_turned_off_hears_nothing(nnbench_plugin: Any, tmp_path: Path,
                                            monkeypatch: pytest.MonkeyPatch) -> None:
    tracker = nnbench_plugin(RecordingTracker(), "recording-tracker")
    monkeypatch.setenv("NNBENCH_RECORDER", "off")
    nnbench.run(store=tmp_path / "r.db", **SMALL)
    assert tracker.events == []


@pytest.mark.parametrize("step", ["start", "trial", "finish"])
def test_a_failing_tracker_costs_one_warning_and_never_the_run_or_its_store(nnbench_plugin: Any, tmp_path: Path,
                                                                          step: str) -> None:
    tracker = nnbench_plugin(RecordingTracker(fail_at=step), "failing-tracker")
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        frame = nnbench.run(store=tmp_path / "r.db", **SMALL)
    said = [str(w.message) for w in caught if issubclass(w.category, TrackerWarning)]
    assert len(said) == 1 and said[0].startswith("Recorder tracking failed and is off for the rest of this run "
                                                 "(OSError: No space left on device)")
    assert len(frame) == 6 and set(frame["status"]) == {"ok"}
    assert [name for name, _ in tracker.events] == {"start": [], "trial": ["start"],
                                                    "finish": ["start", *["trial"] * 6]}[step]
    with ResultStore(tmp_path / "r.db", readonly=True) as store:
        assert len(store.trials()) == 6 and store.runs()["status"].tolist() == ["finished"]
