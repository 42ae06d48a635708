"""Verdicts and the statistics they rest on, each against an independent computation: scipy, baycomp,
statsmodels, simulation, or values worked by hand on small tables."""

from __future__ import annotations

import itertools
import math
import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnbench.analysis import frames as analysis
from nnbench.analysis import intervals, paired, pairwise, ranks, seeds, verdicts
from nnbench.analysis.comparison import compare_trials, select
from nnbench.analysis.rope import Rope, parse_rope
from nnbench.contract.errors import NNBenchError

# -- interquartile mean and stratified bootstrap intervals -----------------------------------------


def test_iqm_is_the_mean_of_the_middle_half() -> None:
    # Sorted: 1 2 3 4 5 6 7 100; a quarter (2 values) off each end leaves 3 4 5 6.
    assert intervals.iqm(np.array([7, 1, 100, 3, 2, 6, 4, 5.0])) == pytest.approx(4.5)
    assert intervals.iqm(np.array([0.2, 0.9, 0.5])) == pytest.approx(1.6 / 3)  # 3 values: nothing cut
    assert intervals.optimality_gap(np.array([1.2, 0.5, 0.9])) == pytest.approx((0 + 0.5 + 0.1) / 3)


def test_leaderboard_gives_the_iqm_over_seeds(tmp_path: Path, trial_result: Callable[..., Any],
                                              store_writer: Callable[..., Any]) -> None:
    metrics = [0.9, 0.1, 0.5, 0.6, 0.7]  # sorted .1 .5 .6 .7 .9: one off each end leaves .5 .6 .7
    with store_writer(tmp_path / "iqm.db", [trial_result(seed=s, metric=m) for s, m in enumerate(metrics)]) as store:
        board = analysis.leaderboard(store.trials())
    assert board.loc[0, "iqm"] == pytest.approx(0.6) and board.loc[0, "mean"] == pytest.approx(0.56)


def exact_bootstrap(strata: list[np.ndarray], statistic: Callable[[np.ndarray], float]) -> np.ndarray:
    """Every equally likely stratified resample, enumerated: the exact bootstrap distribution."""
    choices = [list(itertools.product(range(len(s)), repeat=len(s))) for s in strata]
    return np.array([statistic(np.concatenate([s[list(i)] for s, i in zip(strata, picks, strict=True)]))
                     for picks in itertools.product(*choices)])


def mean_and_iqm(strata: list[np.ndarray]) -> np.ndarray:
    values = np.concatenate(strata, axis=-1)
    return np.stack([values.mean(axis=-1), intervals.iqm(values)])


def test_stratified_bootstrap_interval_of_the_iqm_matches_the_exact_distribution() -> None:
    strata = [np.array([0.1, 0.4, 0.5]), np.array([0.6, 0.7, 1.0])]  # two tasks, three seeds each
    point, low, high = intervals.stratified_bootstrap(strata, mean_and_iqm, resamples=20_000, random_state=7)
    for row, statistic in ((0, np.mean), (1, intervals.iqm)):
        exact = exact_bootstrap(strata, statistic)
        assert point[row] == pytest.approx(statistic(np.concatenate(strata)))
        assert (low[row], high[row]) == pytest.approx(tuple(np.percentile(exact, [2.5, 97.5])), abs=0.02)
    # Seeds are resampled within each task: a task whose seeds agree adds no width.
    _, low, high = intervals.stratified_bootstrap([np.array([0.5, 0.5]), np.array([0.2, 0.2])], mean_and_iqm)
    assert low[0] == high[0] == pytest.approx(0.35)


def test_the_bootstrap_is_reproducible_with_a_fixed_random_state() -> None:
    strata = [np.array([0.1, 0.4, 0.5, 0.2]), np.array([0.6, 0.7, 1.0])]
    first = intervals.stratified_bootstrap(strata, mean_and_iqm, random_state=3)
    again = intervals.stratified_bootstrap(strata, mean_and_iqm, random_state=3)
    other = intervals.stratified_bootstrap(strata, mean_and_iqm, random_state=4)
    assert np.array_equal(first[1], again[1]) and np.array_equal(first[2], again[2])
    assert not np.array_equal(first[1], other[1])
    single = intervals.stratified_bootstrap([np.array([0.3]), np.array([0.9])], mean_and_iqm)
    assert single[0][0] == pytest.approx(0.6) and np.isnan(single[1]).all()  # one seed per task: no interval


