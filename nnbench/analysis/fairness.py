"""Fair comparisons: tuned against default, time-to-target, performance profiles and honesty checks.

Pure pandas and numpy, like :mod:`nnbench.analysis.frames`, whose frames it reads. A trial's ``protocol``
says what it was for: ``tuning`` trials are search steps (seed 0 at each setting tried) and take
part only in the learning-rate sweep and the budget accounting; the rankings compare ``default``
and ``tuned`` trials (:func:`compared_trials`).

Time-to-target is read from the *validation* metric of every epoch, never the test metric: a
target is a property of training, and the report's headline numbers stay on test data.
"""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import numpy as np
import pandas as pd

from nnbench.analysis.frames import (
    config_axes,
    config_labels,
    format_level,
    higher_is_better,
    leaderboard,
    summarize,
    tidy,
    varying,
)

MIN_SEEDS = 3
"""Fewer seeds than this and a mean and its spread say little."""
EDGE_TOLERANCE = 1e-6
"""A tuned value within this relative distance of an end of its search range sits at the edge."""
PROFILE_POINTS = 200
"""Points of a performance profile's default tau grid (besides every ratio itself)."""


def key_axes(frame: pd.DataFrame) -> list[str]:
    """A configuration without its learning rate and protocol: what a tuned result and its default share."""
    return [axis for axis in config_axes(frame) if axis not in ("lr", "protocol")]
NAMES = {"lr": "learning rate"}
WARNING_COLUMNS = ["severity", "check", "task", "warning"]


def compared_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The trials the rankings compare: every trial but the tuning protocol's search steps."""
    trials = tidy(trials)
    return trials[trials["protocol"].ne("tuning")]


def search_trials(trials: pd.DataFrame) -> pd.DataFrame:
    """The tuning protocol's search steps (seed 0 at each setting tried)."""
    trials = tidy(trials)
    return trials[trials["protocol"].eq("tuning")]


def tuning_info(trials: pd.DataFrame) -> pd.DataFrame:
    """Per trial (same index), what its params say about tuning: ``budget`` (0 for a default),
    ``tuned`` (the names tuned, joined by ``, ``), ``space`` (name -> ``[low, high, scale]``) and
    ``selected`` (the tuned values the trial trained with, as ``lr=0.01, momentum=0.9``)."""
    rows = []
    for lr, text in zip(trials["lr"], trials["params"], strict=True):
        params = json.loads(text) if isinstance(text, str) else dict(text or {})
        tuning = params.get("tuning") or {}
        names = list(tuning.get("tuned") or [])
        values = {name: lr if name == "lr" else (params.get("optimizer") or {}).get(name) for name in names}
        rows.append({"budget": int(tuning.get("budget") or 0), "tuned": ", ".join(names),
                     "space": tuning.get("space") or {}, "values": values,
                     "selected": ", ".join(f"{name}={format_level('lr', v)}" for name, v in values.items())})
    return pd.DataFrame(rows, index=trials.index, columns=["budget", "tuned", "space", "values", "selected"])


def _lr_key(frame: pd.DataFrame) -> pd.Series:
    """The learning rate as part of a configuration's identity: ``tuned`` where tuning chose it."""
    return pd.Series(["tuned" if "lr" in tuned.split(", ") else repr(float(lr))
                      for lr, tuned in zip(frame["lr"], frame["tuned"], strict=True)], index=frame.index, dtype=object)


# -- targets and time-to-target --------------------------------------------------------------------


def task_targets(runs: pd.DataFrame) -> tuple[dict[str, float], list[str]]:
    """Each task's target validation metric from the runs' grids (``targets``), and a message for
    every task on which runs disagree (the first run's target is used, in the order of ``runs``).
    Tasks without a target are left out."""
    targets: dict[str, float] = {}
    source: dict[str, str] = {}
    conflicts: list[str] = []
    for run in runs.itertuples():
        for task, target in (json.loads(run.grid).get("targets") or {}).items():
            if target is None:
                continue
            if task not in targets:
                targets[task], source[task] = float(target), run.run_id
            elif not math.isclose(targets[task], float(target)):
                conflicts.append(f"runs disagree on the target of {task}: {targets[task]:g} (run {source[task]}, "
                                 f"used) and {float(target):g} (run {run.run_id})")
    return targets, conflicts


