"""Verdicts and the statistics they rest on, each against an independent computation: scipy, baycomp,
statsmodels, simulation, or values worked by hand on small tables."""

from __future__ import annotations

import itertools
import math
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnbench.analysis import bayes, intervals, pairwise, seeds, verdicts
from nnbench.analysis import frames as analysis
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


def test_stratified_bootstrap_interval_of_the_iqm_matches_the_exact_distribution() -> None:
    strata = [np.array([0.1, 0.4, 0.5]), np.array([0.6, 0.7, 1.0])]  # two tasks, three seeds each
    point, low, high = intervals.stratified_bootstrap(strata, intervals._aggregate, resamples=20_000,
                                                      random_state=7)
    for row, statistic in ((0, np.mean), (1, intervals.iqm)):
        exact = exact_bootstrap(strata, statistic)
        assert point[row] == pytest.approx(statistic(np.concatenate(strata)))
        assert (low[row], high[row]) == pytest.approx(tuple(np.percentile(exact, [2.5, 97.5])), abs=0.02)
    # Seeds are resampled within each task: a task whose seeds agree adds no width.
    _, low, high = intervals.stratified_bootstrap([np.array([0.5, 0.5]), np.array([0.2, 0.2])], intervals._aggregate)
    assert low[0] == high[0] == pytest.approx(0.35)


def test_the_bootstrap_is_reproducible_with_a_fixed_random_state() -> None:
    strata = [np.array([0.1, 0.4, 0.5, 0.2]), np.array([0.6, 0.7, 1.0])]
    first = intervals.stratified_bootstrap(strata, intervals._aggregate, random_state=3)
    again = intervals.stratified_bootstrap(strata, intervals._aggregate, random_state=3)
    other = intervals.stratified_bootstrap(strata, intervals._aggregate, random_state=4)
    assert np.array_equal(first[1], again[1]) and np.array_equal(first[2], again[2])
    assert not np.array_equal(first[1], other[1])
    single = intervals.stratified_bootstrap([np.array([0.3]), np.array([0.9])], intervals._aggregate)
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


def test_aggregates_and_score_profiles_across_tasks() -> None:
    rows = [{"configuration": c, "task": t, "seed": s, "score": v}
            for c, base in (("good", 0.8), ("bad", 0.3)) for t, shift in (("a", 0.0), ("b", 0.1))
            for s, v in enumerate(base + shift + np.array([-0.05, 0.0, 0.05]))]
    scored = pd.DataFrame(rows)
    table = intervals.aggregates(scored).set_index("configuration")
    assert list(table.index) == ["good", "bad"]
    good = scored[scored["configuration"] == "good"]["score"]
    assert table.loc["good", "mean"] == pytest.approx(good.mean())
    assert table.loc["good", "iqm"] == pytest.approx(stats.trim_mean(good, 0.25))
    assert table.loc["good", "gap"] == pytest.approx(np.mean(np.maximum(1 - good, 0)))
    assert table.loc["good", "iqm_low"] <= table.loc["good", "iqm"] <= table.loc["good", "iqm_high"]
    assert table.loc["good", "tasks"] == 2 and table.loc["good", "trials"] == 6
    profile = intervals.score_profiles(scored, ["good", "bad"], points=11)
    good_curve = profile[profile["configuration"] == "good"].set_index("tau")
    # At tau = 0.8: task a has 1 of its 3 seeds above (0.85; 0.8 is not above), task b all 3: mean 2/3.
    assert good_curve["fraction"].iloc[8] == pytest.approx(2 / 3) and good_curve.index[8] == pytest.approx(0.8)
    assert (good_curve["low"] <= good_curve["fraction"] + 1e-12).all()
    assert (good_curve["high"] >= good_curve["fraction"] - 1e-12).all()


# -- probability of improvement --------------------------------------------------------------------


def blocks(first: list[float], second: list[float], task: str = "t", stratum: str = "s") -> pd.DataFrame:
    index = pd.MultiIndex.from_tuples([(task, stratum, seed) for seed in range(len(first))],
                                      names=["task", "other", "seed"])
    return pd.DataFrame({"a": first, "b": second}, index=index)


