"""The tuning protocol: equal budgets, search ranges, selection on validation only, reruns."""

from __future__ import annotations

import math
from typing import Any

import pytest

from nnbench.contract.specs import SearchRange
from nnbench.planning.grid import GridError, expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.planning.tuning import (
    check_tunable,
    configuration_key,
    final_trials,
    role_of,
    search_points,
    select_best,
    tuning_trials,
)


def tuned_grid(catalogue: Any, **axes: Any) -> tuple[Any, list[Any], list[Any]]:
    base = {"task": "moons,iris", "arch": "fnn", "activation": "relu,tanh", "optimizer": "sgd,momentum,adam",
            "seeds": 3, "epochs": 2, "tune": "lr", "budget": 6}
    grid = build_grid(None, **{**base, **axes})
    defaults, _ = expand_grid(grid, catalogue)
    check_tunable(grid, catalogue)
    return grid, defaults, tuning_trials(defaults, grid, catalogue)


def test_every_configuration_gets_the_same_budget(catalogue: Any) -> None:
    _, defaults, tuning = tuned_grid(catalogue)
    per_config: dict[str, int] = {}
    for trial in tuning:
        per_config[configuration_key(trial)] = per_config.get(configuration_key(trial), 0) + 1
    assert len(per_config) == 2 * 2 * 3  # tasks x activations x optimizers
    assert set(per_config.values()) == {6}
    assert all(t.seed == 0 and role_of(t) == "tune" for t in tuning)
    assert {role_of(t) for t in defaults} == {"default"}
    assert len({t.trial_id for t in tuning} | {t.trial_id for t in defaults}) == len(tuning) + len(defaults)


def test_learning_rates_span_each_optimizers_declared_range_on_a_log_grid(catalogue: Any) -> None:
    _, _, tuning = tuned_grid(catalogue, task="moons", activation="relu", optimizer="sgd")
    rates = sorted(t.lr for t in tuning)
    space = catalogue.optimizers.get("sgd").tunable["lr"]
    assert rates[0] == pytest.approx(space.low) and rates[-1] == pytest.approx(space.high)
    ratios = [b / a for a, b in zip(rates, rates[1:], strict=False)]
    assert max(ratios) == pytest.approx(min(ratios))  # evenly spaced on a log scale


def test_several_names_use_a_seeded_random_search_inside_the_ranges() -> None:
    space = {"lr": SearchRange(1e-4, 1e-1), "momentum": SearchRange(0.5, 0.99, log=False)}
    first = search_points(space, 8, "config-a")
    assert first == search_points(space, 8, "config-a")
    assert first != search_points(space, 8, "config-b")
    assert all(1e-4 <= p["lr"] <= 1e-1 and 0.5 <= p["momentum"] <= 0.99 for p in first)


def test_tuning_a_name_only_some_optimizers_declare(catalogue: Any) -> None:
    grid, _, tuning = tuned_grid(catalogue, task="moons", activation="relu", tune="lr,momentum")
    tuned = {t.optimizer: sorted(t.params["tuning"]["tuned"]) for t in tuning}
    assert tuned == {"sgd": ["lr"], "momentum": ["lr", "momentum"], "adam": ["lr"]}
    momentum_values = {t.params["optimizer"]["momentum"] for t in tuning if t.optimizer == "momentum"}
    assert len(momentum_values) == grid.budget
    with pytest.raises(GridError, match="no optimizer of the grid declares 'beta' as tunable"):
        tuned_grid(catalogue, tune="beta")


@pytest.mark.parametrize(("axes", "message"), [
    ({"budget": None}, "--tune needs --budget N"),
    ({"lr": "0.1"}, "drop --lr"),
    ({"tune": None, "budget": 4}, "add --tune lr"),
])
def test_protocol_options_are_checked(catalogue: Any, axes: dict[str, Any], message: str) -> None:
    with pytest.raises(GridError, match=message):
        tuned_grid(catalogue, **axes)


def test_selection_reads_validation_metrics_only(catalogue: Any) -> None:
    _, _, tuning = tuned_grid(catalogue, task="moons", activation="relu", optimizer="adam")
    # the third setting is best on validation; the test metric it would have had is never passed in
    candidates = [(t, "ok", 0.80 + (0.1 if i == 2 else 0.0)) for i, t in enumerate(tuning)]
    assert select_best(candidates, higher_is_better=True) is tuning[2]
    assert select_best([(t, "ok", 1.0 + i) for i, t in enumerate(tuning)], higher_is_better=False) is tuning[0]
    failed = [(t, "diverged", None) for t in tuning[:-1]] + [(tuning[-1], "ok", math.nan)]
    assert select_best(failed, higher_is_better=True) is None


def test_final_trials_rerun_the_selected_setting_over_the_seeds(catalogue: Any) -> None:
    _, _, tuning = tuned_grid(catalogue, task="moons", activation="relu", optimizer="momentum",
                              tune="lr,momentum")
    best = tuning[3]
    finals = final_trials(best, 3)
    assert [t.seed for t in finals] == [0, 1, 2]
    assert all(t.lr == best.lr and t.params["optimizer"]["momentum"] == best.params["optimizer"]["momentum"]
               for t in finals)
    assert all(role_of(t) == "final" and t.params["tuning"]["selected_from"] == best.trial_id for t in finals)
    assert finals[0].trial_id != best.trial_id  # a rerun, not the tuning trial itself


def test_each_learning_rate_keeps_its_own_budget_when_only_momentum_is_tuned(catalogue: Any) -> None:
    _, _, tuning = tuned_grid(catalogue, task="moons", activation="relu", optimizer="momentum", lr="0.1,0.01",
                              tune="momentum", budget=2)
    per_config: dict[str, list[float]] = {}
    for trial in tuning:
        per_config.setdefault(configuration_key(trial), []).append(trial.lr)
    assert sorted(sorted(set(rates)) for rates in per_config.values()) == [[0.01], [0.1]]
    assert all(len(rates) == 2 for rates in per_config.values())
