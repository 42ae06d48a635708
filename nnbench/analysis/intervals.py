"""Aggregates across tasks with intervals that hold at the number of seeds at hand (after Agarwal et al.,
NeurIPS 2021, who use a stratified bootstrap throughout).

Scores are first put on one scale (:func:`normalized_scores`): per task against the reference scores
the task declared (say chance accuracy and 1), so that adding a configuration never moves an existing
number, or else min-max over the configurations' mean scores in the reported runs. Then, per
configuration:

- the **mean** and the **optimality gap** (the mean shortfall below 1) are means of a configuration's
  scores, weighted by each task's number of seeds: their 95% intervals are Student t intervals with
  the Welch-Satterthwaite degrees of freedom of a stratified mean (each task's variance estimated from
  its own seeds), valid from two seeds per task;
- the **IQM** (the mean of the middle half of all its scores, ``scipy.stats.trim_mean(x, 0.25)`` as
  rliable computes it) has no such formula: its interval comes from a stratified percentile bootstrap
  (seeds resampled within each task, ``scipy.stats.bootstrap``), and only where every task has at least
  :data:`BOOTSTRAP_MIN_SEEDS` seeds. A bootstrap over fewer underestimates the spread (three seeds have
  ten distinct resamples, and a resample's variance is ``(n - 1) / n`` of the seeds'), so there it is not
  drawn at all. The same rule holds for the bands of the performance profiles.

rliable itself pins versions of its dependencies (``arch<8``) that break with the pandas and NumPy
nnbench runs on, so its methods are computed here with scipy; the tests check them against values
worked by hand.
"""

from __future__ import annotations

import json
import math
import warnings
from collections.abc import Callable, Sequence

import numpy as np
import pandas as pd
from scipy import stats

from nnbench.analysis.fairness import configuration_names, tuning_info
from nnbench.analysis.frames import config_axes, higher_is_better, ok_trials, tidy

IQM_CUT = 0.25
CONFIDENCE = 0.95
RESAMPLES = 2_000
RANDOM_STATE = 0
BOOTSTRAP_MIN_SEEDS = 10
"""Fewest seeds per task (per stratum) on which a percentile bootstrap interval or band is drawn."""
PROFILE_POINTS = 101
Statistic = Callable[[list[np.ndarray]], np.ndarray]


def iqm(values: np.ndarray, axis: int = -1) -> np.ndarray:
    """Interquartile mean: the mean of the values left after cutting a quarter from each end."""
    return np.asarray(stats.trim_mean(values, IQM_CUT, axis=axis))


def shortfall(values: np.ndarray, gamma: float = 1.0) -> np.ndarray:
    """How far each normalized score falls below ``gamma`` (a score above it falls short by 0)."""
    return np.maximum(gamma - np.asarray(values, dtype=float), 0.0)


def optimality_gap(values: np.ndarray, axis: int = -1, gamma: float = 1.0) -> np.ndarray:
    """The mean shortfall of normalized scores below ``gamma``."""
    return np.mean(shortfall(values, gamma), axis=axis)


