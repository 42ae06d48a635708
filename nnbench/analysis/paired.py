"""Paired comparisons of two levels that hold at any number of paired seeds from two up, and the decisions
of a family of them with the family-wise error rate controlled.

Pure NumPy and scipy on arrays, so that the report, ``nnbench compare`` and the calibration benchmark
(``benchmarks/bench_verdicts.py``) run the very same code. One comparison is the list of its paired
differences ``d_1 .. d_n``, one per paired seed (first minus second, oriented so that a positive
difference means the first did better; a seed's difference is the mean over the settings of the other
axes it was trained in). The methods, with their references, are in ``docs/statistics.md``:

- **Advantage**: the mean difference with its two-sided Student *t* interval (``n - 1`` degrees of
  freedom). A metric measured on a finite test set moves in steps (``resolution``: the smallest gap
  between the values it took on the task, one test example's worth of accuracy): the variance of a
  difference is taken as ``s² + resolution² / 6``, adding the rounding variance of a difference of two
  values on that grid, so seeds that tie by rounding never make a spread of zero, and a metric that
  takes few distinct values (where the *t* test would otherwise be too bold) is judged by its steps.
- **Difference test**: the two-sided one-sample *t* test of a mean difference of zero, with that
  variance.
- **Equivalence test**: two one-sided *t* tests (TOST, Schuirmann 1987) of the mean difference against
  the ROPE's edges; ``p`` is the larger of the two.
- **Probability of improvement**: the chance that the first level beats the second on a paired seed,
  ``(wins + ties / 2) / n``, with an exact Clopper-Pearson interval (ties count as losses for its lower
  end and as wins for its upper end, so the interval holds whatever they are).
- **Decisions**: Holm's step-down correction over a family (every pair and task of one axis, and the
  across-task tests of :mod:`nnbench.analysis.ranks`) controls the family-wise error rate of "better"
  and "worse" at ``alpha``; the equivalence tests form a second family, corrected the same way. A
  comparison shown equivalent is ``equivalent``; otherwise one whose difference test rejects is
  ``first`` or ``second`` (by the sign of its mean); otherwise ``undecided``.
"""

from __future__ import annotations

import math

import numpy as np
from scipy import stats

ALPHA = 0.05
"""Family-wise error rate of the verdicts unless the user sets another."""
CONFIDENCE = 0.95
"""Level of the intervals shown beside each comparison (not corrected for the family)."""
DECISIONS = ("first", "second", "equivalent", "undecided")
TIE = 1e-12
"""Differences this close to zero are ties (the two levels scored the same)."""


def summarize(differences: np.ndarray) -> dict[str, np.ndarray]:
    """The summaries of paired differences the tests read: ``n``, ``mean``, ``sd`` (``ddof=1``), ``wins``
    and ``ties``, along the last axis of ``differences`` (NaN entries are missing seeds and are left out)."""
    d = np.asarray(differences, dtype=float)
    present = np.isfinite(d)
    n = present.sum(axis=-1)
    filled = np.where(present, d, 0.0)
    with np.errstate(invalid="ignore", divide="ignore"):
        mean = filled.sum(axis=-1) / n
        squares = np.where(present, (d - mean[..., None]) ** 2, 0.0).sum(axis=-1)
        sd = np.sqrt(squares / (n - 1))
    wins = (present & (d > TIE)).sum(axis=-1)
    ties = (present & (np.abs(d) <= TIE)).sum(axis=-1)
    return {"n": n, "mean": mean, "sd": sd, "wins": wins, "ties": ties}


def tests(n: np.ndarray, mean: np.ndarray, sd: np.ndarray, rope: np.ndarray | float, resolution: np.ndarray | float,
          confidence: float = CONFIDENCE) -> dict[str, np.ndarray]:
    """The interval and both tests of comparisons given their summaries (arrays that broadcast together):
    ``low`` and ``high`` (the ``confidence`` t-interval of the mean difference), ``p_value`` (difference
    test) and ``p_equivalence`` (TOST against ``±rope``). NaN where ``n < 2``: one seed has no spread."""
    n = np.asarray(n, dtype=float)
    mean, sd = np.asarray(mean, dtype=float), np.asarray(sd, dtype=float)
    rope, resolution = np.asarray(rope, dtype=float), np.asarray(resolution, dtype=float)
    testable = n >= 2
    df = np.where(testable, n - 1, np.nan)
    spread = np.sqrt(np.where(testable, np.nan_to_num(sd) ** 2, np.nan) + resolution**2 / 6)
    with np.errstate(divide="ignore", invalid="ignore"):
        error = spread / np.sqrt(n)
        t = np.where(error > 0, mean / error, np.where(mean == 0, 0.0, np.sign(mean) * np.inf))
        p = 2 * stats.t.sf(np.abs(t), df)
        half = stats.t.ppf(0.5 + confidence / 2, df) * error
        above = np.where(error > 0, (mean + rope) / error, np.where(mean + rope > 0, np.inf, -np.inf))
        below = np.where(error > 0, (mean - rope) / error, np.where(mean - rope < 0, -np.inf, np.inf))
        p_equivalence = np.maximum(stats.t.sf(above, df), stats.t.cdf(below, df))
    p_equivalence = np.where(rope > 0, p_equivalence, np.where(testable, 1.0, np.nan))
    return {"low": mean - half, "high": mean + half, "p_value": np.where(testable, p, np.nan),
            "p_equivalence": np.where(testable, p_equivalence, np.nan)}