def time_to_target(trials: pd.DataFrame, epochs: pd.DataFrame, targets: Mapping[str, float]) -> pd.DataFrame:
    """Per trial of a task with a target: the first epoch whose validation metric reaches it (``>=``
    where higher is better, ``<=`` for RMSE) and the wall time then, the sum of ``epoch_time`` up to
    and including that epoch (seconds; a missing epoch time counts as 0).

    ``reached`` is False for a trial that never got there (or has no curve), and its ``epoch`` and
    ``time`` are infinite, so medians and rankings treat "never" as slower than anything. A trial
    that reached the target and diverged later did reach it.
    """
    trials = tidy(trials)
    columns = ["trial_id", "task", *config_axes(trials), "seed", "metric_name", "target", "reached", "epoch", "time"]
    # A trial that failed or timed out may not name its metric: every trial of a task shares one.
    named = trials[trials["metric_name"].fillna("").ne("")].drop_duplicates("task").set_index("task")["metric_name"]
    frame = trials[trials["task"].isin(list(targets)) & trials["task"].isin(named.index)]
    if frame.empty:
        return pd.DataFrame(columns=columns)
    frame = frame.assign(metric_name=frame["task"].map(named), target=frame["task"].map(targets).astype(float))
    curves = epochs[["trial_id", "epoch", "val_metric", "epoch_time"]].merge(
        frame[["trial_id", "metric_name", "target"]], on="trial_id").sort_values(["trial_id", "epoch"])
    curves["time"] = curves["epoch_time"].astype(float).fillna(0.0).groupby(curves["trial_id"]).cumsum()
    value = curves["val_metric"].astype(float)
    higher = curves["metric_name"].map(higher_is_better).astype(bool)
    hit = np.where(higher, value >= curves["target"], value <= curves["target"])  # NaN never reaches
    first = curves[hit].groupby("trial_id").first()[["epoch", "time"]]
    out = frame.merge(first, left_on="trial_id", right_index=True, how="left")
    out["reached"] = out["epoch"].notna()
    out["epoch"] = out["epoch"].astype(float).fillna(np.inf)
    out["time"] = out["time"].astype(float).fillna(np.inf)
    return out[columns].reset_index(drop=True)


def target_leaderboard(trials: pd.DataFrame, epochs: pd.DataFrame, targets: Mapping[str, float]) -> pd.DataFrame:
    """Configurations ranked per task by their median time-to-target over seeds (never = infinite).

    ``reached`` counts the seeds that got there out of ``seeds``; ``median_epoch`` is the median
    first epoch. Configurations with the same median time share a rank unless one reached the
    target on more seeds (fewer failures rank first). ``metric_rank`` and ``mean`` are the
    configuration's place and mean on the final-metric leaderboard, for comparison. Tuning trials
    are left out.
    """
    columns = ["task", "rank", *config_axes(trials), "tuned", "metric_name", "target", "median_time", "median_epoch",
               "reached", "seeds", "metric_rank", "mean"]
    main = compared_trials(trials)
    times = time_to_target(main, epochs, targets)
    if times.empty:
        return pd.DataFrame(columns=columns)
    keys = ["task", *config_axes(trials)]
    board = times.groupby(keys, sort=False, dropna=False).agg(
        metric_name=("metric_name", "first"), target=("target", "first"), median_time=("time", "median"),
        median_epoch=("epoch", "median"), reached=("reached", "sum"), seeds=("reached", "size")).reset_index()
    tuned = main[keys].assign(tuned=tuning_info(main)["tuned"]).drop_duplicates(keys)
    final = leaderboard(main)[[*keys, "rank", "mean"]].rename(columns={"rank": "metric_rank"})
    board = board.merge(tuned, on=keys, how="left").merge(final, on=keys, how="left")
    ranked = []
    for _, part in board.groupby("task", sort=False):
        part = part.assign(fraction=part["reached"] / part["seeds"]).sort_values(
            ["median_time", "fraction", "median_epoch"], ascending=[True, False, True], kind="stable")
        order = list(zip(part["median_time"], -part["fraction"], strict=True))
        part.insert(1, "rank", [1 + sum(other < mine for other in order) for mine in order])
        ranked.append(part)
    return pd.concat(ranked, ignore_index=True)[columns]


# -- performance profiles --------------------------------------------------------------------------


