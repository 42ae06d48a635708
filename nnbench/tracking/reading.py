"""Tracked runs read from a store (``nnbench export --to``) or made from a live run's results (the lifecycle
hooks), in the one shape trackers receive."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nnbench.contract.trial import TRIAL_AXES, Trial, TrialResult
from nnbench.tracking.records import TrackedRun, TrackedTrial, from_result, tracked_trial
from nnbench.tracking.seed_groups import seed_groups

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.storage.store import ResultStore


def from_store(store: ResultStore, run_ids: Sequence[str]) -> list[TrackedRun]:
    """The runs ``run_ids`` of ``store``, each with every trial it covers (trained or reused) and its seed
    groups; each trial with the environment of the run that trained it."""
    environments = {run.run_id: _json(run.environment) for run in store.runs().itertuples()}
    defaults = store.kind_defaults()
    tracked = []
    for run in store.runs(run_ids).itertuples():
        curves = _curves(store.epochs([run.run_id]))
        members = []
        for row in store.trials([run.run_id]).to_dict("records"):
            trained_in = str(row["run_id"])
            # a row whose fields do not give its id back (changed by hand) is still shown under its own id
            members.append(tracked_trial(
                stored_trial(row, defaults), str(row["status"]), _text(row.get("metric_name")) or "", row,
                curves.get(str(row["trial_id"]), []), trained_in, environments.get(trained_in, {}),
                _text(row.get("error")), trial_id=str(row["trial_id"])))
        tracked.append(TrackedRun(run.run_id, str(run.status), _text(run.started_at), _text(run.finished_at),
                                  _json(run.grid), environments.get(run.run_id, {}), tuple(members),
                                  tuple(seed_groups(members))))
    return tracked


def live_run(run_id: str, status: str, results: Sequence[TrialResult], environment: Mapping[str, Any],
             started_at: str | None = None, finished_at: str | None = None) -> TrackedRun:
    """A run as its lifecycle hooks saw it: the trials it trained in this invocation and their seed groups."""
    trials = live_trials(run_id, results, environment)
    return TrackedRun(run_id, status, started_at, finished_at, {}, dict(environment), trials,
                      tuple(seed_groups(trials)))


def live_trials(run_id: str, results: Sequence[TrialResult],
                environment: Mapping[str, Any]) -> tuple[TrackedTrial, ...]:
    """``results`` as trackers show them; a trial trained twice in the run (a retry) counts once, as stored last."""
    latest = {result.trial.trial_id: result for result in results}
    return tuple(from_result(result, run_id, environment) for result in latest.values())


def stored_trial(row: Mapping[str, Any], kind_defaults: Mapping[str, Any]) -> Trial:
    """The trial a row of the store's ``trials`` table was stored from: numbers typed back by their axis
    (a DataFrame holds integers with gaps as floats), NULL read as ``None``, and a plugin kind's column at its
    default read as no component."""
    fields: dict[str, Any] = {}
    for ax in TRIAL_AXES:
        value = row.get(ax.name)
        if value is None or (isinstance(value, float) and math.isnan(value)):
            fields[ax.name] = None
        else:
            fields[ax.name] = ax.value_type(value)
    params = json.loads(_text(row.get("params")) or "{}")
    components = {name: str(row[name]) for name, default in kind_defaults.items()
                  if isinstance(row.get(name), str) and row[name] != default}
    return Trial(**fields, params=params, components=components)


def _curves(epochs: pd.DataFrame) -> dict[str, list[dict[str, Any]]]:
    curves: dict[str, list[dict[str, Any]]] = {}
    for record in epochs.to_dict("records"):
        curves.setdefault(str(record["trial_id"]), []).append(record)
    return curves


def _json(text: Any) -> dict[str, Any]:
    try:
        value = json.loads(text) if isinstance(text, str) else {}
    except ValueError:
        return {}
    return value if isinstance(value, dict) else {}


def _text(value: Any) -> str | None:
    """A text column's value, ``None`` for NULL (which a DataFrame may hold as NaN)."""
    return value if isinstance(value, str) else None
