"""The decisions of a race: which configurations their paired seeds show worse than the best, beyond the ROPE.

Pure NumPy and scipy on arrays, so that a run (:mod:`nnbench.execution.racing`), the report and the simulation
(``benchmarks/bench_race.py``) read the very same code. The method, with its references, is in ``docs/racing.md``:

- **Rungs over epochs, then seeds** (:func:`rungs`). Every configuration first trains its first seeds for a third
  of its epochs (:func:`epoch_rung`), then, if it survives, those seeds for all its epochs, then more seeds,
  doubling up to all of them. A rung's decision reads every seed's validation score of every configuration of a
  task, paired by seed: the score at the epoch rung's epoch, then the score the trial keeps (its last epoch's, or
  its best epoch's under early stopping).
- **The test** is the one-sided paired *t* test of "the best configuration (by mean) is better than this one by
  more than the ROPE", with the variance of :mod:`nnbench.analysis.paired` (``s² + resolution² / 6``), so that it
  decides at three seeds where an exact sign or permutation test cannot (its smallest p-value is 1/8).
- **Error rate.** Holm's correction over the task's configurations at each rung, at ``alpha`` divided by the
  number of rungs that decide (Bonferroni over the looks), so the chance that a race prunes a configuration
  whose true score is within the ROPE of the best stays near ``alpha`` per task; the simulation measures it.
- **Ties are never pruned**: a configuration within the ROPE of the best cannot be rejected by a test whose null
  hypothesis is "worse by at most the ROPE".
"""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from dataclasses import dataclass

import numpy as np

ALPHA = 0.05
"""The chance, per task, that a race prunes a configuration within the ROPE of the best: the verdicts' level."""
FIRST_RUNG = 3
"""Seeds every configuration trains before the first decision (two where the grid asks for three in all)."""
MIN_SEEDS = 3
"""The fewest seeds a race can run with: a decision needs two paired seeds and a seed left to save."""


EPOCH_SHARE = 1 / 3
"""The share of its epochs a configuration trains at the epoch rung."""


def seed_rungs(seeds: int) -> list[int]:
    """The seed counts at which a race decides, then its last (``seeds``): the first rung, then doubling.
    ``[3, 5]`` for 5 seeds, ``[3, 6, 10]`` for 10, ``[2, 3]`` for 3."""
    if seeds < MIN_SEEDS:
        raise ValueError(f"a race needs {MIN_SEEDS} seeds or more, not {seeds}")
    counts = [min(FIRST_RUNG, seeds - 1)]
    while counts[-1] < seeds:
        counts.append(min(2 * counts[-1], seeds))
    return counts


def epoch_rung(epochs: int) -> int | None:
    """The epoch after which a configuration of ``epochs`` epochs is first judged; ``None`` for a single epoch."""
    return max(1, int(epochs * EPOCH_SHARE)) if epochs > 1 else None


@dataclass(frozen=True)
class Rung:
    """One rung of a race: its seeds, and whether they train only to the epoch rung (``partial``)."""

    seeds: int
    partial: bool = False


def rungs(seeds: int, epochs: int) -> list[Rung]:
    """A race's rungs for ``seeds`` seeds and configurations of at most ``epochs`` epochs: the first seeds to the
    epoch rung (when there are two epochs or more), then to the end, then more seeds, doubling (the last rung
    decides nothing)."""
    counts = seed_rungs(seeds)
    first = [Rung(counts[0], partial=True)] if epoch_rung(epochs) is not None else []
    return [*first, *(Rung(count) for count in counts)]


def look_alpha(looks: int, alpha: float = ALPHA) -> float:
    """The level each rung's family of tests is held at: ``alpha`` split over the ``looks`` rungs that decide."""
    return alpha / max(1, looks)


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
    scores themselves). A configuration with fewer than two seeds paired with the best is kept.
    """
    from nnbench.analysis.paired import holm, resolution, summarize, tests  # scipy: loaded when a race decides

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
    summary = summarize(differences)
    res = resolution(table.ravel()) if step is None else step
    two_sided = tests(summary["n"], summary["mean"] - rope, summary["sd"], 0.0, res)["p_value"]
    above = summary["mean"] > rope
    one_sided = np.where(above, two_sided / 2, 1 - two_sided / 2)
    one_sided[best] = np.nan
    adjusted = holm(one_sided)
    return [Pruning(names[i], names[best], int(summary["n"][i]), float(summary["mean"][i]), rope,
                    float(adjusted[i]), alpha)
            for i in range(len(names)) if np.isfinite(adjusted[i]) and adjusted[i] < alpha]
