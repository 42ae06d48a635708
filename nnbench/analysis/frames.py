"""Tidy frames, aggregates, confidence intervals and matched blocks of stored results.

Pure pandas and scipy: no plotting, no torch. Every function takes the frames that
:class:`nnbench.storage.store.ResultStore` returns (``trials``, ``epochs``, ``runs``, ``skipped``) and returns
a DataFrame that the report renders as is (the comparisons between levels are in :mod:`nnbench.analysis.pairwise`).
Only ``ok`` trials count towards a metric; the others appear in :func:`failures`.
"""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from typing import Any

import numpy as np
import pandas as pd
from scipy import stats

from nnbench.analysis import versions
from nnbench.analysis.versions import VersionNames
from nnbench.contract import metrics
from nnbench.contract.axes import UNSET, YOURS, marked_yours
from nnbench.contract.trial import TRIAL_AXES
from nnbench.storage.store import TRIAL_COLUMNS

CORE_CONFIG_AXES = [ax.name for ax in TRIAL_AXES if ax.role == "config"]
"""The core axes that, with the task, identify a configuration (its trials differ only in the seed)."""
DERIVED_AXES = ["protocol", "variant", "version"]
"""Axes the analysis derives: ``protocol`` keeps a tuned configuration apart from its untuned default;
``variant`` names the hyper-parameters (``arch.hidden=[4]``) in which otherwise equal configurations differ;
``version`` the versions of components whose code changed between the reported runs (``cnn v2``, see
:mod:`nnbench.analysis.versions`)."""
CORE_EFFECT_AXES = [ax.name for ax in sorted((ax for ax in TRIAL_AXES if ax.effect), key=lambda ax: ax.effect)]
"""The core axes whose effect on the task metric the report shows and tests, in that order."""
LABEL_AXES = ["arch", "activation", "loss", "optimizer", "lr"]
"""The axes that name a configuration, in the order ``nnbench run`` prints them."""
ANALYSIS_COLUMNS = frozenset({
    "budget", "config", "difference", "epoch", "epoch_time", "example", "failed", "fraction", "lr_key", "ok",
    "ok_metric", "reached", "reason", "score", "selected", "space", "target", "time", "tuned", "tuned_better",
    "tuning_time", "tuning_trials", "values", "label", "rank", "mean", "std", "ci_low", "ci_high", "seeds", "trials",
    "median_time", "median_epoch", "metric_rank", "level", "configuration", "side", "iqm"})
"""Columns the analysis adds to frames of trials: never axes."""
KNOWN_COLUMNS = frozenset(TRIAL_COLUMNS) | set(DERIVED_AXES) | ANALYSIS_COLUMNS
AXIS_DEFAULTS: dict[str, object] = {**{ax.name: ax.neutral if ax.neutral is not UNSET else next(iter(ax.default), None)
                                       for ax in TRIAL_AXES if ax.role == "config"},
                                    "protocol": "default", "variant": "", "version": ""}
"""What an axis reads when a frame lacks it (a store from before the axis existed)."""
NULLABLE_AXES = [ax.name for ax in TRIAL_AXES if ax.nullable]
"""Axes whose NULL reads ``none`` (no clipping, no early stopping)."""


def kind_axes(frame: pd.DataFrame) -> list[str]:
    """The columns of ``frame`` that hold the axes of kinds a plugin declared (``initializer``, ``norm``):
    the store gives each its own column, and the analysis knows every other column."""
    return [c for c in frame.columns if c not in KNOWN_COLUMNS]


def config_axes(frame: pd.DataFrame) -> list[str]:
    """The columns that, with the task, identify a configuration of ``frame``'s trials."""
    return [*CORE_CONFIG_AXES, *kind_axes(frame), *DERIVED_AXES]


def effect_axes(frame: pd.DataFrame) -> list[str]:
    """The axes whose effect the report shows and tests: the core ones, then the plugins' kinds, then
    the protocol (tuned against default)."""
    return [*CORE_EFFECT_AXES, *kind_axes(frame), "protocol"]
NONE_LEVEL = "none"
STATUS_ORDER = {"ok": 0, "diverged": 1, "failed": 2, "timeout": 3, "pruned": 4}