def test_normalisation_against_references_does_not_move_when_a_configuration_is_added(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [trial_result(activation=a, seed=s, metric=m + s / 100) for a, m in (("relu", 0.9), ("tanh", 0.7))
               for s in range(2)]
    with store_writer(tmp_path / "n.db", results, grid={"references": {"spirals": [0.5, 1.0]}}) as store:
        trials, runs = store.trials(), store.runs()
    scored, notes = intervals.normalized_scores(trials, runs)
    assert scored.set_index(["activation", "seed"]).loc[("relu", 0), "score"] == pytest.approx((0.9 - 0.5) / 0.5)
    assert "the task's reference" in notes["spirals"]
    worse = trials.iloc[:1].assign(activation="identity", metric=0.55, trial_id="x")
    more, _ = intervals.normalized_scores(pd.concat([trials, worse]), runs)
    assert more.set_index(["activation", "seed"]).loc[("relu", 0), "score"] == pytest.approx(0.8)
    # Without references: min-max between the worst and best configuration means (0.705 and 0.905).
    minmax, notes = intervals.normalized_scores(trials, runs.assign(grid='{"task": ["spirals"]}'))
    assert minmax.set_index(["activation", "seed"])["score"].to_dict() == pytest.approx(
        {("relu", 0): 0.975, ("relu", 1): 1.025, ("tanh", 0): -0.025, ("tanh", 1): 0.025})
    assert "worst and best configuration mean" in notes["spirals"]


def test_rmse_is_normalised_so_that_higher_is_better(tmp_path: Path, trial_result: Callable[..., Any],
                                                    store_writer: Callable[..., Any]) -> None:
    results = [trial_result("sine", a, seed=0, metric=m) for a, m in (("relu", 0.2), ("tanh", 0.6), ("gelu", 0.3))]
    with store_writer(tmp_path / "r.db", results) as store:
        scored, _ = intervals.normalized_scores(store.trials(), store.runs())
    assert scored.set_index("activation")["score"].to_dict() == pytest.approx({"relu": 1.0, "tanh": 0.0,
                                                                               "gelu": 0.75})


def test_a_task_left_out_of_the_scaling_leaves_the_tasks_after_it_scaled_in_the_runs_order(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    # spirals ran one trial (nothing to scale it between) and comes first; sine, after it, is scaled.
    results = [trial_result("spirals", "relu", metric=0.8),
               *(trial_result("sine", a, seed=0, metric=m) for a, m in (("relu", 0.2), ("tanh", 0.6)))]
    with store_writer(tmp_path / "left.db", results) as store:
        scored, notes = intervals.normalized_scores(store.trials(), store.runs())
    assert scored.set_index(["task", "activation"])["score"].to_dict() == {("sine", "relu"): 1.0,
                                                                           ("sine", "tanh"): 0.0}
    assert list(notes) == ["spirals", "sine"]  # the order the tasks ran in
    assert notes["spirals"] == "every configuration scored 0.8: left out of the aggregates"
    with store_writer(tmp_path / "reference.db", results, grid={"references": {"spirals": [0.5, 1.0]}}) as store:
        referenced, _ = intervals.normalized_scores(store.trials(), store.runs())
    assert referenced.set_index(["task", "activation"])["score"].to_dict() == pytest.approx(
        {("spirals", "relu"): 0.6, ("sine", "relu"): 1.0, ("sine", "tanh"): 0.0})  # a reference, then min-max
    alike = [trial_result("spirals", a, seed=s, metric=0.8) for a in ("relu", "tanh") for s in range(2)]
    with store_writer(tmp_path / "alike.db", alike) as store:
        none, _ = intervals.normalized_scores(store.trials(), store.runs())
    assert none.empty and none["score"].dtype == np.float64  # numbers, even when there are none


def test_a_stratified_mean_without_spread_is_its_own_interval_and_the_gap_follows_its_axis() -> None:
    assert intervals.stratified_mean([np.array([0.5, 0.5]), np.array([0.75, 0.75, 0.75])]) == (0.65, 0.65, 0.65)
    scores = np.array([[1.2, 0.5, 0.9], [1.0, 1.0, 0.4]])
    assert intervals.optimality_gap(scores, axis=-1) == pytest.approx([0.2, 0.2])
    assert intervals.optimality_gap(scores, axis=0) == pytest.approx([0.0, 0.25, 0.35])


def test_the_upper_tail_of_students_t_is_the_tables() -> None:
    assert paired.t_upper_tail(np.array([2.228, 1.812]), np.array([10.0, 10.0])) == pytest.approx([0.025, 0.05],
                                                                                                  abs=2e-4)


def test_an_interval_is_written_on_one_line_with_true_minus_signs() -> None:
    assert intervals.interval_text(0.81234, 0.857) == "[0.812,\u00a00.857]"
    assert intervals.interval_text(-0.0104, 0.0532, signed=True) == "[\u22120.010,\u00a0+0.053]"
    assert intervals.interval_text(-0.25, -0.125, digits=2) == "[\u22120.25,\u00a0\u22120.12]"
    assert intervals.interval_text(math.nan, 0.5) == intervals.interval_text(0.1, math.inf) == "\u2013"


def test_configurations_tied_on_tasks_and_iqm_keep_the_order_they_came_in() -> None:
    scored = pd.DataFrame({"configuration": ["zeta", "zeta", "alpha", "alpha", "mid", "mid"],
                           "task": ["a", "b"] * 3, "score": [0.5, 0.7, 0.5, 0.7, 0.9, 0.9]})
    table = intervals.aggregates(scored)
    assert table["configuration"].tolist() == ["mid", "zeta", "alpha"]
    assert table.loc[0, "configuration"] == "mid"  # row 0 is the best


def welch_interval(strata: list[np.ndarray]) -> tuple[float, float]:
    """The t interval of a mean stratified by task, worked out term by term."""
    total = sum(len(s) for s in strata)
    terms = [(len(s) / total) ** 2 * np.var(s, ddof=1) / len(s) for s in strata]
    df = sum(terms) ** 2 / sum(t**2 / (len(s) - 1) for t, s in zip(terms, strata, strict=True))
    mean = np.concatenate(strata).mean()
    half = stats.t.ppf(0.975, df) * math.sqrt(sum(terms))
    return mean - half, mean + half


def test_aggregates_and_score_profiles_across_tasks() -> None:
    rows = [{"configuration": c, "task": t, "seed": s, "score": v}
            for c, base in (("good", 0.8), ("bad", 0.3)) for t, shift, spread in (("a", 0.0, 0.05), ("b", 0.1, 0.02))
            for s, v in enumerate(base + shift + spread * np.array([-1.0, 0.0, 1.5]))]
    scored = pd.DataFrame(rows)
    table = intervals.aggregates(scored).set_index("configuration")
    assert list(table.index) == ["good", "bad"]
    good = scored[scored["configuration"] == "good"]
    strata = [part["score"].to_numpy() for _, part in good.groupby("task")]
    assert table.loc["good", "mean"] == pytest.approx(good["score"].mean())
    assert table.loc["good", "iqm"] == pytest.approx(stats.trim_mean(good["score"], 0.25))
    assert table.loc["good", "gap"] == pytest.approx(np.mean(np.maximum(1 - good["score"], 0)))
    # The mean and the gap: Student t intervals of a stratified mean, with Welch-Satterthwaite's df.
    assert (table.loc["good", "mean_low"], table.loc["good", "mean_high"]) == pytest.approx(welch_interval(strata))
    gaps = [np.maximum(1 - s, 0) for s in strata]
    assert (table.loc["good", "gap_low"], table.loc["good", "gap_high"]) == pytest.approx(welch_interval(gaps))
    # Three seeds a task are too few for a bootstrap: no IQM interval, and no band on the profiles.
    assert np.isnan(table.loc["good", "iqm_low"]) and np.isnan(table.loc["good", "iqm_high"])
    assert table.loc["good", "tasks"] == 2 and table.loc["good", "trials"] == 6
    profile = intervals.score_profiles(scored, ["good", "bad"], points=11)
    good_curve = profile[profile["configuration"] == "good"].set_index("tau")
    # At tau = 0.8: task a has 1 of its 3 seeds above (0.875; 0.75 and 0.8 are not above), task b all 3.
    assert good_curve["fraction"].iloc[8] == pytest.approx(2 / 3) and good_curve.index[8] == pytest.approx(0.8)
    assert good_curve["low"].isna().all() and good_curve["high"].isna().all()
    assert profile.index.equals(pd.RangeIndex(len(profile)))  # one table, its rows numbered in order


def test_score_profiles_of_no_runs_have_the_profiles_columns() -> None:
    scored = pd.DataFrame({"configuration": ["c"], "task": ["a"], "seed": [0], "score": [0.5]})
    columns = ["configuration", "tau", "fraction", "low", "high"]
    assert list(intervals.score_profiles(scored, ["not run"]).columns) == columns
    assert list(intervals.score_profiles(scored.iloc[:0], ["c"]).columns) == columns


def test_a_configuration_spans_tasks_of_every_kind_unless_a_task_tried_several_losses(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    def configurations(results: list[Any], name: str) -> pd.DataFrame:
        with store_writer(tmp_path / f"{name}.db", results) as store:
            scored, _ = intervals.normalized_scores(store.trials(), store.runs())
        return scored.assign(configuration=intervals.across_task_configurations(scored))

    # Cross-entropy on spirals and MSE on sine: each task's own loss, so a configuration is its activation.
    own = [trial_result(task, activation, seed=seed, metric=0.8 if task == "spirals" else 0.2)
           for task in ("spirals", "sine") for activation in ("relu", "tanh") for seed in range(2)]
    assert configurations(own, "alike").empty  # every configuration scored the same: no task is scaled
    own = [trial_result(task, activation, seed=seed, metric=(0.8 if task == "spirals" else 0.2) + 0.01 * number)
           for task in ("spirals", "sine") for number, activation in enumerate(("relu", "tanh")) for seed in range(2)]
    scored = configurations(own, "own")
    assert scored.groupby("activation")["configuration"].unique().map(list).to_dict() == {"relu": ["relu"],
                                                                                          "tanh": ["tanh"]}
    # spirals also trained with MSE: the loss is then part of what a configuration is.
    several = own + [trial_result("spirals", activation, seed=seed, loss="mse", metric=0.7)
                     for activation in ("relu", "tanh") for seed in range(2)]
    scored = configurations(several, "several")
    assert scored["configuration"].nunique() == 4
    assert scored.groupby(["activation", "loss"])["configuration"].nunique().eq(1).all()
    with_mse = set(scored[scored["loss"].eq("mse")]["configuration"])
    assert set(scored[scored["task"].eq("sine")]["configuration"]) <= with_mse


def test_a_tuned_configuration_across_tasks_is_named_by_its_tuned_setting_once(
        tmp_path: Path, protocol_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = [protocol_result(task, optimizer, seed=seed, role=role, lr=lr,
                               metric=m + 0.01 * seed + (0.1 if task == "sine" else 0.0))
               for task in ("spirals", "sine") for optimizer, m in (("adam", 0.8), ("sgd", 0.6))
               for role, lr in (("default", 1e-3), ("final", 0.02)) for seed in range(2)]
    with store_writer(tmp_path / "tuned.db", results) as store:
        scored, _ = intervals.normalized_scores(store.trials(), store.runs())
    names = scored.assign(configuration=intervals.across_task_configurations(scored))
    assert names.groupby(["optimizer", "protocol"])["configuration"].unique().map(list).to_dict() == {
        ("adam", "default"): ["adam / 0.001"], ("adam", "tuned"): ["adam / tuned"],
        ("sgd", "default"): ["sgd / 0.001"], ("sgd", "tuned"): ["sgd / tuned"]}


def test_the_iqm_interval_and_profile_bands_come_with_ten_seeds_a_task() -> None:
    rng = np.random.default_rng(2)
    scored = pd.DataFrame([{"configuration": "c", "task": t, "seed": s, "score": rng.normal(0.6, 0.1)}
                           for t in ("a", "b") for s in range(intervals.BOOTSTRAP_MIN_SEEDS)])
    row = intervals.aggregates(scored).iloc[0]
    assert row["iqm_low"] < row["iqm"] < row["iqm_high"]
    profile = intervals.score_profiles(scored, ["c"], points=11)
    assert profile["low"].notna().all() and (profile["low"] <= profile["fraction"] + 1e-12).all()
    # The IQM's interval is the stratified bootstrap's, with as many resamples as asked for.
    strata = [part["score"].to_numpy(float) for _, part in scored.groupby("task", sort=False)]
    _, low, high = intervals.stratified_bootstrap(
        strata, lambda s: intervals.iqm(np.concatenate(s, axis=-1))[None, ...], resamples=50)
    few = intervals.aggregates(scored, resamples=50).iloc[0]
    assert (few["iqm_low"], few["iqm_high"]) == pytest.approx((low[0], high[0]))
    assert (few["iqm_low"], few["iqm_high"]) != pytest.approx((row["iqm_low"], row["iqm_high"]))
    short = scored[scored["seed"] > 0]  # a seed fewer than the bootstrap needs
    assert np.isnan(intervals.aggregates(short).iloc[0]["iqm_low"])


# -- paired comparisons ----------------------------------------------------------------------------


def blocks(first: list[float], second: list[float], task: str = "t", stratum: str = "s") -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([(task, stratum, seed) for seed in range(len(first))],
                                      names=["task", "other", "seed"])
    return pd.DataFrame({"a": first, "b": second}, index=index)


def rows_of(scores: pd.DataFrame, names: dict[str, str], rope: Rope | None = None,
            alpha: float = 0.05) -> pd.DataFrame:
    rows = pairwise.pair_rows(scores, scores, names, rope or Rope(), [("a", "b")])
    pairwise.decide_family(rows, pd.DataFrame(columns=ranks.ACROSS_COLUMNS), alpha)
    return rows


def test_the_advantage_interval_and_test_are_student_t_over_paired_seeds() -> None:
    a, b = [0.91, 0.83, 0.86, 0.78, 0.9], [0.84, 0.85, 0.80, 0.75, 0.83]
    row = rows_of(blocks(a, b), {"t": "accuracy"}).iloc[0]
    d = np.subtract(a, b)
    step = 0.01  # the values move in steps of 0.01: the variance adds a difference's rounding, 0.01² / 6
    error = math.sqrt(np.var(d, ddof=1) + step**2 / 6) / math.sqrt(5)
    assert row["resolution"] == pytest.approx(step)
    assert row["advantage"] == pytest.approx(d.mean()) and row["seeds"] == 5
    assert (row["advantage_low"], row["advantage_high"]) == pytest.approx(
        stats.t.interval(0.95, 4, loc=d.mean(), scale=error))
    assert row["p_value"] == pytest.approx(2 * stats.t.sf(d.mean() / error, 4))
    # A metric without steps (every gap between its values tiny) is scipy's one-sample t-test.
    fine = [x + 1e-7 * i**2 for i, x in enumerate(a)]
    row = rows_of(blocks(fine, b), {"t": "accuracy"}).iloc[0]
    assert row["p_value"] == pytest.approx(stats.ttest_1samp(np.subtract(fine, b), 0.0).pvalue, rel=1e-4)


def test_three_positive_differences_whose_t_interval_spans_zero_are_undecided() -> None:
    # Three paired seeds, all in favour of the first (a percentile bootstrap would say [min, max] > 0).
    d = np.array([0.008, 0.0241, 0.033])
    row = rows_of(blocks((0.80 + d).tolist(), [0.80] * 3), {"t": "accuracy"}).iloc[0]
    assert row["advantage_low"] < 0 < row["advantage_high"]  # Student t: about [-0.011, +0.054]
    # The values take few distinct steps (the smallest gap is 0.008), whose rounding widens the interval.
    error = math.sqrt(np.var(d, ddof=1) + 0.008**2 / 6) / math.sqrt(3)
    assert (row["advantage_low"], row["advantage_high"]) == pytest.approx(stats.t.interval(0.95, 2, d.mean(), error))
    assert row["p_value"] > 0.05 and row["decision"] == "undecided"
    assert (row["wins"], row["poi"]) == (3, 1.0)
    assert (row["poi_low"], row["poi_high"]) == pytest.approx((0.2924, 1.0), abs=1e-4)  # exact, not [1.00, 1.00]


def test_holm_matches_statsmodels_and_leaves_untested_comparisons_out() -> None:
    multitest = pytest.importorskip("statsmodels.stats.multitest", reason="statsmodels is the reference")
    p = np.array([0.01, 0.04, 0.03, 0.005, 0.2, 0.001])
    assert paired.holm(p) == pytest.approx(multitest.multipletests(p, method="holm")[1])
    with_gaps = np.array([0.01, np.nan, 0.04, np.nan, 0.03])
    expected = multitest.multipletests([0.01, 0.04, 0.03], method="holm")[1]
    adjusted = paired.holm(with_gaps)
    assert adjusted[[0, 2, 4]] == pytest.approx(expected) and np.isnan(adjusted[[1, 3]]).all()
    rows = np.array([[0.01, 0.04], [0.5, 0.02]])
    assert paired.holm(rows) == pytest.approx(np.array([paired.holm(r) for r in rows]))  # each row one family


def test_the_probability_of_improvement_interval_is_clopper_pearson() -> None:
    for wins, n in ((0, 3), (3, 3), (7, 10), (12, 30)):
        point, low, high = paired.improvement(wins, 0, n)
        assert point == pytest.approx(wins / n)
        assert (low, high) == pytest.approx(tuple(stats.binomtest(wins, n).proportion_ci(0.95, "exact")))
    # Ties count half in the point, as losses at the lower end and as wins at the upper.
    point, low, high = paired.improvement(2, 2, 6)
    assert point == pytest.approx(0.5)
    assert low == pytest.approx(stats.binomtest(2, 6).proportion_ci(0.95).low)
    assert high == pytest.approx(stats.binomtest(4, 6).proportion_ci(0.95).high)


def test_the_probability_of_improvement_over_tasks_pools_their_seeds() -> None:
    both = pd.concat([blocks([0.9, 0.8, 0.85], [0.7, 0.85, 0.8], task="x"),
                      blocks([0.5, 0.6, 0.7, 0.65], [0.6, 0.7, 0.6, 0.6], task="y")])
    rows = pairwise.pair_rows(both, both, {"x": "accuracy", "y": "accuracy"}, Rope(), [("a", "b")])
    pair = pairwise.PairEvidence("a", "b", rows)
    assert rows.set_index("task")[["wins", "seeds"]].to_dict("index") == {"x": {"wins": 2, "seeds": 3},
                                                                          "y": {"wins": 2, "seeds": 4}}
    assert pair.seeds(["y", "x"]) == [4, 3]
    point, low, high = pair.poi_over(["x", "y"])
    assert point == pytest.approx(4 / 7)
    assert (low, high) == pytest.approx(tuple(stats.binomtest(4, 7).proportion_ci(0.95)))


def test_an_equivalence_needs_both_one_sided_tests_and_a_rope() -> None:
    rng = np.random.default_rng(4)
    close = rng.normal(0.8, 0.01, 12)
    near = close + rng.normal(0.0005, 0.001, 12)
    row = rows_of(blocks(near.tolist(), close.tolist()), {"t": "accuracy"}, Rope({"*": 0.005})).iloc[0]
    d = near - close
    error = math.sqrt(np.var(d, ddof=1) + row["resolution"] ** 2 / 6) / math.sqrt(12)
    tost = max(stats.t.sf((d.mean() + 0.005) / error, 11), stats.t.cdf((d.mean() - 0.005) / error, 11))
    assert row["p_equivalence"] == pytest.approx(tost) and row["decision"] == "equivalent"
    without = rows_of(blocks(near.tolist(), close.tolist()), {"t": "accuracy"}, Rope({"*": 0.0})).iloc[0]
    assert without["decision"] != "equivalent"  # no ROPE, no equivalence


def test_the_array_verdicts_name_the_level_ahead_over_tasks_either_way_round() -> None:
    rng = np.random.default_rng(3)
    low = rng.normal(0.7, 0.01, (8, 4))  # eight tasks, four seeds
    high = low + 0.05 + rng.normal(0, 0.002, (8, 4))
    second_ahead = pairwise.decide_scores(np.stack([low, high], axis=-1), 0.005)
    assert list(second_ahead["across"]) == ["second"] and (second_ahead["decisions"] == "second").all()
    first_ahead = pairwise.decide_scores(np.stack([high, low], axis=-1), 0.005)
    assert list(first_ahead["across"]) == ["first"] and (first_ahead["decisions"] == "first").all()
    assert (first_ahead["poi"] == 1.0).all() and (second_ahead["poi"] == 0.0).all()  # first wins every seed, or none


def test_the_array_verdicts_over_tasks_divide_each_tasks_difference_by_its_scale() -> None:
    # The first level is ahead on seven tasks and far behind on the eighth, whose scale is large: scaled,
    # that loss is the smallest difference (signed-rank p = 4/256), unscaled the largest (p = 50/256).
    rng = np.random.default_rng(11)
    second = rng.normal(0.7, 0.01, (8, 4))
    first = second + np.array([0.05] * 7 + [-0.5])[:, None] + rng.normal(0, 0.002, (8, 4))
    scores = np.stack([first, second], axis=-1)
    assert list(pairwise.decide_scores(scores, 0.005, scales=np.array([0.01] * 7 + [100.0]))["across"]) == ["first"]
    assert list(pairwise.decide_scores(scores, 0.005)["across"]) == ["undecided"]


def test_the_array_verdicts_correct_equivalence_over_every_pair_of_the_axis() -> None:
    # Three levels, one task, six seeds: the first two are equivalent when they are the whole axis, but
    # not once Holm corrects their equivalence test over the axis's three pairs.
    rng = np.random.default_rng(3)
    base = rng.normal(0.7, 0.01, (1, 6))
    scores = np.stack([base + rng.normal(0, 0.005, (1, 6)) for _ in range(3)], axis=-1)
    assert pairwise.decide_scores(scores[..., :2], 0.01)["decisions"].ravel().tolist() == ["equivalent"]
    assert pairwise.decide_scores(scores, 0.01)["decisions"].ravel().tolist() == [
        "undecided", "undecided", "equivalent"]


def test_an_adjusted_p_value_equal_to_alpha_rejects_nothing() -> None:
    # Six tasks, the second level ahead on each: the exact signed-rank p is 2 / 2^6 = 1/32, the largest
    # of its family, so Holm leaves it as it is. Rejection needs p below alpha, not equal to it.
    rng = np.random.default_rng(5)
    low = rng.normal(0.7, 0.01, (6, 4))
    scores = np.stack([low, low + 0.05 + rng.normal(0, 0.002, (6, 4))], axis=-1)
    assert list(pairwise.decide_scores(scores, 0.005, alpha=1 / 32)["across"]) == ["undecided"]
    assert list(pairwise.decide_scores(scores, 0.005, alpha=1 / 32 + 1e-9)["across"]) == ["second"]


def test_the_signed_rank_test_over_tasks_is_exact_with_ties_and_zeros() -> None:
    rng = np.random.default_rng(6)
    for x in (rng.normal(0.4, 1, 8), np.round(rng.normal(0.4, 1, 9)), np.array([0, 0.2, 0.1, 0.3, 0.2, 0.5, -0.1])):
        _, p, _ = ranks.over_tasks(x[None, :])
        nonzero = x[x != 0]
        tied = len(set(np.abs(nonzero))) < len(nonzero)
        expected = stats.wilcoxon(nonzero, method=stats.PermutationMethod() if tied else "exact").pvalue
        assert p[0] == pytest.approx(expected)
    assert np.isnan(ranks.over_tasks(np.ones((1, 5)))[1][0])  # five tasks cannot reach 0.05: not tested
    assert paired.min_tasks(0.05) == 6 and paired.min_tasks(0.01) == 8


# -- seeds needed ----------------------------------------------------------------------------------


def test_blocks_needed_matches_statsmodels() -> None:
    power = pytest.importorskip("statsmodels.stats.power", reason="statsmodels is the reference (the test extra)")
    for effect in (0.2, 0.5, 1.0, 2.5):
        expected = power.TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, alternative="larger")
        assert seeds.blocks_needed(effect) == math.ceil(expected)
    assert math.isinf(seeds.blocks_needed(0.0))
    assert seeds.blocks_needed(20.0) == 2  # an effect this large needs only the fewest blocks a t-test can use


def test_seeds_needed_resolves_a_simulated_effect_with_the_promised_power() -> None:
    true_difference, spread, rope, family = 0.02, 0.03, 0.005, 4
    rng = np.random.default_rng(5)
    pilot = rng.normal(true_difference, spread, 40_000)
    needed = seeds.seeds_needed(float(pilot.mean()), float(pilot.std(ddof=1)), rope, family)
    # The difference test at the family's first Holm step (alpha / 4, two-sided) with 80% power.
    assert needed == seeds.blocks_needed(pilot.mean() / pilot.std(ddof=1), alpha=0.05 / family / 2)
    experiments = rng.normal(true_difference, spread, (4000, int(needed)))
    t = experiments.mean(axis=1) / (experiments.std(axis=1, ddof=1) / math.sqrt(experiments.shape[1]))
    rejected = np.mean(2 * stats.t.sf(np.abs(t), experiments.shape[1] - 1) < 0.05 / family)
    assert 0.74 <= rejected <= 0.88
    assert math.isnan(seeds.seeds_needed(0.01, math.nan, rope, 1))  # one seed: spread unknown
    assert math.isnan(seeds.seeds_needed(0.01, 0.0, rope, 1))  # seeds that all differ alike: spread unknown
    # Inside the ROPE, equivalence may settle it first, at the family's level too (one-sided tests).
    assert seeds.seeds_needed(0.001, 0.01, rope, family) == seeds.blocks_needed(0.4, alpha=0.05 / family) < (
        seeds.blocks_needed(0.1, alpha=0.05 / family / 2))


def test_seeds_for_the_rope_detect_a_difference_as_large_as_the_rope() -> None:
    rng = np.random.default_rng(8)
    base = rng.normal(0.8, 0.01, 6)
    first = base + rng.normal(0.001, 0.004, 6)
    row = rows_of(blocks(first.tolist(), base.tolist()), {"t": "accuracy"}, Rope({"*": 0.005})).iloc[0]
    spread = row["spread"]
    assert row["seeds_for_rope"] == seeds.blocks_needed(0.005 / spread, alpha=0.05 / 2)
    # With that many seeds a true difference of 0.005 is found in about 80% of experiments.
    n = int(row["seeds_for_rope"])
    experiments = rng.normal(0.005, spread, (4000, n))
    t = experiments.mean(axis=1) / (experiments.std(axis=1, ddof=1) / math.sqrt(n))
    assert 0.74 <= np.mean(2 * stats.t.sf(np.abs(t), n - 1) < 0.05) <= 0.88
    # In a family of four comparisons each is tested at a quarter of the level, and needs more seeds.
    assert seeds.seeds_to_detect(0.005, spread, 4) == seeds.blocks_needed(0.005 / spread, alpha=0.05 / 4 / 2) > n
    assert math.isnan(seeds.seeds_to_detect(0.005, math.nan, 1))  # one seed: spread unknown


# -- the ROPE --------------------------------------------------------------------------------------


def test_rope_parsing_and_defaults() -> None:
    rope = parse_rope("accuracy=0.01, sine=0.05")
    assert rope.width("digits", "accuracy", np.array([0.9])) == 0.01
    assert rope.width("sine", "rmse", np.array([0.5])) == 0.05
    assert rope.width("toy", "rmse", np.array([0.2, 0.4, 0.6])) == pytest.approx(0.004)  # 1% of the median
    assert parse_rope(0.002).width("digits", "accuracy", np.array([])) == 0.002
    assert Rope().width("digits", "accuracy", np.array([])) == 0.005
    assert Rope().describe("toy", "rmse", 0.004) == "±0.004 rmse (1% of the median)"
    for bad in ("x", "-1", "accuracy=", ","):
        with pytest.raises(NNBenchError, match="--rope"):
            parse_rope(bad)


# -- verdicts --------------------------------------------------------------------------------------


def grid_results(trial_result: Callable[..., Any], effects: dict[str, Callable[[float, int], float]],
                 tasks: tuple[str, ...] = ("digits", "wine"), seeds_: int = 5,
                 optimizers: tuple[tuple[str, float], ...] = (("sgd", 0.05), ("adam", 1e-3))) -> list[Any]:
    rng = np.random.default_rng(0)
    results = []
    for task in tasks:
        for (optimizer, lr), seed in itertools.product(optimizers, range(seeds_)):
            noise = rng.normal(0, 0.01)  # the seed's draw: shared by every activation (same batches)
            for activation, effect in effects.items():
                results.append(trial_result(task, activation, optimizer, lr, seed, effect(0.85 + noise, seed)))
    return results


def test_one_function_under_two_names_is_practically_equivalent(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    results = grid_results(trial_result, {"relu": lambda m, s: m, "relu_twin": lambda m, s: m})
    with store_writer(tmp_path / "twins.db", results) as store:
        found = {v.axis: v for v in verdicts.findings(store.trials())}
    text = found["activation"].text
    assert "relu_twin and relu are practically equivalent" in text or "relu and relu_twin are practically" in text
    assert "better" not in text and "worse" not in text
    assert "on 2 of 2 tasks: digits and wine" in text and "ROPE ±0.005 accuracy" in text


def test_a_component_made_worse_by_a_known_amount_comes_out_worse(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    rng = np.random.default_rng(1)
    results = grid_results(trial_result, {"relu": lambda m, s: m,
                                          "relu_minus": lambda m, s: m - 0.03 + rng.normal(0, 0.004)})
    with store_writer(tmp_path / "worse.db", results) as store:
        trials = store.trials()
        found = {v.axis: v for v in verdicts.findings(trials)}
        comparison = pairwise.compare_axis(trials, "activation", Rope())
    assert found["activation"].text.startswith("activation: relu is better than relu_minus on 2 of 2 tasks")
    rows = comparison.pair("relu", "relu_minus").rows
    assert rows["advantage"].to_numpy() == pytest.approx([0.03, 0.03], abs=0.003)
    assert (rows["advantage_low"] < 0.03).all() and (rows["advantage_high"] > 0.03).all()
    assert (rows["decision"] == "first").all()


def test_too_few_seeds_say_how_many_more_would_tell(tmp_path: Path, trial_result: Callable[..., Any],
                                                    store_writer: Callable[..., Any]) -> None:
    rng = np.random.default_rng(2)
    effects = {"fnn_a": lambda m, s: m, "fnn_b": lambda m, s: m - 0.006 + rng.normal(0, 0.01)}
    results = grid_results(trial_result, effects, tasks=("digits",), seeds_=3, optimizers=(("adam", 1e-3),))
    with store_writer(tmp_path / "few.db", results) as store:
        text = verdicts.findings(store.trials())[0].text
    assert "not enough seeds to tell" in text and "on digits" in text and re.search(r"\d more seeds? would", text)
    assert "3 paired seeds" in text
    assert "better" not in text


def test_several_levels_group_into_equivalent_and_worse(tmp_path: Path, trial_result: Callable[..., Any],
                                                        store_writer: Callable[..., Any]) -> None:
    effects = {"relu": lambda m, s: m, "gelu": lambda m, s: m + 0.0005, "tanh": lambda m, s: m - 0.0005,
               "identity": lambda m, s: m - 0.1}
    with store_writer(tmp_path / "four.db", grid_results(trial_result, effects, tasks=("a", "b", "c"))) as store:
        found = {v.axis: v for v in verdicts.findings(store.trials())}["activation"]
    equivalent, worse = found.parts
    assert "practically equivalent on 3 of 3 tasks: a, b and c" in equivalent
    assert all(name in equivalent for name in ("relu", "gelu", "tanh")) and "identity" not in equivalent
    assert worse.startswith("identity is worse than") and "on 3 of 3 tasks" in worse


def test_the_evidence_of_one_frame_is_computed_once_and_again_when_a_cell_or_the_rope_changes(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any],
        monkeypatch: pytest.MonkeyPatch) -> None:
    rng = np.random.default_rng(3)
    results = grid_results(trial_result, {"relu": lambda m, s: m, "gelu": lambda m, s: m - 0.02 + rng.normal(0, 0.004)},
                           tasks=("digits",), optimizers=(("adam", 1e-3),))
    with store_writer(tmp_path / "shared.db", results) as store:
        trials = store.trials()
    computed: list[str] = []
    monkeypatch.setattr(verdicts, "_recent", type(verdicts._recent)())  # nothing kept from other tests
    original = verdicts.compare_axis
    monkeypatch.setattr(verdicts, "compare_axis", lambda frame, axis, *args, **kwargs: computed.append(axis)
                        or original(frame, axis, *args, **kwargs))
    first = verdicts.findings(trials)
    again = verdicts.findings(trials.copy())  # a run's console and its report read equal frames
    assert computed == ["activation"] and [v.text for v in again] == [v.text for v in first]
    changed = trials.copy()
    changed.loc[changed["activation"] == "gelu", "metric"] += 0.04  # now gelu is the better one
    flipped = verdicts.findings(changed)
    assert computed == ["activation", "activation"]
    assert flipped[0].text.startswith("activation: gelu is better than relu")
    assert first[0].text.startswith("activation: relu is better than gelu")
    verdicts.findings(trials, rope=0.5)  # another ROPE: other evidence (everything equivalent)
    assert computed == ["activation"] * 3
    assert "practically equivalent" in verdicts.findings(trials, rope=0.5)[0].text and len(computed) == 3


# -- run against run -------------------------------------------------------------------------------


def test_compare_refuses_trials_that_differ_in_another_axis(tmp_path: Path, trial_result: Callable[..., Any],
                                                            store_writer: Callable[..., Any]) -> None:
    results = grid_results(trial_result, {"relu": lambda m, s: m, "squareplus": lambda m, s: m + 0.02})
    with store_writer(tmp_path / "c.db", results) as store:
        trials = store.trials()
    new = select(trials, {"activation": ["squareplus"]}, "candidate")
    result = compare_trials(trials[~new], trials[new], Rope())
    assert result.axes == ["activation"] and result.better and not result.worse
    assert result.verdict.startswith("squareplus is better than relu on 2 of 2 tasks")
    assert result.to_dict()["comparisons"][0]["candidate"] == "squareplus"
    with pytest.raises(NNBenchError, match=r"differ in activation and optimizer .*adam against sgd"):
        compare_trials(trials[~new & trials["optimizer"].eq("sgd")], trials[new & trials["optimizer"].eq("adam")],
                       Rope())
    longer = trials[new].assign(epochs=20)
    with pytest.raises(NNBenchError, match=r"differ in epochs \(epochs: 20 against 3\)"):
        compare_trials(trials[~new], longer, Rope(), axes=["activation"])
    with pytest.raises(NNBenchError, match="no trial has activation 'nope'; present: relu, squareplus"):
        select(trials, {"activation": ["nope"]}, "candidate")


def test_time_profile_bands_bracket_the_profile_and_collapse_without_spread() -> None:
    from nnbench.analysis import fairness

    seeds_ = intervals.BOOTSTRAP_MIN_SEEDS
    rows = [("fast", "a", [1.0] * seeds_), ("slow", "a", [2.0] * seeds_), ("fast", "b", [3.0] * seeds_),
            ("slow", "b", [1.5] * seeds_)]
    times = pd.DataFrame([{"configuration": c, "task": t, "time": v} for c, t, values in rows for v in values])
    medians = times.groupby(["configuration", "task"], sort=False)["time"].median().reset_index()
    profile = fairness.performance_profile(medians, taus=[1.0, 1.5, 2.0, 3.0])
    bands = intervals.time_profile_bands(times, np.array([1.0, 1.5, 2.0, 3.0]))
    both = profile.merge(bands, on=["configuration", "tau"])
    # Seeds agree, so resampling changes nothing: the band is the profile. fast: 1 of 2 tasks at tau 1
    # (a), both from tau 2 (b: 3 / 1.5); slow likewise with the tasks swapped.
    assert (both["low"] == both["rho"]).all() and (both["high"] == both["rho"]).all()
    assert both.set_index(["configuration", "tau"]).loc[("fast", 1.5), "rho"] == 0.5
    noisy = times.assign(time=times["time"] * np.tile([0.8, 1.25], 2 * seeds_))
    bands = intervals.time_profile_bands(noisy, np.array([1.0, 1.5, 2.0, 3.0]))
    point = fairness.performance_profile(noisy.groupby(["configuration", "task"], sort=False)["time"].median()
                                         .reset_index(), taus=[1.0, 1.5, 2.0, 3.0])
    merged = point.merge(bands, on=["configuration", "tau"])
    assert (merged["low"] <= merged["rho"]).all() and (merged["rho"] <= merged["high"]).all()
    # The bands of the drawn configurations alone are theirs in the full computation: the others are
    # still resampled (each can be the fastest on a task), only not summarised.
    slow = intervals.time_profile_bands(noisy, np.array([1.0, 1.5, 2.0, 3.0]), only=["slow", "absent"])
    assert list(dict.fromkeys(slow["configuration"])) == ["slow"]
    pd.testing.assert_frame_equal(slow.reset_index(drop=True),
                                  bands[bands["configuration"] == "slow"].reset_index(drop=True))
    # A bootstrap over fewer seeds than it needs draws no band at all.
    nothing = intervals.time_profile_bands(noisy, np.array([1.0, 2.0]), only=["absent"])
    assert nothing.empty and list(nothing.columns) == ["configuration", "tau", "low", "high"]
    assert intervals.time_profile_bands(noisy.groupby(["configuration", "task"]).head(seeds_ - 1),
                                        np.array([1.0, 2.0])).empty
    columns = ["configuration", "tau", "low", "high"]
    assert list(intervals.time_profile_bands(times.iloc[:0], np.array([1.0])).columns) == columns
    # A configuration that never ran on a task has bands all the same: it never reaches that task's time.
    missing = intervals.time_profile_bands(times[~(times["configuration"].eq("slow") & times["task"].eq("b"))],
                                           np.array([1.0, 2.0, 3.0]))
    assert list(missing.columns) == columns
    assert missing.set_index(["configuration", "tau"])["low"].to_dict() == {
        ("fast", 1.0): 1.0, ("fast", 2.0): 1.0, ("fast", 3.0): 1.0,
        ("slow", 1.0): 0.0, ("slow", 2.0): 0.5, ("slow", 3.0): 0.5}


def test_configurations_that_reach_a_target_at_once_are_each_the_fastest() -> None:
    seeds_ = intervals.BOOTSTRAP_MIN_SEEDS
    rows = [("fast", "a", 0.0), ("slow", "a", 0.0), ("fast", "b", 1.0), ("slow", "b", 3.0)]
    times = pd.DataFrame([{"configuration": c, "task": t, "time": v} for c, t, v in rows for _ in range(seeds_)])
    bands = intervals.time_profile_bands(times, np.array([1.0, 2.0, 3.0])).set_index(["configuration", "tau"])
    # both at 0 s on task a: a ratio of 1 to the best (0 / 0), so both count task a from tau 1
    assert bands["low"].to_dict() == bands["high"].to_dict() == {
        ("fast", 1.0): 1.0, ("fast", 2.0): 1.0, ("fast", 3.0): 1.0,
        ("slow", 1.0): 0.5, ("slow", 2.0): 0.5, ("slow", 3.0): 1.0}


def test_the_analysis_imports_no_torch_and_no_plotting() -> None:
    import subprocess
    import sys

    script = """
import sys
import nnbench.analysis.verdicts, nnbench.analysis.comparison, nnbench.analysis.intervals
heavy = [m for m in ("torch", "matplotlib", "seaborn") if m in sys.modules]
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr


# -- what the planted bugs of the past broke --------------------------------------------------------


def test_a_tasks_rope_beats_its_metrics_which_beats_a_bare_number_in_any_order(
        tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> None:
    for text in ("0.1, accuracy=0.01, moons=0.02", "moons=0.02,0.1,accuracy=0.01", "accuracy=0.01,moons=0.02,0.1"):
        rope = parse_rope(text)
        assert rope.width("moons", "accuracy", np.array([0.9])) == 0.02  # the task's own
        assert rope.width("digits", "accuracy", np.array([0.9])) == 0.01  # its metric's
        assert rope.width("sine", "rmse", np.array([0.5])) == 0.1  # the bare number
    assert parse_rope({"moons": 0.02, "*": 0.1}).width("moons", "accuracy", np.array([])) == 0.02
    # The comparisons use the same widths.
    results = grid_results(trial_result, {"relu": lambda m, s: m, "tanh": lambda m, s: m - 0.001},
                           tasks=("moons", "digits", "sine"), optimizers=(("adam", 1e-3),))
    with store_writer(tmp_path / "ropes.db", results) as store:
        trials = store.trials()
    (comparison,) = verdicts.axis_comparisons(trials, "moons=0.02,0.1,accuracy=0.01")
    widths = comparison.table().set_index("task")["rope"].to_dict()
    assert widths == {"moons": 0.02, "digits": 0.01, "sine": 0.1}


def test_every_pair_of_eight_levels_is_compared(tmp_path: Path, trial_result: Callable[..., Any],
                                                store_writer: Callable[..., Any]) -> None:
    # Six levels alike at the top, and two far below them that differ from each other.
    effects: dict[str, Callable[[float, int], float]] = {f"act{i}": (lambda m, s: m) for i in range(6)}
    rng = np.random.default_rng(3)
    effects["low"] = lambda m, s: m - 0.1 + rng.normal(0, 0.003)
    effects["lower"] = lambda m, s: m - 0.2 + rng.normal(0, 0.003)
    results = grid_results(trial_result, effects, tasks=("digits",), seeds_=6, optimizers=(("adam", 1e-3),))
    with store_writer(tmp_path / "eight.db", results) as store:
        (comparison,) = verdicts.axis_comparisons(store.trials())
    assert len(comparison.levels) == 8 and len(comparison.pairs) == 28 and comparison.family == 28
    pair = comparison.pair("low", "lower")
    assert pair is not None and pair.rows["decision"].tolist() == ["first"]
    assert "low is better than lower on digits" in " ".join(verdicts.verdict(comparison).parts)


def test_eight_levels_with_no_difference_between_them_give_no_verdict(tmp_path: Path, trial_result: Callable[..., Any],
                                                                      store_writer: Callable[..., Any]) -> None:
    rng = np.random.default_rng(17)
    effects = {f"act{i}": (lambda m, s: m + rng.normal(0, 0.01)) for i in range(8)}
    results = grid_results(trial_result, effects, tasks=("digits", "wine", "iris"), seeds_=4,
                           optimizers=(("adam", 1e-3),))
    with store_writer(tmp_path / "null.db", results) as store:
        (comparison,) = verdicts.axis_comparisons(store.trials())
    assert len(comparison.pairs) == 28 and comparison.family == 28 * 3
    assert set(comparison.table()["decision"]) == {"undecided"}
    # Uncorrected, the same evidence would have called some of these 84 comparisons better or worse.
    assert (comparison.table()["p_value"] < 0.05).any()


def test_the_issues_case_three_seeds_is_undecided_and_says_so(tmp_path: Path, trial_result: Callable[..., Any],
                                                              store_writer: Callable[..., Any]) -> None:
    # Four models, three seeds; cnn ahead of gru on every seed (+0.008, +0.024, +0.033), by a t-interval that
    # spans zero.
    accuracy = {"cnn": [0.958, 0.954, 0.963], "gru": [0.950, 0.930, 0.930], "mlp": [0.70, 0.71, 0.69],
                "logistic": [0.40, 0.41, 0.39]}
    results = [trial_result("mnist1d", "relu", seed=seed, metric=value, arch=arch)
               for arch, values in accuracy.items() for seed, value in enumerate(values)]
    with store_writer(tmp_path / "mnist1d.db", results) as store:
        (found,) = verdicts.findings(store.trials())
        (comparison,) = verdicts.axis_comparisons(store.trials())
    row = comparison.pair("cnn", "gru").rows.iloc[0]
    assert row["decision"] == "undecided" and row["advantage_low"] < 0 < row["advantage_high"]
    assert "cnn is better than gru" not in found.text
    assert "not enough seeds to tell cnn from gru on mnist1d (3 paired seeds" in " ".join(found.parts)
    assert all("3 paired seeds" in part for part in found.parts if " better than " in part or " worse " in part)
