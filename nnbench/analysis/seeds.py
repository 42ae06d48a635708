"""How many seeds a comparison needs, from the spread of its paired differences.

A comparison is settled when the mean paired difference is shown to lie on one side of the ROPE's edge:
above it (a real difference) or inside it (practical equivalence). With the observed mean difference
``d`` and standard deviation ``s`` of the block differences, that is a one-sided one-sample t-test of
the effect ``| |d| - rope | / s``; the number of blocks is the smallest ``n`` whose power reaches
:data:`POWER` at level :data:`ALPHA` (the noncentral t distribution, as ``statsmodels``'
``TTestPower.solve_power(alternative="larger")`` computes it). A seed adds one block per setting of the
other axes, so seeds are blocks divided by the settings (strata) of the comparison.
"""

from __future__ import annotations

import math

import numpy as np
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
    """The fewest observations (at least 2) for which the one-sided t-test detects ``effect`` (in
    standard deviations) with ``power``; infinite when more than :data:`MAX_BLOCKS` would be needed."""
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


def seeds_needed(differences: np.ndarray, rope: float, strata: int) -> float:
    """Seeds (in all) that a comparison of these paired ``differences`` would need to settle whether it
    lies beyond ``rope`` or inside it, with ``strata`` blocks per seed. NaN when the spread is unknown
    (fewer than two blocks, or every difference the same); infinite when the mean difference sits on
    the ROPE's edge."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2:
        return math.nan
    spread = float(np.std(d, ddof=1))
    if not spread > 0:
        return math.nan
    blocks = blocks_needed(abs(abs(float(np.mean(d))) - rope) / spread)
    return math.ceil(blocks / max(strata, 1)) if math.isfinite(blocks) else math.inf


def seeds_to_detect(differences: np.ndarray, difference: float, strata: int) -> float:
    """Seeds (in all) that would detect a true mean difference of ``difference`` (the ROPE's width, say)
    given the observed spread of the paired ``differences``; NaN when the spread is unknown."""
    d = np.asarray(differences, dtype=float)
    if len(d) < 2 or not np.std(d, ddof=1) > 0:
        return math.nan
    blocks = blocks_needed(difference / float(np.std(d, ddof=1)))
    return math.ceil(blocks / max(strata, 1)) if math.isfinite(blocks) else math.inf
