"""How many paired seeds a comparison needs, from the spread of its paired differences.

A comparison is settled when its difference test rejects (a real difference) or its equivalence test
does (practically equivalent: inside the ROPE), each at the level the family's correction leaves it in
the worst case, ``alpha / m`` for a family of ``m`` comparisons (Holm's first step). With the observed
mean difference ``d`` and spread ``s`` of the seeds' differences, the difference test of ``|d| / s`` is
two-sided, the equivalence test of ``(rope - |d|) / s`` one-sided against the nearer edge; the number of
seeds is the smallest ``n`` at which one of them reaches :data:`POWER` (the noncentral t distribution,
as ``statsmodels``' ``TTestPower.solve_power`` computes it). These are estimates from a spread itself
measured on few seeds: a guide to how many more to run, not a promise.
"""

from __future__ import annotations

import math

from scipy import stats

POWER = 0.8
ALPHA = 0.05
MAX_BLOCKS = 1_000_000
"""Past this, no practical number of seeds settles the comparison (reported as infinite)."""


def t_test_power(effect: float, blocks: int, alpha: float = ALPHA) -> float:
    """Power of the one-sided one-sample t-test at level ``alpha`` for a standardized ``effect`` with
    ``blocks`` observations."""
    df = blocks - 1
    return float(stats.nct.sf(stats.t.isf(alpha, df), df, effect * math.sqrt(blocks)))


def blocks_needed(effect: float, power: float = POWER, alpha: float = ALPHA) -> float:
    """The fewest observations (at least 2) for which the one-sided t-test at level ``alpha`` detects
    ``effect`` (in standard deviations) with ``power``; infinite when more than :data:`MAX_BLOCKS` would
    be needed."""
    if not effect > 0:
        return math.inf
    normal = (stats.norm.isf(alpha) + stats.norm.isf(1 - power)) / effect
    if normal**2 > MAX_BLOCKS:
        return math.inf
    low, high = 2, max(4, math.ceil(normal**2))
    while t_test_power(effect, high, alpha) < power:  # the t test needs a little more than the normal bound
        low, high = high, high * 2
        if high > MAX_BLOCKS:
            return math.inf
    while low < high:  # power grows with the number of observations
        middle = (low + high) // 2
        if t_test_power(effect, middle, alpha) >= power:
            high = middle
        else:
            low = middle + 1
    return float(high)


def seeds_needed(mean: float, spread: float, rope: float, family: int, alpha: float = ALPHA) -> float:
    """Paired seeds (in all) that would settle a comparison whose seeds differ by ``mean`` on average with
    standard deviation ``spread``: shown different, or (with a ``rope`` > 0) shown equivalent, in a
    family of ``family`` comparisons at family-wise level ``alpha``. NaN when the spread is unknown (zero,
    or not finite); infinite when no practical number would."""
    if not (math.isfinite(spread) and spread > 0 and math.isfinite(mean)):
        return math.nan
    level = alpha / max(family, 1)
    different = blocks_needed(abs(mean) / spread, alpha=level / 2)
    equivalent = blocks_needed((rope - abs(mean)) / spread, alpha=level) if abs(mean) < rope else math.inf
    return min(different, equivalent)


def seeds_to_detect(difference: float, spread: float, family: int, alpha: float = ALPHA) -> float:
    """Paired seeds (in all) that would detect a true mean difference of ``difference`` (the ROPE's
    half-width, say) with :data:`POWER`, given the spread of the seeds' differences, in a family of
    ``family`` comparisons at family-wise level ``alpha``; NaN when the spread is unknown."""
    if not (math.isfinite(spread) and spread > 0) or not difference > 0:
        return math.nan
    return blocks_needed(difference / spread, alpha=alpha / max(family, 1) / 2)