def higher_is_better(metric_name: object) -> bool:
    """Whether a larger value of ``metric_name`` is better (accuracy, R²) or worse (RMSE), as the table of
    metrics (:data:`nnbench.contract.metrics.METRICS`) says; a missing name (a group of trials none of
    which finished) reads as higher-is-better, having nothing to rank."""
    if metric_name is None or metric_name == "" or (isinstance(metric_name, float) and math.isnan(metric_name)):
        return True
    return metrics.higher_is_better(str(metric_name))


def t_interval(mean: pd.Series, std: pd.Series, n: pd.Series, level: float = 0.95) -> tuple[pd.Series, pd.Series]:
    """Two-sided t-distribution confidence interval of a mean; NaN where ``n < 2``."""
    n = n.astype(float).where(n >= 2)
    half = stats.t.ppf(0.5 + level / 2, n - 1) * std / np.sqrt(n)
    return mean - half, mean + half


def format_level(axis: str, value: object) -> str:
    """How a level of ``axis`` is written in tables and on plot axes (``0.001``, not ``0.0010000``;
    ``none`` for a missing clipping limit or patience)."""
    if value is None or (isinstance(value, float) and np.isnan(value)):
        return NONE_LEVEL
    if isinstance(value, float) or (axis == "lr" and isinstance(value, int)):
        return f"{value:g}"
    return str(value)


def _flat_params(params: object) -> tuple[dict[str, str], str]:
    """A trial's hyper-parameters as ``{"arch.hidden": "[4]"}`` (tuned values left out: they are the
    tuning's result, not part of the configuration) and its CSV target, if any."""
    data = json.loads(params) if isinstance(params, str) else {}
    tuned = set((data.get("tuning") or {}).get("tuned", []))
    flat = {f"{kind}.{name}": json.dumps(value, sort_keys=True)
            for kind, values in data.items() if kind not in ("tuning", "code") and isinstance(values, dict)
            for name, value in values.items() if not (kind == "optimizer" and name in tuned)}
    return flat, str(data.get("task", {}).get("target") or "")


def with_variants(trials: pd.DataFrame, version_names: VersionNames | None = None) -> pd.DataFrame:
    """Add ``variant``: the stored hyper-parameters that differ between trials of the frame, so
    runs with different overrides are never averaged together; ``version``: the versions of components
    whose code changed between runs (``cnn v2``; ``version_names`` names them by run or code); a CSV
    task's name gains its target."""
    if "variant" in trials.columns or "params" not in trials.columns or trials.empty:
        return trials
    trials = mark_yours(trials)
    parsed = [_flat_params(p) for p in trials["params"]]
    # A value varies when trials of the same component disagree on it: an fnn's `hidden` and a
    # cnn's `channels` are part of what fnn and cnn are, not variants of either.
    # Hyper-parameters are stored under their axis ("arch", "norm"): the axis's column names the owner.
    values: dict[tuple[str, object], set[str | None]] = {}
    all_keys = {key for flat, _ in parsed for key in flat}
    for (flat, _), row in zip(parsed, trials.itertuples(index=False), strict=True):
        for key in all_keys:
            column = key.split(".", 1)[0]
            owner = getattr(row, column) if column in trials.columns else None
            values.setdefault((key, owner), set()).add(flat.get(key))
    keys = sorted({key for (key, _), seen in values.items() if len(seen) > 1})
    variant = [", ".join(f"{k}={flat[k]}" for k in keys if k in flat) for flat, _ in parsed]
    task = [f"{name} → {target}" if target else name for name, (_, target) in zip(trials["task"], parsed, strict=True)]
    # Code is not a variant: a component's versions are levels of a comparison of their own.
    version = versions.version_labels(trials, versions.version_table(trials, version_names))
    return trials.assign(variant=variant, task=task, version=version)


