"""Levels across tasks: mean ranks over tasks and pairwise Wilcoxon signed-rank tests over tasks.

Each task is one observation (Demšar 2006): a pair's difference on a task is its mean paired difference
there (over seeds and the other axes' settings). When every task is judged by a metric with a fixed
scale (accuracy, R²) the differences are compared as they are; otherwise each task's difference is
divided by its seed-to-seed spread (the median over configurations of the standard deviation over
seeds), so that tasks with different metrics or scales rank fairly. The pairwise tests are exact
Wilcoxon signed-rank tests; they join the family of the axis's comparisons, so one Holm correction
covers the per-task and the across-task claims (Benavoli, Corani and Mangili 2016 recommend these
pairwise tests over the Nemenyi test, whose outcome for a pair depends on which other levels are in
the pool). An exact test over ``n`` tasks cannot give a two-sided p-value below ``2 / 2^n``, so pairs
compared on fewer than :func:`nnbench.analysis.paired.min_tasks` tasks are not tested.
"""

from __future__ import annotations

import numpy as np
import pandas as pd
from scipy import stats

from nnbench.analysis.paired import ALPHA, min_tasks
from nnbench.contract.metrics import METRICS

ACROSS_COLUMNS = ["first", "second", "tasks", "ahead", "behind", "statistic", "p_value", "p_adjusted", "decision",
                  "direction"]


def task_spreads(scores: pd.DataFrame) -> dict[str, float]:
    """Per task, the median over levels and settings of the standard deviation of the oriented score over
    seeds (``scores``: index task, the settings of the other axes, seed; a column per level)."""
    spreads: dict[str, float] = {}
    for task, part in scores.groupby(level=0, sort=False):
        settings = list(range(part.index.nlevels - 1))
        spread = (part.groupby(level=settings, sort=False).std().stack().dropna() if settings
                  else pd.Series(dtype=float))
        spreads[str(task)] = float(spread.median()) if len(spread) else float("nan")
    return spreads


def fixed_scale(metric_names: dict[str, str]) -> bool:
    """Whether every task's metric has a fixed scale, so raw differences compare across tasks."""
    return all(METRICS[name].fixed_scale for name in metric_names.values() if name in METRICS) and all(
        name in METRICS for name in metric_names.values())


def task_level_means(scores: pd.DataFrame) -> pd.DataFrame:
    """Per task (rows), each level's mean oriented score over its seeds and settings (columns)."""
    return scores.groupby(level=0, sort=False).mean()


def mean_ranks(scores: pd.DataFrame) -> tuple[pd.Series, int]:
    """Each level's mean rank over the tasks where every level ran (1 is best), best first, and the number
    of those tasks."""
    means = task_level_means(scores).dropna()
    if means.empty:
        return pd.Series(dtype=float), 0
    return means.rank(axis=1, ascending=False).mean().sort_values(kind="stable"), len(means)


EXACT_TASKS = 14
"""Up to this many tasks (that did not tie) the signed-rank test is exact: every one of the ``2^n`` ways
to flip the signs is counted; past it, the normal approximation with the correction for ties."""


def over_tasks(x: np.ndarray, alpha: float = ALPHA) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The Wilcoxon signed-rank test of differences over tasks, along the last axis of ``x`` (one row per
    pair; NaN: a task the pair did not run): its statistic (the signed-rank sum, positive when the first
    level ranks above), two-sided p-value (NaN where fewer than :func:`~nnbench.analysis.paired.min_tasks`
    tasks can be tested; 1 where every difference is zero) and the same sum as its direction.

    Zero differences are left out and tied ones share their mean rank (Wilcoxon's handling, scipy's
    default). The p-value is exact, by enumerating every sign flip of the ranks, for up to
    :data:`EXACT_TASKS` tasks, ties included: scipy's exact distribution assumes no ties, and its
    permutation test, which handles them, loops in Python row by row, too slow for the calibration
    benchmark's thousands of rows."""
    x = np.asarray(x, dtype=float)
    counted = np.isfinite(x).sum(axis=-1)
    nonzero = np.where(np.isfinite(x) & (x != 0), x, np.nan)
    ranked = np.nan_to_num(stats.rankdata(np.abs(nonzero), axis=-1, nan_policy="omit"))
    signed = np.nan_to_num(np.sign(nonzero)) * ranked
    total = signed.sum(axis=-1)
    p_value = np.full(x.shape[:-1], np.nan)
    used = (signed != 0).sum(axis=-1)
    testable = counted >= min_tasks(alpha)
    p_value[testable & (used == 0)] = 1.0
    for n in np.unique(used[testable & (used > 0)]):
        rows = testable & (used == n)
        magnitudes = -np.sort(-np.abs(signed[rows]), axis=-1)[..., :n]  # the nonzero ranks of each row
        observed = np.abs(total[rows])
        if n <= EXACT_TASKS:
            flips = 1 - 2 * ((np.arange(2**n)[:, None] >> np.arange(n)) & 1)  # every sign pattern, (2^n, n)
            sums = np.abs(magnitudes @ flips.T)  # (rows, 2^n)
            p_value[rows] = (sums >= observed[:, None] - 1e-9).mean(axis=-1)
        else:
            variance = (magnitudes**2).sum(axis=-1)  # of the signed-rank sum, ties included
            p_value[rows] = np.minimum(1.0, 2 * stats.norm.sf(observed / np.sqrt(variance)))
    return total, p_value, total


def across_tasks(rows: pd.DataFrame, scales: dict[str, float], alpha: float = ALPHA) -> pd.DataFrame:
    """One row per pair of levels (:data:`ACROSS_COLUMNS`) from the per-task rows of the pairwise evidence
    (``first``, ``second``, ``task``, ``advantage``): on how many tasks each was ahead, and the test of
    :func:`over_tasks` on the differences divided by ``scales``. ``p_adjusted`` and ``decision`` are
    filled by the family's correction."""
    out = []
    for (first, second), part in rows.groupby(["first", "second"], sort=False):
        x = part["advantage"].astype(float).to_numpy() / part["task"].map(scales).astype(float).to_numpy()
        x = x[np.isfinite(x)]
        statistic, p_value, direction = over_tasks(x[None, :] if len(x) else np.full((1, 1), np.nan), alpha)
        out.append({"first": first, "second": second, "tasks": len(x), "ahead": int((x > 0).sum()),
                    "behind": int((x < 0).sum()), "statistic": float(statistic[0]), "p_value": float(p_value[0]),
                    "p_adjusted": np.nan, "decision": "", "direction": float(direction[0])})
    return pd.DataFrame(out, columns=ACROSS_COLUMNS)