def improvement(wins: np.ndarray, ties: np.ndarray, n: np.ndarray,
                confidence: float = CONFIDENCE) -> tuple[np.ndarray, np.ndarray, np.ndarray]:
    """The probability that the first level beats the second on a paired seed, ``(wins + ties / 2) / n``,
    with its exact Clopper-Pearson interval: the lower end counts ties as losses, the upper as wins."""
    wins, ties, n = (np.asarray(a, dtype=float) for a in (wins, ties, n))
    tail = (1 - confidence) / 2
    with np.errstate(divide="ignore", invalid="ignore"):
        point = (wins + ties / 2) / n
        low = np.where(wins > 0, stats.beta.ppf(tail, wins, n - wins + 1), 0.0)
        high = np.where(wins + ties < n, stats.beta.ppf(1 - tail, wins + ties + 1, n - wins - ties), 1.0)
    empty = n < 1
    return np.where(empty, np.nan, point), np.where(empty, np.nan, low), np.where(empty, np.nan, high)


def t_upper_tail(t: np.ndarray, df: np.ndarray | float) -> np.ndarray:
    """``P(T > t)`` for Student's *t* with ``df`` degrees of freedom, element-wise (a one-sided p-value)."""
    return np.asarray(stats.t.sf(t, df))


def holm(p_values: np.ndarray) -> np.ndarray:
    """Holm's step-down adjusted p-values along the last axis (each row one family); NaN entries are not
    tested and take no part in the family. Adjusted ``p < alpha`` rejects with family-wise error at most
    ``alpha`` under any dependence between the tests (Holm 1979)."""
    p = np.asarray(p_values, dtype=float)
    if p.size == 0:
        return p.copy()
    missing = np.isnan(p)
    m = (~missing).sum(axis=-1, keepdims=True)
    order = np.argsort(np.where(missing, np.inf, p), axis=-1, kind="stable")
    ranked = np.take_along_axis(np.where(missing, 1.0, p), order, axis=-1)
    factor = m - np.arange(p.shape[-1])
    adjusted = np.minimum(np.maximum.accumulate(ranked * np.maximum(factor, 1), axis=-1), 1.0)
    out = np.empty_like(adjusted)
    np.put_along_axis(out, order, adjusted, axis=-1)
    return np.where(missing, np.nan, out)


def decide(mean: np.ndarray, p_adjusted: np.ndarray, p_equivalence_adjusted: np.ndarray,
           alpha: float = ALPHA) -> np.ndarray:
    """Each comparison's decision (:data:`DECISIONS`) from its mean difference and its adjusted p-values."""
    mean = np.asarray(mean, dtype=float)
    equivalent = np.nan_to_num(np.asarray(p_equivalence_adjusted, dtype=float), nan=1.0) < alpha
    different = np.nan_to_num(np.asarray(p_adjusted, dtype=float), nan=1.0) < alpha
    return np.where(equivalent, "equivalent", np.where(different & (mean > 0), "first",
                                                       np.where(different & (mean < 0), "second", "undecided")))


def resolution(values: np.ndarray) -> np.ndarray:
    """The step a metric moves in, from the values it took (along the last axis): the smallest gap
    between two distinct values (one test example's worth of accuracy), or 0 where fewer than two
    distinct values; NaN values are left out."""
    ordered = np.sort(np.round(np.asarray(values, dtype=float), 12), axis=-1)  # NaN sorts last
    gaps = np.diff(ordered, axis=-1)
    gaps = np.where(np.isfinite(gaps) & (gaps > 0), gaps, np.inf)
    smallest = gaps.min(axis=-1) if gaps.shape[-1] else np.full(gaps.shape[:-1], np.inf)
    return np.where(np.isfinite(smallest), smallest, 0.0)


def min_tasks(alpha: float = ALPHA) -> int:
    """The fewest tasks on which an exact two-sided Wilcoxon signed-rank test can reach ``alpha`` (its
    smallest p-value over ``n`` tasks is ``2 / 2^n``)."""
    return max(1, math.ceil(math.log2(2 / alpha)))