def mark_yours(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with ``(yours)`` after each component the user gave under a name another component has
    (its code identity says so), so that it is never read as, or averaged with, the component of that name."""
    codes = [(json.loads(p) if isinstance(p, str) else {}).get("code") or {} for p in trials["params"]]
    marked = {axis for code in codes for axis, version in code.items()
              if str(version).endswith(YOURS) and axis in trials.columns}
    if not marked:
        return trials
    return trials.assign(**{axis: [marked_yours({axis: value}, code)[axis]
                                   for value, code in zip(trials[axis], codes, strict=True)] for axis in marked})


def code_versions(trials: pd.DataFrame) -> pd.DataFrame:
    """The code of every component that is not built in, as its trials recorded it: one row per axis,
    component and code (an installed plugin's ``distribution version``, or ``source:`` and a hash of
    the source of a component defined in a session), with its number of trials, the runs that trained
    them and when the last one finished. Empty when every component is built in."""
    columns = ["axis", "component", "code", "trials", "runs", "last trained"]
    if trials.empty or "params" not in trials.columns:
        return pd.DataFrame(columns=columns)
    rows: dict[tuple[str, str, str], dict[str, Any]] = {}
    for row in trials.to_dict("records"):
        params = row["params"]
        code = (json.loads(params) if isinstance(params, str) else {}).get("code") or {}
        for axis, version in code.items():
            key = (axis, str(row.get(axis, "")), str(version))
            entry = rows.setdefault(key, {"trials": 0, "runs": set(), "last trained": ""})
            entry["trials"] += 1
            entry["runs"].add(str(row.get("run_id", "")))
            finished = row.get("finished_at")  # missing (None, or NaN in a frame) for a trial not finished
            entry["last trained"] = max(entry["last trained"], str(finished) if pd.notna(finished) else "")
    frame = pd.DataFrame([{"axis": axis, "component": component, "code": code, "trials": entry["trials"],
                           "runs": ", ".join(sorted(entry["runs"])), "last trained": entry["last trained"] or None}
                          for (axis, component, code), entry in rows.items()], columns=columns)
    return frame.sort_values(["axis", "component", "last trained"], ignore_index=True)


def tidy(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` with every configuration axis present and comparable: a frame without an axis
    gets its default (:data:`AXIS_DEFAULTS`), and a missing ``clip`` or ``patience`` reads
    ``none``, so that it groups, merges and pivots as a level of its own."""
    trials = with_variants(trials)
    missing = {axis: AXIS_DEFAULTS[axis] for axis in AXIS_DEFAULTS if axis not in trials.columns}
    nullable = {axis: trials[axis].astype(object).where(trials[axis].notna(), NONE_LEVEL)
                for axis in NULLABLE_AXES if axis in trials.columns and trials[axis].isna().any()}
    return trials.assign(**missing, **nullable) if missing or nullable else trials


def format_p(p_value: float) -> str:
    """``p = 0.031``, or ``p < 0.0001`` rather than a misleading ``p = 0``."""
    return "p < 0.0001" if p_value < 1e-4 else f"p = {p_value:.2g}"


def ok_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials whose metric counts: status ``ok`` with a finite metric."""
    return trials[trials["status"].eq("ok") & np.isfinite(trials["metric"].astype(float))]


def _first_seen(values: pd.Series) -> dict[object, int]:
    """Each value's position of first appearance, to keep tasks in the order they were run."""
    return {value: i for i, value in enumerate(dict.fromkeys(values))}


def summarize(frame: pd.DataFrame, keys: list[str], value: str = "metric") -> pd.DataFrame:
    """Mean, std, count and 95% t-interval of ``value`` per group of ``keys``."""
    out = frame.groupby(keys, sort=False, dropna=False)[value].agg(["mean", "std", "count"]).reset_index()
    out = out.rename(columns={"count": "trials"})
    out["ci_low"], out["ci_high"] = t_interval(out["mean"], out["std"], out["trials"])
    return out


# -- header ----------------------------------------------------------------------------------------


def run_overview(runs: pd.DataFrame) -> pd.DataFrame:
    """One row per run: dates, status, counts and the environment it ran in."""
    rows = []
    for run in runs.itertuples():
        env = json.loads(run.environment)
        devices = env.get("devices") or {}
        rows.append({
            "run": run.run_id, "started": run.started_at, "finished": run.finished_at, "status": run.status,
            "trials": run.n_trials, "skipped": run.n_skipped, "nnbench": env.get("nnbench"),
            "torch": env.get("torch"), "python": env.get("python"), "host": env.get("host"),
            "platform": env.get("platform"), "devices": "; ".join(f"{k}: {v}" for k, v in devices.items()),
            "commit": env.get("git_commit"),
        })
    return pd.DataFrame(rows)


def grid_overview(runs: pd.DataFrame) -> pd.DataFrame:
    """The grid of each run: one row per setting, one column per run."""
    grids = {}
    for run in runs.itertuples():
        grid = json.loads(run.grid)
        grids[run.run_id] = {key: ", ".join(map(str, value)) if isinstance(value, list) else
                             json.dumps(value) if isinstance(value, dict) else str(value)
                             for key, value in grid.items() if value not in ([], {})}
    frame = pd.DataFrame(grids)
    frame.index.name = "setting"
    return frame.reset_index()


def status_counts(trials: pd.DataFrame, skipped: pd.DataFrame) -> pd.DataFrame:
    """How many trials ended in each status, plus the skipped combinations, and their training time."""
    counts = trials.groupby("status").agg(trials=("trial_id", "size"), train_time=("train_time", "sum"))
    counts = counts.reset_index().sort_values("status", key=lambda s: s.map(STATUS_ORDER).fillna(len(STATUS_ORDER)),
                                              kind="stable", ignore_index=True)
    n_skipped = len(skipped.drop_duplicates(["combination", "reason"])) if not skipped.empty else 0
    if n_skipped:
        counts.loc[len(counts)] = {"status": "skipped", "trials": n_skipped, "train_time": 0.0}
    return counts


# -- leaderboard -----------------------------------------------------------------------------------


def grouped_iqm(frame: pd.DataFrame, keys: list[str], value: str) -> pd.Series:
    """Per group of ``keys``: the interquartile mean of the finite ``value``s, the mean of what is left
    after cutting ``int(n / 4)`` values from each end (``scipy.stats.trim_mean(x, 0.25)``, rliable's IQM),
    computed for every group at once."""
    finite = frame[np.isfinite(frame[value].astype(float))]
    ordered = finite.sort_values(value, kind="stable")
    groups = ordered.groupby(keys, dropna=False, sort=False)
    rank, size = groups.cumcount(), groups[value].transform("size")
    cut = (size * 0.25).astype(int)
    middle = ordered[(rank >= cut) & (rank < size - cut)]
    return middle.groupby(keys, dropna=False, sort=False)[value].mean().rename("iqm")


def leaderboard(trials: pd.DataFrame) -> pd.DataFrame:
    """Configurations ranked per task by the task's metric on held-out data.

    ``mean``, ``std``, the interquartile mean ``iqm`` and the 95% t-interval ``ci_low``..``ci_high`` are
    over the seeds that ended ``ok`` (``seeds`` counts them, ``failed`` counts the rest); ``train_time``
    is the mean training time of a trial in seconds. Rank 1 is the best: highest accuracy, lowest RMSE.
    """
    trials = tidy(trials)
    axes = config_axes(trials)
    columns = ["task", "rank", *axes, "metric_name", "mean", "std", "iqm", "ci_low", "ci_high", "seeds",
               "failed", "train_time", "n_params"]
    if trials.empty:
        return pd.DataFrame(columns=columns)
    frame = trials.assign(ok=trials["status"].eq("ok"))
    frame["ok_metric"] = frame["metric"].where(frame["ok"])
    grouped = frame.groupby(["task", *axes], dropna=False, sort=False)
    board = grouped.agg(
        metric_name=("metric_name", "first"),
        mean=("ok_metric", "mean"),
        std=("ok_metric", "std"),
        seeds=("ok", "sum"),
        trials=("ok", "size"),
        train_time=("train_time", "mean"),
        n_params=("n_params", "first"),
    ).reset_index()
    board = board.merge(grouped_iqm(frame.assign(ok_metric=frame["ok_metric"].astype(float)), ["task", *axes],
                                    "ok_metric").reset_index(), on=["task", *axes], how="left")
    board["failed"] = board.pop("trials") - board["seeds"]
    board["ci_low"], board["ci_high"] = t_interval(board["mean"], board["std"], board["seeds"])
    ranked = []
    for _, part in board.groupby("task", sort=False):
        part = part.sort_values("mean", ascending=not higher_is_better(part["metric_name"].iloc[0]),
                                na_position="last", kind="stable")
        part.insert(1, "rank", range(1, len(part) + 1))
        ranked.append(part)
    return pd.concat(ranked, ignore_index=True)[columns]


def varying(frame: pd.DataFrame, axes: Sequence[str] | None = None) -> list[str]:
    """The columns among ``axes`` (default: every configuration axis) that take more than one value in ``frame``."""
    axes = config_axes(frame) if axes is None else axes
    return [axis for axis in axes if axis in frame.columns and frame[axis].nunique(dropna=False) > 1]


def config_labels(frame: pd.DataFrame, axes: list[str]) -> pd.Series:
    """A short name per row from ``axes`` only (``relu / adam``), for legends and tables."""
    axes = axes or ["arch", "activation", "optimizer"]
    parts = [frame[axis].map(lambda v, a=axis: format_level(a, v)) for axis in axes]
    return pd.Series([" / ".join(values) for values in zip(*parts, strict=True)], index=frame.index, dtype=object)


# -- effects and interactions ----------------------------------------------------------------------


def block_keys(trials: pd.DataFrame, axis: str) -> list[str]:
    """The columns held fixed when comparing levels of ``axis``: the task and every other axis.

    An optimizer run at its own default learning rate changes ``lr`` along with it; when no two
    untuned optimizers ever shared a learning rate, the learning rate counts as part of the
    optimizer. A learning rate chosen by tuning always does: tuned optimizers are compared each at
    its own (:func:`blocking_frame`), and a tuned configuration with its untuned default whatever
    the two learning rates are.
    """
    keys = ["task", *(a for a in config_axes(tidy(trials)) if a != axis)]
    if axis == "protocol":
        keys.remove("lr")
    elif axis == "optimizer":
        untuned = tidy(trials)
        if not _varies(untuned[untuned["protocol"].eq("default")], keys, axis):
            keys.remove("lr")
    return keys


def lr_was_tuned(trials: pd.DataFrame) -> pd.Series:
    """Per trial: whether tuning chose its learning rate (a ``tuned`` trial whose params list ``lr``
    among the tuned names)."""
    trials = tidy(trials)
    tuned = trials["protocol"].eq("tuned")
    if "params" not in trials:
        return tuned
    flags = pd.Series(False, index=trials.index)
    flags[tuned] = ["lr" in (json.loads(p).get("tuning") or {}).get("tuned", []) for p in trials.loc[tuned, "params"]]
    return flags


def blocking_frame(trials: pd.DataFrame, axis: str, version_table: pd.DataFrame | None = None) -> pd.DataFrame:
    """``trials`` as blocks see them for ``axis``: a learning rate chosen by tuning reads ``tuned``,
    so tuned configurations that picked different rates still meet in one block (but not for the
    ``lr`` axis itself, whose levels are the rates); a component of ``axis`` whose code changed between
    runs is its latest version (:func:`nnbench.analysis.versions.for_axis`; ``version_table``: the
    versions and their names, read from ``trials`` when not given)."""
    trials = tidy(trials)
    table = versions.version_table(trials) if version_table is None else version_table
    trials = versions.for_axis(trials, axis, table)
    if axis == "lr" or not trials["protocol"].eq("tuned").any():
        return trials
    chosen = lr_was_tuned(trials)
    return trials.assign(lr=trials["lr"].astype(object).where(~chosen, "tuned"))


def _varies(trials: pd.DataFrame, keys: list[str], axis: str) -> bool:
    if trials.empty:
        return False
    return bool(blocking_frame(trials, axis).groupby(keys, dropna=False)[axis].nunique().gt(1).any())


def varying_axes(trials: pd.DataFrame) -> list[str]:
    """The effect axes that were varied with everything else held fixed, in :func:`effect_axes` order.

    An axis counts only when some task and setting of the other axes (see :func:`block_keys`) was
    trained at two or more of its levels: with each optimizer at its own default learning rate,
    ``lr`` changes together with the optimizer and has no effect of its own to show.
    """
    return [axis for axis in effect_axes(tidy(trials)) if _varies(trials, block_keys(trials, axis), axis)]


def level_summary(trials: pd.DataFrame, axis: str) -> pd.DataFrame:
    """Per task and level of ``axis``: the task metric over ``ok`` trials (all seeds and other axes)."""
    return summarize(tidy(ok_trials(trials)), ["task", "metric_name", axis]).rename(columns={axis: "level"})


def interaction(trials: pd.DataFrame, first: str, second: str) -> pd.DataFrame:
    """Per task: the mean metric of every pair of levels of two axes (over seeds and the other axes)."""
    return summarize(tidy(ok_trials(trials)), ["task", "metric_name", first, second])


def lr_sensitivity(trials: pd.DataFrame) -> pd.DataFrame:
    """The test metric at each learning rate, per task and optimizer, for optimizers trained at several.

    Only untuned (``default``) trials count: a tuned configuration's learning rate was chosen, not
    swept, and the tuning sweep is judged on validation data (:func:`nnbench.analysis.fairness.tuning_sweep`).
    """
    ok = ok_trials(tidy(trials))
    ok = ok[ok["protocol"].eq("default")]
    swept = ok.groupby(["task", "optimizer"])["lr"].transform("nunique").gt(1)
    out = summarize(ok[swept], ["task", "metric_name", "optimizer", "lr"])
    return out.sort_values(["optimizer", "lr"], ignore_index=True).sort_values(
        "task", key=lambda tasks: tasks.map(_first_seen(trials["task"])), kind="stable", ignore_index=True)


def convergence(trials: pd.DataFrame, epochs: pd.DataFrame, top: int = 8) -> pd.DataFrame:
    """Held-out metric and training loss per epoch of the ``top`` leaderboard configurations per task.

    One row per task, configuration and epoch, with the mean and 95% t-interval over seeds of the
    held-out metric and ``train_loss``, and the geometric mean of the training loss with the
    back-transformed t-interval of its logarithm (``train_loss_geomean``, ``train_loss_geo_low``,
    ``train_loss_geo_high``: what a log axis draws); ``config`` names a configuration by the axes that differ within
    its task, ``rank`` is its leaderboard rank. The held-out metric is the validation metric, which is
    measured after every epoch (``split`` says ``validation``); stores from before it was read the test
    metric of every epoch (``split`` ``test``).
    """
    trials = tidy(trials)
    board = leaderboard(trials)
    best = board[board["rank"].le(top) & board["seeds"].gt(0)]
    if best.empty or epochs.empty:
        return pd.DataFrame(columns=["task", "metric_name", "rank", "config", "epoch"])
    best = best.assign(config=pd.concat(
        [config_labels(part, varying(part)) for _, part in best.groupby("task", sort=False)]))
    keys = ["task", *config_axes(trials)]
    runs = ok_trials(trials)[["trial_id", *keys]].merge(best[[*keys, "metric_name", "rank", "config"]], on=keys)
    curves = epochs.merge(runs[["trial_id", "task", "metric_name", "rank", "config"]], on="trial_id")
    group = ["task", "metric_name", "rank", "config", "epoch"]
    validation = "val_metric" in curves.columns and curves["val_metric"].notna().any()
    metric = summarize(curves, group, "val_metric" if validation else "metric").drop(columns="std")
    loss = summarize(curves, group, "train_loss").drop(columns=["std", "trials"])
    out = metric.merge(loss, on=group, suffixes=("", "_loss")).rename(
        columns={"mean_loss": "train_loss", "ci_low_loss": "train_loss_low", "ci_high_loss": "train_loss_high"})
    # On a log axis the band is the t-interval of the log loss, back-transformed: the geometric mean's
    # interval, never below zero, symmetric on the axis it is drawn on.
    logged = curves.assign(log_loss=np.log(curves["train_loss"].astype(float).where(curves["train_loss"] > 0)))
    log_loss = summarize(logged, group, "log_loss").drop(columns=["std", "trials"])
    log_loss[["mean", "ci_low", "ci_high"]] = np.exp(log_loss[["mean", "ci_low", "ci_high"]])
    out = out.merge(log_loss.rename(columns={"mean": "train_loss_geomean", "ci_low": "train_loss_geo_low",
                                             "ci_high": "train_loss_geo_high"}), on=group)
    out["split"] = "validation" if validation else "test"
    order = _first_seen(board["task"])
    return out.sort_values(["task", "rank", "epoch"], key=lambda c: c.map(order) if c.name == "task" else c,
                           ignore_index=True)


# -- speed -----------------------------------------------------------------------------------------


def _timed(trials: pd.DataFrame) -> pd.DataFrame:
    timed = trials[trials["epochs_run"].fillna(0).gt(0) & trials["train_time"].fillna(0).gt(0)]
    return timed.assign(epoch_time=timed["train_time"] / timed["epochs_run"])


def speed(trials: pd.DataFrame) -> pd.DataFrame:
    """Median time per epoch (s), median throughput (samples/s) and peak memory (bytes, where the
    device measures it) per task, architecture and device, over every trial that trained an epoch."""
    timed = _timed(trials)
    out = timed.groupby(["task", "arch", "device"], sort=False).agg(
        trials=("trial_id", "size"), epoch_time=("epoch_time", "median"),
        throughput=("throughput", "median"), peak_memory=("peak_memory", "max"))
    return out.reset_index()


def device_comparison(trials: pd.DataFrame) -> pd.DataFrame:
    """How much faster each device trains than a baseline (``cpu`` when it ran), per task and
    architecture: the median over matched trials (same configuration and seed) of
    ``baseline epoch time / device epoch time``. Empty when only one device ran."""
    timed = _timed(tidy(trials))
    devices = list(dict.fromkeys(timed["device"]))
    if len(devices) < 2:
        return pd.DataFrame(columns=["task", "arch", "device", "baseline", "matched", "speedup"])
    baseline = "cpu" if "cpu" in devices else devices[0]
    keys = ["task", *(a for a in config_axes(timed) if a != "device"), "seed"]
    wide = timed.pivot_table(index=keys, columns="device", values="epoch_time", aggfunc="mean", sort=False)
    rows = []
    for device in (d for d in devices if d != baseline):
        ratio = (wide[baseline] / wide[device]).dropna().rename("ratio").reset_index()
        for (task, arch), part in ratio.groupby(["task", "arch"], sort=False):
            rows.append({"task": task, "arch": arch, "device": device, "baseline": baseline,
                         "matched": len(part), "speedup": part["ratio"].median()})
    return pd.DataFrame(rows, columns=["task", "arch", "device", "baseline", "matched", "speedup"])


# -- robustness ------------------------------------------------------------------------------------


def last_line(text: object) -> str:
    """The last non-empty line of an error message or traceback."""
    lines = [line.strip() for line in ("" if pd.isna(text) else str(text)).splitlines() if line.strip()]
    return lines[-1] if lines else "no error message recorded"


def failures(trials: pd.DataFrame) -> pd.DataFrame:
    """Trials that did not end ``ok``, grouped by status and reason (the error's last line)."""
    bad = trials[trials["status"].ne("ok")]
    if bad.empty:
        return pd.DataFrame(columns=["status", "reason", "trials", "example"])
    bad = bad.assign(reason=bad["error"].map(last_line),
                     example=bad["task"] + ": " + config_labels(bad, LABEL_AXES) + ", seed " + bad["seed"].astype(str))
    out = bad.groupby(["status", "reason"], sort=False).agg(trials=("trial_id", "size"), example=("example", "first"))
    return out.reset_index().sort_values("trials", ascending=False, kind="stable", ignore_index=True)


def skipped_reasons(skipped: pd.DataFrame) -> pd.DataFrame:
    """Combinations the grid did not train, grouped by reason, with one example each."""
    if skipped.empty:
        return pd.DataFrame(columns=["reason", "combinations", "example"])
    unique = skipped.drop_duplicates(["combination", "reason"])
    unique = unique.assign(example=unique["combination"].map(
        lambda c: ", ".join(f"{k}={format_level(k, v)}" for k, v in json.loads(c).items())))
    out = unique.groupby("reason", sort=False).agg(combinations=("combination", "size"), example=("example", "first"))
    return out.reset_index().sort_values("combinations", ascending=False, kind="stable", ignore_index=True)


# -- matched blocks ------------------------------------------------------------------------------


def matched_blocks(trials: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, int]:
    """Oriented scores (higher is better) of complete blocks, one column per level of ``axis``, and
    the number of blocks left out because a level is missing or did not end ``ok``."""
    keys = [*block_keys(trials, axis), "seed"]
    trials = blocking_frame(trials, axis)
    candidates = trials.groupby(keys, dropna=False)[axis].nunique().gt(1).sum()
    ok = ok_trials(trials)
    sign = np.where(ok["metric_name"].map(higher_is_better), 1.0, -1.0)
    scores = ok.assign(score=ok["metric"] * sign)
    # Levels that never ended ok are left out rather than emptying every block.
    wide = scores.pivot_table(index=keys, columns=axis, values="score", aggfunc="mean", sort=axis == "lr")
    complete = wide.dropna()
    complete.columns = [format_level(axis, level) for level in complete.columns]
    return complete, int(candidates - len(complete))
