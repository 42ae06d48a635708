"""Run against run: did the candidate's new component beat the stored baselines?

The candidate's trials are matched with the baseline's on everything but the compared axes: the same
task, the same level of every other axis (hyper-parameter variants included) and the same seed. Trials
that differ in anything else are refused with what differs, as a combined report keeps unlike
configurations apart. Each candidate level is compared with each baseline level, task by task, with the
evidence of :mod:`nnbench.analysis.pairwise`; the comparisons form one family, so the chance that the
candidate is called worse (or better) on any task when it is not stays at ``alpha`` (family-wise, Holm).
"""

from __future__ import annotations

import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import pandas as pd

from nnbench.analysis import fairness, frames, paired
from nnbench.analysis.pairwise import PairEvidence, decide_family, oriented, pair_rows
from nnbench.analysis.ranks import ACROSS_COLUMNS
from nnbench.analysis.rope import Rope
from nnbench.analysis.verdicts import names, on_tasks, p_text, pair_claims, seeds_text
from nnbench.contract.errors import NNBenchError

Filter = Mapping[str, Sequence[str]]
DECISION_WORDS = {"first": "candidate better", "second": "baseline better", "equivalent": "practically equivalent",
                  "undecided": "undecided"}
"""Each decision as ``nnbench compare`` prints it and writes it to JSON: who is better, in words."""


@dataclass
class RunComparison:
    """The comparison of a candidate with its baseline: the compared ``axes``, one
    :class:`~nnbench.analysis.pairwise.PairEvidence` per candidate and baseline level (candidate first),
    the verdict in words, the family-wise error rate ``alpha`` over the ``family`` comparisons, and
    whether the candidate is credibly worse than a baseline on some task."""

    baseline: str
    candidate: str
    axes: list[str]
    pairs: list[PairEvidence]
    rope: Rope
    verdict: str
    tasks: list[str]
    alpha: float = paired.ALPHA
    family: int = 0

    @property
    def worse(self) -> bool:
        """The candidate is credibly worse than some baseline level on some task (any one is enough)."""
        return any(pair.rows["decision"].eq("second").any() for pair in self.pairs)

    @property
    def better(self) -> bool:
        """The candidate is credibly better than every baseline level on every task compared."""
        return bool(self.pairs) and all(pair.rows["decision"].eq("first").all() for pair in self.pairs)

    @property
    def error_control(self) -> str:
        """How the rate of false "better" and "worse" claims is controlled, in words."""
        return (f"family-wise error rate {self.alpha:g} (Holm) over {self.family} comparison"
                f"{'s' if self.family != 1 else ''}: every task and pair of candidate and baseline levels")

    def table(self) -> pd.DataFrame:
        """One row per task, candidate level and baseline level (``candidate`` is the first)."""
        frame = pd.concat([p.rows for p in self.pairs], ignore_index=True)
        return frame.rename(columns={"first": "candidate", "second": "baseline", "mean_first": "mean_candidate",
                                     "mean_second": "mean_baseline"})

    def worse_on(self) -> pd.DataFrame:
        """The rows where the candidate is credibly worse."""
        table = self.table()
        return table[table["decision"] == "second"]

    def to_dict(self) -> dict[str, Any]:
        """Plain data for ``--json``: numbers, strings and lists only (NaN and infinity become null); each
        decision in words (``baseline better``), both sides named."""
        table = self.table().assign(decision=lambda t: t["decision"].map(DECISION_WORDS))
        rows = [{key: _plain(value) for key, value in row.items()} for row in table.to_dict("records")]
        worse = [{"task": row.task, "candidate": row.candidate, "baseline": row.baseline}
                 for row in self.worse_on().itertuples(index=False)]
        return {"baseline": self.baseline, "candidate": self.candidate, "axes": self.axes,
                "rope": self.rope.to_dict(), "alpha": self.alpha, "error_control": self.error_control,
                "verdict": self.verdict, "worse": self.worse, "worse_on": worse, "better": self.better,
                "comparisons": rows}

    def __str__(self) -> str:
        return self.verdict


def _plain(value: Any) -> Any:
    if isinstance(value, float) and not math.isfinite(value):
        return None
    return value.item() if hasattr(value, "item") else value


def select(trials: pd.DataFrame, chosen: Filter, role: str) -> pd.Series:
    """Which rows of ``trials`` match every ``axis=values`` of ``chosen`` (values as tables write them)."""
    frame = frames.tidy(trials)
    match = pd.Series(True, index=frame.index)
    for axis, values in chosen.items():
        if axis not in frame.columns or axis not in ["task", *frames.config_axes(frame)]:
            axes = ", ".join(["task", *frames.config_axes(frame)])
            raise NNBenchError(f"--{role} {axis}=...: {axis!r} is not an axis of these trials; axes: {axes}")
        written = frame[axis].map(lambda v, a=axis: frames.format_level(a, v))
        unknown = [v for v in values if v not in set(written)]
        if unknown:
            present = ", ".join(dict.fromkeys(written))
            raise NNBenchError(f"--{role} {axis}={unknown[0]}: no trial has {axis} {unknown[0]!r}; present: {present}")
        match &= written.isin(list(values))
    return match


