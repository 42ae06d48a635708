"""Racing's decisions without training: the rungs, the test that prunes (ties kept, clear losers gone, its error
rate on a small simulation), bad input, and the tables and lines a stored race reads as.

``tests/test_race.py`` races real grids; ``benchmarks/bench_race.py`` runs the large simulation and the real grids
(docs/racing.md has their figures)."""

from __future__ import annotations

import importlib.util
import json
import sys
import warnings
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest
from scipy import stats

from nnbench.analysis import paired, race_frames
from nnbench.analysis.racing import ALPHA, PRIOR_DF, decide, look_alpha, residual_variance, seed_rungs
from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import Trial
from nnbench.execution.racing import check_race
from nnbench.reporting.race_section import race as race_section

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_race", ROOT / "benchmarks" / "bench_race.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    sys.modules[spec.name] = module  # its dataclasses look their module up while it loads
    spec.loader.exec_module(module)
    return module



def stored_race() -> pd.DataFrame:
    """A raced grid as the store returns it: relu finished its 3 seeds; identity@0.01 was pruned after 2 seeds at
    the first rung and tanh after 2 at the first rung of another task; a trial's status and evidence as stored."""
    rows = []
    kept, cut = ["ok"] * 3, ["ok", "ok", "pruned"]
    for task, activation, statuses, rung in (("moons", "relu", kept, None), ("moons", "identity", cut, 1),
                                             ("sine", "relu", kept, None), ("sine", "tanh", cut, 1)):
        for seed, status in enumerate(statuses):
            evidence = None if status != "pruned" else json.dumps({
                "configuration": f"fnn/{activation}", "rung": rung, "epoch": 4, "seeds": 2, "against": "fnn/relu",
                "metric": "val_accuracy", "mean_difference": 0.3, "rope": 0.005, "p_value": 0.001, "alpha": 0.025})
            rows.append({"trial_id": f"{task}-{activation}-{seed}", "run_id": "r", "task": task, "arch": "fnn",
                         "activation": activation, "lr": 0.01, "seed": seed, "epochs": 4, "status": status,
                         "epochs_run": 0 if status == "pruned" else 4, "train_time": 0 if status == "pruned" else 1.5,
                         "metric": None if status == "pruned" else 0.9, "race": evidence})
    return pd.DataFrame(rows)


def test_a_stored_race_reads_as_its_pruned_and_its_finished_configurations() -> None:
    trials = stored_race()
    assert race_frames.raced(trials) and not race_frames.raced(trials[trials["status"] == "ok"])
    ids = race_frames.configuration_ids(trials)
    assert ids.nunique() == 4 and ids.iloc[0] == ids.iloc[1] != ids.iloc[3]  # seeds share an id, activations do not
    finished = race_frames.finished_configurations(trials)
    assert list(finished["trial_id"]) == [f"{t}-relu-{s}" for t in ("moons", "sine") for s in range(3)]
    pruned = race_frames.pruned_configurations(trials)
    assert list(pruned["task"]) == ["moons", "sine"] and list(pruned["activation"]) == ["identity", "tanh"]
    assert list(pruned["not_trained"]) == [1, 1] and list(pruned["rung"]) == [1, 1] and list(pruned["seeds"]) == [2, 2]
    assert pruned["text"].iloc[0] == ("fnn/identity: worse than fnn/relu at epoch 4, seeds 2 (+0.3 val_accuracy "
                                      "beyond ±0.005, Holm-adjusted p = 0.001 < 0.025)")
    assert race_frames.compute_spent(trials) == {"planned_epochs": 48.0, "trained_epochs": 40.0,
                                                 "share": pytest.approx(40 / 48), "train_time": 15.0}
    empty = race_frames.pruned_configurations(trials[trials["status"] == "ok"])
    assert empty.empty and "text" in empty.columns
    unraced = trials[trials["status"] == "ok"]
    assert race_frames.finished_configurations(unraced).equals(unraced)


def test_a_pruning_line_never_shows_its_p_value_rounded_up_to_alpha() -> None:
    row = {"configuration": "fnn/identity/adam@0.01", "against": "fnn/relu/adam@0.01", "epoch": 3, "seeds": 2,
           "mean_difference": 0.4, "metric": "val_accuracy", "rope": 0.005, "alpha": 0.025}
    assert "p = 0.02496 < 0.025)" in race_frames.describe({**row, "p_value": 0.024961})
    assert "p = 0.0035 < 0.025)" in race_frames.describe({**row, "p_value": 0.003512})


