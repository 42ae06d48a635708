"""The decisions of a race: which configurations their paired seeds show worse than the best, beyond the ROPE.

Pure NumPy and scipy on arrays, so that a run (:mod:`nnbench.execution.racing`), the tests and the simulation
(``benchmarks/bench_race.py``) read the very same code. The method, its references and its measured error rate are
in ``docs/racing.md``:

- **Rungs over seeds** (:func:`seed_rungs`): every configuration trains its first two seeds for all its epochs;
  then the survivors train more seeds, doubling, up to all of them. A rung's decision reads every seed's validation
  score of every configuration of a task (the score the trial keeps: its last epoch's, or its best epoch's under
  early stopping), paired by seed.
- **The test**: for each configuration, the one-sided *t* test of "the best configuration (by mean) is better than
  this one by more than the ROPE", on their paired seeds. The spread comes from the two-way model score =
  configuration + seed + noise (pairing by seed removes the seed's effect): each configuration's residual
  variance, moderated towards the variance pooled over the task's configurations as limma's moderated *t* does
  (Smyth 2004; F-Race's post-hoc test pools its error term too), with :data:`PRIOR_DF` degrees of freedom added.
  So it decides at two seeds, where a pair's own spread (one degree of freedom) or an exact sign or permutation
  test (p >= 1/8 at three seeds) cannot, and a configuration much noisier than the rest keeps much of its own
  spread. The metric's resolution adds ``resolution² / 6`` as in :mod:`nnbench.analysis.paired`.
- **Error rate**: Holm's correction over the task's configurations, at ``alpha`` split over the rungs that decide
  (Bonferroni over the looks): the chance that a race prunes a configuration whose true score is within the ROPE
  of the best stays at about ``alpha`` per task (the simulation measures it).
- **Ties are never pruned**: the null hypothesis is "worse by at most the ROPE", so a configuration within the
  ROPE of the best is rejected only at the error rate.
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
"""The chance, per task, that a race prunes a configuration within the ROPE of the best: the verdicts' level."""
FIRST_RUNG = 2
"""Seeds every configuration trains before the first decision."""
MIN_SEEDS = FIRST_RUNG + 1
"""The fewest seeds a race can run with: the first rung's, and one left to save."""
PRIOR_DF = 6.0
"""How many degrees of freedom the pooled variance weighs in a configuration's moderated variance: chosen by the
simulation (``benchmarks/bench_race.py``) as the most that keeps the error rate under ``alpha`` when some
configurations are five times noisier than the rest."""


def seed_rungs(seeds: int) -> list[int]:
    """The seed counts at which a race decides, then its last (``seeds``): two, then doubling.
    ``[2, 4, 5]`` for 5 seeds, ``[2, 4, 8, 10]`` for 10, ``[2, 3]`` for 3."""
    if seeds < MIN_SEEDS:
        raise ValueError(f"a race needs {MIN_SEEDS} seeds or more, not {seeds}")
    counts = [FIRST_RUNG]
    while counts[-1] < seeds:
        counts.append(min(2 * counts[-1], seeds))
    return counts


def look_alpha(seeds: int, alpha: float = ALPHA) -> float:
    """The level each rung's family of tests is held at: ``alpha`` split over the rungs that decide."""
    return alpha / (len(seed_rungs(seeds)) - 1)


@dataclass(frozen=True)
class Pruning:
    """A configuration shown worse than the best: ``mean_difference`` (the best's score minus its own, oriented so
    that positive means the best did better) over ``seeds`` paired seeds, against ``rope``; ``p_value`` is the
    Holm-adjusted p-value of the one-sided test, compared with ``alpha``."""

    configuration: str
    best: str
    seeds: int
    mean_difference: float
    rope: float
    p_value: float
    alpha: float


def decide(scores: Mapping[str, Sequence[float]], higher_is_better: bool, rope: float, alpha: float,
           step: float | None = None) -> list[Pruning]:
    """The configurations of one task to prune at a rung.

    ``scores`` maps each configuration to its validation scores by seed (position ``i`` is the same seed for every
    configuration; NaN: missing, such as a diverged seed). ``step`` is the metric's resolution (default: from the
    scores themselves). A configuration with fewer than two seeds paired with the best is kept, and so is every
    configuration when no two have every seed.
    """
    from nnbench.analysis import paired  # scipy: loaded when a race decides, never when a run starts

    names = list(scores)
    if len(names) < 2:
        return []
    width = max(len(v) for v in scores.values())
    table = np.full((len(names), width), np.nan)
    for row, name in enumerate(names):
        table[row, :len(scores[name])] = np.asarray(scores[name], dtype=float)
    oriented = table if higher_is_better else -table
    with np.errstate(invalid="ignore"):
        means = np.nanmean(np.where(np.isfinite(oriented), oriented, np.nan), axis=1)
    if not np.isfinite(means).any():
        return []
    best = int(np.nanargmax(means))
    differences = oriented[best][None, :] - oriented  # the best's advantage, seed by seed
    differences[best] = np.nan
    summary = paired.summarize(differences)
    variance, rows, df = residual_variance(oriented)
    if not df >= 1:
        return []
    n = summary["n"].astype(float)
    # Each configuration's own variance, moderated towards the pooled one (as limma's moderated t): a row's few
    # degrees of freedom weigh against PRIOR_DF of the pooled variance, so that a configuration far noisier than the
    # rest keeps much of its own spread, and one seed pair's chance agreement cannot make a spread of zero.
    own_df = df / max(1, int(np.isfinite(rows).sum()))
    moderated = np.where(np.isfinite(rows), (PRIOR_DF * variance + own_df * np.nan_to_num(rows)) / (PRIOR_DF + own_df),
                         variance)
    spread = moderated[best] + moderated  # the variance of a difference of two configurations' noise
    df = PRIOR_DF + own_df
    res = paired.resolution(table.ravel()) if step is None else step
    with np.errstate(divide="ignore", invalid="ignore"):
        error = np.sqrt((spread + res**2 / 6) / n)
        t = np.where(error > 0, (summary["mean"] - rope) / error,
                     np.where(summary["mean"] > rope, np.inf, -np.inf))
    adjusted = paired.holm(np.where(n >= 2, paired.t_upper_tail(t, df), np.nan))
    return [Pruning(names[i], names[best], int(summary["n"][i]), float(summary["mean"][i]), rope,
                    float(adjusted[i]), alpha)
            for i in range(len(names)) if np.isfinite(adjusted[i]) and adjusted[i] < alpha]


def residual_variance(table: np.ndarray) -> tuple[float, np.ndarray, float]:
    """The residual variance of the two-way model score = configuration + seed + noise over the rows of ``table``
    (configurations by seeds) that have every seed: pooled, per row (NaN for a row with a missing seed), and the
    pooled variance's degrees of freedom ``(rows - 1)(seeds - 1)``."""
    complete = np.isfinite(table).all(axis=1)
    full = table[complete]
    rows, cols = full.shape
    per_row = np.full(len(table), np.nan)
    if rows < 2 or cols < 2:
        return float("nan"), per_row, 0.0
    df = (rows - 1) * (cols - 1)
    residuals = full - full.mean(axis=1, keepdims=True) - full.mean(axis=0, keepdims=True) + full.mean()
    squares = (residuals**2).sum(axis=1)
    per_row[complete] = squares / (df / rows)  # each row's share of the degrees of freedom
    return float(squares.sum() / df), per_row, float(df)
