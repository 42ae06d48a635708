"""Pairwise evidence between the levels of an axis: per pair and task, the advantage of one level over the
other with its interval, the tests behind a verdict and the seeds a comparison would need; across tasks,
Wilcoxon signed-rank tests over tasks. One :class:`AxisComparison` per axis is the evidence the findings,
the comparisons and the statistics of a report all read.

Blocks are matched as in :func:`nnbench.analysis.frames.block_keys`: one task, one setting of every other
axis and one seed; a pair of levels is compared on the blocks where both finished ok. Scores are oriented
so that higher is better, and differences stay in the task's own metric units (losses are never
compared: only the task's metric on test data). The unit of evidence is the **paired seed**: a seed's
difference is the mean of its blocks' differences over the settings of the other axes (blocks of one
seed share its initial weights and batch order, so they are not independent of each other), and every
verdict says on how many paired seeds it rests. The statistics (t intervals and tests, TOST
equivalence, Clopper-Pearson intervals and Holm's correction) are in
:mod:`nnbench.analysis.paired`; the across-task tests in :mod:`nnbench.analysis.ranks`.

Every pair of levels is compared, however many levels there are: comparing each level with the one that
ranked best only would choose the pairs from the same data that tests them. The error rate of "better"
and "worse" is controlled per axis: Holm's correction over every pair and task of the axis, and its
across-task tests, keeps the family-wise error rate at ``alpha``; the equivalence claims are a second
family, corrected the same way.
"""

from __future__ import annotations

import itertools
import math
from dataclasses import dataclass, field

import numpy as np
import pandas as pd

from nnbench.analysis import paired, ranks, seeds
from nnbench.analysis.frames import block_keys, blocking_frame, format_level, higher_is_better, ok_trials
from nnbench.analysis.rope import Rope

ROW_COLUMNS = ["task", "metric_name", "first", "second", "seeds", "strata", "blocks", "mean_first", "mean_second",
               "advantage", "advantage_low", "advantage_high", "spread", "resolution", "p_value", "p_adjusted",
               "p_equivalence", "p_equivalence_adjusted", "wins", "ties", "poi", "poi_low", "poi_high", "rope",
               "rope_text", "decision", "seeds_needed", "seeds_for_rope"]
"""One row per pair and task: ``seeds`` paired seeds over ``strata`` settings of the other axes
(``blocks`` matched blocks in all); the metric's mean of each level there; the advantage of the first
(mean paired difference, positive when it did better) with its 95% t-interval, the spread of the seeds'
differences and the metric's resolution; the difference test's p-value and its Holm-adjusted value, the
same for the equivalence test; wins and ties of the first over the seeds, the probability of improvement
with its Clopper-Pearson interval; the ROPE; the decision (:data:`nnbench.analysis.paired.DECISIONS`);
the seeds that would settle it (when undecided) and that would detect a difference as large as the
ROPE."""


@dataclass
class PairEvidence:
    """Everything measured about one pair of levels: a row per task (:data:`ROW_COLUMNS`) and, when the
    pair was compared on several tasks, one row across them (:data:`nnbench.analysis.ranks.ACROSS_COLUMNS`)."""

    first: str
    second: str
    rows: pd.DataFrame
    across: dict[str, object] = field(default_factory=dict)

    def tasks(self, decision: str | None = None) -> list[str]:
        """The tasks compared (with ``decision``, only those that came out so)."""
        rows = self.rows if decision is None else self.rows[self.rows["decision"] == decision]
        return list(rows["task"])

    def poi_over(self, tasks: list[str]) -> tuple[float, float, float]:
        """The probability that the first level beats the second on a paired seed of ``tasks``, pooled
        over their seeds (tasks train independently), with its exact 95% Clopper-Pearson interval."""
        rows = self.rows.set_index("task").loc[list(tasks)]
        point, low, high = paired.improvement(rows["wins"].sum(), rows["ties"].sum(), rows["seeds"].sum())
        return float(point), float(low), float(high)

    def seeds(self, tasks: list[str]) -> list[int]:
        """The paired seeds of each of ``tasks``."""
        return [int(n) for n in self.rows.set_index("task").loc[list(tasks), "seeds"]]