def profile_times(board: pd.DataFrame) -> pd.DataFrame:
    """``(configuration, task, time)`` from :func:`target_leaderboard`, configurations named the
    same on every task.

    A configuration is its non-task axes, with two exceptions: a tuned learning rate is chosen per
    task, so tuned configurations read ``lr`` as ``tuned``; and when no task trained two losses with
    everything else fixed, the loss is the task's own (cross-entropy for classes, MSE for
    regression, ...) and is left out of the name, so one configuration spans tasks of every kind.
    """
    if board.empty:
        return pd.DataFrame(columns=["configuration", "task", "time"])
    frame = board.assign(tuned=board["tuned"].fillna(""))
    others = [axis for axis in config_axes(board) if axis not in ("loss", "protocol")]
    loss_is_own = not frame.groupby(["task", *others, "protocol"], dropna=False)["loss"].nunique().gt(1).any()
    names = configuration_names(frame, others if loss_is_own else [*others, "loss"])
    return pd.DataFrame({"configuration": names, "task": frame["task"],
                         "time": frame["median_time"].astype(float)}).reset_index(drop=True)


def configuration_names(frame: pd.DataFrame, axes: Sequence[str]) -> pd.Series:
    """A short name per row from those of ``axes`` that vary in ``frame`` (``relu / adam``). A
    learning rate chosen by tuning reads ``tuned``; another tuned configuration ends in ``(tuned)``.
    ``frame`` needs :func:`tuning_info`'s ``tuned`` column and ``protocol``."""
    shown = frame.assign(lr=_lr_key(frame).where(lambda key: key.eq("tuned"), frame["lr"]))
    named = varying(shown, list(axes)) or ["arch", "activation", "optimizer"]
    names = config_labels(shown, named)
    unmarked = shown["protocol"].eq("tuned") & (shown["lr"].ne("tuned") | ("lr" not in named))
    return names.where(~unmarked, names + " (tuned)")


def profile_ratios(times: pd.DataFrame) -> pd.DataFrame:
    """Dolan–Moré performance ratios: per configuration and task, ``time`` over the best time of any
    configuration on that task. Infinite where the configuration never reached the target, was not
    trained on the task, or nobody reached it there. Columns: configuration, task, time, best, ratio."""
    if times.empty:
        return pd.DataFrame(columns=["configuration", "task", "time", "best", "ratio"])
    configurations = list(dict.fromkeys(times["configuration"]))
    tasks = list(dict.fromkeys(times["task"]))
    wide = times.groupby(["configuration", "task"], sort=False)["time"].min().unstack("task")
    wide = wide.reindex(index=configurations, columns=tasks).fillna(np.inf)
    best = wide.min(axis=0)
    with np.errstate(divide="ignore", invalid="ignore"):
        ratio = wide / best
    ratio = ratio.where(np.isfinite(wide) & np.isfinite(best), np.inf).fillna(1.0)  # 0 / 0: both instant
    out = wide.stack().rename("time").to_frame().join(ratio.stack().rename("ratio"))
    out = out.reset_index().merge(best.rename("best"), left_on="task", right_index=True)
    return out[["configuration", "task", "time", "best", "ratio"]]


def performance_profile(times: pd.DataFrame, taus: Sequence[float] | None = None) -> pd.DataFrame:
    """Dolan–Moré performance profile: ``rho`` is the fraction of tasks on which a configuration's
    time-to-target is within a factor ``tau`` of the best configuration's.

    ``times`` has columns configuration, task, time (infinite: never reached). Without ``taus``, the
    grid runs log-spaced from 1 to 1.1 times the largest finite ratio and includes every ratio, so
    the step function is exact. Configurations come best first (largest ``rho`` at ``tau = 1``, then
    at the largest ``tau``). Columns: configuration, tau, rho.
    """
    ratios = profile_ratios(times)
    if ratios.empty:
        return pd.DataFrame(columns=["configuration", "tau", "rho"])
    finite = ratios.loc[np.isfinite(ratios["ratio"]), "ratio"]
    if taus is None:
        top = max(float(finite.max()) if len(finite) else 1.0, 1.0) * 1.1
        grid = np.unique(np.concatenate([np.geomspace(1.0, top, PROFILE_POINTS), finite.to_numpy()]))
    else:
        grid = np.asarray(taus, dtype=float)
    n_tasks = ratios["task"].nunique()
    rows = []
    for configuration, part in ratios.groupby("configuration", sort=False):
        rho = (part["ratio"].to_numpy()[None, :] <= grid[:, None]).sum(axis=1) / n_tasks
        rows.append(pd.DataFrame({"configuration": configuration, "tau": grid, "rho": rho}))
    profile = pd.concat(rows, ignore_index=True)
    ends = profile.groupby("configuration", sort=False)["rho"].agg(["first", "last"])
    order = ends.sort_values(["first", "last"], ascending=False, kind="stable").index
    rank = {name: i for i, name in enumerate(order)}
    return profile.sort_values("configuration", key=lambda c: c.map(rank), kind="stable", ignore_index=True)


