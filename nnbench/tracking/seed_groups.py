"""Seed groups: the trials of one configuration that differ only in their seed, with the mean, the interval
and n of every metric, final and per epoch.

The interval is the analysis's interval of a mean, asked for in one place (:func:`interval`), so that the
trackers show what the report shows, and change with it.
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nnbench.analysis import frames
from nnbench.tracking.records import CURVE_METRICS, FINAL_METRICS, TrackedTrial, digest

GROUP_METRICS = tuple(m for m in FINAL_METRICS if m not in ("n_params", "epochs_run"))
"""The final numbers a seed group summarizes (the size of a model and the epochs a trial ran are not
measurements of it)."""
COUNTED = "ok"
"""Only trials that finished ``ok`` count towards a group's numbers, as in the report."""
FINAL = 0  # the "epoch" under which a final number is summarized


@dataclass(frozen=True)
class Interval:
    """The mean of ``n`` values with their standard deviation and the interval of the mean (``low`` and
    ``high`` are ``None`` where ``n < 2``, ``std`` too)."""

    mean: float
    std: float | None
    low: float | None
    high: float | None
    n: int


@dataclass(frozen=True)
class SeedGroup:
    """One configuration over its seeds.

    :param key: the configuration key (the trial without its seed), as the trials' ``group`` gives it.
    :param label: the configuration's short name; ``task`` its task.
    :param axes: the axes of its trials, the seed left out.
    :param params: their hyper-parameters, flattened.
    :param members: the ids of its trials, in seed order; ``seeds`` their seeds.
    :param statuses: how many of its trials ended with each status.
    :param metrics: each final number (:data:`GROUP_METRICS`) over the trials that finished ``ok``.
    :param curve: each per-epoch number (:data:`~nnbench.tracking.records.CURVE_METRICS`) as
        ``(epoch, interval)`` pairs.
    """

    key: str
    task: str
    label: str
    axes: Mapping[str, Any]
    params: Mapping[str, Any]
    members: tuple[str, ...]
    seeds: tuple[int, ...]
    statuses: Mapping[str, int]
    metric_name: str
    metrics: Mapping[str, Interval]
    curve: Mapping[str, tuple[tuple[int, Interval], ...]]
    fingerprint: str


def interval(summary: pd.DataFrame) -> tuple[pd.Series, pd.Series]:
    """The interval of each mean of ``summary`` (columns ``mean``, ``std``, ``n``): the one place the trackers
    ask the analysis for it."""
    return frames.t_interval(summary["mean"], summary["std"], summary["n"])


def seed_groups(trials: Sequence[TrackedTrial]) -> list[SeedGroup]:
    """The seed groups of ``trials`` (tuning trials belong to none), in the order their first trial comes."""
    grouped: dict[str, list[TrackedTrial]] = {}
    for trial in trials:
        if trial.group is not None:
            grouped.setdefault(trial.group, []).append(trial)
    summaries = _summaries(grouped)
    groups = []
    for key, members in grouped.items():
        members = sorted(members, key=lambda t: t.seed)
        first = members[0]
        statuses: dict[str, int] = {}
        for member in members:
            statuses[member.status] = statuses.get(member.status, 0) + 1
        found = summaries.get(key, {})
        metrics = {name: found[(name, FINAL)] for name in GROUP_METRICS if (name, FINAL) in found}
        curve = {name: tuple((epoch, value) for (quantity, epoch), value in sorted(found.items(), key=_by_epoch)
                             if quantity == f"epoch/{name}") for name in CURVE_METRICS}
        groups.append(SeedGroup(
            key=key, task=first.task, label=first.label, axes={k: v for k, v in first.axes.items() if k != "seed"},
            params=first.params, members=tuple(m.trial_id for m in members), seeds=tuple(m.seed for m in members),
            statuses=statuses, metric_name=first.metric_name, metrics=metrics,
            curve={name: points for name, points in curve.items() if points},
            fingerprint=digest(sorted(m.fingerprint for m in members))))
    return groups


def _by_epoch(item: tuple[tuple[str, int], Interval]) -> tuple[str, int]:
    return item[0]


def _summaries(grouped: Mapping[str, Sequence[TrackedTrial]]) -> dict[str, dict[tuple[str, int], Interval]]:
    """Every group's intervals at once: group -> (quantity, epoch) -> interval."""
    rows = []
    for key, members in grouped.items():
        for trial in members:
            if trial.status != COUNTED:
                continue
            rows += [(key, name, FINAL, trial.metrics[name]) for name in GROUP_METRICS if name in trial.metrics]
            rows += [(key, f"epoch/{name}", int(epoch["epoch"]), epoch[name])
                     for epoch in trial.curve for name in CURVE_METRICS if name in epoch]
    if not rows:
        return {}
    values = pd.DataFrame(rows, columns=["group", "quantity", "epoch", "value"])
    summary = values.groupby(["group", "quantity", "epoch"], sort=False)["value"].agg(["mean", "std", "count"])
    summary = summary.rename(columns={"count": "n"}).reset_index()
    summary["low"], summary["high"] = interval(summary)
    found: dict[str, dict[tuple[str, int], Interval]] = {}
    for row in summary.itertuples(index=False):
        found.setdefault(str(row.group), {})[(str(row.quantity), int(row.epoch))] = Interval(
            float(row.mean), _number(row.std), _number(row.low), _number(row.high), int(row.n))
    return found


def _number(value: Any) -> float | None:
    return None if value is None or not math.isfinite(float(value)) else float(value)
