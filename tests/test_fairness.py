"""Fair comparisons against numbers worked out by hand: time-to-target, performance profiles, tuned
against default, the tuning sweep and budgets, and every honesty warning (on and off)."""

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

from nnbench.analysis import fairness
from nnbench.analysis import frames as analysis

T_975_2 = 4.302652729749462  # t-table: two-sided 95%, 2 degrees of freedom
INF = math.inf


def written(tmp_path: Path, store_writer: Callable[..., Any], results: list[Any], name: str = "s",
            targets: dict[str, float | None] | None = None) -> tuple[pd.DataFrame, pd.DataFrame, pd.DataFrame]:
    grid = {"task": sorted({r.trial.task for r in results}), "seeds": 3, "targets": targets or {}}
    with store_writer(tmp_path / f"{name}.db", results, grid=grid) as store:
        return store.trials(), store.epochs(), store.runs()


def checks(trials: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """The honesty warnings, checked for what holds of every row: the severity of its check, the task it
    names, warnings before notes, numbered from 0."""
    found = fairness.honesty_warnings(trials, runs)
    assert found.columns.tolist() == ["severity", "check", "task", "warning"]
    assert found.index.tolist() == list(range(len(found)))
    for row in found.itertuples():
        assert row.severity == ("note" if row.check == "mixed" else "warning"), row
        prefix = f"target of {row.task}: " if row.check == "targets" else f"{row.task}: "
        assert isinstance(row.warning, str) and prefix in row.warning, row
    assert found["severity"].tolist() == sorted(found["severity"], key=lambda s: s != "warning")
    return found


# -- time-to-target --------------------------------------------------------------------------------


def test_time_to_target_on_hand_made_curves(tmp_path: Path, protocol_result: Callable[..., Any],
                                            store_writer: Callable[..., Any]) -> None:
    results = [
        # accuracy, target 0.8: 0.79 misses, 0.8 reaches at epoch 3 after 1.0 + 2.0 + 0.5 s
        protocol_result("spirals", activation="relu", val=[0.5, 0.79, 0.8, 0.9], epoch_times=[1.0, 2.0, 0.5, 0.25]),
        protocol_result("spirals", activation="tanh", val=[0.1, 0.2, 0.3, 0.4]),  # never
        protocol_result("spirals", activation="gelu", val=[0.7, math.nan, math.nan, math.nan],
                        status="diverged", metric=math.nan),  # diverged before reaching it: never
        # rmse, target 0.3: lower is better, so 0.3 reaches at epoch 3 after 0.5 + 0.5 + 1.0 s
        protocol_result("sine", activation="relu", val=[0.9, 0.4, 0.3, 0.2], epoch_times=[0.5, 0.5, 1.0, 1.0]),
        protocol_result("sine", activation="tanh", val=[0.31, 0.35, 0.9, 0.5]),  # 0.31 > 0.3: never
        protocol_result("moons", activation="relu", val=[0.99] * 4),  # no target: not measured
        protocol_result("spirals", activation="selu", status="timeout", metric=math.nan, val=[0.9] * 4),
    ]
    results[-1].metric_name, results[-1].curve = "", []  # as an executor records a timeout
    trials, epochs, _ = written(tmp_path, store_writer, results)
    times = fairness.time_to_target(trials, epochs, {"spirals": 0.8, "sine": 0.3})
    got = times.set_index(["task", "activation"])
    assert len(times) == 6 and "moons" not in set(times["task"])
    assert got.loc[("spirals", "relu"), ["reached", "epoch", "time"]].tolist() == [True, 3.0, pytest.approx(3.5)]
    assert got.loc[("sine", "relu"), ["reached", "epoch", "time"]].tolist() == [True, 3.0, pytest.approx(2.0)]
    for never in (("spirals", "tanh"), ("spirals", "gelu"), ("sine", "tanh"), ("spirals", "selu")):
        assert got.loc[never, ["reached", "epoch", "time"]].tolist() == [False, INF, INF]
    assert got.loc[("sine", "relu"), "metric_name"] == "rmse" and got.loc[("sine", "relu"), "target"] == 0.3
    assert got.loc[("spirals", "selu"), "metric_name"] == "accuracy"


def test_targets_come_from_the_runs_and_the_first_run_wins(tmp_path: Path, trial_result: Callable[..., Any],
                                                           store_writer: Callable[..., Any]) -> None:
    path = tmp_path / "targets.db"
    store_writer(path, [trial_result(seed=0)], run_id="run-a",
                 grid={"targets": {"spirals": 0.9, "sine": None}}).close()
    store_writer(path, [trial_result(seed=1)], run_id="run-b",
                 grid={"targets": {"spirals": 0.8, "sine": 0.2, "moons": 0.95}}).close()
    with store_writer(path, [], run_id="run-c", grid={"targets": {"spirals": 0.9}}) as store:
        runs, no_trials = store.runs(["run-a", "run-b", "run-c"]), store.trials(["run-c"])
    targets, conflicts = fairness.task_targets(runs)
    assert targets == {"spirals": 0.9, "sine": 0.2, "moons": 0.95}
    assert conflicts == ["runs disagree on the target of spirals: 0.9 (run run-a, used) and 0.8 (run run-b)"]
    found = checks(no_trials, runs)
    assert found[["severity", "check", "task"]].values.tolist() == [["warning", "targets", "spirals"]]


def curve(time: float) -> dict[str, list[float]]:
    """A 3-epoch validation curve (target 0.8) first reaching the target after ``time`` seconds."""
    if math.isinf(time):
        return {"val": [0.5, 0.5, 0.5], "epoch_times": [1.0, 1.0, 1.0]}
    if time < 1:
        return {"val": [0.9, 0.9, 0.9], "epoch_times": [time, 1.0, 1.0]}
    epochs = int(time)
    return {"val": [0.5] * (epochs - 1) + [0.9] * (4 - epochs), "epoch_times": [1.0, 1.0, 1.0]}


def test_target_leaderboard_ranks_median_time_with_never_as_infinite(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    # Per activation: time-to-target of seeds 0, 1, 2 and the test metric of every seed.
    plan = {"relu": ([1.0, 2.0, INF], 0.7), "tanh": ([3.0, 3.0, 3.0], 0.9), "elu": ([3.0, 3.0, 3.0], 0.85),
            "gelu": ([INF, INF, 0.5], 0.6), "selu": ([INF, INF, INF], 0.95)}
    results = [protocol_result("spirals", activation=a, seed=s, metric=m, **curve(t))
               for a, (times, m) in plan.items() for s, t in enumerate(times)]
    trials, epochs, _ = written(tmp_path, store_writer, results, targets={"spirals": 0.8})
    board = fairness.target_leaderboard(trials, epochs, {"spirals": 0.8}).set_index("activation")
    # Medians: relu 2 s (2 of 3 reached), tanh and elu 3 s (tied), gelu and selu never (1 and 0 of 3).
    assert board["median_time"].to_dict() == {"relu": 2.0, "tanh": 3.0, "elu": 3.0, "gelu": INF, "selu": INF}
    assert board["rank"].to_dict() == {"relu": 1, "tanh": 2, "elu": 2, "gelu": 4, "selu": 5}
    assert board["reached"].to_dict() == {"relu": 2, "tanh": 3, "elu": 3, "gelu": 1, "selu": 0}
    assert set(board["seeds"]) == {3}
    assert board.loc["relu", "median_epoch"] == 2.0 and board.loc["gelu", "median_epoch"] == INF
    # The final-metric ranking orders them differently: selu has the best test accuracy.
    assert board["metric_rank"].to_dict() == {"selu": 1, "tanh": 2, "elu": 3, "relu": 4, "gelu": 5}
    assert board.loc["tanh", "mean"] == pytest.approx(0.9)


def test_target_leaderboard_rows_follow_the_ranking_task_by_task(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    at_epoch_two = {"val": [0.5, 0.9, 0.9], "epoch_times": [2.0, 1.0, 1.0]}  # 3 s, like tanh, one epoch sooner
    plan = {"relu": [curve(2.0)] * 3, "tanh": [curve(3.0)] * 3, "elu": [at_epoch_two] * 3,
            "gelu": [curve(INF), curve(INF), curve(0.5)], "selu": [curve(INF)] * 3}
    results = [protocol_result("spirals", activation=a, seed=s, **c) for a, curves in plan.items()
               for s, c in enumerate(curves)]
    results += [protocol_result("moons", activation="relu", seed=s, **curve(1.0)) for s in range(3)]
    trials, epochs, _ = written(tmp_path, store_writer, results)
    trials = trials.iloc[np.argsort(trials["task"].ne("spirals").to_numpy(), kind="stable")]  # spirals first seen
    board = fairness.target_leaderboard(trials, epochs, {"spirals": 0.8, "moons": 0.8})
    assert board.columns[:2].tolist() == ["task", "rank"] and board.index.tolist() == list(range(6))
    assert board[["task", "activation", "rank"]].values.tolist() == [
        ["spirals", "relu", 1], ["spirals", "elu", 2], ["spirals", "tanh", 2], ["spirals", "gelu", 4],
        ["spirals", "selu", 5], ["moons", "relu", 1]]


def test_never_reaching_ties_are_broken_by_the_fraction_of_seeds_that_did(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    # both medians are "never"; relu reached on 1 of 2 seeds (half), tanh on 1 of 4 (a quarter)
    results = [protocol_result("moons", activation="relu", seed=s, **c) for s, c in enumerate([curve(1.0), curve(INF)])]
    results += [protocol_result("moons", activation="tanh", seed=s, **c)
                for s, c in enumerate([curve(1.0)] + [curve(INF)] * 3)]
    trials, epochs, _ = written(tmp_path, store_writer, results)
    trials = trials.iloc[np.argsort(trials["activation"].ne("tanh").to_numpy(), kind="stable")]  # tanh seen first
    board = fairness.target_leaderboard(trials, epochs, {"moons": 0.8})
    assert board[["activation", "rank", "reached", "seeds"]].values.tolist() == [["relu", 1, 1, 2], ["tanh", 2, 1, 4]]


def test_a_missing_epoch_time_counts_as_no_time(tmp_path: Path, protocol_result: Callable[..., Any],
                                               store_writer: Callable[..., Any]) -> None:
    result = protocol_result("moons", val=[0.5, 0.9, 0.9], epoch_times=[None, 2.0, 1.0], train_time=3.0)
    trials, epochs, _ = written(tmp_path, store_writer, [result])
    times = fairness.time_to_target(trials, epochs, {"moons": 0.8})
    assert times[["reached", "epoch", "time"]].values.tolist() == [[True, 2.0, 2.0]]
    assert times.index.tolist() == [0] and "index" not in times.columns
    none = fairness.time_to_target(trials, epochs, {"spirals": 0.8})  # no trial of a task with a target
    assert none.empty and none.columns.tolist() == times.columns.tolist()
    assert fairness.profile_times(fairness.target_leaderboard(trials, epochs, {"moons": 0.8})).columns.tolist() == [
        "configuration", "task", "time"]
    untuned = fairness.tuned_vs_default(trials)
    assert untuned.empty and untuned.columns[[0, 1, -1]].tolist() == ["task", "metric_name", "tuning_time"]


def test_a_task_whose_first_trial_timed_out_still_reads_its_metric_name(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [protocol_result("spirals", activation="relu", seed=s, **curve(2.0)) for s in range(2)]
    results.append(protocol_result("spirals", activation="selu", status="timeout", **curve(INF)))
    results[-1].metric_name = ""  # as an executor records a timeout
    trials, epochs, _ = written(tmp_path, store_writer, results)
    trials = trials.iloc[np.argsort(trials["status"].eq("ok").to_numpy(), kind="stable")]  # the timeout first
    times = fairness.time_to_target(trials, epochs, {"spirals": 0.8})
    assert set(times["metric_name"]) == {"accuracy"} and times["target"].dtype == float
    assert times.set_index("activation")["reached"].to_dict() == {"relu": True, "selu": False}


def test_tuned_against_default_with_a_tie_and_a_configuration_without_default(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [protocol_result("spirals", "adam", lr, 0, metric=0.6, role="tune", index=i, train_time=0.5)
               for i, lr in enumerate([1e-3, 1e-1])]
    for seed in range(3):
        results.append(protocol_result("spirals", "adam", 1e-2, seed, 0.8, role="final"))
        results.append(protocol_result("spirals", "adam", 1e-3, seed, 0.8))  # the default: exactly as good
        results.append(protocol_result("spirals", "sgd", 1e-2, seed, 0.7, role="final"))  # no default, no steps
    trials, _, _ = written(tmp_path, store_writer, results)
    table = fairness.tuned_vs_default(trials)
    assert table.index.tolist() == [0, 1] and table.columns[[0, -2, -1]].tolist() == [
        "task", "tuning_trials", "tuning_time"]
    adam, sgd = (table[table["optimizer"].eq(name)].iloc[0] for name in ("adam", "sgd"))
    assert adam["difference"] == pytest.approx(0.0) and adam["tuned_better"] is False  # a tie is no improvement
    assert (adam["tuning_trials"], adam["tuning_time"], adam["default_lr"]) == (2, pytest.approx(1.0), 1e-3)
    assert sgd["tuned_better"] is None and math.isnan(sgd["default_mean"])
    assert (sgd["tuning_trials"], sgd["tuning_time"]) == (0, 0.0) and table["tuning_trials"].dtype == np.int64


def test_tuned_against_default_pairs_by_the_learning_rate_unless_it_was_tuned(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    momentum = {"momentum": [0.0, 0.99, "linear"]}
    both = {"lr": [1e-4, 1.0, "log"], "momentum": [0.0, 0.99, "linear"]}
    results = []
    for seed in range(3):
        # sgd tuned its momentum at lr 0.05: its default is the lr-0.05 run, not the lr-0.1 one
        results.append(protocol_result("spirals", "sgd", 0.05, seed, 0.9, role="final", space=momentum,
                                       optimizer_params={"momentum": 0.5}))
        results += [protocol_result("spirals", "sgd", lr, seed, m) for lr, m in ((0.1, 0.6), (0.05, 0.7))]
        # adam tuned lr and momentum together: any of its defaults will do, whatever its learning rate
        results.append(protocol_result("spirals", "adam", 0.02, seed, 0.8, role="final", space=both))
        results.append(protocol_result("spirals", "adam", 1e-3, seed, 0.75))
        # rmse: tuned worse than its default by 0.5, and another tuned exactly as good as its default
        results.append(protocol_result("sine", "adam", 0.01, seed, 1.0, role="final"))
        results.append(protocol_result("sine", "adam", 1e-3, seed, 0.5))
        results.append(protocol_result("sine", "sgd", 0.01, seed, 0.5, role="final"))
        results.append(protocol_result("sine", "sgd", 0.05, seed, 0.5))
    table = fairness.tuned_vs_default(written(tmp_path, store_writer, results)[0])
    got = {(row.task, row.optimizer): (row.default_lr, row.difference, row.tuned_better) for row in table.itertuples()}
    assert got == {("spirals", "sgd"): (0.05, pytest.approx(0.2), True),
                   ("spirals", "adam"): (1e-3, pytest.approx(0.05), True),
                   ("sine", "adam"): (1e-3, pytest.approx(0.5), False),  # a higher rmse is worse
                   ("sine", "sgd"): (0.05, pytest.approx(0.0), False)}
    assert all(isinstance(value, bool) for value in table["tuned_better"])


# -- performance profiles --------------------------------------------------------------------------

# Median time-to-target (s) of 3 configurations on 3 tasks; A never reached task t3's target.
HAND_TIMES = {"A": [10.0, 20.0, INF], "B": [20.0, 10.0, 30.0], "C": [40.0, INF, 15.0]}
# Best per task: 10, 10, 15. Ratios: A 1, 2, inf; B 2, 1, 2; C 4, inf, 1.
HAND_RATIOS = {"A": [1.0, 2.0, INF], "B": [2.0, 1.0, 2.0], "C": [4.0, INF, 1.0]}


def hand_times() -> pd.DataFrame:
    return pd.DataFrame([{"configuration": c, "task": f"t{i + 1}", "time": t}
                         for c, times in HAND_TIMES.items() for i, t in enumerate(times)])


def test_performance_ratios_and_profile_by_hand() -> None:
    ratios = fairness.profile_ratios(hand_times())
    wide = ratios.pivot(index="configuration", columns="task", values="ratio")
    assert {c: wide.loc[c].tolist() for c in HAND_RATIOS} == HAND_RATIOS
    assert ratios.groupby("task")["best"].first().to_dict() == {"t1": 10.0, "t2": 10.0, "t3": 15.0}
    profile = fairness.performance_profile(hand_times(), taus=[1.0, 1.5, 2.0, 3.9, 4.0, 100.0])
    rho = {c: part["rho"].tolist() for c, part in profile.groupby("configuration", sort=False)}
    expected = {"B": [1 / 3, 1 / 3, 1.0, 1.0, 1.0, 1.0],
                "A": [1 / 3, 1 / 3, 2 / 3, 2 / 3, 2 / 3, 2 / 3],
                "C": [1 / 3, 1 / 3, 1 / 3, 1 / 3, 2 / 3, 2 / 3]}
    assert set(rho) == set(expected)
    for configuration, values in expected.items():
        assert rho[configuration] == pytest.approx(values)
    assert list(rho) == ["B", "A", "C"]  # best first: equal at tau = 1, then by the fraction solved


def test_default_profile_grid_runs_from_one_past_the_largest_finite_ratio() -> None:
    profile = fairness.performance_profile(hand_times())
    taus = profile.loc[profile["configuration"] == "A", "tau"].to_numpy()
    assert taus[0] == 1.0 and taus[-1] == pytest.approx(4.4) and np.all(np.diff(taus) > 0)
    assert {2.0, 4.0} <= set(taus)  # every ratio is on the grid, so the steps are exact
    ratio = taus[1:] / taus[:-1]
    assert ratio.max() < 1.02  # log-spaced
    last = profile.groupby("configuration")["rho"].last().to_dict()
    assert last == pytest.approx({"A": 2 / 3, "B": 1.0, "C": 2 / 3})


def test_a_configuration_missing_from_a_task_counts_as_not_reaching_it() -> None:
    times = hand_times()
    times = times[~((times["configuration"] == "B") & (times["task"] == "t3"))]
    ratios = fairness.profile_ratios(times).set_index(["configuration", "task"])["ratio"]
    assert ratios[("B", "t3")] == INF and ratios[("C", "t3")] == 1.0


def test_ratios_come_in_the_order_seen_with_never_and_instant_spelled_out() -> None:
    times = pd.DataFrame({"configuration": ["Z", "Z", "Y", "X"], "task": ["t2", "t1", "t2", "t2"],
                          "time": [0.0, 5.0, 0.0, INF]})  # X and Y never ran t1; on t2, Y and Z took no time
    ratios = fairness.profile_ratios(times)
    assert ratios.columns.tolist() == ["configuration", "task", "time", "best", "ratio"]
    assert ratios[["configuration", "task"]].values.tolist() == [
        ["Z", "t2"], ["Z", "t1"], ["Y", "t2"], ["Y", "t1"], ["X", "t2"], ["X", "t1"]]
    assert ratios["time"].tolist() == [0.0, 5.0, 0.0, INF, INF, INF]  # not trained: never, not missing
    assert ratios["ratio"].tolist() == [1.0, 1.0, 1.0, INF, INF, INF]  # 0 / 0: as fast as the best


def test_a_profile_of_configurations_that_never_reach_a_target_spans_one_to_one_point_one() -> None:
    times = pd.DataFrame({"configuration": ["A", "B"], "task": ["t1", "t1"], "time": [INF, INF]})
    profile = fairness.performance_profile(times)
    assert profile["tau"].min() == 1.0 and profile["tau"].max() == pytest.approx(1.1)
    assert set(profile["rho"]) == {0.0}


def test_a_profile_whose_ratios_stay_below_two_ends_just_past_the_largest() -> None:
    times = pd.DataFrame({"configuration": ["A", "B"], "task": ["t1", "t1"], "time": [10.0, 15.0]})
    assert fairness.performance_profile(times)["tau"].max() == pytest.approx(1.65)


def test_profiles_that_tie_keep_the_order_seen_and_read_integer_taus_as_numbers() -> None:
    times = pd.DataFrame({"configuration": ["C", "B", "A"], "task": ["t1"] * 3, "time": [30.0, 10.0, 10.0]})
    profile = fairness.performance_profile(times, taus=[1, 2, 3])
    assert profile["configuration"].tolist() == ["B"] * 3 + ["A"] * 3 + ["C"] * 3  # B and A tie: as seen
    assert profile.index.tolist() == list(range(9))
    assert profile["tau"].dtype == float and profile["rho"].tolist() == [1.0] * 6 + [0.0, 0.0, 1.0]


def test_empty_inputs_give_empty_frames_with_the_documented_columns(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    trials, epochs, _ = written(tmp_path, store_writer, [protocol_result("spirals", "adam", 1e-3, 0)])
    no_times = pd.DataFrame(columns=["configuration", "task", "time"])
    assert fairness.profile_times(pd.DataFrame()).columns.tolist() == ["configuration", "task", "time"]
    assert fairness.profile_ratios(no_times).columns.tolist() == ["configuration", "task", "time", "best", "ratio"]
    assert fairness.performance_profile(no_times).columns.tolist() == ["configuration", "tau", "rho"]
    assert fairness.tuning_sweep(trials).columns.tolist() == [
        "task", "metric_name", "optimizer", "lr", "mean", "std", "trials", "ci_low", "ci_high", "selected"]
    board = fairness.target_leaderboard(trials, epochs, {})
    assert board.empty and board.columns.tolist()[:2] == ["task", "rank"]
    assert board.columns.tolist()[-8:] == ["metric_name", "target", "median_time", "median_epoch", "reached",
                                           "seeds", "metric_rank", "mean"]


def test_the_tuning_sweep_by_hand(tmp_path: Path, protocol_result: Callable[..., Any],
                                  store_writer: Callable[..., Any]) -> None:
    space = {"lr": [1e-4, 1.0, "log"], "momentum": [0.0, 0.99, "linear"]}

    def step(task: str, optimizer: str, lr: float, val: float, **kwargs: Any) -> Any:
        # the test metric is far from the validation metric, so a sweep that reads it fails
        return protocol_result(task, optimizer, lr, 0, metric=val / 10, role="tune", val=[val] * 3, **kwargs)

    results = [
        step("spirals", "sgd", 1e-2, 0.9, space=space),
        step("spirals", "adam", 1e-3, 0.6, space=space),
        step("spirals", "adam", 1e-3, 0.7, space=space, activation="tanh"),
        step("spirals", "adam", 1e-2, 0.8, space=space),
        step("spirals", "adam", 1e-1, 0.8, space=space, status="diverged"),  # only trials that ended ok
        step("spirals", "adam", 1.0, math.nan, space=space),  # and a finite validation metric
        step("moons", "adam", 1e-2, 0.5),
        step("moons", "adam", 1e-3, 0.4, space={"momentum": [0.0, 0.99, "linear"]}),  # lr not tuned: no point
        protocol_result("spirals", "adam", 1e-2, 0, role="final", space=space),
        protocol_result("spirals", "adam", 1e-2, 0, role="final", space=space, activation="tanh"),
    ]
    trials, _, _ = written(tmp_path, store_writer, results)
    trials = trials.iloc[np.argsort(trials["task"].ne("spirals").to_numpy(), kind="stable")]  # spirals first seen
    sweep = fairness.tuning_sweep(trials)
    assert sweep[["task", "optimizer", "lr", "trials", "selected"]].values.tolist() == [
        ["spirals", "adam", 1e-3, 2, 0], ["spirals", "adam", 1e-2, 1, 2], ["spirals", "sgd", 1e-2, 1, 0],
        ["moons", "adam", 1e-2, 1, 0]]
    assert sweep["mean"].tolist() == pytest.approx([0.65, 0.8, 0.9, 0.5])
    assert sweep["std"].iloc[0] == pytest.approx(statistics.stdev([0.6, 0.7]))
    half = 12.706204736174707 * statistics.stdev([0.6, 0.7]) / math.sqrt(2)  # t-table, 1 degree of freedom
    assert (sweep["ci_low"].iloc[0], sweep["ci_high"].iloc[0]) == pytest.approx((0.65 - half, 0.65 + half))
    assert sweep.index.tolist() == [0, 1, 2, 3] and sweep["selected"].dtype == np.int64


def test_the_edge_of_a_search_range_is_within_its_tolerance() -> None:
    edge = fairness._edge
    assert edge(2.0, None) == "" and edge(None, [1.0, 1e6]) == "" and edge(5.0, [1.0, 1e6]) == ""
    # a relative distance of exactly EDGE_TOLERANCE is still at the edge; a little more is not
    assert edge(1e6 + 1, [1e6, 1e12]) == "lower" and edge(1e6 + 2, [1e6, 1e12]) == ""
    assert edge(1e6 - 1, [1.0, 1e6]) == "upper" and edge(1e6 - 2, [1.0, 1e6]) == ""


def test_a_task_without_a_target_does_not_hide_the_next_ones() -> None:
    runs = pd.DataFrame({"run_id": ["r"], "grid": [json.dumps({"targets": {"moons": None, "spirals": 0.9}})]})
    assert fairness.task_targets(runs) == ({"spirals": 0.9}, [])


def test_configurations_are_named_alike_across_tasks(tmp_path: Path, protocol_result: Callable[..., Any],
                                                     store_writer: Callable[..., Any]) -> None:
    results = []
    for task, tuned_lr in (("spirals", 0.01), ("sine", 0.1)):  # cross-entropy and MSE: each task's own loss
        good = [0.9] * 3 if task == "spirals" else [0.1] * 3
        for seed in range(3):
            results.append(protocol_result(task, "adam", 1e-3, seed, val=good))
            results.append(protocol_result(task, "sgd", 0.05, seed, val=good))
            results.append(protocol_result(task, "adam", tuned_lr, seed, role="final", val=good))
    trials, epochs, _ = written(tmp_path, store_writer, results)
    board = fairness.target_leaderboard(trials, epochs, {"spirals": 0.8, "sine": 0.3})
    times = fairness.profile_times(board)
    assert set(times["configuration"]) == {"adam / 0.001", "sgd / 0.05", "adam / tuned"}
    assert times.groupby("configuration")["task"].nunique().eq(2).all()
    profile = fairness.performance_profile(times)
    assert profile.groupby("configuration")["rho"].first().eq(1.0).all()  # all equally fast


# -- tuned against default, sweep and budgets ------------------------------------------------------

TUNED = [0.9, 0.92, 0.94]
DEFAULT = [0.8, 0.8, 0.83]


def tuning_store(protocol_result: Callable[..., Any]) -> list[Any]:
    """adam on spirals: 4 tuning trials (0.3 s each), the best (lr 0.01) rerun over 3 seeds, and its
    default at lr 0.001; on sine (rmse) the same with 0.2 against 0.3."""
    grid = [1e-4, 1e-3, 1e-2, 1e-1]
    results = []
    for task, tuned, default, val in (("spirals", TUNED, DEFAULT, [0.6, 0.7, 0.8, 0.75]),
                                      ("sine", [0.2] * 3, [0.3] * 3, [0.5, 0.4, 0.25, 0.3])):
        for index, (lr, v) in enumerate(zip(grid, val, strict=True)):
            results.append(protocol_result(task, "adam", lr, 0, metric=v, role="tune", index=index, val=[v] * 3,
                                           train_time=0.3))
        for seed in range(3):
            results.append(protocol_result(task, "adam", 1e-2, seed, tuned[seed], role="final"))
            results.append(protocol_result(task, "adam", 1e-3, seed, default[seed]))
    return results


def test_tuned_against_default_by_hand(tmp_path: Path, protocol_result: Callable[..., Any],
                                       store_writer: Callable[..., Any]) -> None:
    trials, _, _ = written(tmp_path, store_writer, tuning_store(protocol_result))
    table = fairness.tuned_vs_default(trials).set_index("task")
    spirals = table.loc["spirals"]
    assert (spirals["budget"], spirals["tuned"], spirals["selected"]) == (4, "lr", "lr=0.01")
    assert (spirals["tuning_trials"], spirals["tuning_time"]) == (4, pytest.approx(1.2))
    assert spirals["tuned_mean"] == pytest.approx(0.92) and spirals["tuned_std"] == pytest.approx(0.02)
    half = T_975_2 * 0.02 / math.sqrt(3)
    assert (spirals["tuned_ci_low"], spirals["tuned_ci_high"]) == pytest.approx((0.92 - half, 0.92 + half))
    assert spirals["default_lr"] == 1e-3 and spirals["default_mean"] == pytest.approx(0.81)
    assert spirals["default_std"] == pytest.approx(statistics.stdev(DEFAULT))
    assert (spirals["tuned_seeds"], spirals["default_seeds"]) == (3, 3)
    assert spirals["difference"] == pytest.approx(0.11) and spirals["tuned_better"]
    sine = table.loc["sine"]
    assert sine["difference"] == pytest.approx(-0.1) and sine["tuned_better"]  # lower rmse is better


def test_tuning_trials_stay_out_of_the_rankings_but_feed_the_sweep_and_budgets(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    trials, _, _ = written(tmp_path, store_writer, tuning_store(protocol_result))
    main = fairness.compared_trials(trials)
    assert set(main["protocol"]) == {"default", "tuned"} and len(fairness.search_trials(trials)) == 8
    board = analysis.leaderboard(main)
    assert len(board) == 4 and set(board["seeds"]) == {3}
    assert analysis.lr_sensitivity(main).empty  # the tuned learning rate was chosen, not swept
    sweep = fairness.tuning_sweep(trials)
    spirals = sweep[sweep["task"] == "spirals"]
    assert spirals["lr"].tolist() == [1e-4, 1e-3, 1e-2, 1e-1]
    assert spirals["mean"].tolist() == pytest.approx([0.6, 0.7, 0.8, 0.75])  # validation, not test
    assert spirals["selected"].tolist() == [0, 0, 1, 0]
    budgets = fairness.budget_accounting(trials).set_index("task")
    assert budgets.loc["spirals", ["tuned", "budget", "tuning_trials", "tuning_ok", "untuned"]].tolist() == [
        1, "4", 4, 4, 1]
    assert budgets.loc["spirals", "tuning_time"] == pytest.approx(1.2)


def test_budget_accounting_by_hand(tmp_path: Path, protocol_result: Callable[..., Any],
                                   store_writer: Callable[..., Any]) -> None:
    results = [
        # spirals, sgd: one configuration tuned with a budget of 4 (one search step diverged), and its default
        *(protocol_result("spirals", "sgd", lr, 0, role="tune", budget=4, index=i, train_time=0.3,
                          status="diverged" if i == 2 else "ok") for i, lr in enumerate([1e-3, 1e-2, 1e-1, 1.0])),
        protocol_result("spirals", "sgd", 1e-2, 0, role="final", budget=4),
        protocol_result("spirals", "sgd", 5e-2, 0),
        protocol_result("spirals", "adam", 1e-3, 0),  # untuned only
        # sine, sgd: two tuned configurations whose budgets differ (1 and 3), no default
        protocol_result("sine", "sgd", 1e-2, 0, role="tune", budget=1, train_time=0.5),
        *(protocol_result("sine", "sgd", lr, 0, role="tune", budget=3, index=i, activation="tanh", train_time=0.5)
          for i, lr in enumerate([1e-3, 1e-2, 1e-1])),
        protocol_result("sine", "sgd", 1e-2, 0, role="final", budget=1),
        protocol_result("sine", "sgd", 1e-2, 0, role="final", budget=3, activation="tanh"),
        # sine, adam: search steps stored, their configuration not yet trained
        *(protocol_result("sine", "adam", lr, 0, role="tune", budget=2, index=i, train_time=0.25)
          for i, lr in enumerate([1e-3, 1e-2])),
    ]
    trials, _, _ = written(tmp_path, store_writer, results)
    # tasks in the order they were first seen (neither sorted nor the store's), optimizers sorted
    first_seen = pd.Categorical(trials["task"], ["spirals", "sine"]).codes * 2 + pd.Categorical(
        trials["optimizer"], ["sgd", "adam"]).codes
    trials = trials.iloc[np.argsort(first_seen, kind="stable")]
    expected = pd.DataFrame({
        "task": ["spirals", "spirals", "sine", "sine"], "optimizer": ["adam", "sgd", "adam", "sgd"],
        "tuned": [0, 1, 0, 2], "budget": ["–", "4", "–", "1, 3"], "tuning_trials": [0, 4, 2, 4],
        "tuning_ok": [0, 3, 2, 4], "tuning_time": [0.0, 1.2, 0.5, 2.0], "untuned": [1, 1, 0, 0]})
    pd.testing.assert_frame_equal(fairness.budget_accounting(trials), expected)


def test_budget_accounting_without_tuning_counts_the_untuned(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    trials, _, _ = written(tmp_path, store_writer, [protocol_result("spirals", "adam", 1e-3, s) for s in range(2)])
    table = fairness.budget_accounting(trials)
    assert table.to_dict("records") == [{"task": "spirals", "optimizer": "adam", "tuned": 0, "budget": "–",
                                         "tuning_trials": 0, "tuning_ok": 0, "tuning_time": 0.0, "untuned": 1}]
    empty = fairness.budget_accounting(trials.iloc[:0])
    assert empty.empty and empty.columns.tolist() == list(table.columns)


# -- honesty warnings ------------------------------------------------------------------------------


def seeds_of(protocol_result: Callable[..., Any], activation: str, metrics: list[float], **kwargs: Any) -> list[Any]:
    return [protocol_result("spirals", activation=activation, seed=s, metric=m, **kwargs)
            for s, m in enumerate(metrics)]


def test_a_fair_comparison_has_nothing_to_warn_about(tmp_path: Path, protocol_result: Callable[..., Any],
                                                     store_writer: Callable[..., Any]) -> None:
    results = seeds_of(protocol_result, "relu", [0.9, 0.91, 0.92]) + seeds_of(protocol_result, "tanh",
                                                                              [0.5, 0.51, 0.52])
    trials, _, runs = written(tmp_path, store_writer, results, targets={"spirals": 0.8})
    found = checks(trials, runs)
    assert found.empty and list(found.columns) == ["severity", "check", "task", "warning"]


def test_different_numbers_of_seeds(tmp_path: Path, protocol_result: Callable[..., Any],
                                    store_writer: Callable[..., Any]) -> None:
    results = seeds_of(protocol_result, "relu", [0.9, 0.91, 0.92]) + seeds_of(protocol_result, "tanh",
                                                                              [0.5, 0.51, 0.52, 0.5])
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["seeds"]
    assert found.loc[0, "warning"] == ("spirals: configurations finished ok on different numbers of seeds "
                                       "(relu: 3, tanh: 4)")


def test_fewer_than_three_seeds(tmp_path: Path, protocol_result: Callable[..., Any],
                                store_writer: Callable[..., Any]) -> None:
    results = seeds_of(protocol_result, "relu", [0.9, 0.91]) + seeds_of(protocol_result, "tanh", [0.5, 0.51])
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["few-seeds"] and found.loc[0, "severity"] == "warning"
    assert found.loc[0, "warning"].startswith("spirals: fewer than 3 seeds finished ok for relu (2), tanh (2)")


def test_top_two_closer_than_their_spread(tmp_path: Path, protocol_result: Callable[..., Any],
                                          store_writer: Callable[..., Any]) -> None:
    # Means 0.85 and 0.83 differ by 0.02; relu's seeds spread with standard deviation 0.05.
    results = seeds_of(protocol_result, "relu", [0.80, 0.85, 0.90]) + seeds_of(protocol_result, "tanh",
                                                                               [0.82, 0.83, 0.84])
    results += seeds_of(protocol_result, "gelu", [0.1, 0.1, 0.1])
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["spread"]
    assert found.loc[0, "warning"] == ("spirals: the top two, relu and tanh, differ by 0.02, less than the "
                                       "seed-to-seed standard deviation 0.05: their order is not reliable")


def tuned_optimizer(protocol_result: Callable[..., Any], optimizer: str, budget: int, selected: float,
                    metrics: list[float], stored: int | None = None) -> list[Any]:
    """``stored`` tuning trials (default: the budget) of ``optimizer`` and its final reruns at ``selected``."""
    rates = np.geomspace(1e-4, 1.0, budget)
    results = [protocol_result("spirals", optimizer, float(lr), 0, 0.5, role="tune", budget=budget, index=i)
               for i, lr in enumerate(rates[: budget if stored is None else stored])]
    return results + [protocol_result("spirals", optimizer, selected, s, m, role="final", budget=budget)
                      for s, m in enumerate(metrics)]


def test_unequal_tuning_budgets(tmp_path: Path, protocol_result: Callable[..., Any],
                                store_writer: Callable[..., Any]) -> None:
    results = tuned_optimizer(protocol_result, "adam", 4, 0.01, [0.9, 0.91, 0.92])
    results += tuned_optimizer(protocol_result, "sgd", 6, 0.01, [0.5, 0.51, 0.52])
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["budget"]
    assert found.loc[0, "warning"] == ("spirals: tuned configurations had unequal tuning budgets "
                                       "(adam (tuned): 4, sgd (tuned): 6)")
    equal = tuned_optimizer(protocol_result, "adam", 4, 0.01, [0.9, 0.91, 0.92])
    equal += tuned_optimizer(protocol_result, "sgd", 4, 0.01, [0.5, 0.51, 0.52])
    assert checks(written(tmp_path, store_writer, equal, "equal")[0]).empty


def test_fewer_tuning_trials_stored_than_the_budget(tmp_path: Path, protocol_result: Callable[..., Any],
                                                    store_writer: Callable[..., Any]) -> None:
    results = tuned_optimizer(protocol_result, "adam", 4, 0.01, [0.9, 0.91, 0.92], stored=3)
    results += tuned_optimizer(protocol_result, "sgd", 4, 0.01, [0.5, 0.51, 0.52])
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["budget"]
    assert found.loc[0, "warning"].startswith("spirals: adam (tuned) has 3 tuning trials stored for a budget of 4")


def test_selected_learning_rate_at_the_edge_of_its_range(tmp_path: Path, protocol_result: Callable[..., Any],
                                                         store_writer: Callable[..., Any]) -> None:
    results = tuned_optimizer(protocol_result, "adam", 4, 1.0, [0.9, 0.91, 0.92])  # the range's upper end
    results += tuned_optimizer(protocol_result, "sgd", 4, 1e-4 * (1 + 1e-8), [0.5, 0.51, 0.52])  # lower end
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["edge", "edge"]
    assert found["warning"].tolist() == [
        "spirals: adam (tuned): the selected learning rate 1 lies at the upper edge of its search range 0.0001 – 1; "
        "the best setting may lie beyond it",
        "spirals: sgd (tuned): the selected learning rate 0.0001 lies at the lower edge of its search range "
        "0.0001 – 1; the best setting may lie beyond it"]


def test_tuned_values_other_than_the_learning_rate_are_checked_too(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    space = {"momentum": [0.5, 0.99, "linear"]}
    results = [protocol_result("spirals", "sgd", 0.05, 0, 0.5, role="tune", space=space, index=i,
                               optimizer_params={"momentum": m}) for i, m in enumerate([0.5, 0.66, 0.83, 0.99])]
    results += [protocol_result("spirals", "sgd", 0.05, s, 0.9 + s / 100, role="final", space=space,
                                optimizer_params={"momentum": 0.99}) for s in range(3)]
    trials = written(tmp_path, store_writer, results)[0]
    found = checks(trials)
    assert found["check"].tolist() == ["edge"] and "selected momentum 0.99 lies at the upper edge" in found.loc[
        0, "warning"]
    assert fairness.tuned_vs_default(trials).loc[0, "selected"] == "momentum=0.99"


def test_tuned_ranked_against_untuned_defaults(tmp_path: Path, protocol_result: Callable[..., Any],
                                               store_writer: Callable[..., Any]) -> None:
    results = tuned_optimizer(protocol_result, "adam", 4, 0.01, [0.9, 0.91, 0.92])
    results += seeds_of(protocol_result, "relu", [0.5, 0.51, 0.52], optimizer="sgd", lr=0.05)
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found[["severity", "check"]].values.tolist() == [["note", "mixed"]]
    assert found.loc[0, "warning"] == ("spirals: tuned configurations (budget 4) are ranked together with untuned "
                                       "defaults (budget 0): a tuned configuration had more tries")


def test_warnings_come_before_notes(tmp_path: Path, protocol_result: Callable[..., Any],
                                    store_writer: Callable[..., Any]) -> None:
    results = tuned_optimizer(protocol_result, "adam", 4, 0.01, [0.9, 0.91])
    results += seeds_of(protocol_result, "relu", [0.5, 0.51], optimizer="sgd", lr=0.05)
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["few-seeds", "mixed"]


def test_few_seeds_name_five_configurations_and_count_the_rest(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    names = ["relu", "tanh", "gelu", "elu", "selu", "silu", "mish"]
    results = [r for i, name in enumerate(names) for r in seeds_of(protocol_result, name, [0.1 * i, 0.1 * i + 0.05])]
    found = checks(written(tmp_path, store_writer, results)[0])
    few = found.loc[found["check"].eq("few-seeds"), "warning"].tolist()
    # the five listed are the first of the leaderboard (best mean first)
    assert few == ["spirals: fewer than 3 seeds finished ok for mish (2), silu (2), selu (2), elu (2), gelu (2) and 2 "
                   "more: means and intervals rest on too few runs"]
    six = [r for r in results if r.trial.activation != "mish"]
    few = checks(written(tmp_path, store_writer, six, "six")[0]).query("check == 'few-seeds'")["warning"].tolist()
    assert " and 1 more: means" in few[0]
    five = [r for r in six if r.trial.activation != "silu"]
    few = checks(written(tmp_path, store_writer, five, "five")[0]).query("check == 'few-seeds'")["warning"].tolist()
    assert "tanh (2), relu (2): means" in few[0]


def test_a_spread_equal_to_the_gap_is_not_a_warning(tmp_path: Path, protocol_result: Callable[..., Any],
                                                    store_writer: Callable[..., Any]) -> None:
    # means 0.5 and 0.25 differ by 0.25, exactly relu's standard deviation (all exact in binary)
    results = seeds_of(protocol_result, "relu", [0.25, 0.5, 0.75]) + seeds_of(protocol_result, "tanh", [0.25] * 3)
    assert checks(written(tmp_path, store_writer, results)[0]).empty


def test_budget_warnings_name_every_budget_and_a_search_with_nothing_stored(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = tuned_optimizer(protocol_result, "adam", 4, 0.01, [0.9, 0.91, 0.92], stored=0)
    results += tuned_optimizer(protocol_result, "sgd", 6, 0.01, [0.5, 0.51, 0.52])
    results += seeds_of(protocol_result, "relu", [0.3, 0.31, 0.32], optimizer="rmsprop", lr=0.01)
    found = checks(written(tmp_path, store_writer, results)[0])
    assert found["check"].tolist() == ["budget", "budget", "mixed"]
    assert found.loc[1, "warning"].startswith("spirals: adam / tuned has 0 tuning trials stored for a budget of 4:")
    assert found.loc[2, "warning"].startswith("spirals: tuned configurations (budget 4, 6) are ranked together")


def test_warnings_come_task_by_task_in_the_order_the_tasks_were_seen(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [protocol_result(task, activation=a, seed=s, metric=0.5 + s / 10)
               for task in ("spirals", "moons") for a in ("relu", "tanh") for s in range(2)]
    trials = written(tmp_path, store_writer, results)[0]
    trials = trials.iloc[np.argsort(trials["task"].ne("spirals").to_numpy(), kind="stable")]
    assert checks(trials)["task"].tolist()[::2] == ["spirals", "moons"]


def test_tuning_info_reads_the_params_json() -> None:
    frame = pd.DataFrame({"lr": [0.01, 0.05], "params": [
        json.dumps({"optimizer": {"momentum": 0.9}, "tuning": {"role": "final", "budget": 6,
                                                                "tuned": ["lr", "momentum"], "space": {}}}),
        json.dumps({"optimizer": {}})]})
    info = fairness.tuning_info(frame)
    assert info["budget"].tolist() == [6, 0] and info["tuned"].tolist() == ["lr, momentum", ""]
    assert info["selected"].tolist() == ["lr=0.01, momentum=0.9", ""]
    # params already decoded, or missing; rows keep the frame's own index
    decoded = pd.DataFrame({"lr": [0.01, 0.05], "params": [json.loads(frame["params"][0]), None]}, index=[7, 3])
    info = fairness.tuning_info(decoded)
    assert info.index.tolist() == [7, 3] and info["budget"].tolist() == [6, 0]
    assert info["selected"].tolist() == ["lr=0.01, momentum=0.9", ""]


def test_clip_schedule_and_protocol_are_configuration_axes(tmp_path: Path, trial_result: Callable[..., Any],
                                                           store_writer: Callable[..., Any]) -> None:
    import dataclasses

    results = []
    for seed in range(3):
        for clip, bonus in ((None, 0.0), (1.0, 0.1)):
            result = trial_result(seed=seed, metric=0.5 + bonus + seed / 100)
            result.trial = dataclasses.replace(result.trial, clip=clip)
            results.append(result)
    with store_writer(tmp_path / "clip.db", results) as store:
        trials, epochs = store.trials(), store.epochs()
    board = analysis.leaderboard(trials)
    assert board["clip"].tolist() == [1.0, "none"] and set(board["seeds"]) == {3}
    assert analysis.varying(board) == ["clip"]
    assert analysis.varying_axes(trials) == ["clip"]
    assert len(analysis.matched_blocks(trials, "clip")[0]) == 3
    assert analysis.level_summary(trials, "clip")["level"].tolist() == ["none", 1.0]
    assert analysis.config_labels(board, ["clip"]).tolist() == ["1", "none"]
    assert analysis.convergence(trials, epochs, top=2)["config"].unique().tolist() == ["1", "none"]
    assert analysis.format_level("clip", float("nan")) == "none" and analysis.format_level("patience", None) == "none"


def test_tuned_optimizers_meet_in_blocks_whatever_rates_they_chose(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    # On relu both tuned optimizers happened to choose 0.01; that must not make lr a blocking key.
    chosen = {("relu", "adam"): 0.01, ("relu", "sgd"): 0.01, ("tanh", "adam"): 0.01, ("tanh", "sgd"): 0.1}
    results = []
    for (activation, optimizer), lr in chosen.items():
        base = 0.8 if optimizer == "adam" else 0.6
        for seed in range(3):
            results.append(protocol_result(activation=activation, optimizer=optimizer, seed=seed, metric=base,
                                           lr={"adam": 1e-3, "sgd": 0.05}[optimizer]))
            results.append(protocol_result(activation=activation, optimizer=optimizer, lr=lr, seed=seed,
                                           metric=base + 0.1, role="final"))
    main = fairness.compared_trials(written(tmp_path, store_writer, results)[0])
    assert "lr" not in analysis.block_keys(main, "optimizer")
    wide, incomplete = analysis.matched_blocks(main, "optimizer")
    assert wide.shape == (2 * 2 * 3, 2) and incomplete == 0  # activation x protocol x seed
    assert len(analysis.matched_blocks(main, "protocol")[0]) == 2 * 2 * 3  # activation x optimizer x seed
    assert analysis.varying_axes(main) == ["activation", "optimizer", "protocol"]


def test_profile_names_show_the_loss_only_where_a_task_trained_two() -> None:
    def board(rows: list[tuple[str, str, str]]) -> pd.DataFrame:
        return analysis.tidy(pd.DataFrame([{"task": task, "arch": "fnn", "activation": activation, "loss": loss,
                                            "optimizer": "adam", "lr": 1e-3, "protocol": "default", "tuned": None,
                                            "median_time": 1.0} for task, activation, loss in rows]))

    own = fairness.profile_times(board([("iris", "relu", "cross_entropy"), ("sine", "relu", "mse"),
                                        ("iris", "tanh", "cross_entropy"), ("sine", "tanh", "mse")]))
    assert own["configuration"].tolist() == ["relu", "relu", "tanh", "tanh"]  # one configuration across kinds
    two = fairness.profile_times(board([("sine", "relu", "mse"), ("sine", "relu", "huber")]))
    assert two["configuration"].tolist() == ["mse", "huber"]
