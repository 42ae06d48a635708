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
stream, so a given ``random_state`` reproduces baycomp's numbers. baycomp loops over the draws in Python
and multiplies ``(n + 1)²`` matrices; here the Walsh sums are sorted once, so each draw costs ``O(n)``
and thousands of comparisons fit in a report.
"""

from __future__ import annotations

from dataclasses import dataclass

import numpy as np

PRIOR = 0.5
"""Weight of the prior pseudo-observation at zero difference (baycomp's default)."""
SAMPLES = 20_000
"""Posterior draws: a probability is then known to about ±0.004 (one standard error at 0.5)."""
CHUNK = 4_096
"""Draws per batch, so memory stays small when there are many blocks."""


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
    per_i = (1.0 - cumulative[:, start]) + 0.5 * (cumulative[:, start] - cumulative[:, start - equal])
    return np.einsum("si,si->s", weights, per_i)


def signed_rank(differences: np.ndarray, rope: float, *, prior: float = PRIOR, samples: int = SAMPLES,
                random_state: int = 0) -> Posterior:
    """The Bayesian signed-rank test of paired ``differences`` (first minus second, positive when the
    first did better) with a ROPE of half-width ``rope`` (0: no region of equivalence).

    Equivalent to ``baycomp.SignedRankTest.probs(first_scores, second_scores, rope, prior=prior,
    nsamples=samples, random_state=random_state)``, whose result reads (first better, equivalent, second
    better).
    """
    d = np.asarray(differences, dtype=float)
    if d.ndim != 1 or not len(d) or not np.isfinite(d).all():
        raise ValueError("signed_rank needs a non-empty 1-D array of finite differences")
    if not rope >= 0:
        raise ValueError(f"the ROPE must be a half-width >= 0, not {rope}")
    z = np.concatenate([[0.0], d])
    alpha = np.ones(len(z))
    alpha[0] = prior
    order, second_order = np.argsort(z, kind="stable"), np.argsort(-z, kind="stable")
    first_counts = _step_counts(z, order, 2 * rope)
    second_counts = _step_counts(-z, second_order, 2 * rope)
    generator = np.random.RandomState(random_state)
    wins = np.zeros(3, dtype=np.int64)
    for start in range(0, samples, CHUNK):
        weights = generator.dirichlet(alpha, min(CHUNK, samples - start))
        first = _region_mass(weights, order, *first_counts)
        second = _region_mass(weights, second_order, *second_counts)
        regions = np.stack([first, 1.0 - first - second, second], axis=1)
        wins += np.bincount(np.argmax(regions, axis=1), minlength=3)
    p = wins / samples
    return Posterior(float(p[0]), float(p[1]), float(p[2]))
