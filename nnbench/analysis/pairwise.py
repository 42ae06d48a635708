"""Pairwise evidence between the levels of an axis: probability of improvement, the Bayesian signed-rank
test with a ROPE, the mean paired difference with its interval, and the seeds a comparison would need.

Blocks are matched as in the rank tests (:func:`nnbench.analysis.frames.block_keys`): one task, one
setting of every other axis (a *stratum*) and one seed; a pair of levels is compared on the blocks where
both finished ok. Scores are oriented so that higher is better, and differences stay in the task's own
metric units (losses are never compared: only the task's metric on test data).

- The **probability of improvement** P(X > Y) (rliable's, Agarwal et al. 2021) is the Mann-Whitney
  statistic ``U / (n m)`` of the first level's seeds against the second's within a stratum (ties count
  half), averaged over the strata of a task, then over tasks.
- Its interval and the interval of the mean paired difference come from one stratified bootstrap: the
  seeds of each stratum resampled (both levels with the same seeds, so blocks stay paired), 95%
  percentile intervals.
- The Bayesian signed-rank test (:mod:`nnbench.analysis.bayes`) gives P(first better), P(equivalent)
  and P(second better) per task; a decision needs :data:`CREDIBLE` of them.
- When a comparison stays undecided, :mod:`nnbench.analysis.seeds` says how many seeds would settle it.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnbench.analysis import bayes, seeds
from nnbench.analysis.frames import block_keys, blocking_frame, format_level, higher_is_better, ok_trials
from nnbench.analysis.rope import Rope

CREDIBLE = 0.95
"""A posterior probability this high decides a comparison."""
CONFIDENCE = 0.95
RESAMPLES = 2_000
RANDOM_STATE = 0
ALL_PAIRS_LEVELS = 6
"""Up to this many levels every pair is compared; past it, each level against the best one."""
DECISIONS = ("first", "equivalent", "second", "undecided")
ROW_COLUMNS = ["task", "metric_name", "first", "second", "blocks", "seeds", "strata", "mean_first", "mean_second",
               "advantage", "advantage_low", "advantage_high", "poi", "poi_low", "poi_high", "rope", "rope_text",
               "p_first", "p_equivalent", "p_second", "decision", "seeds_needed", "seeds_for_rope"]


@dataclass
class PairEvidence:
    """Everything measured about one pair of levels: a row per task (:data:`ROW_COLUMNS`) and the
    bootstrap replicates of each task's probability of improvement (for intervals over task subsets)."""

    first: str
    second: str
    rows: pd.DataFrame
    replicates: dict[str, np.ndarray] = field(repr=False)

    def tasks(self, decision: str | None = None) -> list[str]:
        """The tasks compared (with ``decision``, only those that came out so)."""
        rows = self.rows if decision is None else self.rows[self.rows["decision"] == decision]
        return list(rows["task"])

    def poi_over(self, tasks: list[str]) -> tuple[float, float, float]:
        """The probability of improvement averaged over ``tasks``, with its 95% stratified interval."""
        point = float(self.rows.set_index("task").loc[tasks, "poi"].mean())
        replicates = np.mean([self.replicates[t] for t in tasks], axis=0)
        low, high = np.percentile(replicates, [50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)])
        return point, float(low), float(high)


@dataclass
class AxisComparison:
    """The pairwise evidence of one axis: ``levels`` best first (mean rank over its blocks), and the
    pairs compared, each with the better-ranked level first."""

    axis: str
    levels: list[str]
    pairs: list[PairEvidence]
    all_pairs: bool
    tasks: list[str]

    def pair(self, first: str, second: str) -> PairEvidence | None:
        return next((p for p in self.pairs if (p.first, p.second) == (first, second)), None)

    def table(self) -> pd.DataFrame:
        """Every pair's rows in one frame (its columns are :data:`ROW_COLUMNS`)."""
        frames = [p.rows for p in self.pairs if not p.rows.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ROW_COLUMNS)


def oriented(metric: pd.Series, metric_name: pd.Series) -> pd.Series:
    """The metric with its sign flipped where lower is better, so higher is better everywhere."""
    return metric.astype(float) * np.where(metric_name.map(higher_is_better).astype(bool), 1.0, -1.0)


def level_blocks(trials: pd.DataFrame, axis: str) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Oriented scores and raw metrics of every block (index: task, the other axes, seed), a column per
    level of ``axis`` (written as tables write it), and each task's metric."""
    keys = [*block_keys(trials, axis), "seed"]
    ok = ok_trials(blocking_frame(trials, axis))
    ok = ok.assign(score=oriented(ok["metric"], ok["metric_name"]), metric=ok["metric"].astype(float))
    if axis == "lr":
        ok = ok.assign(lr=ok["lr"].astype(float))
    wide = ok.pivot_table(index=keys, columns=axis, values=["score", "metric"], aggfunc="mean", sort=axis == "lr")
    labels = {level: format_level(axis, level) for level in wide.columns.get_level_values(1)}
    scores, metrics = wide["score"].rename(columns=labels), wide["metric"].rename(columns=labels)
    names = ok.groupby("task", sort=False)["metric_name"].first().to_dict()
    return scores, metrics, names


def mean_ranks(scores: pd.DataFrame) -> pd.Series:
    """Each level's mean rank over the blocks where at least two levels finished (1 is best)."""
    shared = scores[scores.notna().sum(axis=1) >= 2]
    return shared.rank(axis=1, ascending=False).mean().sort_values(kind="stable")