@dataclass
class AxisComparison:
    """The pairwise evidence of one axis: ``levels`` best first (mean rank over its blocks); every pair,
    each with the better-ranked level first; the size of the difference family (``family``) and of the
    equivalence family; ``alpha``, their family-wise error rate. ``key`` names the comparison in the
    page (the axis, or ``version-arch-cnn`` for the versions of one component), ``label`` in words;
    ``titles`` gives hover text per level (a version's code and runs). ``ranks_over_tasks`` holds each
    level's mean rank over the ``ranked_tasks`` tasks where every level ran."""

    axis: str
    levels: list[str]
    pairs: list[PairEvidence]
    tasks: list[str]
    alpha: float = paired.ALPHA
    family: int = 0
    equivalence_family: int = 0
    key: str = ""
    label: str = ""
    titles: dict[str, str] = field(default_factory=dict)
    ranks_over_tasks: pd.Series = field(default_factory=lambda: pd.Series(dtype=float))
    ranked_tasks: int = 0

    def __post_init__(self) -> None:
        self.key = self.key or self.axis
        self.label = self.label or self.axis

    def pair(self, first: str, second: str) -> PairEvidence | None:
        return next((p for p in self.pairs if (p.first, p.second) == (first, second)), None)

    def table(self) -> pd.DataFrame:
        """Every pair's rows in one frame (its columns are :data:`ROW_COLUMNS`)."""
        frames = [p.rows for p in self.pairs if not p.rows.empty]
        return pd.concat(frames, ignore_index=True) if frames else pd.DataFrame(columns=ROW_COLUMNS)

    def across(self) -> pd.DataFrame:
        """Every pair's across-task row (:data:`nnbench.analysis.ranks.ACROSS_COLUMNS`)."""
        return pd.DataFrame([p.across for p in self.pairs if p.across], columns=ranks.ACROSS_COLUMNS)

    @property
    def seed_counts(self) -> list[int]:
        """The distinct numbers of paired seeds its comparisons rest on, smallest first."""
        table = self.table()
        return sorted({int(n) for n in table["seeds"]}) if len(table) else []


def oriented(metric: pd.Series, metric_name: pd.Series) -> pd.Series:
    """The metric with its sign flipped where lower is better, so higher is better everywhere."""
    return metric.astype(float) * np.where(metric_name.map(higher_is_better).astype(bool), 1.0, -1.0)


def level_blocks(trials: pd.DataFrame, axis: str,
                 version_table: pd.DataFrame | None = None) -> tuple[pd.DataFrame, pd.DataFrame, dict[str, str]]:
    """Oriented scores and raw metrics of every block (index: task, the other axes, seed), a column per
    level of ``axis`` (written as tables write it), and each task's metric."""
    keys = [*block_keys(trials, axis), "seed"]
    ok = ok_trials(blocking_frame(trials, axis, version_table))
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


def compare_axis(trials: pd.DataFrame, axis: str, rope: Rope, alpha: float = paired.ALPHA, *,
                 version_table: pd.DataFrame | None = None, key: str = "", label: str = "",
                 titles: dict[str, str] | None = None) -> AxisComparison:
    """The pairwise evidence for ``axis``: every pair of levels on every task, their across-task tests,
    and the decisions of the whole family at family-wise error rate ``alpha``."""
    scores, metrics, names = level_blocks(trials, axis, version_table)
    levels = [str(level) for level in mean_ranks(scores).index]
    rows = pair_rows(scores, metrics, names, rope, list(itertools.combinations(levels, 2)))
    scales = {task: 1.0 for task in names} if ranks.fixed_scale(names) else ranks.task_spreads(scores)
    across = ranks.across_tasks(rows, scales, alpha) if rows["task"].nunique() > 1 else pd.DataFrame(
        columns=ranks.ACROSS_COLUMNS)
    family, equivalence_family = decide_family(rows, across, alpha)
    over_tasks, ranked = ranks.mean_ranks(scores[levels]) if levels else (pd.Series(dtype=float), 0)
    pairs = []
    for (first, second), part in rows.groupby(["first", "second"], sort=False):
        match = across[(across["first"] == first) & (across["second"] == second)]
        pairs.append(PairEvidence(str(first), str(second), part.reset_index(drop=True),
                                  match.iloc[0].to_dict() if len(match) else {}))
    tasks = list(dict.fromkeys(rows["task"]))
    return AxisComparison(axis, levels, pairs, tasks, alpha, family, equivalence_family, key=key, label=label,
                          titles=dict(titles or {}), ranks_over_tasks=over_tasks, ranked_tasks=ranked)