# -- tuned against default -------------------------------------------------------------------------


def _with_tuning(frame: pd.DataFrame) -> pd.DataFrame:
    frame = tidy(frame)
    return frame.join(tuning_info(frame))


def _spent(trials: pd.DataFrame) -> pd.DataFrame:
    """Tuning trials stored and their training time (s) per configuration (``task``, :data:`KEY_AXES`
    and ``lr_key``), from a frame with :func:`tuning_info`'s columns."""
    search = trials[trials["protocol"].eq("tuning")]
    return search.assign(lr_key=_lr_key(search)).groupby(["task", *key_axes(trials), "lr_key"], dropna=False).agg(
        tuning_trials=("trial_id", "size"), tuning_time=("train_time", "sum")).reset_index()


def tuned_vs_default(trials: pd.DataFrame) -> pd.DataFrame:
    """Each tuned configuration next to its untuned default, per task.

    The tuned side is the mean, std and 95% t-interval of the test metric over the final reruns'
    seeds, with the values tuning selected and its ``budget``; ``tuning_trials`` and
    ``tuning_time`` (s) count the tuning trials stored for it. The default side is the same
    configuration run as given (any learning rate, when the learning rate was tuned), budget 0.
    ``difference`` is tuned minus default; ``tuned_better`` reads the task's metric direction.
    """
    sides = ["mean", "std", "ci_low", "ci_high", "seeds"]
    columns = ["task", "metric_name", *key_axes(trials), "budget", "tuned", "selected", *(f"tuned_{s}" for s in sides),
               "default_lr", *(f"default_{s}" for s in sides), "difference", "tuned_better", "tuning_trials",
               "tuning_time"]
    trials = _with_tuning(trials)
    main = trials[trials["protocol"].ne("tuning")]
    board = leaderboard(main)
    keys = ["task", *config_axes(trials)]
    info = main.drop_duplicates(keys)[[*keys, "budget", "tuned", "selected"]]
    tuned = board[board["protocol"].eq("tuned")].merge(info, on=keys, how="left")
    if tuned.empty:
        return pd.DataFrame(columns=columns)
    tuned["lr_key"] = _lr_key(tuned)
    default = board[board["protocol"].eq("default")].assign(lr_key=lambda f: [repr(float(v)) for v in f["lr"]])
    keyed = key_axes(trials)
    pairs = tuned.merge(default[["task", *keyed, "lr", "lr_key", *sides]], on=["task", *keyed], how="left",
                        suffixes=("", "_default"))
    matched = pairs["lr_key"].eq("tuned") | pairs["lr_key"].eq(pairs["lr_key_default"]) | pairs["mean_default"].isna()
    pairs = pairs[matched].rename(columns={**{s: f"tuned_{s}" for s in sides},
                                           **{f"{s}_default": f"default_{s}" for s in sides},
                                           "lr_default": "default_lr"})
    pairs = pairs.merge(_spent(trials), on=["task", *key_axes(trials), "lr_key"], how="left")
    pairs["tuning_trials"] = pairs["tuning_trials"].fillna(0).astype(int)
    pairs["tuning_time"] = pairs["tuning_time"].fillna(0.0)
    pairs["difference"] = pairs["tuned_mean"] - pairs["default_mean"]
    higher = pairs["metric_name"].map(higher_is_better).astype(bool)
    better = pd.Series(np.where(higher, pairs["difference"] > 0, pairs["difference"] < 0), index=pairs.index,
                       dtype=object)
    pairs["tuned_better"] = better.where(pairs["difference"].notna(), None)  # no default to compare with
    return pairs[columns].reset_index(drop=True)