def stratified_bootstrap(strata: Sequence[np.ndarray], statistic: Statistic, *, resamples: int = RESAMPLES,
                         confidence: float = CONFIDENCE,
                         random_state: int = RANDOM_STATE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """``statistic`` of ``strata`` (one array per task, its values along the last axis) with a percentile
    interval from resampling every stratum independently (``scipy.stats.bootstrap``).

    Leading axes of the strata are a batch (one row per configuration, say), all resampled at once.
    ``statistic`` takes the list of strata, each an array whose last axis holds the values (leading
    axes: the batch, then the resamples), and returns an array of results (leading axes: the results,
    then the batch and resamples). A stratum of one value resamples to itself, so it is held fixed; with
    no stratum of two or more values the interval is NaN.
    """
    strata = [np.asarray(s, dtype=float) for s in strata]
    point = np.asarray(statistic(strata), dtype=float)
    varying = [i for i, s in enumerate(strata) if s.shape[-1] > 1]
    if not varying:
        return point, np.full_like(point, np.nan), np.full_like(point, np.nan)

    def resampled(*samples: np.ndarray, axis: int = -1) -> np.ndarray:
        shape = samples[0].shape[:-1]
        full = [np.broadcast_to(s[..., None, :], (*shape, s.shape[-1])) for s in strata]
        for i, sample in zip(varying, samples, strict=True):
            full[i] = sample
        return np.asarray(statistic(full))

    with warnings.catch_warnings():  # a degenerate resampling distribution is a fine answer here
        warnings.simplefilter("ignore", RuntimeWarning)
        warnings.simplefilter("ignore", stats.DegenerateDataWarning)
        result = stats.bootstrap([strata[i] for i in varying], resampled, vectorized=True, method="percentile",
                                 n_resamples=resamples, confidence_level=confidence, axis=-1,
                                 rng=np.random.default_rng(random_state))
    return point, np.asarray(result.confidence_interval.low), np.asarray(result.confidence_interval.high)


def _iqm_only(strata: list[np.ndarray]) -> np.ndarray:
    return iqm(np.concatenate(strata, axis=-1))[None, ...]


def stratified_mean(strata: Sequence[np.ndarray], confidence: float = CONFIDENCE) -> tuple[float, float, float]:
    """The mean of every value of ``strata`` (one array per task) with its Student t interval: the
    variance of a stratified mean, ``sum_t (n_t / N)^2 s_t^2 / n_t``, with Welch-Satterthwaite degrees of
    freedom. NaN interval where a task has fewer than two values (its variance is unknown)."""
    strata = [np.asarray(s, dtype=float) for s in strata]
    sizes = np.array([len(s) for s in strata], dtype=float)
    total = sizes.sum()
    point = float(np.concatenate(strata).mean()) if total else math.nan
    if not total or (sizes < 2).any():
        return point, math.nan, math.nan
    parts = np.array([(n / total) ** 2 * np.var(s, ddof=1) / n for s, n in zip(strata, sizes, strict=True)])
    variance = float(parts.sum())
    if variance == 0:
        return point, point, point
    df = variance**2 / float((parts**2 / (sizes - 1)).sum())
    half = float(stats.t.ppf(0.5 + confidence / 2, df)) * math.sqrt(variance)
    return point, point - half, point + half


# -- normalisation ---------------------------------------------------------------------------------


def task_references(runs: pd.DataFrame) -> dict[str, tuple[float, float]]:
    """Each task's reference scores ``(trivial, perfect)`` as the runs recorded them (the first run's
    where runs disagree); tasks without any are left out."""
    references: dict[str, tuple[float, float]] = {}
    for grid in runs.get("grid", []):
        for task, pair in (json.loads(grid).get("references") or {}).items():
            if pair and task not in references and float(pair[0]) != float(pair[1]):
                references[task] = (float(pair[0]), float(pair[1]))
    return references


def normalized_scores(trials: pd.DataFrame, runs: pd.DataFrame) -> tuple[pd.DataFrame, dict[str, str]]:
    """The ``ok`` trials with ``score``: the metric on a scale where 0 is the trivial (or worst) and 1 the
    perfect (or best) score of its task, higher always better; and, per task, how it was scaled.

    A task with reference scores is scaled against them. Any other task is scaled min-max between its
    worst and best configuration means in ``trials``; a task where every configuration scored the same
    is left out.
    """
    ok = tidy(ok_trials(trials))
    references = task_references(runs)
    keys = ["task", *config_axes(ok)]
    means = ok.groupby(keys, dropna=False, sort=False)["metric"].mean().groupby(level="task", sort=False)
    scale: dict[str, tuple[float, float]] = {}
    notes: dict[str, str] = {}
    for task, values in means:
        name = ok.loc[ok["task"] == task, "metric_name"].iloc[0]
        if task in references:
            scale[task] = references[task]
            notes[task] = f"{name} {references[task][0]:g} → 0, {references[task][1]:g} → 1 (the task's reference)"
            continue
        worst, best = (values.min(), values.max()) if higher_is_better(name) else (values.max(), values.min())
        if worst == best:
            notes[task] = f"every configuration scored {best:.4g}: left out of the aggregates"
            continue
        scale[task] = (float(worst), float(best))
        notes[task] = f"{name} {worst:.4g} → 0, {best:.4g} → 1 (worst and best configuration mean in these runs)"
    scaled = ok[ok["task"].isin(list(scale))]
    if scaled.empty:  # every task left out: mapping an empty column would give text, not numbers
        return scaled.assign(score=np.array([], dtype=float)), notes
    low = scaled["task"].map(lambda t: scale[t][0])
    high = scaled["task"].map(lambda t: scale[t][1])
    return scaled.assign(score=(scaled["metric"].astype(float) - low) / (high - low)), notes


def across_task_configurations(trials: pd.DataFrame) -> pd.Series:
    """Per trial, its configuration named the same on every task (``relu / adam``): every configuration
    axis but the task, and without the loss when each task used its own (cross-entropy for classes, MSE
    for regression), so one configuration spans tasks of every kind."""
    frame = tidy(trials)
    frame = frame.join(tuning_info(frame)) if "params" in frame else frame.assign(tuned="")
    others = [axis for axis in config_axes(frame) if axis not in ("loss", "protocol")]
    loss_is_own = not frame.groupby(["task", *others, "protocol"], dropna=False)["loss"].nunique().gt(1).any()
    return configuration_names(frame, others if loss_is_own else [*others, "loss"])


# -- aggregates ------------------------------------------------------------------------------------

AGGREGATE_COLUMNS = ["configuration", "tasks", "trials", "mean", "mean_low", "mean_high", "iqm", "iqm_low",
                     "iqm_high", "gap", "gap_low", "gap_high"]


def aggregates(scored: pd.DataFrame, resamples: int = RESAMPLES) -> pd.DataFrame:
    """Per configuration, over every task it ran on: mean, IQM and optimality gap of the normalized
    ``score``, the mean's and the gap's with 95% stratified t intervals, the IQM's with a stratified
    bootstrap interval where every task has :data:`BOOTSTRAP_MIN_SEEDS` seeds or more (else NaN); best IQM
    first. ``scored`` is :func:`normalized_scores`' frame with a ``configuration`` column."""
    if scored.empty:
        return pd.DataFrame(columns=AGGREGATE_COLUMNS)
    rows = []
    for configuration, part in scored.groupby("configuration", sort=False):
        strata = [group["score"].to_numpy(float) for _, group in part.groupby("task", sort=False)]
        mean, mean_low, mean_high = stratified_mean(strata)
        gap, gap_low, gap_high = stratified_mean([shortfall(s) for s in strata])  # the gap is a mean too
        if min(len(s) for s in strata) >= BOOTSTRAP_MIN_SEEDS:
            point, low, high = stratified_bootstrap(strata, _iqm_only, resamples=resamples)
            middle, middle_low, middle_high = float(point[0]), float(low[0]), float(high[0])
        else:
            middle, middle_low, middle_high = float(iqm(np.concatenate(strata))), math.nan, math.nan
        rows.append({"configuration": str(configuration), "tasks": len(strata), "trials": len(part),
                     "mean": mean, "mean_low": mean_low, "mean_high": mean_high, "iqm": middle, "iqm_low": middle_low,
                     "iqm_high": middle_high, "gap": gap, "gap_low": gap_low, "gap_high": gap_high})
    out = pd.DataFrame(rows, columns=AGGREGATE_COLUMNS)
    return out.sort_values(["tasks", "iqm"], ascending=False, kind="stable", ignore_index=True)


def score_profiles(scored: pd.DataFrame, configurations: Sequence[str], points: int = PROFILE_POINTS,
                   resamples: int = RESAMPLES) -> pd.DataFrame:
    """Performance profiles of normalized scores (rliable's score distributions): for each threshold
    ``tau``, the fraction of a configuration's runs scoring above it, averaged over tasks, with a 95%
    stratified bootstrap band where every task has :data:`BOOTSTRAP_MIN_SEEDS` seeds (NaN elsewhere).
    Columns: configuration, tau, fraction, low, high."""
    columns = ["configuration", "tau", "fraction", "low", "high"]
    if scored.empty or not configurations:
        return pd.DataFrame(columns=columns)
    chosen = scored[scored["configuration"].isin(list(configurations))]
    low_end, high_end = min(0.0, float(chosen["score"].min())), max(1.0, float(chosen["score"].max()))
    taus = np.linspace(low_end, high_end, points)

    def profile(strata: list[np.ndarray]) -> np.ndarray:
        above = [(s[..., None, :] > taus[:, None]).mean(axis=-1) for s in strata]  # (..., taus) per task
        return np.moveaxis(np.mean(above, axis=0), -1, 0)  # taus first, then resamples

    frames = []
    for configuration in configurations:
        part = chosen[chosen["configuration"] == configuration]
        strata = [group["score"].to_numpy(float) for _, group in part.groupby("task", sort=False)]
        if not strata:
            continue
        point, low, high = stratified_bootstrap(strata, profile, resamples=resamples)
        if min(len(stratum) for stratum in strata) < BOOTSTRAP_MIN_SEEDS:  # too few seeds for a band
            low, high = np.full_like(point, np.nan), np.full_like(point, np.nan)
        frames.append(pd.DataFrame({"configuration": configuration, "tau": taus, "fraction": point,
                                    "low": low, "high": high}))
    return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=columns)