def test_configuration_ids_of_an_empty_or_seed_only_frame_are_empty_labels() -> None:
    trials = stored_race()
    empty = race_frames.configuration_ids(trials.iloc[:0])
    assert empty.empty and empty.dtype == object
    only_seeds = trials[["trial_id", "seed", "status"]]  # nothing that tells configurations apart
    labels = race_frames.configuration_ids(only_seeds)
    assert labels.index.equals(only_seeds.index) and labels.dtype == object and set(labels) == {""}


def test_a_race_without_pruned_configurations_has_only_a_note() -> None:
    section = race_section(pd.DataFrame({"status": ["ok"], "epochs": [2], "epochs_run": [2]}))
    assert [type(b).__name__ for b in section.blocks] == ["Note"]



def test_a_race_needs_validation_data() -> None:
    trials = [Trial(task="moons", arch="fnn", activation=a, loss="cross_entropy", optimizer="adam", lr=0.01,
                    batch_size=32, epochs=1, seed=s) for a in ("relu", "tanh") for s in range(3)]
    with pytest.raises(NNBenchError, match="--validation none holds none back"):
        check_race(trials, 3, ["none"])
    check_race(trials, 3, ["split"])  # the same grid with a validation split races


def test_the_rungs_start_with_two_seeds_and_double() -> None:
    assert seed_rungs(3) == [2, 3] and seed_rungs(5) == [2, 4, 5] and seed_rungs(10) == [2, 4, 8, 10]
    assert look_alpha(5) == ALPHA / 2 and ALPHA == paired.ALPHA
    with pytest.raises(ValueError, match="3 seeds or more"):
        seed_rungs(2)


def test_ties_within_the_rope_are_never_pruned_and_a_clear_loser_is_at_two_seeds() -> None:
    rng = np.random.default_rng(0)
    seed_effect = rng.normal(0, 0.02, 2)
    scores = {f"tie{i}": 0.9 + seed_effect + rng.normal(0, 0.001, 2) for i in range(10)}
    scores["worse"] = 0.7 + seed_effect + rng.normal(0, 0.001, 2)
    scores["within"] = 0.897 + seed_effect  # 0.003 below the others: inside a ROPE of 0.005
    pruned = decide(scores, True, 0.005, ALPHA, step=0.0)
    assert [p.configuration for p in pruned] == ["worse"]
    assert pruned[0].seeds == 2 and pruned[0].mean_difference == pytest.approx(0.2, abs=0.01)
    # the same in a metric where lower is better
    flipped = decide({k: -np.asarray(v) for k, v in scores.items()}, False, 0.005, ALPHA, step=0.0)
    assert [p.configuration for p in flipped] == ["worse"]
    # a missing seed (a diverged trial) is left out of its pairs, never read as a bad score
    scores["worse"] = np.array([0.7, np.nan])
    assert decide(scores, True, 0.005, ALPHA, step=0.0) == []


def test_seeds_that_agree_exactly_decide_by_the_rope_alone() -> None:
    # No spread at all (every seed the same, a metric without steps): a gap beyond the ROPE is certain, one within
    # it is never pruned
    exact = {"best": [0.9, 0.9, 0.9], "worse": [0.5, 0.5, 0.5], "within": [0.898, 0.898, 0.898]}
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # a race prints no numpy warning of its own on the way
        pruned = decide(exact, True, 0.005, ALPHA, step=0.0)
    assert [(p.configuration, p.p_value) for p in pruned] == [("worse", 0.0)]


