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
    final_trials,
    role_of,
    search_points,
    select_best,
    tuning_key,
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
        per_config[tuning_key(trial)] = per_config.get(tuning_key(trial), 0) + 1
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
        per_config.setdefault(tuning_key(trial), []).append(trial.lr)
    assert sorted(sorted(set(rates)) for rates in per_config.values()) == [[0.01], [0.1]]
    assert all(len(rates) == 2 for rates in per_config.values())


@pytest.mark.parametrize(("search", "budget", "expected"), [
    (SearchRange(1e-3, 1e-1), 1, [1e-2]),  # one point: the middle on the range's (log) scale
    (SearchRange(0.2, 0.8, log=False), 1, [0.5]),
    (SearchRange(1e-3, 1e-1), 3, [1e-3, 1e-2, 1e-1]),
    (SearchRange(0.2, 0.8, log=False), 4, [0.2, 0.4, 0.6, 0.8]),
])
def test_one_name_is_searched_on_an_even_grid_of_its_scale(search: SearchRange, budget: int,
                                                           expected: list[float]) -> None:
    points = search_points({"lr": search}, budget, "any")
    assert [p["lr"] for p in points] == pytest.approx(expected)
    assert all(isinstance(p["lr"], float) for p in points)
    assert search_points({}, 4, "any") == []


def test_random_search_draws_log_ranges_on_a_log_scale() -> None:
    space = {"lr": SearchRange(1e-6, 1.0), "momentum": SearchRange(0.1, 0.3, log=False)}
    points = search_points(space, 400, "scale")
    assert len(points) == 400 and all(set(p) == {"lr", "momentum"} for p in points)
    below = sum(p["lr"] < 1e-3 for p in points) / len(points)
    assert 0.35 < below < 0.65  # half the log range lies below 1e-3; a linear draw would put ~0.1% there
    assert all(1e-6 <= p["lr"] <= 1.0 and 0.1 <= p["momentum"] <= 0.3 for p in points)
    assert 0.35 < sum(p["momentum"] < 0.2 for p in points) / len(points) < 0.65


def test_tuning_trials_record_their_protocol(catalogue: Any) -> None:
    grid, defaults, tuning = tuned_grid(catalogue, task="moons", activation="relu", optimizer="momentum",
                                        tune="lr,momentum", budget=3)
    assert len(defaults) == 3 and len(tuning) == 3  # seeds 1 and 2 of the defaults add no tuning trials
    space = catalogue.optimizers.get("momentum").tunable
    for index, trial in enumerate(tuning):
        role = trial.params["tuning"]
        assert role == {"role": "tune", "budget": 3, "index": index, "tuned": ["lr", "momentum"],
                        "space": {k: [r.low, r.high, "log" if r.log else "linear"]
                                  for k, r in space.items() if k in ("lr", "momentum")}}
        assert trial.seed == 0 and trial.lr == pytest.approx(search_points(
            {k: space[k] for k in ("lr", "momentum")}, 3, tuning_key(defaults[0]))[index]["lr"])
        assert trial.params["optimizer"]["momentum"] != defaults[0].params["optimizer"].get("momentum")
        assert {k: v for k, v in trial.params.items() if k not in ("tuning", "optimizer")} == {
            k: v for k, v in defaults[0].params.items() if k != "optimizer"}
    finals = final_trials(tuning[1], 2)
    assert [t.params["tuning"]["budget"] for t in finals] == [3, 3]
    assert finals[0].params["tuning"]["tuned"] == ["lr", "momentum"]
    assert finals[0].params["tuning"]["space"] == tuning[1].params["tuning"]["space"]
    assert "index" not in finals[0].params["tuning"]
    assert tuning_key(finals[0]) == tuning_key(tuning[0])


def test_the_tuning_key_ignores_only_the_seed_and_the_tuned_values(catalogue: Any) -> None:
    import dataclasses

    _, defaults, tuning = tuned_grid(catalogue, task="moons", activation="relu", optimizer="momentum",
                                     tune="momentum", budget=2)
    key = tuning_key(tuning[0])
    assert tuning_key(tuning[1]) == key  # different tuned momentum
    assert tuning_key(dataclasses.replace(tuning[0], seed=2)) == key
    assert tuning_key(dataclasses.replace(tuning[0], lr=tuning[0].lr * 2)) != key  # lr is not tuned here
    other = dict(tuning[0].params["optimizer"], dampening=0.5)
    assert tuning_key(dataclasses.replace(tuning[0], params={**tuning[0].params, "optimizer": other})) != key
    assert tuning_key(dataclasses.replace(tuning[0], epochs=7)) != key


def test_only_optimizers_of_the_grid_count_as_tunable(catalogue: Any) -> None:
    grid = build_grid(None, task="moons", arch="fnn", activation="relu", optimizer="adam,momentum", seeds=1,
                      epochs=1, tune="betas", budget=2)
    with pytest.raises(GridError, match="no optimizer of the grid declares 'betas' as tunable; tunable here: "
                                        "lr, momentum$"):
        check_tunable(grid, catalogue)


def test_one_seed_still_gets_its_tuning_and_keeps_the_untuned_hyper_parameters(catalogue: Any) -> None:
    _, defaults, tuning = tuned_grid(catalogue, task="moons", activation="relu", optimizer="momentum", seeds=1,
                                     budget=3)
    assert len(defaults) == 1 and len(tuning) == 3
    kept = defaults[0].params["optimizer"]
    assert kept and all(t.params["optimizer"] == kept for t in tuning)  # only the learning rate was tuned
    assert all(t.params["optimizer"] == kept for t in final_trials(tuning[0], 1))