def time_profile_bands(times: pd.DataFrame, taus: np.ndarray, resamples: int = RESAMPLES,
                       only: Sequence[str] | None = None) -> pd.DataFrame:
    """95% stratified bootstrap bands of the Dolan-Moré performance profile of time-to-target: ``times``
    has one row per trial (configuration, task, time; infinite: never reached), and each configuration's
    seeds are resampled within each task, its median time, the best per task, the ratios and the profile
    recomputed from them. ``only``: the configurations whose bands are wanted (all when ``None``); every
    configuration is still resampled, as each one can be the fastest. Empty where some configuration has
    fewer than :data:`BOOTSTRAP_MIN_SEEDS` seeds on a task. Columns: configuration, tau, low, high."""
    columns = ["configuration", "tau", "low", "high"]
    if times.empty:
        return pd.DataFrame(columns=columns)
    configurations = list(dict.fromkeys(times["configuration"]))
    wanted = configurations if only is None else [c for c in dict.fromkeys(only) if c in configurations]
    rows = np.asarray([configurations.index(c) for c in wanted], dtype=int)
    tasks = list(dict.fromkeys(times["task"]))
    cells = [(c, t) for c in configurations for t in tasks
             if ((times["configuration"] == c) & (times["task"] == t)).any()]
    strata = [times.loc[(times["configuration"] == c) & (times["task"] == t), "time"].to_numpy(float)
              for c, t in cells]
    if min(len(stratum) for stratum in strata) < BOOTSTRAP_MIN_SEEDS:  # too few seeds for a band
        return pd.DataFrame(columns=columns)
    where = [(configurations.index(c), tasks.index(t)) for c, t in cells]
    grid = np.asarray(taus, dtype=float)

    def profile(samples: list[np.ndarray]) -> np.ndarray:
        shape = samples[0].shape[:-1]
        medians = np.full((*shape, len(configurations), len(tasks)), np.inf)
        for (row, column), sample in zip(where, samples, strict=True):
            medians[..., row, column] = np.median(sample, axis=-1)
        best = medians.min(axis=-2, keepdims=True)
        with np.errstate(divide="ignore", invalid="ignore"):
            ratio = np.where(np.isfinite(medians) & np.isfinite(best), medians / best, np.inf)
        ratio = np.where(np.isnan(ratio), 1.0, ratio)[..., rows, :]  # 0 / 0: both instant
        rho = (ratio[..., None] <= grid).mean(axis=-2)  # (..., wanted configurations, taus)
        return np.moveaxis(rho.reshape(*shape, -1), -1, 0)

    _, low, high = stratified_bootstrap(strata, profile, resamples=resamples)
    return pd.DataFrame({"configuration": np.repeat(wanted, len(grid)),
                         "tau": np.tile(grid, len(wanted)), "low": low, "high": high}, columns=columns)


def interval_text(low: float, high: float, digits: int = 3, signed: bool = False) -> str:
    """``[0.812, 0.857]`` (kept on one line; ``[−0.010, +0.053]`` when ``signed``), or ``–`` when there
    is no interval."""
    if not (math.isfinite(low) and math.isfinite(high)):
        return "–"
    sign = "+" if signed else ""
    return f"[{low:{sign}.{digits}f},\u00a0{high:{sign}.{digits}f}]".replace("-", "\u2212")
