"""Racing's decisions without training: the rungs, the test that prunes (ties kept, clear losers gone, its error
rate on a small simulation), bad input, and the tables and lines a stored race reads as.

``tests/test_race.py`` races real grids; ``benchmarks/bench_race.py`` runs the large simulation and the real grids
(docs/racing.md has their figures)."""

from __future__ import annotations

import importlib.util
import json
import sys
from pathlib import Path
from types import ModuleType

import numpy as np
import pandas as pd
import pytest

from nnbench.analysis import paired, race_frames
from nnbench.analysis.racing import ALPHA, decide, look_alpha, seed_rungs
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
    pruned = decide(exact, True, 0.005, ALPHA, step=0.0)
    assert [(p.configuration, p.p_value) for p in pruned] == [("worse", 0.0)]


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