def compare_axis(trials: pd.DataFrame, axis: str, rope: Rope, resamples: int = RESAMPLES) -> AxisComparison:
    """The pairwise evidence for ``axis``: all pairs of up to :data:`ALL_PAIRS_LEVELS` levels, else each
    level against the best-ranked one."""
    scores, metrics, names = level_blocks(trials, axis)
    ranks = mean_ranks(scores)
    levels = [str(level) for level in ranks.index]
    all_pairs = len(levels) <= ALL_PAIRS_LEVELS
    pairs = itertools.combinations(levels, 2) if all_pairs else ((levels[0], other) for other in levels[1:])
    compared = [compare_pair(scores[[a, b]], metrics[[a, b]], names, rope, resamples) for a, b in pairs]
    tasks = list(dict.fromkeys(t for pair in compared for t in pair.tasks()))
    return AxisComparison(axis, levels, [p for p in compared if not p.rows.empty], all_pairs, tasks)


def compare_pair(scores: pd.DataFrame, metrics: pd.DataFrame, names: dict[str, str], rope: Rope,
                 resamples: int = RESAMPLES) -> PairEvidence:
    """The evidence between the two columns of ``scores`` (oriented scores of matched blocks, first
    index level the task, last the seed) on each task where they share blocks."""
    first, second = (str(c) for c in scores.columns)
    rows, replicates = [], {}
    complete = scores.dropna()
    for task, part in complete.groupby(level=0, sort=False):
        row, replicate = _compare_task(str(task), part, metrics.loc[part.index], names[str(task)], rope, resamples)
        rows.append({"first": first, "second": second, **row})
        replicates[str(task)] = replicate
    return PairEvidence(first, second, pd.DataFrame(rows, columns=ROW_COLUMNS), replicates)


def _strata(part: pd.DataFrame) -> np.ndarray:
    """Each block's stratum (the setting of the other axes: neither the task, first, nor the seed, last)."""
    if part.index.nlevels <= 2:
        return np.zeros(len(part), dtype=np.int64)
    return pd.MultiIndex.from_arrays([part.index.get_level_values(i) for i in range(1, part.index.nlevels - 1)]
                                     ).factorize()[0]


def _compare_task(task: str, part: pd.DataFrame, metrics: pd.DataFrame, metric_name: str, rope: Rope,
                  resamples: int) -> tuple[dict[str, object], np.ndarray]:
    strata = _strata(part)
    first, second = part.iloc[:, 0].to_numpy(float), part.iloc[:, 1].to_numpy(float)
    differences = first - second
    width = rope.width(task, metric_name, metrics.to_numpy().ravel())
    poi, poi_replicates, advantage_replicates = _bootstrap(first, second, strata, resamples)
    n_strata = int(strata.max()) + 1
    posterior = bayes.signed_rank(differences, width, random_state=RANDOM_STATE, decide_at=CREDIBLE)
    decision = ("first" if posterior.first >= CREDIBLE else "second" if posterior.second >= CREDIBLE
                else "equivalent" if posterior.equivalent >= CREDIBLE else "undecided")
    seeds_count = part.index.get_level_values(-1).nunique()
    tail = 50 * (1 - CONFIDENCE), 50 * (1 + CONFIDENCE)
    advantage_low, advantage_high = np.percentile(advantage_replicates, tail)
    poi_low, poi_high = np.percentile(poi_replicates, tail)
    return {
        "task": task, "metric_name": metric_name, "blocks": len(part), "seeds": seeds_count, "strata": n_strata,
        "mean_first": float(metrics.iloc[:, 0].mean()), "mean_second": float(metrics.iloc[:, 1].mean()),
        "advantage": float(differences.mean()), "advantage_low": float(advantage_low),
        "advantage_high": float(advantage_high), "poi": poi, "poi_low": float(poi_low), "poi_high": float(poi_high),
        "rope": width, "rope_text": rope.describe(task, metric_name, width), "p_first": posterior.first,
        "p_equivalent": posterior.equivalent, "p_second": posterior.second, "decision": decision,
        "seeds_needed": seeds.seeds_needed(differences, width, n_strata) if decision == "undecided" else math.nan,
        "seeds_for_rope": seeds.seeds_to_detect(differences, width, n_strata) if width > 0 else math.nan,
    }, poi_replicates


def _bootstrap(first: np.ndarray, second: np.ndarray, strata: np.ndarray,
               resamples: int) -> tuple[float, np.ndarray, np.ndarray]:
    """The probability of improvement and bootstrap replicates of it and of the mean paired difference,
    resampling the seeds of every stratum (paired), strata of one size at a time."""
    rng = np.random.default_rng(RANDOM_STATE)
    poi_sum = np.zeros(resamples)
    difference_sum = np.zeros(resamples)
    point = 0.0
    order = np.argsort(strata, kind="stable")
    sizes = np.bincount(strata)
    starts = np.concatenate([[0], np.cumsum(sizes)[:-1]])
    for size in np.unique(sizes):
        rows = order[(starts[sizes == size][:, None] + np.arange(size)[None, :])]  # (strata, seeds)
        a, b = first[rows], second[rows]
        wins = (a[:, :, None] > b[:, None, :]) + 0.5 * (a[:, :, None] == b[:, None, :])
        point += float(wins.mean(axis=(1, 2)).sum())
        drawn = rng.integers(0, size, (resamples, len(rows), size))  # seeds drawn with replacement
        counts = (drawn[..., None] == np.arange(size)).sum(axis=2, dtype=float)  # how often each seed was drawn
        poi_sum += np.einsum("bgj,bgj->b", np.einsum("bgi,gij->bgj", counts, wins), counts) / size**2
        difference_sum += np.einsum("bgi,gi->b", counts, a - b)
    return point / len(sizes), poi_sum / len(sizes), difference_sum / len(first)
