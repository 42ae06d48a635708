"""The Bayesian signed-rank test with a region of practical equivalence (ROPE).

Benavoli, Corani, Mangili, Zaffalon and Ruggeri, "A Bayesian Wilcoxon signed-rank test based on the
Dirichlet process" (ICML 2014), as recommended by Benavoli, Corani, Demšar and Zaffalon, "Time for a
change: a tutorial for comparing multiple classifiers through Bayesian analysis" (JMLR 2017).

The paired differences ``d`` (positive: the first level did better) get a Dirichlet-process posterior
with a prior pseudo-observation at zero difference. Each posterior draw is a weight vector ``w`` over
``[0, d_1, ..., d_n]``; it gives the probability that a Walsh average ``(d_i + d_j) / 2`` lies above the
ROPE, inside it or below it (``sum_ij w_i w_j H(...)``, ``H`` the Heaviside step with ``H(0) = 1/2``).
The three reported probabilities are the fractions of draws in which each region is the most probable,
exactly as baycomp's ``SignedRankTest`` computes them; the draws use NumPy's legacy ``RandomState``
stream, so a given ``random_state`` reproduces baycomp's numbers. baycomp loops over the draws in Python;
here the draws are batched, the Walsh sums sorted once so that each draw costs ``O(n)`` instead of
``O(n²)``, and the draws, which depend only on the number of blocks, reused, so the many comparisons of a
report stay fast.
"""

from __future__ import annotations

from collections.abc import Iterator
from dataclasses import dataclass
from functools import lru_cache

import numpy as np

PRIOR = 0.5
"""Weight of the prior pseudo-observation at zero difference (baycomp's default)."""
SAMPLES = 10_000
"""Posterior draws: a probability is then known to ±0.005 (one standard error at 0.5; ±0.002 at 0.95)."""
CHUNK = 2_048
"""Draws per batch, so memory stays small when there are many blocks."""
MARGIN = 4.0
"""Standard errors between a probability and the decision threshold that make further draws moot."""
CACHED_VALUES = 6_000_000
"""Dirichlet draws depend only on the number of blocks, so batches of up to this many numbers are kept
for the next comparison of the same size (a report compares many pairs over equally many blocks)."""


@dataclass(frozen=True)
class Posterior:
    """Posterior probabilities that the first level is better by more than the ROPE, that the two are
    practically equivalent, and that the second is better; they add up to 1."""

    first: float
    equivalent: float
    second: float


def _step_counts(z: np.ndarray, order: np.ndarray, threshold: float) -> tuple[np.ndarray, np.ndarray]:
    """For each ``i``: how many ``j`` have ``z_i + z_j > threshold`` and how many ``== threshold``.

    ``fl(z_i + z_j)`` grows with ``z_j``, so in sorted order the ``j`` above the threshold form a suffix
    and the ties a block just before it. The sums are computed as baycomp computes them (one rounding),
    so ties are found exactly where it finds them.
    """
    ordered = z[order]
    above = np.empty(len(z), dtype=np.int64)
    equal = np.empty(len(z), dtype=np.int64)
    for start in range(0, len(z), 512):
        sums = z[start:start + 512, None] + ordered[None, :]
        above[start:start + 512] = (sums > threshold).sum(axis=1)
        equal[start:start + 512] = (sums == threshold).sum(axis=1)
    return above, equal


def _region_mass(weights: np.ndarray, order: np.ndarray, above: np.ndarray, equal: np.ndarray) -> np.ndarray:
    """``sum_ij w_i w_j H(z_i + z_j - threshold)`` for every draw (a row of ``weights``)."""
    m = weights.shape[1]
    cumulative = np.zeros((weights.shape[0], m + 1))
    np.cumsum(weights[:, order], axis=1, out=cumulative[:, 1:])
    start = m - above  # where the suffix of sums above the threshold begins, in sorted order
    below = np.take(cumulative, start, axis=1)  # np.take: several times faster than fancy indexing here
    if equal.any():  # ties with the threshold count half
        below = 0.5 * (below + np.take(cumulative, start - equal, axis=1))
    return np.einsum("si,si->s", weights, 1.0 - below)


