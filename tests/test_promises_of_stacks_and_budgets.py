"""Promises that each had no test failing on them: resuming a diverged trial, timeouts in the failure budget,
standardization on training rows only, stacks (who shares one, their time, their early stopping)."""

from __future__ import annotations

import dataclasses
import math
import time
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from click.testing import CliRunner
from test_ensemble import assert_same_curves, seeds_of, stacked, train_alone

import nnbench
from nnbench import hookimpl
from nnbench.builtin.image_sets import split_and_standardize
from nnbench.cli import cli
from nnbench.execution.stacks import stack_groups
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.storage.store import ResultStore

pytestmark = pytest.mark.usefixtures("one_thread")


# -- resuming -------------------------------------------------------------------------------------------


class CountsTrials:
    """Counts the trials trained in this process (``after_trial`` is called for each one trained)."""

    def __init__(self) -> None:
        self.trained = 0

    @hookimpl
    def after_trial(self, trial: Any, result: Any) -> None:
        self.trained += 1


def test_a_diverged_trial_is_not_trained_again_on_resume(nnbench_plugin: Any, tmp_path: Path) -> None:
    counter = nnbench_plugin(CountsTrials(), name="counts-trials")
    store = tmp_path / "d.db"
    grid = {"task": "toy", "arch": "fnn", "activation": "relu", "optimizer": "sgd", "lr": "1e6,0.01", "seeds": 2,
            "epochs": 3, "store": store, "quiet": True, "workers": 1}
    first = nnbench.run(**grid)
    assert sorted(first["status"]) == ["diverged", "diverged", "ok", "ok"] and counter.trained == 4
    planned = nnbench.run(**grid, dry_run=True)
    assert list(planned["state"]) == ["stored"] * 4  # diverged is a finished result, as ok is
    again = nnbench.run(**grid)
    assert sorted(again["status"]) == ["diverged", "diverged", "ok", "ok"]
    assert counter.trained == 4  # none trained again
    with ResultStore(store, readonly=True) as results:
        assert list(results.runs()["status"]) == ["finished", "finished"]


# -- the failure budget -----------------------------------------------------------------------------------


@pytest.mark.parametrize(("budget", "stored"), [(["--fail-fast"], 1), (["--max-failures", "1"], 2)])
def test_timeouts_count_towards_the_failure_budget(nnbench_plugin: Any, tmp_path: Path,
                                                   monkeypatch: pytest.MonkeyPatch, budget: list[str],
                                                   stored: int) -> None:
    from faulty_plugin import FaultyArchitectures

    monkeypatch.chdir(tmp_path)
    nnbench_plugin(FaultyArchitectures(), name="faulty")
    result = CliRunner().invoke(cli, ["run", "--task", "moons", "--arch", "hang", "--activation", "relu",
                                      "--optimizer", "adam", "--seeds", "4", "--epochs", "1", "--timeout", "1",
                                      "--no-vectorize", "--workers", "1", "-q", "--no-report", *budget],
                                catch_exceptions=False)
    assert result.exit_code == 1
    assert "stopped early: more than" in result.output and "trials failed or timed out" in result.output
    with ResultStore(tmp_path / "nnbench.db", readonly=True) as results:
        assert list(results.trials()["status"]) == ["timeout"] * stored  # then the grid stopped
        assert list(results.runs()["status"]) == ["stopped"]


# -- standardization with the training rows' statistics only ----------------------------------------------

VECTOR_TASKS = ("toy", "spirals", "moons", "circles", "xor", "iris", "wine", "breast_cancer", "diabetes")
POOLED_TASKS = {"digits": (0, 1, 2, 3), "adding": (0, 1), "parity": (0, 1), "sine": (0, 1)}


def assert_standardized(x: torch.Tensor, axes: tuple[int, ...]) -> None:
    values = x.double().numpy()
    mean, std = values.mean(axis=axes), values.std(axis=axes)
    assert np.allclose(mean, 0.0, atol=1e-5), mean
    assert np.allclose(std[std > 1e-6], 1.0, atol=1e-4), std


@pytest.mark.parametrize("name", [*VECTOR_TASKS, *POOLED_TASKS])
def test_inputs_are_standardized_with_the_training_rows_statistics_only(name: str) -> None:
    data = nnbench.load_task(name)
    axes = POOLED_TASKS.get(name, (0,))
    assert_standardized(data.x_train, axes)  # exactly: statistics that saw other rows would leave it off 0 and 1
    for held_out in (data.x_val, data.x_test):  # held-out rows are moved by the training rows' numbers only
        assert not np.allclose(held_out.double().numpy().mean(axis=axes), 0.0, atol=1e-5)
    if name in ("toy", "diabetes"):  # regression targets standardized too
        assert_standardized(data.y_train, (0,))
        assert not np.allclose(data.y_val.double().numpy().mean(axis=0), 0.0, atol=1e-5)