def tuning_sweep(trials: pd.DataFrame) -> pd.DataFrame:
    """The validation metric at each learning rate the tuning trials tried, per task and optimizer
    (mean and 95% t-interval over the other axes), with ``selected`` counting the configurations
    whose tuning picked that learning rate. Only tuning trials that tuned ``lr`` and ended ``ok``."""
    columns = ["task", "metric_name", "optimizer", "lr", "mean", "std", "trials", "ci_low", "ci_high", "selected"]
    trials = _with_tuning(trials)
    search = trials[trials["protocol"].eq("tuning") & trials["status"].eq("ok")
                    & trials["tuned"].str.split(", ").map(lambda names: "lr" in names)]
    search = search[np.isfinite(search["val_metric"].astype(float))]
    if search.empty:
        return pd.DataFrame(columns=columns)
    out = summarize(search.assign(val_metric=search["val_metric"].astype(float)),
                    ["task", "metric_name", "optimizer", "lr"], "val_metric")
    finals = trials[trials["protocol"].eq("tuned")].drop_duplicates(["task", *config_axes(trials)])
    picked = finals.groupby(["task", "optimizer", "lr"]).size().rename("selected")
    out = out.merge(picked, left_on=["task", "optimizer", "lr"], right_index=True, how="left")
    out["selected"] = out["selected"].fillna(0).astype(int)
    order = {task: i for i, task in enumerate(dict.fromkeys(trials["task"]))}
    return out.sort_values(["task", "optimizer", "lr"], key=lambda c: c.map(order) if c.name == "task" else c,
                           kind="stable", ignore_index=True)[columns]


def budget_accounting(trials: pd.DataFrame) -> pd.DataFrame:
    """Per task and optimizer: the configurations tuned and their ``budget`` (budgets joined by
    ``, `` when they differ), the tuning trials stored, how many ended ``ok`` and their training
    time (s), and the untuned configurations (budget 0)."""
    columns = ["task", "optimizer", "tuned", "budget", "tuning_trials", "tuning_ok", "tuning_time", "untuned"]
    trials = _with_tuning(trials)
    keys = ["task", *config_axes(trials)]
    configurations = trials[trials["protocol"].ne("tuning")].drop_duplicates(keys)
    search = trials[trials["protocol"].eq("tuning")]
    if configurations.empty and search.empty:
        return pd.DataFrame(columns=columns)
    spent = search.groupby(["task", "optimizer"], sort=False).agg(
        tuning_trials=("trial_id", "size"), tuning_ok=("status", lambda s: int(s.eq("ok").sum())),
        tuning_time=("train_time", "sum"))
    counted = configurations.groupby(["task", "optimizer"], sort=False).agg(
        tuned=("protocol", lambda p: int(p.eq("tuned").sum())),
        untuned=("protocol", lambda p: int(p.eq("default").sum())),
        budget=("budget", lambda b: ", ".join(map(str, sorted(set(b[b > 0])))) or "–"))
    order = {task: i for i, task in enumerate(dict.fromkeys(trials["task"]))}
    out = counted.join(spent, how="outer").reset_index().sort_values(
        "task", key=lambda tasks: tasks.map(order), kind="stable", ignore_index=True)
    for column in ("tuned", "untuned", "tuning_trials", "tuning_ok"):
        out[column] = out[column].astype(float).fillna(0).astype(int)  # all missing: not yet a number
    out["tuning_time"] = out["tuning_time"].fillna(0.0)
    out["budget"] = out["budget"].fillna("–")
    return out[columns]


# -- honesty ---------------------------------------------------------------------------------------