class _Draws:
    """The Dirichlet draws for one number of blocks, made on demand in batches and kept for reuse."""

    def __init__(self, alpha: np.ndarray, random_state: int) -> None:
        self.alpha, self.generator = alpha, np.random.RandomState(random_state)
        self.batches: list[np.ndarray] = []

    def batch(self, index: int, size: int) -> np.ndarray:
        while len(self.batches) <= index:
            self.batches.append(self.generator.dirichlet(self.alpha, size))
        return self.batches[index]


@lru_cache(maxsize=4)
def _cached(alpha: tuple[float, ...], samples: int, random_state: int) -> _Draws:
    return _Draws(np.array(alpha), random_state)


def _draws(alpha: np.ndarray, samples: int, random_state: int) -> Iterator[np.ndarray]:
    """The posterior weight vectors in batches, as ``RandomState(random_state).dirichlet`` draws them."""
    cached = samples * len(alpha) <= CACHED_VALUES
    source = _cached(tuple(alpha), samples, random_state) if cached else _Draws(alpha, random_state)
    for index, start in enumerate(range(0, samples, CHUNK)):
        yield source.batch(index, min(CHUNK, samples - start))


def _masses(z: np.ndarray, threshold: float,
            draws: Iterator[np.ndarray]) -> Iterator[tuple[np.ndarray, np.ndarray]]:
    """Per batch of draws: the posterior mass of Walsh sums above ``threshold`` and below ``-threshold``."""
    order, second_order = np.argsort(z, kind="stable"), np.argsort(-z, kind="stable")
    first_counts = _step_counts(z, order, threshold)
    second_counts = _step_counts(-z, second_order, threshold)
    for weights in draws:
        yield _region_mass(weights, order, *first_counts), _region_mass(weights, second_order, *second_counts)


def signed_rank(differences: np.ndarray, rope: float, *, prior: float = PRIOR, samples: int = SAMPLES,
                random_state: int = 0, decide_at: float | None = None) -> Posterior:
    """The Bayesian signed-rank test of paired ``differences`` (first minus second, positive when the
    first did better) with a ROPE of half-width ``rope`` (0: no region of equivalence).

    Equivalent to ``baycomp.SignedRankTest.probs(first_scores, second_scores, rope, prior=prior,
    nsamples=samples, random_state=random_state)``, whose result reads (first better, equivalent, second
    better). With ``decide_at`` (a credibility threshold such as 0.95), drawing stops early, after at
    least :data:`CHUNK` draws, once the largest probability lies more than :data:`MARGIN` standard errors
    from the threshold: more draws could not change the decision, only the last digits.
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or not len(d) or not np.isfinite(d).all():
        raise ValueError("signed_rank needs a non-empty 1-D array of finite differences")
    if not rope >= 0:
        raise ValueError(f"the ROPE must be a half-width >= 0, not {rope}")
    z = np.concatenate([[0.0], d])
    alpha = np.ones(len(z))
    alpha[0] = prior
    wins = np.zeros(3, dtype=np.int64)
    for first, second in _masses(z, 2 * rope, _draws(alpha, samples, random_state)):
        regions = np.stack([first, 1.0 - first - second, second], axis=1)
        wins += np.bincount(np.argmax(regions, axis=1), minlength=3)
        drawn = int(wins.sum())
        if decide_at is not None and drawn < samples:
            error = np.sqrt(decide_at * (1 - decide_at) / drawn)
            if abs(wins.max() / drawn - decide_at) > MARGIN * error:
                break
    p = wins / wins.sum()
    return Posterior(float(p[0]), float(p[1]), float(p[2]))