def test_a_csv_task_is_standardized_with_its_training_rows_only(tmp_path: Path) -> None:
    rng = np.random.default_rng(0)
    rows = ["a,b,label"] + [f"{x:.4f},{y:.4f},{int(x + y > 0)}" for x, y in rng.normal([3, -2], [2, 5], (300, 2))]
    (tmp_path / "points.csv").write_text("\n".join(rows) + "\n")
    from nnbench.loading.catalogue import collect_catalogue
    from nnbench.loading.plugins import make_plugin_manager
    from nnbench.planning.csvtask import register_csv_tasks

    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False))
    name = f"csv:{tmp_path / 'points.csv'}"
    register_csv_tasks(catalogue, [name], "label", None)
    data = catalogue.tasks.get(name).load()
    assert_standardized(data.x_train, (0,))
    assert not np.allclose(data.x_val.double().numpy().mean(axis=0), 0.0, atol=1e-5)


def test_image_sets_are_standardized_per_channel_with_the_training_images_only() -> None:
    rng = np.random.default_rng(1)
    x_train = rng.integers(0, 256, (600, 3, 4, 4)).astype(np.uint8)
    x_test = rng.integers(100, 256, (100, 3, 4, 4)).astype(np.uint8)  # brighter: its own mean would differ
    y_train, y_test = np.arange(600) % 10, np.arange(100) % 10
    data = split_and_standardize((x_train, y_train, x_test, y_test))
    assert len(data.x_train) + len(data.x_val) == 600
    assert_standardized(data.x_train, (0, 2, 3))
    assert data.x_test.double().mean() > 0.3  # moved by the training images' statistics, not centred on its own


# -- stacks -------------------------------------------------------------------------------------------------


def test_trials_that_differ_in_a_hyper_parameter_never_share_a_stack(catalogue: Any) -> None:
    base = {"task": "moons", "arch": "fnn", "activation": "relu", "loss": "default", "optimizer": "adam",
            "seeds": 3, "epochs": 3, "batch_size": 32}
    trials, _ = expand_grid(build_grid(None, [], domain=catalogue.domain, **base, lr="0.01,0.1",
                                       clip="none,0.5,1"), catalogue)
    groups = stack_groups(trials, catalogue)
    assert sorted(len(group) for group in groups) == [3] * 6  # the seeds of each setting, and nothing more
    for group in groups:
        assert len({(t.lr, t.clip) for t in group}) == 1, [(t.lr, t.clip, t.seed) for t in group]
    more = [dataclasses.replace(t, patience=p) for t in trials[:3] for p in (None, 2)]
    assert sorted(len(g) for g in stack_groups(more, catalogue)) == [3, 3]
    assert all(len({t.patience for t in g}) == 1 for g in stack_groups(more, catalogue))


def test_stacked_early_stopping_on_a_lower_is_better_metric_keeps_each_member_as_alone(catalogue: Any) -> None:
    trials = [dataclasses.replace(t, patience=2)
              for t in seeds_of(catalogue, seeds=4, task="sine", optimizer="sgd", lr="0.3", epochs=14)]
    alone = train_alone(trials, catalogue)
    assert {r.metric_name for r in alone} == {"rmse"}
    assert len({len(r.curve) for r in alone}) > 1  # the seeds stop at different epochs
    together = stacked(trials, catalogue)
    assert_same_curves(together, alone)
    for mine, theirs in zip(together, alone, strict=True):
        assert mine.best_epoch == theirs.best_epoch
        assert mine.metric == pytest.approx(theirs.metric, rel=2e-5)
        best = min(theirs.curve, key=lambda record: record.val_metric)  # the lowest validation RMSE
        assert theirs.best_epoch == best.epoch


def test_the_members_of_a_stack_share_its_time_and_their_shares_add_up_to_no_more_than_it(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=4, epochs=4, batch_size=16)
    seen: list[tuple[int, float]] = []  # (epoch, when its record was handed over), member by member
    results = stacked(trials, catalogue, on_epoch=lambda trial, record: seen.append((record.epoch,
                                                                                     time.perf_counter())))
    shares = [r.train_time for r in results]
    assert len(set(shares)) == 1 and shares[0] > 0  # equal shares of one stack's training
    for epoch in range(2, 5):
        # Between the last record of the epoch before and the first of this one, the stack trained this
        # epoch (and measured it): the members' times of this epoch add up to no more than that.
        gap = min(t for e, t in seen if e == epoch) - max(t for e, t in seen if e == epoch - 1)
        assert sum(r.curve[epoch - 1].epoch_time for r in results) <= gap
    for result in results:
        assert math.isclose(result.train_time, sum(e.epoch_time for e in result.curve))