def test_probability_of_improvement_is_the_mann_whitney_statistic() -> None:
    a, b = [0.9, 0.8, 0.8, 0.7], [0.8, 0.75, 0.6, 0.85]
    pair = pairwise.compare_pair(blocks(a, b), blocks(a, b), {"t": "accuracy"}, Rope())
    u = stats.mannwhitneyu(a, b).statistic  # U of the first sample, ties counted half
    assert pair.rows.loc[0, "poi"] == pytest.approx(u / 16)
    assert pair.rows.loc[0, "poi_low"] <= pair.rows.loc[0, "poi"] <= pair.rows.loc[0, "poi_high"]
    # Over strata it is the average: a second stratum where a always wins adds 1.
    two = pd.concat([blocks(a, b), blocks([1.0, 1.0], [0.0, 0.0], stratum="z")])
    pair = pairwise.compare_pair(two, two, {"t": "accuracy"}, Rope())
    assert pair.rows.loc[0, "poi"] == pytest.approx((u / 16 + 1) / 2)
    assert pair.rows.loc[0, "advantage"] == pytest.approx((np.subtract(a, b).sum() + 2) / 6)


def test_probability_of_improvement_over_tasks_is_their_average() -> None:
    both = pd.concat([blocks([0.9, 0.8], [0.7, 0.85], task="x"), blocks([0.5, 0.6], [0.6, 0.7], task="y")])
    pair = pairwise.compare_pair(both, both, {"x": "accuracy", "y": "accuracy"}, Rope())
    # x: pairs (.9>.7) (.9>.85) (.8>.7) (.8<.85): 3/4; y: (.5<.6) (.5<.7) (.6=.6) (.6<.7): 0.5/4.
    assert pair.rows.set_index("task")["poi"].to_dict() == pytest.approx({"x": 0.75, "y": 0.125})
    point, low, high = pair.poi_over(["x", "y"])
    # The interval is the bootstrap's over the average of each replicate's tasks, not over their pooled draws.
    replicates = np.mean([pair.replicates["x"], pair.replicates["y"]], axis=0)
    assert point == pytest.approx(0.4375)
    assert (low, high) == pytest.approx(tuple(np.percentile(replicates, [2.5, 97.5])))
    assert low < point < high  # two seeds a task: the bootstrap varies
    # A level that always wins on one task and always loses on the other improves with probability 1/2 in
    # every replicate: the interval is that one point (pooling the tasks' draws would give [0, 1]).
    split = pd.concat([blocks([0.9, 0.8], [0.1, 0.2], task="x"), blocks([0.1, 0.2], [0.9, 0.8], task="y")])
    pair = pairwise.compare_pair(split, split, {"x": "accuracy", "y": "accuracy"}, Rope())
    assert pair.poi_over(["x", "y"]) == pytest.approx((0.5, 0.5, 0.5))
    assert pair.poi_over(["x"]) == pytest.approx((1.0, 1.0, 1.0))


# -- the Bayesian signed-rank test -----------------------------------------------------------------


def test_signed_rank_reproduces_baycomp() -> None:
    baycomp = pytest.importorskip("baycomp", reason="baycomp is the reference implementation (the test extra)")
    rng = np.random.default_rng(3)
    for n, rope, shift, draws in ((6, 0.005, 0.004, 4000), (25, 0.002, 0.003, 4000), (12, 0.01, 0.0, 4000),
                                  (9, 0.0, 0.01, 4000), (300, 0.001, 0.0004, 600)):
        x = np.round(rng.normal(0.8, 0.01, n), 3)
        y = np.round(x - shift + rng.normal(0, 0.005, n), 3)
        expected = baycomp.SignedRankTest.probs(x, y, rope=rope, nsamples=draws, random_state=11)
        got = bayes.signed_rank(x - y, rope, samples=draws, random_state=11)
        if rope == 0:
            assert (got.first, got.second) == pytest.approx(expected) and got.equivalent == 0
        else:
            assert (got.first, got.equivalent, got.second) == pytest.approx(expected)


def test_signed_rank_on_a_case_worked_by_hand() -> None:
    # One difference d with rope < d < 2 rope. Walsh sums: 0 (w0²), d (2 w0 w1), 2d (w1²); only 2d lies
    # beyond 2 rope, so "first better" wins when w1² > 1 - w1², i.e. w1 > 1/√2, with w1 ~ Beta(1, 1/2):
    # P = (1 - 1/√2)^(1/2) = 0.5412; the rest is equivalence, and the second is never better.
    posterior = bayes.signed_rank(np.array([0.015]), 0.01, samples=200_000)
    assert posterior.first == pytest.approx(math.sqrt(1 - 1 / math.sqrt(2)), abs=0.005)
    assert posterior.equivalent == pytest.approx(1 - posterior.first) and posterior.second == 0
    same = bayes.signed_rank(np.zeros(5), 0.005)
    assert (same.first, same.equivalent, same.second) == (0.0, 1.0, 0.0)


