"""Versions of a component's code as levels of a comparison of their own.

A trial records the code of each component that is not built in (``params["code"]``: an installed
plugin's distribution and version, or ``source:`` and a hash of a session object's source). When the
reported runs trained one component under two or more codes (a notebook's ``cnn`` edited between two
runs), its versions are named ``cnn v1``, ``cnn v2`` in the order they were first trained (or by a name
the user gives, for a run or a code), and:

- the leaderboard keeps them apart (the ``version`` column);
- the component's own axis compares its latest version with the other levels (``cnn v2`` against
  ``gru``), the older versions left out, so the axis keeps its verdicts;
- every other axis holds the versions fixed, like any other setting;
- the versions are compared with each other, everything else held fixed (:func:`version_frames`).
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping
from dataclasses import dataclass
from typing import Any

import pandas as pd

VersionNames = Mapping[str, str]
"""Names for versions, by run id (a unique prefix is enough) or by code (a prefix of its hash)."""
COLUMNS = ["axis", "component", "code", "label", "short", "runs", "first_trained", "trials"]


def trial_codes(trials: pd.DataFrame) -> list[dict[str, str]]:
    """Per trial (in order), the code it recorded for each axis whose component is not built in."""
    if "params" not in trials.columns:
        return [{} for _ in range(len(trials))]
    out = []
    for params in trials["params"]:
        data = json.loads(params) if isinstance(params, str) else params if isinstance(params, dict) else {}
        out.append({str(axis): str(code) for axis, code in (data.get("code") or {}).items()})
    return out


def short_code(code: str) -> str:
    """The code as a reader recognises it: the first 7 characters of a source hash, or the plugin's version."""
    kind, sep, digest = code.partition(":")
    return f"{kind}:{digest[:7]}" if sep and kind in ("source", "pickle") else code


def version_table(trials: pd.DataFrame, names: VersionNames | None = None) -> pd.DataFrame:
    """One row per version of every component trained under two or more codes (:data:`COLUMNS`): its
    axis, component, code, ``label`` (``cnn v1``, or ``cnn`` and the name given for one of its runs or its
    code), short code, the runs that trained it, when it first finished and its number of trials."""
    if trials.empty:
        return pd.DataFrame(columns=COLUMNS)
    seen: dict[tuple[str, str, str], dict[str, Any]] = {}
    runs = trials["run_id"].astype(str).tolist() if "run_id" in trials.columns else [""] * len(trials)
    finished = trials["finished_at"].tolist() if "finished_at" in trials.columns else [None] * len(trials)
    codes_of = trial_codes(trials)
    named = {axis for codes in codes_of for axis in codes if axis in trials.columns}
    columns = {axis: trials[axis].astype(str).tolist() for axis in named}
    for position, codes in enumerate(codes_of):
        for axis, code in codes.items():
            if axis not in columns:
                continue
            component = columns[axis][position]
            entry = seen.setdefault((axis, component, code),
                                    {"runs": [], "first": None, "trials": 0, "order": position})
            entry["trials"] += 1
            if runs[position] and runs[position] not in entry["runs"]:
                entry["runs"].append(runs[position])
            when = finished[position]
            when = None if when is None or pd.isna(when) else str(when)  # a trial not finished: no time
            if when is not None and (entry["first"] is None or when < entry["first"]):
                entry["first"] = when
    rows = []
    for (axis, component), group in _grouped(seen).items():
        if len(group) < 2:
            continue
        # First trained first; a version never finished sorts by where it appears.
        ordered = sorted(group, key=lambda item: (item[1]["first"] is None, item[1]["first"] or "", item[1]["order"]))
        for number, (code, entry) in enumerate(ordered, start=1):
            given = _given_name(names or {}, code, entry["runs"])
            rows.append({"axis": axis, "component": component, "code": code,
                         "label": f"{component} {given}" if given else f"{component} v{number}",
                         "short": short_code(code), "runs": ", ".join(sorted(entry["runs"])),
                         "first_trained": entry["first"], "trials": entry["trials"]})
    return pd.DataFrame(rows, columns=COLUMNS)


Entry = dict[str, Any]


def _grouped(seen: dict[tuple[str, str, str], Entry]) -> dict[tuple[str, str], list[tuple[str, Entry]]]:
    groups: dict[tuple[str, str], list[tuple[str, Entry]]] = {}
    for (axis, component, code), entry in seen.items():
        groups.setdefault((axis, component), []).append((code, entry))
    return groups