def test_the_residual_variance_is_the_two_way_models() -> None:
    # Configurations x seeds = configuration effect + seed effect + residuals whose rows and columns sum to zero:
    # the pooled residual variance is their sum of squares over (3 - 1)(3 - 1) = 4 degrees of freedom, and each
    # row's is its own squares over its share of them (4 / 3); a row with a missing seed takes no part.
    residuals = np.array([[1.0, -1.0, 0.0], [-1.0, 1.0, 0.0], [0.0, 0.0, 0.0]])
    table = np.array([0.9, 0.7, 0.5])[:, None] + np.array([0.0, 0.3, -0.2])[None, :] + 0.01 * residuals
    table = np.vstack([table, [0.8, np.nan, 0.8]])
    pooled, rows, df = residual_variance(table)
    assert df == 4.0 and pooled == pytest.approx(4e-4 / 4)
    np.testing.assert_allclose(rows[:3], [2e-4 / (4 / 3), 2e-4 / (4 / 3), 0.0], atol=1e-15)
    assert np.isnan(rows[3])
    for too_small in (table[:1], table[:3, :1]):  # one configuration, or one seed: nothing to pool, nor to warn of
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            pooled, rows, df = residual_variance(too_small)
        assert np.isnan(pooled) and np.isnan(rows).all() and df == 0.0
    pooled, rows, df = residual_variance(table[:2, :2])  # the least that pools: two of each, one degree of freedom
    assert df == 1.0 and np.isfinite(pooled) and np.isfinite(rows).all()


def test_a_decision_is_the_documented_moderated_t_test_with_holm() -> None:
    # docs/racing.md, "The test", computed here step by step for three configurations over two seeds, plus a
    # fourth with one seed only (never tested: it takes no part in the family)
    scores = {"a": [0.90, 0.86], "b": [0.80, 0.78], "c": [0.60, 0.61], "d": [0.10, np.nan]}
    step, rope = 0.01, 0.005
    table = np.array([scores[k] for k in "abc"])
    residuals = table - table.mean(axis=1, keepdims=True) - table.mean(axis=0, keepdims=True) + table.mean()
    df = (3 - 1) * (2 - 1)
    own = df / 3
    per_row = (residuals**2).sum(axis=1) / own
    moderated = (PRIOR_DF * (residuals**2).sum() / df + own * per_row) / (PRIOR_DF + own)
    p = {}
    for i, name in ((1, "b"), (2, "c")):
        gap = table[0] - table[i]
        error = np.sqrt((moderated[0] + moderated[i] + step**2 / 6) / 2)
        p[name] = stats.t.sf((gap.mean() - rope) / error, PRIOR_DF + own)
    first, second = sorted(p, key=p.get)  # Holm over the two tested
    adjusted = {first: 2 * p[first], second: max(2 * p[first], p[second])}
    decisions = {d.configuration: d for d in decide(scores, True, rope, 0.5, step)}
    assert set(decisions) == {"b", "c"}  # at a level that rejects both; "d" has one seed
    for name, decision in decisions.items():
        assert decision.best == "a" and decision.seeds == 2 and decision.rope == rope and decision.alpha == 0.5
        assert decision.mean_difference == pytest.approx(np.mean(table[0] - table["abc".index(name)]))
        assert decision.p_value == pytest.approx(adjusted[name], rel=1e-9)
    # the step defaults to the scores' own: one hundredth here
    assert {d.configuration: d.p_value for d in decide(scores, True, rope, 0.5)} == pytest.approx(
        {d.configuration: d.p_value for d in decisions.values()}, rel=1e-9)
    # a p-value equal to alpha prunes nothing: pruning needs p < alpha
    at = decisions[second].p_value
    assert [d.configuration for d in decide(scores, True, rope, at, step)] == [first]


def test_two_configurations_race_at_two_seeds() -> None:
    pruned = decide({"good": [0.9, 0.88], "bad": [0.5, 0.52]}, True, 0.005, ALPHA, step=0.01)
    assert [(p.configuration, p.best) for p in pruned] == [("bad", "good")]


def test_the_simulation_prunes_and_keeps_its_error_rate() -> None:
    bench = load_benchmark()
    table = {row["scenario"]: row for row in bench.simulate(120, seed=1, scenarios=("null", "spread", "ties"))}
    # Every configuration within the ROPE of the best: any pruning is wrong; the rate stays near alpha (the
    # upper end of a binomial's 99% range at 5% over 120 grids is 12 grids).
    assert table["null"]["wrongly_pruned"] <= 12 / 120
    assert table["ties"]["wrongly_pruned"] <= 12 / 120
    # A grid with real differences: most configurations leave early and the race trains far less.
    assert table["spread"]["configurations_pruned"] > 0.5 and table["spread"]["epochs_trained"] < 0.75
    assert table["spread"]["best_within_rope"] > 0.9