def seed_differences(scores: pd.DataFrame, first: str, second: str) -> tuple[pd.Series, int, int]:
    """The paired differences of ``first`` over ``second`` per seed (the mean over the settings of the
    other axes where both finished), the number of settings and of matched blocks."""
    both = scores[[first, second]].dropna()
    difference = both[first] - both[second]
    per_seed = difference.groupby(level=-1, sort=True).mean()
    settings = both.index.droplevel(-1).nunique() if both.index.nlevels > 1 else 1
    return per_seed, int(settings), len(both)


def pair_rows(scores: pd.DataFrame, metrics: pd.DataFrame, names: dict[str, str], rope: Rope,
              pairs: list[tuple[str, str]]) -> pd.DataFrame:
    """One row per pair and task where both levels share blocks (:data:`ROW_COLUMNS`), with the
    unadjusted tests; :func:`decide_family` completes them."""
    records: list[dict[str, object]] = []
    differences: list[np.ndarray] = []
    for task, part in scores.groupby(level=0, sort=False):
        task = str(task)
        task_metrics = metrics.loc[part.index]
        step = float(paired.resolution(task_metrics.to_numpy().ravel()))
        for first, second in pairs:
            if first not in part.columns or second not in part.columns:
                continue
            per_seed, settings, blocks = seed_differences(part, first, second)
            if per_seed.empty:
                continue
            matched = task_metrics.loc[part[[first, second]].dropna().index]
            width = rope.width(task, names[task], matched.to_numpy().ravel())
            records.append({"task": task, "metric_name": names[task], "first": first, "second": second,
                            "seeds": len(per_seed), "strata": settings, "blocks": blocks,
                            "mean_first": float(matched[first].mean()), "mean_second": float(matched[second].mean()),
                            "resolution": step, "rope": width, "rope_text": rope.describe(task, names[task], width)})
            differences.append(per_seed.to_numpy(float))
    if not records:
        return pd.DataFrame(columns=ROW_COLUMNS)
    frame = pd.DataFrame(records)
    longest = max(len(d) for d in differences)
    padded = np.full((len(differences), longest), np.nan)
    for i, d in enumerate(differences):
        padded[i, : len(d)] = d
    summary = paired.summarize(padded)
    tested = paired.tests(summary["n"], summary["mean"], summary["sd"], frame["rope"].to_numpy(float),
                          frame["resolution"].to_numpy(float))
    poi, poi_low, poi_high = paired.improvement(summary["wins"], summary["ties"], summary["n"])
    frame = frame.assign(
        advantage=summary["mean"], advantage_low=tested["low"], advantage_high=tested["high"],
        spread=np.where(summary["n"] >= 2, np.sqrt(np.nan_to_num(summary["sd"]) ** 2
                                                   + frame["resolution"].to_numpy(float) ** 2 / 6), np.nan),
        p_value=tested["p_value"], p_adjusted=np.nan, p_equivalence=tested["p_equivalence"],
        p_equivalence_adjusted=np.nan, wins=summary["wins"], ties=summary["ties"], poi=poi, poi_low=poi_low,
        poi_high=poi_high, decision="undecided", seeds_needed=np.nan, seeds_for_rope=np.nan)
    return frame[ROW_COLUMNS]