def _given_name(names: VersionNames, code: str, runs: list[str]) -> str:
    """The name the user gave this version: by a prefix of its code's hash (or the whole code), else by a
    prefix of a run that trained it."""
    digest = code.partition(":")[2] or code
    for key, name in names.items():
        if key and (code == key or digest.startswith(key) or code.startswith(key)):
            return str(name)
    for key, name in names.items():
        if key and any(run.startswith(key) for run in runs):
            return str(name)
    return ""


def _lookup(table: pd.DataFrame) -> dict[tuple[str, str, str], str]:
    return {(row.axis, row.component, row.code): row.label for row in table.itertuples(index=False)}


def version_labels(trials: pd.DataFrame, table: pd.DataFrame, exclude: tuple[str, ...] = ()) -> pd.Series:
    """Per trial, the labels of its components' versions (``cnn v2``; several joined by ``, ``), leaving out
    the axes in ``exclude``; ``""`` for a trial none of whose components has several versions."""
    if table.empty:
        return pd.Series("", index=trials.index, dtype=object)
    labels = _lookup(table)
    columns = {axis: trials[axis].astype(str).tolist() for axis in set(table["axis"]) if axis in trials.columns}
    out = []
    for position, codes in enumerate(trial_codes(trials)):
        parts = [labels[key] for axis, code in sorted(codes.items()) if axis not in exclude and axis in columns
                 and (key := (axis, columns[axis][position], code)) in labels]
        out.append(", ".join(parts))
    return pd.Series(out, index=trials.index, dtype=object)


def for_axis(trials: pd.DataFrame, axis: str, table: pd.DataFrame) -> pd.DataFrame:
    """``trials`` as the comparison of ``axis`` reads them: a component of ``axis`` with several versions
    is its latest (by first training), named as such (``cnn v2``), its older versions left out; the
    versions of other axes' components stay a setting held fixed (the ``version`` column)."""
    mine = table[table["axis"] == axis]
    if mine.empty or axis not in trials.columns:
        return trials
    latest = {component: group.iloc[-1] for component, group in mine.groupby("component", sort=False)}
    keep, levels = [], []
    components = trials[axis].tolist()
    for codes, component in zip(trial_codes(trials), components, strict=True):
        version = latest.get(str(component))
        keep.append(version is None or codes.get(axis) == version["code"])
        levels.append(version["label"] if version is not None else component)
    kept = trials.assign(**{axis: levels})[keep]
    return kept.assign(version=version_labels(kept, table, exclude=(axis,)))


@dataclass(frozen=True)
class VersionComparison:
    """The trials of one component with several versions, ready to compare: ``frame``'s ``version``
    column holds the levels (its version labels), and the versions of other components are part of the
    setting held fixed (in ``variant``). ``key`` names the comparison in anchors, ``label`` in words;
    ``titles`` give each level's code and runs (shown on hover)."""

    key: str
    label: str
    frame: pd.DataFrame
    titles: dict[str, str]


def version_frames(trials: pd.DataFrame, table: pd.DataFrame) -> list[VersionComparison]:
    """A :class:`VersionComparison` for every component with several versions in ``trials``."""
    out = []
    for (axis, component), group in table.groupby(["axis", "component"], sort=False):
        if axis not in trials.columns:
            continue
        own = trials[trials[axis].astype(str) == component]
        if own.empty:
            continue
        others = table[~((table["axis"] == axis) & (table["component"] == component))]
        setting = version_labels(own, others)
        variant = own["variant"].astype(str) if "variant" in own.columns else pd.Series("", index=own.index)
        variant = [", ".join(part for part in (v, s) if part) for v, s in zip(variant, setting, strict=True)]
        mine = version_labels(own, group)
        frame = own.assign(version=mine, variant=variant)
        titles = titles_of(group)
        key = re.sub(r"[^A-Za-z0-9_.-]+", "-", f"version-{axis}-{component}")  # an id in the page
        out.append(VersionComparison(key, f"{component} versions", frame[frame["version"] != ""], titles))
    return out


def titles_of(table: pd.DataFrame) -> dict[str, str]:
    """Hover text per version label: its code and the runs that trained it."""
    return {row.label: f"{row.code} (runs: {row.runs or 'unknown'})" for row in table.itertuples(index=False)}