# -- seeds needed ----------------------------------------------------------------------------------


def test_blocks_needed_matches_statsmodels() -> None:
    power = pytest.importorskip("statsmodels.stats.power", reason="statsmodels is the reference (the test extra)")
    for effect in (0.2, 0.5, 1.0, 2.5):
        expected = power.TTestPower().solve_power(effect_size=effect, alpha=0.05, power=0.8, alternative="larger")
        assert seeds.blocks_needed(effect) == math.ceil(expected)
    assert math.isinf(seeds.blocks_needed(0.0))


def test_seeds_needed_resolves_a_simulated_effect_with_the_promised_power() -> None:
    true_difference, spread, rope, strata = 0.02, 0.03, 0.005, 2
    rng = np.random.default_rng(5)
    pilot = rng.normal(true_difference, spread, 40_000)
    needed = seeds.seeds_needed(pilot, rope, strata)
    observed = (pilot.mean() - rope) / pilot.std(ddof=1)
    assert needed == math.ceil(seeds.blocks_needed(observed) / strata)
    assert abs(needed - seeds.blocks_needed((true_difference - rope) / spread) / strata) <= 1  # 27 blocks
    # Experiments of that many seeds: a one-sided t-test of "the difference exceeds the ROPE" rejects in ~80%.
    experiments = rng.normal(true_difference, spread, (4000, int(needed) * strata))
    t = (experiments.mean(axis=1) - rope) / (experiments.std(axis=1, ddof=1) / math.sqrt(experiments.shape[1]))
    rejected = np.mean(t > stats.t.isf(0.05, experiments.shape[1] - 1))
    assert 0.74 <= rejected <= 0.88
    assert math.isnan(seeds.seeds_needed(np.array([0.1]), rope, 1))  # one block: spread unknown


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
    assert "not enough seeds to tell" in text and "on digits" in text and "more seeds would" in text
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
    monkeypatch.setattr(verdicts, "compare_axis", lambda frame, axis, rope: computed.append(axis) or original(
        frame, axis, rope))
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

    rows = [("fast", "a", [1.0, 1.0]), ("slow", "a", [2.0, 2.0]), ("fast", "b", [3.0, 3.0]),
            ("slow", "b", [1.5, 1.5])]
    times = pd.DataFrame([{"configuration": c, "task": t, "time": v} for c, t, values in rows for v in values])
    medians = times.groupby(["configuration", "task"], sort=False)["time"].median().reset_index()
    profile = fairness.performance_profile(medians, taus=[1.0, 1.5, 2.0, 3.0])
    bands = intervals.time_profile_bands(times, np.array([1.0, 1.5, 2.0, 3.0]))
    both = profile.merge(bands, on=["configuration", "tau"])
    # Seeds agree, so resampling changes nothing: the band is the profile. fast: 1 of 2 tasks at tau 1
    # (a), both from tau 2 (b: 3 / 1.5); slow likewise with the tasks swapped.
    assert (both["low"] == both["rho"]).all() and (both["high"] == both["rho"]).all()
    assert both.set_index(["configuration", "tau"]).loc[("fast", 1.5), "rho"] == 0.5
    noisy = times.assign(time=times["time"] * np.tile([0.8, 1.25], 4))
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


def test_early_stopping_keeps_the_decision() -> None:
    clear = np.random.default_rng(4).normal(0.05, 0.01, 60)
    full = bayes.signed_rank(clear, 0.005)
    early = bayes.signed_rank(clear, 0.005, decide_at=0.95)
    assert full.first >= 0.95 and early.first >= 0.95
    rng = np.random.default_rng(5)
    for shift in (0.0, 0.002, 0.004, 0.006, 0.008):
        d = rng.normal(shift, 0.01, 30)
        full, early = bayes.signed_rank(d, 0.005), bayes.signed_rank(d, 0.005, decide_at=0.95)
        decide = [p >= 0.95 for p in (full.first, full.equivalent, full.second)]
        assert decide == [p >= 0.95 for p in (early.first, early.equivalent, early.second)]
        assert (early.first, early.equivalent, early.second) == pytest.approx(
            (full.first, full.equivalent, full.second), abs=0.04)


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