def compare_trials(baseline: pd.DataFrame, candidate: pd.DataFrame, rope: Rope, *, axes: Sequence[str] = (),
                   baseline_name: str = "baseline", candidate_name: str = "candidate",
                   alpha: float = paired.ALPHA) -> RunComparison:
    """Compare ``candidate`` trials with ``baseline`` trials over ``axes`` (inferred when empty: the axes on
    which the candidate has levels the baseline lacks; none: the two are compared as runs), with the
    family-wise error rate of "better" and "worse" at ``alpha`` over every task and pair of levels."""
    if not 0 < alpha < 1:
        raise NNBenchError(f"alpha is an error rate between 0 and 1 (0.05), not {alpha}")
    both = frames.tidy(frames.with_variants(pd.concat([baseline.assign(side="baseline"),
                                                       candidate.assign(side="candidate")], ignore_index=True)))
    both = fairness.compared_trials(both)
    base, cand = both[both["side"] == "baseline"], both[both["side"] == "candidate"]
    if cand.empty or base.empty:
        empty = candidate_name if cand.empty else baseline_name
        raise NNBenchError(f"{empty} has no trials to compare")
    every = ["task", *frames.config_axes(both)]
    written = {axis: both[axis].map(lambda v, a=axis: frames.format_level(a, v)) for axis in every}
    new = [a for a in every if a != "task" and not set(written[a][cand.index]) <= set(written[a][base.index])]
    compared = list(axes) or new
    if "optimizer" in compared and "lr" not in compared:
        compared.append("lr")  # an optimizer brings its own default learning rate
    differing = [a for a in every
                 if a not in compared and not set(written[a][cand.index]) <= set(written[a][base.index])]
    if differing or (not axes and len([a for a in new if a != "lr"]) > 1):
        shown = differing or [a for a in new if a != "lr"]
        details = "; ".join(f"{a}: {_levels(written[a][cand.index])} against {_levels(written[a][base.index])}"
                            for a in shown)
        allowed = f"only {names(list(axes))} may differ" if axes else "only one axis may differ"
        raise NNBenchError(f"cannot compare {candidate_name} with {baseline_name}: they differ in {names(shown)} "
                           f"({details}), and {allowed}; choose the axis with --candidate AXIS=VALUE, or rerun "
                           "with the other axes equal")
    label = (pd.Series(both["side"].map({"baseline": baseline_name, "candidate": candidate_name}), index=both.index)
             if not compared else
             pd.Series([" / ".join(values) for values in zip(*(written[a] for a in compared), strict=True)],
                       index=both.index))
    clash = set(label[cand.index]) & set(label[base.index])
    label = label.where(~label.isin(clash), label + both["side"].map({"baseline": " (baseline)",
                                                                     "candidate": " (candidate)"}))
    keys = ["task", *(a for a in frames.config_axes(both) if a not in compared), "seed"]
    ok = frames.ok_trials(both.assign(level=label))
    ok = ok.assign(score=oriented(ok["metric"], ok["metric_name"]), metric=ok["metric"].astype(float))
    wide = ok.pivot_table(index=keys, columns="level", values=["score", "metric"], aggfunc="mean")
    metric_names = ok.groupby("task", sort=False)["metric_name"].first().to_dict()
    present = set(wide["score"].columns) if len(wide) else set()
    matched = [(first, second) for first in dict.fromkeys(label[cand.index])
               for second in dict.fromkeys(label[base.index]) if first in present and second in present]
    rows = pair_rows(wide["score"], wide["metric"], metric_names, rope, matched) if matched else pd.DataFrame()
    if rows.empty:
        raise NNBenchError(f"no trial of {candidate_name} that finished ok has a baseline trial with the same task, "
                           f"other axes and seed in {baseline_name}: nothing to compare")
    family, _ = decide_family(rows, pd.DataFrame(columns=ACROSS_COLUMNS), alpha)
    pairs = [PairEvidence(str(first), str(second), part.reset_index(drop=True))
             for (first, second), part in rows.groupby(["first", "second"], sort=False)]
    tasks = list(dict.fromkeys(rows["task"]))
    return RunComparison(baseline_name, candidate_name, compared, pairs, rope, "; ".join(claims(pairs, tasks)),
                         tasks, alpha, family)


def claims(pairs: list[PairEvidence], every: list[str]) -> list[str]:
    """The claims of a comparison: a candidate level credibly better (or worse) than several baseline
    levels on the same tasks in one claim, every other outcome pair by pair."""
    out: list[str] = []
    for candidate in dict.fromkeys(p.first for p in pairs):
        own = [p for p in pairs if p.first == candidate]
        grouped: dict[tuple[str, tuple[str, ...]], list[PairEvidence]] = {}
        for pair in own:
            uniform = pair.rows["decision"].nunique() == 1 and pair.rows["decision"].iloc[0] in ("first", "second")
            key = (pair.rows["decision"].iloc[0], tuple(pair.tasks())) if uniform else ("", (pair.second,))
            grouped.setdefault(key, []).append(pair)
        for (decision, tasks), group in grouped.items():
            if not decision or len(group) == 1:
                out += [claim for pair in group for claim in pair_claims(pair, every)]
                continue
            rows = pd.concat([pair.rows for pair in group])
            relation = "better" if decision == "first" else "worse"
            out.append(f"{candidate} is {relation} than {names([pair.second for pair in group])} "
                       f"{on_tasks(list(tasks), every)} ({seeds_text(list(rows['seeds'].astype(int)))}; "
                       f"{p_text(list(rows['p_adjusted']))})")
    return out


def _levels(values: pd.Series) -> str:
    return ", ".join(dict.fromkeys(values))
