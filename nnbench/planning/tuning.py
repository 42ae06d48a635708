"""The tuning protocol: equal budgets, selection on validation data, reruns over seeds.

For every configuration of the grid (all axes but the seed), ``--tune lr --budget N`` trains N
tuning trials at seed 0 over the range each optimizer declares (a log-uniform grid when one
hyper-parameter is tuned, a seeded random search when several are), picks the setting with the
best *validation* metric, and reruns it over the grid's seeds as the configuration's tuned result.
The untuned defaults are trained over the same seeds, so the report can show both. Test data
never take part in the selection: :func:`select_best` reads validation metrics only.
"""

from __future__ import annotations

import dataclasses
import hashlib
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np

from nnbench.contract.specs import SearchRange
from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import Catalogue
from nnbench.planning.grid import GridError, GridSpec

TUNE_SEED = 0


def check_tunable(grid: GridSpec, catalogue: Catalogue) -> None:
    """Every name in ``--tune`` must be tunable by at least one optimizer of the grid."""
    for name in grid.tune:
        owners = [o for o in grid["optimizer"] if name in catalogue.optimizers.get(o).tunable]
        if not owners:
            declared = sorted({k for o in grid["optimizer"] for k in catalogue.optimizers.get(o).tunable})
            raise GridError(f"no optimizer of the grid declares {name!r} as tunable; tunable here: "
                            f"{', '.join(declared)}")


def search_points(space: Mapping[str, SearchRange], budget: int, seed_text: str) -> list[dict[str, float]]:
    """``budget`` settings: evenly spaced (on the range's scale) for one name, seeded random for several."""
    if not space:
        return []
    if len(space) == 1:
        (name, rng_range), = space.items()
        if budget == 1:
            points = [math.sqrt(rng_range.low * rng_range.high) if rng_range.log
                      else (rng_range.low + rng_range.high) / 2]
        elif rng_range.log:
            points = list(np.geomspace(rng_range.low, rng_range.high, budget))
        else:
            points = list(np.linspace(rng_range.low, rng_range.high, budget))
        return [{name: float(p)} for p in points]
    seed = int.from_bytes(hashlib.sha256(seed_text.encode()).digest()[:8], "little")
    rng = np.random.default_rng(seed)
    settings = []
    for _ in range(budget):
        setting = {}
        for name, r in sorted(space.items()):
            if r.log:
                setting[name] = float(math.exp(rng.uniform(math.log(r.low), math.log(r.high))))
            else:
                setting[name] = float(rng.uniform(r.low, r.high))
        settings.append(setting)
    return settings


def _with_setting(base: Trial, setting: Mapping[str, float], tuning: dict[str, Any], seed: int) -> Trial:
    optimizer_params = {**base.params.get("optimizer", {}), **{k: v for k, v in setting.items() if k != "lr"}}
    params = {**base.params, "optimizer": optimizer_params, "tuning": tuning}
    return dataclasses.replace(base, lr=float(setting.get("lr", base.lr)), seed=seed, params=params)


def tuning_key(trial: Trial) -> str:
    """Identifies the configuration a tuning budget is spent on: the trial without its seed, tuned values and
    role (the learning rate counts unless it is tuned, so each ``--lr`` value keeps its own budget). Without
    tuning, a configuration is :attr:`Trial.configuration_key`."""
    config = trial.config()
    tuned = set(trial.params.get("tuning", {}).get("tuned", []))
    config["seed"] = 0
    if "lr" in tuned:
        config["lr"] = 0.0
    optimizer = {k: v for k, v in config["params"].get("optimizer", {}).items() if k not in tuned}
    config["params"] = {**{k: v for k, v in config["params"].items() if k != "tuning"}, "optimizer": optimizer}
    return Trial.from_config(config).trial_id


def tuning_trials(defaults: Sequence[Trial], grid: GridSpec, catalogue: Catalogue) -> list[Trial]:
    """The budget's tuning trials of every configuration among ``defaults`` (seed 0 of each)."""
    trials = []
    for base in defaults:
        if base.seed != 0:
            continue
        optimizer = catalogue.optimizers.get(base.optimizer)
        space = {name: optimizer.tunable[name] for name in grid.tune if name in optimizer.tunable}
        budget = int(grid.budget or 0)
        for index, setting in enumerate(search_points(space, budget, tuning_key(base))):
            role = {"role": "tune", "budget": budget, "index": index, "tuned": sorted(space),
                    "space": {k: [r.low, r.high, "log" if r.log else "linear"] for k, r in space.items()}}
            trials.append(_with_setting(base, setting, role, TUNE_SEED))
    return trials


def select_best(candidates: Sequence[tuple[Trial, str, float | None]], higher_is_better: bool) -> Trial | None:
    """The tuning trial with the best validation metric among those that finished ``ok``.

    ``candidates`` are ``(trial, status, val_metric)``: the selection is given no test metric at
    all, so it cannot use one.
    """
    usable = [(t, v) for t, status, v in candidates if status == "ok" and v is not None and math.isfinite(v)]
    if not usable:
        return None
    best = max(usable, key=lambda tv: tv[1]) if higher_is_better else min(usable, key=lambda tv: tv[1])
    return best[0]


def final_trials(best: Trial, seeds: int) -> list[Trial]:
    """The selected setting rerun over ``seeds`` seeds, marked as the configuration's tuned result."""
    tuning = dict(best.params["tuning"])
    role = {"role": "final", "budget": tuning["budget"], "tuned": tuning["tuned"], "space": tuning["space"],
            "selected_from": best.trial_id}
    setting = {"lr": best.lr, **{k: best.params["optimizer"][k] for k in tuning["tuned"] if k != "lr"}}
    return [_with_setting(best, setting, role, seed) for seed in range(seeds)]


def role_of(trial: Trial) -> str:
    """``default``, ``tune`` or ``final``."""
    return str(trial.params.get("tuning", {}).get("role", "default"))