def decide_family(rows: pd.DataFrame, across: pd.DataFrame, alpha: float = paired.ALPHA) -> tuple[int, int]:
    """Correct the family in place: Holm over every difference test of ``rows`` and ``across`` (one
    family), Holm over the equivalence tests of ``rows`` (another), then each row's decision and the seeds
    that would settle an undecided one. Returns the two families' sizes."""
    if rows.empty:
        return 0, 0
    joint = np.concatenate([rows["p_value"].to_numpy(float), across["p_value"].to_numpy(float)])
    adjusted = paired.holm(joint)
    rows["p_adjusted"] = adjusted[: len(rows)]
    equivalence = rows["p_equivalence"].to_numpy(float)
    rows["p_equivalence_adjusted"] = paired.holm(equivalence)
    rows["decision"] = paired.decide(rows["advantage"], rows["p_adjusted"], rows["p_equivalence_adjusted"], alpha)
    family, equivalence_family = int(np.isfinite(joint).sum()), int(np.isfinite(equivalence).sum())
    if len(across):
        across["p_adjusted"] = adjusted[len(rows):]
        rejected = np.nan_to_num(across["p_adjusted"].to_numpy(float), nan=1.0) < alpha
        direction = across["direction"].to_numpy(float)
        across["decision"] = np.where(~np.isfinite(across["p_value"].to_numpy(float)), "", np.where(
            rejected & (direction > 0), "first", np.where(rejected & (direction < 0), "second", "undecided")))
    rows["seeds_needed"] = [
        seeds.seeds_needed(mean, spread, rope, family, alpha) if decision == "undecided" else math.nan
        for mean, spread, rope, decision in zip(rows["advantage"], rows["spread"], rows["rope"], rows["decision"],
                                                strict=True)]
    rows["seeds_for_rope"] = [seeds.seeds_to_detect(rope, spread, family, alpha) if rope > 0 else math.nan
                              for rope, spread in zip(rows["rope"], rows["spread"], strict=True)]
    return family, equivalence_family


def decide_scores(scores: np.ndarray, rope: float, alpha: float = paired.ALPHA,
                  scales: np.ndarray | None = None) -> dict[str, np.ndarray]:
    """The decisions of one axis on an array of oriented scores, ``scores[..., task, seed, level]``
    (complete: every level ran on every task and seed; leading axes are independent repetitions), with
    the same tests, corrections and rules as :func:`compare_axis`, each task's resolution read from its
    scores alike (the calibration benchmark and its tests run the verdict machinery this way, thousands
    of times over).

    Pairs are every ``(i, j)`` with ``i < j`` in level order. Returns ``pairs`` (``(n_pairs, 2)``),
    ``decisions`` (``[..., pair, task]``: :data:`nnbench.analysis.paired.DECISIONS`), ``advantage``,
    ``low``, ``high``, ``poi``, ``poi_low``, ``poi_high`` (alike) and ``across`` (``[..., pair]``: ``first``,
    ``second``, ``undecided`` or ``""`` where too few tasks to test). ``scales``: per task, what a
    difference is divided by before the across-task test (default 1: a metric with a fixed scale).
    """
    scores = np.asarray(scores, dtype=float)
    levels = scores.shape[-1]
    pairs = np.array(list(itertools.combinations(range(levels), 2)), dtype=int).reshape(-1, 2)
    differences = scores[..., pairs[:, 0]] - scores[..., pairs[:, 1]]  # [..., task, seed, pair]
    differences = np.moveaxis(differences, -1, -3)  # [..., pair, task, seed]
    summary = paired.summarize(differences)
    flat_scores = scores.reshape(*scores.shape[:-2], -1)  # [..., task, seed x level]: a task's values
    step = paired.resolution(flat_scores)[..., None, :]  # [..., 1 (pair), task]
    tested = paired.tests(summary["n"], summary["mean"], summary["sd"], rope, step)
    poi, poi_low, poi_high = paired.improvement(summary["wins"], summary["ties"], summary["n"])
    tasks = scores.shape[-3]
    scale = np.ones(tasks) if scales is None else np.asarray(scales, dtype=float)
    _, across_p, direction = ranks.over_tasks(summary["mean"] / scale, alpha)  # [..., pair]
    flat = tested["p_value"].reshape(*tested["p_value"].shape[:-2], -1)
    adjusted = paired.holm(np.concatenate([flat, across_p], axis=-1))
    per_task = adjusted[..., : flat.shape[-1]].reshape(tested["p_value"].shape)
    equivalence = paired.holm(tested["p_equivalence"].reshape(flat.shape)).reshape(tested["p_value"].shape)
    decisions = paired.decide(summary["mean"], per_task, equivalence, alpha)
    across_adjusted = adjusted[..., flat.shape[-1]:]
    rejected = np.nan_to_num(across_adjusted, nan=1.0) < alpha
    across = np.where(~np.isfinite(across_p), "", np.where(rejected & (direction > 0), "first", np.where(
        rejected & (direction < 0), "second", "undecided")))
    return {"pairs": pairs, "decisions": decisions, "advantage": summary["mean"], "low": tested["low"],
            "high": tested["high"], "poi": poi, "poi_low": poi_low, "poi_high": poi_high, "across": across}
