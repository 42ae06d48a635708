"""The analysis layer against numbers worked out by hand on small stores written without training."""

from __future__ import annotations

import json
import math
import statistics
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest

from nnbench.analysis import frames as analysis
from nnbench.analysis import pairwise, verdicts
from nnbench.analysis.rope import Rope
from nnbench.contract.trial import Skipped

T_975 = {2: 4.302652729749462, 3: 3.1824463052837078}  # t-table: two-sided 95%, by degrees of freedom
SPIRALS_RELU = [0.875, 0.75, 0.625, 0.5]
SINE_TANH = [1.0, 0.4375, 1.25]  # rmse; relu has 0.5 on every seed


@pytest.fixture
def pair(tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> Any:
    """relu against tanh on spirals (accuracy) and sine (rmse); tanh diverges on spirals seed 3."""
    results = [trial_result("spirals", "relu", seed=s, metric=m) for s, m in enumerate(SPIRALS_RELU)]
    results += [trial_result("spirals", "tanh", seed=s, metric=0.5) for s in range(3)]
    results.append(trial_result("spirals", "tanh", seed=3, metric=math.nan, status="diverged",
                                error="non-finite loss at epoch 2 (train nan, test nan)"))
    results += [trial_result("sine", "relu", seed=s, metric=0.5) for s in range(3)]
    results += [trial_result("sine", "tanh", seed=s, metric=m) for s, m in enumerate(SINE_TANH)]
    store = store_writer(tmp_path / "pair.db", results)
    yield store
    store.close()


def test_leaderboard_ranks_each_task_by_its_own_metric_with_t_intervals(pair: Any) -> None:
    board = analysis.leaderboard(pair.trials())
    assert list(board.columns[:2]) == ["task", "rank"]
    for column in ("arch", "activation", "loss", "optimizer", "lr", "metric_name", "mean", "std", "seeds", "failed"):
        assert column in board.columns
    spirals = board[board["task"] == "spirals"].set_index("activation")
    relu = spirals.loc["relu"]
    mean, std = statistics.mean(SPIRALS_RELU), statistics.stdev(SPIRALS_RELU)
    assert relu["rank"] == 1 and relu["mean"] == pytest.approx(0.6875) and relu["std"] == pytest.approx(std)
    half = T_975[3] * std / math.sqrt(4)
    assert (relu["ci_low"], relu["ci_high"]) == pytest.approx((mean - half, mean + half))
    assert (relu["seeds"], relu["failed"]) == (4, 0)
    tanh = spirals.loc["tanh"]
    assert (tanh["rank"], tanh["seeds"], tanh["failed"]) == (2, 3, 1)
    assert tanh["mean"] == pytest.approx(0.5) and tanh["ci_high"] == pytest.approx(0.5)
    sine = board[board["task"] == "sine"].set_index("activation")
    # RMSE: lower is better, so relu (0.5) beats tanh (mean 0.8958).
    assert sine.loc["relu", "rank"] == 1 and sine.loc["tanh", "rank"] == 2
    assert sine.loc["tanh", "mean"] == pytest.approx(sum(SINE_TANH) / 3)
    half = T_975[2] * statistics.stdev(SINE_TANH) / math.sqrt(3)
    assert sine.loc["tanh", "ci_low"] == pytest.approx(sum(SINE_TANH) / 3 - half)


def test_leaderboard_of_nothing_is_an_empty_frame_with_the_columns() -> None:
    board = analysis.leaderboard(pd.DataFrame(columns=["task", *analysis.CORE_CONFIG_AXES, *analysis.DERIVED_AXES,
                                                "status", "metric"]))
    assert board.empty and "mean" in board.columns and "ci_low" in board.columns


def test_pairwise_evidence_of_two_levels_over_matched_blocks(pair: Any) -> None:
    trials = pair.trials()
    wide, incomplete = analysis.matched_blocks(trials, "activation")
    assert (len(wide), incomplete) == (6, 1)  # 3 seeds x 2 tasks; spirals seed 3 is left out (tanh diverged)
    comparison = pairwise.compare_axis(trials, "activation", Rope())
    assert comparison.levels == ["relu", "tanh"] and comparison.family == 2 and comparison.equivalence_family == 2
    rows = comparison.table().set_index("task")
    # relu minus tanh, oriented so higher is better: +.375 +.25 +.125 on spirals, +.5 -.0625 +.75 on sine.
    assert rows.loc["spirals", "advantage"] == pytest.approx(0.25) and rows.loc["sine", "seeds"] == 3
    assert rows.loc["sine", "advantage"] == pytest.approx((0.5 - 0.0625 + 0.75) / 3)
    assert (rows.loc["spirals", "wins"], rows.loc["sine", "wins"]) == (3, 2)
    # Two tasks are too few for a test over tasks; the across row pools the seeds for P(first wins).
    across = comparison.across()
    assert across.loc[0, "tasks"] == 2 and math.isnan(across.loc[0, "p_value"]) and across.loc[0, "decision"] == ""
    # Holm over the family of two: the smaller p doubled, the larger kept (but never below the first).
    low, high = sorted(rows["p_value"])
    assert sorted(rows["p_adjusted"]) == pytest.approx([2 * low, max(2 * low, high)])


def test_three_levels_compare_every_pair_in_rank_order(tmp_path: Path, trial_result: Callable[..., Any],
                                                       store_writer: Callable[..., Any]) -> None:
    scores = {"tanh": 0.7, "gelu": 0.8, "relu": 0.9}
    rng = np.random.default_rng(0)
    results = [trial_result("spirals", act, seed=s, metric=m + s / 100 + rng.normal(0, 0.003))
               for act, m in scores.items() for s in range(6)]
    with store_writer(tmp_path / "three.db", results) as store:
        comparison = pairwise.compare_axis(store.trials(), "activation", Rope())
    assert comparison.levels == ["relu", "gelu", "tanh"]
    assert [(p.first, p.second) for p in comparison.pairs] == [("relu", "gelu"), ("relu", "tanh"), ("gelu", "tanh")]
    assert comparison.table()["decision"].tolist() == ["first"] * 3 and comparison.family == 3


def test_one_paired_seed_decides_nothing(tmp_path: Path, trial_result: Callable[..., Any],
                                         store_writer: Callable[..., Any]) -> None:
    results = [trial_result("spirals", act, seed=0, metric=m) for act, m in (("relu", 0.9), ("tanh", 0.5))]
    with store_writer(tmp_path / "one.db", results) as store:
        comparison = pairwise.compare_axis(store.trials(), "activation", Rope())
    row = comparison.table().iloc[0]
    assert (row["seeds"], row["decision"], comparison.family) == (1, "undecided", 0)
    assert math.isnan(row["advantage_low"]) and math.isnan(row["p_value"]) and math.isnan(row["seeds_needed"])
    assert "one paired seed has no spread" in verdicts.verdict(comparison).text


def test_optimizers_at_their_own_default_lr_are_one_axis_and_lr_is_not(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [trial_result(optimizer=opt, lr=lr, seed=s, metric=0.5) for opt, lr in (("sgd", 0.05), ("adam", 1e-3))
               for s in range(2)]
    with store_writer(tmp_path / "defaults.db", results) as store:
        trials = store.trials()
    assert analysis.varying_axes(trials) == ["optimizer"]
    assert "lr" not in analysis.block_keys(trials, "optimizer")
    assert analysis.lr_sensitivity(trials).empty


def test_no_clipping_and_a_clipping_limit_are_two_levels_of_the_clip_axis() -> None:
    frame = pd.DataFrame({"clip": [None, 1.0, None, 1.0], "patience": [None] * 4, "optimizer": ["adam"] * 4})
    assert analysis.varying(frame, ["clip", "patience", "optimizer"]) == ["clip"]


def test_lr_sweep_per_optimizer(tmp_path: Path, trial_result: Callable[..., Any],
                                store_writer: Callable[..., Any]) -> None:
    results = [trial_result(optimizer=opt, lr=lr, seed=s, metric=m + s / 10)
               for opt, lr, m in (("adam", 1e-3, 0.5), ("adam", 1e-2, 0.7), ("sgd", 1e-2, 0.4), ("sgd", 0.05, 0.3))
               for s in range(2)]
    with store_writer(tmp_path / "lr.db", results) as store:
        trials = store.trials()
    assert analysis.varying_axes(trials) == ["optimizer", "lr"]
    assert "lr" in analysis.block_keys(trials, "optimizer")  # both ran at 0.01: compare them there
    assert analysis.matched_blocks(trials, "optimizer")[0].shape == (2, 2)
    sweep = analysis.lr_sensitivity(trials)
    assert list(sweep["optimizer"]) == ["adam", "adam", "sgd", "sgd"] and list(sweep["lr"]) == [1e-3, 1e-2, 1e-2, 0.05]
    assert list(sweep["mean"]) == pytest.approx([0.55, 0.75, 0.45, 0.35])
    assert sweep["ci_high"].iloc[0] == pytest.approx(0.55 + 12.706204736 * statistics.stdev([0.5, 0.6]) / math.sqrt(2))


def test_level_summary_and_interaction_average_ok_trials(pair: Any) -> None:
    summary = analysis.level_summary(pair.trials(), "activation").set_index(["task", "level"])
    assert summary.loc[("spirals", "relu"), "trials"] == 4
    assert summary.loc[("spirals", "tanh"), "trials"] == 3  # the diverged trial does not count
    assert summary.loc[("sine", "tanh"), "mean"] == pytest.approx(sum(SINE_TANH) / 3)
    pairs = analysis.interaction(pair.trials(), "activation", "optimizer").set_index(["task", "activation"])
    assert pairs.loc[("spirals", "relu"), "mean"] == pytest.approx(0.6875)
    assert set(pairs["optimizer"]) == {"adam"}


def test_convergence_averages_curves_of_the_best_configurations_over_seeds(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    curves = {0: [(1.0, 0.5), (0.5, 0.7)], 1: [(2.0, 0.6), (1.0, 0.9)], 2: [(3.0, 0.7), (0.75, 0.8)]}
    results = [trial_result("spirals", "relu", seed=s, metric=c[-1][1], epochs=2, curve=c) for s, c in curves.items()]
    results += [trial_result("spirals", "tanh", seed=s, metric=0.1, epochs=2) for s in range(3)]
    with store_writer(tmp_path / "curves.db", results) as store:
        frame = analysis.convergence(store.trials(), store.epochs(), top=1)
    # One configuration: named by its architecture, activation and optimizer.
    assert set(frame["config"]) == {"fnn / relu / adam"} and list(frame["epoch"]) == [1, 2]
    first = frame.iloc[0]
    assert (first["rank"], first["trials"]) == (1, 3)
    assert first["mean"] == pytest.approx(0.6) and first["train_loss"] == pytest.approx(2.0)
    half = T_975[2] * statistics.stdev([0.5, 0.6, 0.7]) / math.sqrt(3)
    assert (first["ci_low"], first["ci_high"]) == pytest.approx((0.6 - half, 0.6 + half))
    assert frame.iloc[1]["train_loss_high"] == pytest.approx(
        0.75 + T_975[2] * statistics.stdev([0.5, 1.0, 0.75]) / math.sqrt(3))
    assert set(frame["split"]) == {"test"}  # a store whose epochs have no validation metric


def test_convergence_draws_the_validation_metric_measured_every_epoch(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    import dataclasses

    results = []
    for seed, values in {0: [0.4, 0.6], 1: [0.5, 0.8]}.items():
        result = trial_result("spirals", "relu", seed=seed, metric=0.9, epochs=2)
        result.curve = [dataclasses.replace(r, val_metric=v, metric=math.nan if r.epoch < 2 else 0.9)
                        for r, v in zip(result.curve, values, strict=True)]
        results.append(result)
    with store_writer(tmp_path / "val.db", results) as store:
        frame = analysis.convergence(store.trials(), store.epochs(), top=1)
    assert set(frame["split"]) == {"validation"}
    assert list(frame["mean"]) == pytest.approx([0.45, 0.7])


def test_speed_and_device_comparison(tmp_path: Path, trial_result: Callable[..., Any],
                                     store_writer: Callable[..., Any]) -> None:
    results = [trial_result(seed=s, train_time=t, throughput=r, epochs=2)
               for s, (t, r) in enumerate([(2.0, 100.0), (4.0, 50.0), (3.0, 80.0)])]
    results += [trial_result(seed=s, device="cuda:0", train_time=t, epochs=2, peak_memory=m)
                for s, (t, m) in enumerate([(0.5, 2**20), (1.0, 3 * 2**20), (1.5, 2**21)])]
    with store_writer(tmp_path / "speed.db", results) as store:
        trials = store.trials()
    speed = analysis.speed(trials).set_index("device")
    assert speed.loc["cpu", "epoch_time"] == pytest.approx(1.5)  # median of 1.0, 2.0, 1.5 s per epoch
    assert speed.loc["cpu", "throughput"] == pytest.approx(80.0)
    assert math.isnan(speed.loc["cpu", "peak_memory"]) and speed.loc["cuda:0", "peak_memory"] == 3 * 2**20
    devices = analysis.device_comparison(trials)
    assert len(devices) == 1
    row = devices.iloc[0]
    # Per seed: 2.0/0.5 = 4, 4.0/1.0 = 4, 3.0/1.5 = 2; the median is 4.
    assert (row["device"], row["baseline"], row["matched"], row["speedup"]) == ("cuda:0", "cpu", 3, 4.0)
    assert analysis.device_comparison(trials[trials["device"] == "cpu"]).empty


def test_failures_and_skipped_combinations_are_grouped_by_reason(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    trace = "Traceback (most recent call last):\n  File \"x.py\", line 1\nRuntimeError: out of memory\n"
    results = [trial_result(seed=0), trial_result(seed=1, status="failed", error=trace),
               trial_result(seed=2, status="failed", error=trace), trial_result(seed=3, status="timeout", error=None)]
    skipped = [Skipped({"task": "spirals", "arch": "cnn"}, "architecture cnn reads image inputs"),
               Skipped({"task": "sine", "arch": "cnn"}, "architecture cnn reads image inputs"),
               Skipped({"task": "sine", "loss": "cross_entropy"}, "loss trains classification tasks")]
    with store_writer(tmp_path / "bad.db", results, skipped=skipped) as store:
        store.start_run("run-2", {}, {}, 0, skipped[:1])  # the same combination skipped again counts once
        trials, skipped_frame = store.trials(), store.skipped()
    failed = analysis.failures(trials)
    assert list(failed["status"]) == ["failed", "timeout"]
    assert failed.loc[0, "reason"] == "RuntimeError: out of memory" and failed.loc[0, "trials"] == 2
    assert failed.loc[1, "reason"] == "no error message recorded"
    assert failed.loc[0, "example"] == "spirals: fnn / relu / cross_entropy / adam / 0.001, seed 1"
    reasons = analysis.skipped_reasons(skipped_frame)
    assert list(reasons["combinations"]) == [2, 1]
    assert reasons.loc[0, "example"] == "task=spirals, arch=cnn"
    counts = analysis.status_counts(trials, skipped_frame).set_index("status")["trials"].to_dict()
    assert counts == {"failed": 2, "ok": 1, "timeout": 1, "skipped": 3}


def test_run_and_grid_overview_read_the_stored_json(pair: Any) -> None:
    runs = pair.runs()
    overview = analysis.run_overview(runs)
    assert overview.loc[0, "host"] == "testhost" and overview.loc[0, "devices"] == "cpu: x86_64"
    assert (overview.loc[0, "torch"], overview.loc[0, "status"]) == ("2.13.0", "finished")
    grid = analysis.grid_overview(runs).set_index("setting")
    assert grid.loc["task", "run-1"] == "spirals" and grid.loc["seeds", "run-1"] == "3"
    assert json.loads(runs.loc[0, "environment"])["git_commit"] == "abc123"


def test_t_interval_is_undefined_for_a_single_seed() -> None:
    low, high = analysis.t_interval(pd.Series([0.5, 0.5]), pd.Series([np.nan, 0.1]), pd.Series([1, 2]))
    assert np.isnan(low[0]) and high[1] == pytest.approx(0.5 + 12.706204736 * 0.1 / math.sqrt(2))


def test_blocks_that_all_tie_are_practically_equivalent(tmp_path: Path, trial_result: Callable[..., Any],
                                                        store_writer: Callable[..., Any]) -> None:
    results = [trial_result(activation=a, seed=s, metric=0.5) for a in ("relu", "tanh", "gelu") for s in range(6)]
    with store_writer(tmp_path / "ties.db", results) as store:
        comparison = pairwise.compare_axis(store.trials(), "activation", Rope())
    table = comparison.table()
    assert len(table) == 3 and table["decision"].eq("equivalent").all() and table["advantage"].eq(0).all()
    assert table["p_value"].eq(1.0).all() and table["ties"].eq(6).all() and table["poi"].eq(0.5).all()


def test_variants_name_only_the_overrides_that_differ_within_a_component() -> None:
    import json

    def row(arch: str, params: dict, task: str = "spirals") -> dict:
        return {"task": task, "arch": arch, "optimizer": "adam", "schedule": "constant",
                "params": json.dumps(params)}

    frame = pd.DataFrame([
        row("fnn", {"arch": {"hidden": [64, 64]}, "optimizer": {}}),
        row("fnn", {"arch": {"hidden": [4]}, "optimizer": {}}),
        row("cnn", {"arch": {"channels": [16, 32]}, "optimizer": {}}),
        row("fnn", {"arch": {"hidden": [64, 64]}, "optimizer": {"momentum": 0.5},
                    "tuning": {"tuned": ["momentum"]}}),
        row("fnn", {"arch": {"hidden": [64, 64]}, "task": {"target": "y"}}, task="csv:t.csv"),
    ])
    tidied = analysis.with_variants(frame)
    assert list(tidied["variant"]) == ["arch.hidden=[64, 64]", "arch.hidden=[4]", "", "arch.hidden=[64, 64]",
                                       "arch.hidden=[64, 64]"]
    assert list(tidied["task"])[-1] == "csv:t.csv → y"
    same_arch = analysis.with_variants(frame.iloc[[0, 2]])
    assert list(same_arch["variant"]) == ["", ""]  # an fnn's hidden sizes are what an fnn is


def test_code_versions_by_hand() -> None:
    def row(activation: str, code: dict[str, str] | None, run: str, finished: str | None,
            optimizer: str = "adam") -> dict[str, Any]:
        params = json.dumps({"arch": {}, **({"code": code} if code is not None else {})})
        return {"activation": activation, "optimizer": optimizer, "params": params, "run_id": run,
                "finished_at": finished}

    mine, edited, lion = {"activation": "source:abc"}, {"activation": "source:def"}, "nnbench-extras 1.0"
    trials = pd.DataFrame([
        row("mine", edited, "run-c", "2026-01-04"),
        row("mine", mine, "run-b", "2026-01-02"),
        row("mine", mine, "run-a", "2026-01-03"),
        row("mine", {**mine, "optimizer": lion}, "run-a", None, optimizer="lion"),
        row("relu", None, "run-a", "2026-01-01"),  # built in: no code recorded
    ])
    versions = analysis.code_versions(trials)
    assert versions.drop(columns="last trained").to_dict("records") == [
        {"axis": "activation", "component": "mine", "code": "source:abc", "trials": 3, "runs": "run-a, run-b"},
        {"axis": "activation", "component": "mine", "code": "source:def", "trials": 1, "runs": "run-c"},
        {"axis": "optimizer", "component": "lion", "code": lion, "trials": 1, "runs": "run-a"}]
    # the latest finish of each code; a trial that never finished adds none
    assert versions["last trained"].tolist()[:2] == ["2026-01-03", "2026-01-04"]
    assert pd.isna(versions["last trained"].iloc[2]) and versions.index.tolist() == [0, 1, 2]
    columns = ["axis", "component", "code", "trials", "runs", "last trained"]
    assert analysis.code_versions(trials.iloc[4:]).empty
    assert analysis.code_versions(trials.iloc[:0]).columns.tolist() == columns
    assert analysis.code_versions(trials.drop(columns="params")).columns.tolist() == columns
    unknown_runs = analysis.code_versions(trials.drop(columns="run_id"))  # a frame made by hand
    assert unknown_runs["runs"].tolist() == ["", "", ""] and unknown_runs["trials"].tolist() == [3, 1, 1]


def test_run_overview_reads_the_environment_each_run_recorded(tmp_path: Path, store_writer: Callable[..., Any],
                                                              trial_result: Callable[..., Any]) -> None:
    with store_writer(tmp_path / "s.db", [trial_result()]) as store:
        runs = store.runs()
    runs.loc[0, "environment"] = json.dumps({**json.loads(runs.loc[0, "environment"]),
                                             "devices": {"cpu": "x86_64", "cuda:0": "H200"}})
    overview = analysis.run_overview(runs).iloc[0]
    assert (overview["nnbench"], overview["torch"], overview["python"]) == ("0.1.0", "2.13.0", "3.11.7")
    assert (overview["host"], overview["platform"], overview["commit"]) == ("testhost", "Linux-test", "abc123")
    assert overview["devices"] == "cpu: x86_64; cuda:0: H200" and overview["run"] == "run-1"


def hand_trials(rows: list[tuple[str, str | None, float]]) -> pd.DataFrame:
    """Trials of relu / adam on spirals, one per (status, error, training seconds)."""
    return pd.DataFrame([{"trial_id": f"t{i}", "task": "spirals", "arch": "fnn", "activation": "relu",
                          "loss": "cross_entropy", "optimizer": "adam", "lr": 1e-3, "seed": i, "status": status,
                          "error": error, "train_time": seconds, "epochs_run": 2}
                         for i, (status, error, seconds) in enumerate(rows)])


def test_failures_are_grouped_by_status_and_reason_most_frequent_first() -> None:
    trials = hand_trials([("diverged", "loss is nan", 1.0), ("timeout", "Traceback\nTimeoutError: over 5 s", 1.0),
                          ("ok", None, 1.0), ("failed", "ValueError: boom", 1.0),
                          ("timeout", "TimeoutError: over 5 s", 1.0), ("failed", "x\nValueError: boom", 1.0)])
    table = analysis.failures(trials)
    assert table.to_dict("records") == [  # ties stay in the order first seen
        {"status": "timeout", "reason": "TimeoutError: over 5 s", "trials": 2,
         "example": "spirals: fnn / relu / cross_entropy / adam / 0.001, seed 1"},
        {"status": "failed", "reason": "ValueError: boom", "trials": 2,
         "example": "spirals: fnn / relu / cross_entropy / adam / 0.001, seed 3"},
        {"status": "diverged", "reason": "loss is nan", "trials": 1,
         "example": "spirals: fnn / relu / cross_entropy / adam / 0.001, seed 0"}]
    assert table.index.tolist() == [0, 1, 2]
    assert analysis.failures(trials.iloc[2:3]).columns.tolist() == ["status", "reason", "trials", "example"]
    # many reasons, each once: still in the order seen (a stable sort, whatever the number of rows)
    many = hand_trials([("failed", f"RuntimeError: case {i}", 1.0) for i in range(19, -1, -1)])
    assert analysis.failures(many)["reason"].tolist() == [f"RuntimeError: case {i}" for i in range(19, -1, -1)]


def test_skipped_reasons_count_each_combination_once_most_frequent_first() -> None:
    def skip(reason: str, **combination: Any) -> dict[str, str]:
        return {"combination": json.dumps(combination), "reason": reason}

    skipped = pd.DataFrame([skip("loss", loss="mse"), skip("no images", arch="cnn", lr=0.01),
                            skip("no images", arch="cnn", lr=0.01), skip("no images", arch="cnn", lr=1),
                            skip("a kind", arch="rnn"), skip("a kind", arch="lstm")])
    table = analysis.skipped_reasons(skipped)
    assert table.to_dict("records") == [
        {"reason": "no images", "combinations": 2, "example": "arch=cnn, lr=0.01"},
        {"reason": "a kind", "combinations": 2, "example": "arch=rnn"},
        {"reason": "loss", "combinations": 1, "example": "loss=mse"}]
    assert table.index.tolist() == [0, 1, 2]
    assert analysis.skipped_reasons(skipped.iloc[:0]).columns.tolist() == ["reason", "combinations", "example"]
    many = pd.DataFrame([skip(f"reason {i}", seed=i) for i in range(19, -1, -1)])
    assert analysis.skipped_reasons(many)["reason"].tolist() == [f"reason {i}" for i in range(19, -1, -1)]


def test_status_counts_in_their_order_with_training_time_and_the_skipped() -> None:
    trials = hand_trials([("weird", None, 4.0), ("timeout", None, 5.0), ("ok", None, 1.0), ("failed", None, 2.0),
                          ("ok", None, 1.5)])
    skipped = pd.DataFrame([{"combination": "{}", "reason": "r"}] * 2 + [{"combination": '{"a": 1}', "reason": "r"}])
    counts = analysis.status_counts(trials, skipped)
    assert counts.to_dict("records") == [
        {"status": "ok", "trials": 2, "train_time": 2.5}, {"status": "failed", "trials": 1, "train_time": 2.0},
        {"status": "timeout", "trials": 1, "train_time": 5.0}, {"status": "weird", "trials": 1, "train_time": 4.0},
        {"status": "skipped", "trials": 2, "train_time": 0.0}]
    assert counts.index.tolist() == list(range(5))
    assert analysis.status_counts(trials, skipped.iloc[:0])["status"].tolist() == ["ok", "failed", "timeout", "weird"]


def test_the_grid_overview_writes_each_setting_as_the_grid_gave_it() -> None:
    grid = {"task": ["moons", "iris"], "seeds": 3, "overrides": {"arch": {"fnn": {"hidden": [8]}}}, "exclude": [],
            "targets": {}, "target": "label"}
    table = analysis.grid_overview(pd.DataFrame({"run_id": ["run-1"], "grid": [json.dumps(grid)]}))
    assert table.to_dict("records") == [
        {"setting": "task", "run-1": "moons, iris"}, {"setting": "seeds", "run-1": "3"},
        {"setting": "overrides", "run-1": '{"arch": {"fnn": {"hidden": [8]}}}'},
        {"setting": "target", "run-1": "label"}]


def test_speed_counts_only_trials_that_trained_an_epoch_for_some_time() -> None:
    trials = hand_trials([("ok", None, 2.0), ("ok", None, 0.0), ("failed", None, 3.0), ("ok", None, 6.0)])
    trials.loc[2, "epochs_run"] = 0  # failed before its first epoch ended
    trials.loc[3, "epochs_run"] = None
    trials = trials.assign(device="cpu", throughput=100.0, peak_memory=None)
    table = analysis.speed(trials)
    assert table[["trials", "epoch_time"]].values.tolist() == [[1, 1.0]]


DEVICE_COLUMNS = ["task", "arch", "device", "baseline", "matched", "speedup"]


def timed_trials(rows: list[tuple[str, str, str, int, float]]) -> pd.DataFrame:
    """Trials by hand: (task, arch, device, seed, seconds per epoch), two epochs each."""
    return pd.DataFrame([{
        "trial_id": f"{task}-{arch}-{device}-{seed}", "task": task, "arch": arch, "activation": "relu",
        "loss": "cross_entropy", "optimizer": "adam", "lr": 1e-3, "device": device, "seed": seed,
        "status": "ok", "metric_name": "accuracy", "metric": 0.5, "epochs_run": 2, "train_time": 2 * per_epoch,
        "throughput": 1000.0 / per_epoch, "peak_memory": None} for task, arch, device, seed, per_epoch in rows])


def test_device_comparison_takes_the_cpu_as_baseline_wherever_it_is_listed_and_keeps_tasks_in_order() -> None:
    rows = [("wine", "fnn", "cuda:0", 0, 1.0), ("wine", "fnn", "cpu", 0, 4.0), ("wine", "fnn", "mps", 0, 2.0),
            ("wine", "fnn", "cuda:0", 1, 1.0), ("wine", "fnn", "cpu", 1, 2.0),
            ("digits", "cnn", "cuda:0", 0, 0.5), ("digits", "cnn", "cpu", 0, 5.0)]
    table = analysis.device_comparison(timed_trials(rows))
    assert list(table.columns) == DEVICE_COLUMNS
    # wine/fnn on cuda:0: ratios 4/1 and 2/1, median 3; mps matched the cpu on seed 0 only.
    assert table.values.tolist() == [["wine", "fnn", "cuda:0", "cpu", 2, 3.0],
                                     ["digits", "cnn", "cuda:0", "cpu", 1, 10.0],
                                     ["wine", "fnn", "mps", "cpu", 1, 2.0]]


def test_device_comparison_without_a_cpu_takes_the_first_device_and_one_device_compares_nothing() -> None:
    rows = [("wine", "fnn", "cuda:1", 0, 3.0), ("wine", "fnn", "cuda:0", 0, 1.5)]
    table = analysis.device_comparison(timed_trials(rows))
    assert table.values.tolist() == [["wine", "fnn", "cuda:0", "cuda:1", 1, 2.0]]
    alone = analysis.device_comparison(timed_trials(rows[:1]))
    assert alone.empty and list(alone.columns) == DEVICE_COLUMNS


def test_speed_keeps_the_order_tasks_and_architectures_were_first_seen() -> None:
    rows = [("wine", "fnn", "cpu", 0, 1.0), ("digits", "cnn", "cpu", 0, 2.0), ("wine", "cnn", "cpu", 0, 3.0)]
    table = analysis.speed(timed_trials(rows))
    assert table[["task", "arch", "epoch_time"]].values.tolist() == [["wine", "fnn", 1.0], ["digits", "cnn", 2.0],
                                                                     ["wine", "cnn", 3.0]]


def test_speed_leaves_out_trials_with_no_recorded_epochs_or_time() -> None:
    trials = timed_trials([("wine", "fnn", "cpu", s, 1.0) for s in range(4)])
    trials.loc[0, "epochs_run"] = None  # never recorded: not counted as having trained
    trials.loc[1, "train_time"] = None
    trials.loc[2, "epochs_run"] = 1  # one epoch is enough
    table = analysis.speed(trials)
    assert table[["trials", "epoch_time"]].values.tolist() == [[2, 1.5]]  # 2 s / 1 epoch and 2 s / 2 epochs


def test_lr_sensitivity_keeps_tasks_in_the_order_first_seen_with_a_fresh_index() -> None:
    rows = [(task, opt, lr, s, m) for task in ("wine", "digits") for opt, lr, m in
            (("sgd", 0.1, 0.3), ("adam", 0.01, 0.7), ("adam", 0.001, 0.5)) for s in range(2)]
    trials = pd.DataFrame([{
        "trial_id": f"{task}-{opt}-{lr}-{s}", "task": task, "arch": "fnn", "activation": "relu",
        "loss": "cross_entropy", "optimizer": opt, "lr": lr, "device": "cpu", "seed": s, "status": "ok",
        "metric_name": "accuracy", "metric": m, "protocol": "default"} for task, opt, lr, s, m in rows])
    sweep = analysis.lr_sensitivity(trials)
    assert list(sweep.index) == [0, 1, 2, 3]
    assert sweep[["task", "optimizer", "lr", "mean"]].values.tolist() == [
        ["wine", "adam", 0.001, 0.5], ["wine", "adam", 0.01, 0.7], ["digits", "adam", 0.001, 0.5],
        ["digits", "adam", 0.01, 0.7]]  # sgd ran at one rate only


def test_device_comparison_of_devices_that_share_no_trial_is_empty_with_its_columns() -> None:
    apart = [("wine", "fnn", "cpu", 0, 2.0), ("wine", "fnn", "cuda:0", 1, 1.0)]
    table = analysis.device_comparison(timed_trials(apart))
    assert table.empty and list(table.columns) == DEVICE_COLUMNS


def test_convergence_draws_the_best_eight_configurations_one_seed_enough(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [trial_result("spirals", "relu", lr=lr, seed=0, metric=0.9 - i / 100, epochs=2)
               for i, lr in enumerate([1e-3 * (i + 1) for i in range(9)])]
    with store_writer(tmp_path / "nine.db", results) as store:
        trials, epochs = store.trials(), store.epochs()
    frame = analysis.convergence(trials, epochs)
    assert sorted(set(frame["rank"])) == list(range(1, 9)) and set(frame["trials"]) == {1}
    empty = analysis.convergence(trials, epochs.iloc[0:0])
    assert empty.empty and list(empty.columns) == ["task", "metric_name", "rank", "config", "epoch"]


def test_leaderboard_keeps_configurations_that_all_failed_or_lack_an_axis_value() -> None:
    rows = [("relu", "ok", 0.8), ("relu", "ok", 0.9), ("gelu", "failed", None), ("gelu", "failed", None),
            (None, "ok", 0.7)]  # an architecture that takes no activation stores none
    trials = pd.DataFrame([{
        "trial_id": f"t{i}", "task": "spirals", "arch": "fnn", "activation": activation, "loss": "cross_entropy",
        "optimizer": "adam", "lr": 1e-3, "seed": i, "status": status, "metric_name": "accuracy", "metric": metric,
        "train_time": 1.0, "n_params": 10} for i, (activation, status, metric) in enumerate(rows)])
    board = analysis.leaderboard(trials)
    shown = board[["rank", "activation", "seeds", "failed"]].astype(object)
    assert shown.where(shown.notna(), None).values.tolist() == [[1, "relu", 2, 0], [2, None, 1, 0], [3, "gelu", 0, 2]]
    assert list(board["iqm"].iloc[:2]) == pytest.approx([0.85, 0.7]) and math.isnan(board["iqm"].iloc[2])


def test_code_versions_are_versions_only_within_one_component_and_a_frame_with_variants_is_kept() -> None:
    def row(activation: str, code: str) -> dict:
        return {"task": "spirals", "arch": "fnn", "activation": activation, "optimizer": "adam",
                "params": json.dumps({"arch": {}, "optimizer": {}, "code": {"activation": code}})}

    two_components = analysis.with_variants(pd.DataFrame([row("relu", "a1"), row("gelu", "b7")]))
    assert list(two_components["variant"]) == ["", ""]  # each activation has its own code: not variants
    two_codes = analysis.with_variants(pd.DataFrame([row("relu", "a1"), row("relu", "a2")]))
    # Code is never a variant (it would split every block): two codes of one component are its versions.
    assert list(two_codes["variant"]) == ["", ""] and list(two_codes["version"]) == ["relu v1", "relu v2"]
    assert list(two_components["version"]) == ["", ""]
    # A kind with no column of its own (a plugin's kind read by a frame without it) still compares.
    extra = pd.DataFrame([row("relu", "a1"), row("relu", "a1")])
    extra["params"] = [json.dumps({"arch": {}, "norm": {"eps": eps}}) for eps in (1e-5, 1e-3)]
    assert list(analysis.with_variants(extra)["variant"]) == ["norm.eps=1e-05", "norm.eps=0.001"]
    extra["params"] = [json.dumps({"arch": {}, "norm": {"eps": eps, "momentum": m}})
                       for eps, m in ((1e-5, 0.1), (1e-3, 0.2))]
    assert list(analysis.with_variants(extra)["variant"]) == ["norm.eps=1e-05, norm.momentum=0.1",
                                                              "norm.eps=0.001, norm.momentum=0.2"]
    given = pd.DataFrame([row("relu", "a1"), row("relu", "a2")]).assign(variant=["x", "y"])
    assert analysis.with_variants(given) is given  # variants already read: nothing to add


def test_variants_read_optimizer_overrides_nested_values_in_any_key_order_and_rows_without_params() -> None:
    def row(params: object) -> dict:
        return {"task": "spirals", "arch": "fnn", "activation": "relu", "optimizer": "sgd",
                "params": params if params is None else json.dumps(params)}

    frame = pd.DataFrame([row({"optimizer": {"momentum": 0.5}, "arch": {"shape": {"a": 1, "b": 2}}}),
                          row({"optimizer": {"momentum": 0.9}, "arch": {"shape": {"b": 2, "a": 1}}})])
    assert list(analysis.with_variants(frame)["variant"]) == ["optimizer.momentum=0.5", "optimizer.momentum=0.9"]
    bare = pd.DataFrame([row(None), row({})])  # a row stored without parameters reads as none set
    assert list(analysis.with_variants(bare)["variant"]) == ["", ""]


def test_the_leaderboard_of_several_tasks_is_numbered_from_zero(pair: Any) -> None:
    board = analysis.leaderboard(pair.trials())
    assert board["task"].nunique() == 2 and list(board.index) == list(range(len(board)))
    worse_first = pd.DataFrame([{
        "trial_id": f"t{i}", "task": "spirals", "arch": "fnn", "activation": activation, "loss": "cross_entropy",
        "optimizer": "adam", "lr": 1e-3, "seed": 0, "status": "ok", "metric_name": "accuracy", "metric": metric,
        "train_time": 1.0, "n_params": 10} for i, (activation, metric) in enumerate([("tanh", 0.5), ("relu", 0.9)])])
    ranked = analysis.leaderboard(worse_first)
    assert list(ranked["activation"]) == ["relu", "tanh"] and list(ranked.index) == [0, 1]


def test_only_ok_trials_with_a_finite_metric_count_and_grouped_iqm_cuts_a_quarter_each_end() -> None:
    trials = pd.DataFrame({"status": ["ok", "ok", "failed", "diverged"], "metric": [0.5, math.nan, 0.7, 0.1]})
    assert list(analysis.ok_trials(trials).index) == [0]
    frame = pd.DataFrame({"g": ["a"] * 4 + ["b"] * 2, "v": [1.0, 2.0, 3.0, 100.0, 4.0, 6.0]})
    iqm = analysis.grouped_iqm(frame, ["g"], "v")
    assert iqm.to_dict() == {"a": 2.5, "b": 5.0}  # a: 1 and 100 cut; b: two values, nothing cut
    missing = pd.DataFrame({"g": ["a", None, None], "v": [1.0, 2.0, 4.0]})
    summary = analysis.summarize(missing, ["g"], "v")
    assert summary["trials"].tolist() == [1, 2] and summary["mean"].tolist() == [1.0, 3.0]  # a missing key counts


def test_a_tuned_learning_rate_reads_tuned_in_blocks_of_other_axes_only() -> None:
    def row(optimizer: str, lr: float, protocol: str, tuned: list[str]) -> dict:
        return {"trial_id": f"{optimizer}{lr}{protocol}", "task": "spirals", "arch": "fnn", "activation": "relu",
                "optimizer": optimizer, "lr": lr, "seed": 0, "status": "ok", "metric": 0.5, "protocol": protocol,
                "params": json.dumps({"tuning": {"tuned": tuned}} if tuned else {})}

    trials = pd.DataFrame([row("adam", 0.003, "tuned", ["lr"]), row("sgd", 0.2, "tuned", ["momentum"]),
                           row("sgd", 0.1, "default", [])])
    blocks = analysis.blocking_frame(trials, "optimizer")
    assert list(blocks["lr"]) == ["tuned", 0.2, 0.1]
    assert list(analysis.blocking_frame(trials, "lr")["lr"]) == [0.003, 0.2, 0.1]
    untuned = trials.assign(protocol="default")
    assert list(analysis.blocking_frame(untuned, "optimizer")["lr"]) == [0.003, 0.2, 0.1]


def test_an_axis_with_one_level_left_is_not_compared(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [trial_result(activation=a, seed=s, metric=m + s / 100)
               for a, m in (("relu", 0.9), ("tanh", 0.7), ("gelu", 0.5)) for s in range(6)]
    with store_writer(tmp_path / "three.db", results) as store:
        trials = store.trials()
    only = trials[trials["activation"] == "relu"]
    assert analysis.varying_axes(only) == [] and verdicts.findings(only) == []
    comparison = pairwise.compare_axis(only, "activation", Rope())
    assert comparison.pairs == [] and "nothing could be compared" in verdicts.verdict(comparison).text


def test_p_values_below_the_printed_precision_say_so() -> None:
    assert analysis.format_p(5e-5) == "p < 0.0001"
    assert analysis.format_p(1e-4) == "p = 0.0001"  # exactly the threshold still prints as a number
    assert analysis.format_p(0.03125) == "p = 0.031"


def test_convergence_keeps_tasks_in_the_order_first_seen_with_a_fresh_index(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [trial_result(task, act, seed=s, metric=m, epochs=2)
               for task in ("spirals", "moons") for act, m in (("relu", 0.9), ("tanh", 0.8)) for s in range(2)]
    with store_writer(tmp_path / "order.db", results) as store:
        frame = analysis.convergence(store.trials(), store.epochs(), top=2)
    assert list(dict.fromkeys(frame["task"])) == ["spirals", "moons"]  # not in name order
    assert list(frame.index) == list(range(len(frame))) and len(frame) == 8
    assert frame[["rank", "epoch"]].values.tolist()[:4] == [[1, 1], [1, 2], [2, 1], [2, 2]]


def test_matched_blocks_put_learning_rates_in_numeric_order_whatever_order_they_ran_in() -> None:
    rows = [(lr, s, m) for lr, m in ((0.1, 0.6), (0.001, 0.8), (0.01, 0.7)) for s in range(3)]
    trials = pd.DataFrame([{
        "trial_id": f"{lr}-{s}", "task": "wine", "arch": "fnn", "activation": "relu", "loss": "cross_entropy",
        "optimizer": "adam", "lr": lr, "device": "cpu", "seed": s, "status": "ok", "metric_name": "accuracy",
        "metric": m + s / 100, "protocol": "default"} for lr, s, m in rows])
    wide, incomplete = analysis.matched_blocks(trials, "lr")
    assert list(wide.columns) == [analysis.format_level("lr", lr) for lr in (0.001, 0.01, 0.1)]
    assert incomplete == 0 and wide.iloc[0].tolist() == pytest.approx([0.8, 0.7, 0.6])


def test_lr_sensitivity_keeps_each_tasks_rows_in_optimizer_and_rate_order_over_many_rows() -> None:
    rates = (0.3, 0.1, 0.03, 0.01, 0.003)
    rows = [(task, opt, lr, s) for s in range(2) for lr in rates for opt in ("sgd", "adam", "rmsprop")
            for task in ("wine", "digits")]  # 30 rows per seed, interleaved: a sort that is not stable shows
    trials = pd.DataFrame([{
        "trial_id": f"{task}-{opt}-{lr}-{s}", "task": task, "arch": "fnn", "activation": "relu",
        "loss": "cross_entropy", "optimizer": opt, "lr": lr, "device": "cpu", "seed": s, "status": "ok",
        "metric_name": "accuracy", "metric": 0.5 + lr, "protocol": "default"} for task, opt, lr, s in rows])
    sweep = analysis.lr_sensitivity(trials)
    expected = [(task, opt, lr) for task in ("wine", "digits") for opt in ("adam", "rmsprop", "sgd")
                for lr in sorted(rates)]
    assert list(sweep[["task", "optimizer", "lr"]].itertuples(index=False, name=None)) == expected


def test_learning_rate_blocks_keep_the_rates_tuning_chose_apart_from_the_swept_ones() -> None:
    def row(lr: float, protocol: str, seed: int) -> dict[str, Any]:
        tuning = {"tuning": {"tuned": ["lr"], "budget": 4}} if protocol == "tuned" else {}
        return {"trial_id": f"{lr}-{protocol}-{seed}", "task": "wine", "arch": "fnn", "activation": "relu",
                "loss": "cross_entropy", "optimizer": "adam", "lr": lr, "device": "cpu", "seed": seed,
                "status": "ok", "metric_name": "accuracy", "metric": 0.5 + lr + seed / 100, "protocol": protocol,
                "params": json.dumps(tuning)}

    trials = pd.DataFrame([row(lr, "default", s) for lr in (0.01, 0.1) for s in range(3)]
                          + [row(0.01, "tuned", s) for s in range(3)])
    wide, incomplete = analysis.matched_blocks(trials, "lr")
    assert list(wide.columns) == [analysis.format_level("lr", 0.01), analysis.format_level("lr", 0.1)]
    assert len(wide) == 3 and incomplete == 0  # the tuned blocks hold one rate: nothing to compare there


def test_a_tuned_trial_whose_record_names_no_tuned_setting_did_not_tune_its_rate() -> None:
    trials = pd.DataFrame([{"task": "wine", "protocol": "tuned", "params": json.dumps({"tuning": {"budget": 4}})},
                           {"task": "wine", "protocol": "tuned", "params": json.dumps({"tuning": None})},
                           {"task": "wine", "protocol": "tuned", "params": json.dumps({"tuning": {"tuned": ["lr"]}})},
                           {"task": "wine", "protocol": "default", "params": "{}"}])
    assert analysis.lr_was_tuned(trials).tolist() == [False, False, True, False]