def honesty_warnings(trials: pd.DataFrame, runs: pd.DataFrame | None = None) -> pd.DataFrame:
    """What makes a ranking unfair or unsure, one row per finding: ``severity`` (``warning`` or
    ``note``), ``check``, ``task`` and ``warning`` (a sentence naming configuration and task).

    Checks: ``targets`` (runs disagree on a task's target), ``budget`` (tuned configurations of a
    task had unequal tuning budgets, or fewer or more tuning trials stored than their budget),
    ``mixed`` (tuned and untuned configurations share a ranking: defaults had budget 0), ``seeds``
    (configurations of a task finished ok on different numbers of seeds), ``few-seeds`` (fewer
    than :data:`MIN_SEEDS`), ``edge`` (a tuned value at the edge of its search range) and
    ``spread`` (the top two of a task differ by less than the larger of their standard deviations).
    Warnings come first; an empty frame means nothing was found.
    """
    found: list[dict[str, str]] = []

    def add(severity: str, check: str, task: str, text: str) -> None:
        found.append({"severity": severity, "check": check, "task": task, "warning": text})

    if runs is not None:
        for text in task_targets(runs)[1]:
            add("warning", "targets", text.split("target of ", 1)[1].split(":", 1)[0], text)
    trials = _with_tuning(trials)
    main = trials[trials["protocol"].ne("tuning")]
    board = leaderboard(main)
    keys = ["task", *config_axes(trials)]
    info = main.drop_duplicates(keys)[[*keys, "budget", "tuned", "space", "values"]]
    board = board.merge(info, on=keys, how="left")
    board = board.assign(lr_key=_lr_key(board)).merge(_spent(trials), on=["task", *key_axes(trials), "lr_key"],
                                                      how="left")
    board["tuning_trials"] = board["tuning_trials"].fillna(0).astype(int)
    for task, part in board.groupby("task", sort=False):
        names = configuration_names(part, [axis for axis in config_axes(trials) if axis != "protocol"])
        tuned = part["protocol"].eq("tuned")
        budgets = part.loc[tuned, "budget"]
        if budgets.nunique() > 1:
            listed = ", ".join(f"{names[i]}: {b}" for i, b in budgets.items())
            add("warning", "budget", task, f"{task}: tuned configurations had unequal tuning budgets ({listed})")
        for i in part.index[tuned]:
            row = part.loc[i]
            if row["tuning_trials"] != row["budget"]:
                add("warning", "budget", task,
                    f"{task}: {names[i]} has {row['tuning_trials']} tuning trials stored for a budget of "
                    f"{row['budget']}: its search was incomplete, or the tuning trials are in runs not reported")
            for name, value in row["values"].items():
                edge = _edge(value, row["space"].get(name))
                if edge:
                    low, high = row["space"][name][:2]
                    add("warning", "edge", task,
                        f"{task}: {names[i]}: the selected {NAMES.get(name, name)} {value:g} lies at the "
                        f"{edge} edge of its search range {low:g} – {high:g}; the best setting may lie beyond it")
        if tuned.any() and part["protocol"].eq("default").any():
            add("note", "mixed", task,
                f"{task}: tuned configurations (budget {', '.join(map(str, sorted(set(budgets))))}) are ranked "
                "together with untuned defaults (budget 0): a tuned configuration had more tries")
        seeds = part["seeds"]
        if seeds.nunique() > 1:
            listed = ", ".join(f"{names[i]}: {n}" for i, n in seeds.items())
            add("warning", "seeds", task,
                f"{task}: configurations finished ok on different numbers of seeds ({listed})")
        few = seeds[seeds < MIN_SEEDS]
        if len(few):
            listed = ", ".join(f"{names[i]} ({n})" for i, n in few.head(5).items())
            more = f" and {len(few) - 5} more" if len(few) > 5 else ""
            add("warning", "few-seeds", task, f"{task}: fewer than {MIN_SEEDS} seeds finished ok for {listed}{more}: "
                                              "means and intervals rest on too few runs")
        top = part[part["mean"].notna()].head(2)
        if len(top) == 2:
            diff, spread = abs(top["mean"].iloc[0] - top["mean"].iloc[1]), top["std"].max()
            if spread > diff:
                first, second = (names[i] for i in top.index)
                add("warning", "spread", task,
                    f"{task}: the top two, {first} and {second}, differ by {diff:.4g}, less than the seed-to-seed "
                    f"standard deviation {spread:.4g}: their order is not reliable")
    out = pd.DataFrame(found, columns=WARNING_COLUMNS)
    return out.sort_values("severity", key=lambda s: s.ne("warning"), kind="stable", ignore_index=True)


def _edge(value: Any, space: Sequence[Any] | None) -> str:
    """``lower`` or ``upper`` when ``value`` sits within :data:`EDGE_TOLERANCE` of that end of ``space``."""
    if not space or value is None:
        return ""
    low, high, value = float(space[0]), float(space[1]), float(value)
    if abs(value - low) <= EDGE_TOLERANCE * abs(low):
        return "lower"
    if abs(value - high) <= EDGE_TOLERANCE * abs(high):
        return "upper"
    return ""
