"""The report's verdicts: the findings box under the title, the aggregates across tasks and the pairwise
evidence each finding links to (frames from :mod:`nnbench.analysis.verdicts`, ``.intervals`` and
``.pairwise``)."""

from __future__ import annotations

import math
from typing import Any

import pandas as pd

from nnbench.analysis import intervals, pairwise, verdicts
from nnbench.contract.section import Finding, Heading, Note, Paragraph, ReportSection
from nnbench.reporting import plots
from nnbench.reporting.html import new_section, table
from nnbench.reporting.sections import LEADERBOARD_ROWS, ReportData, count

PROFILE_LINES = 8
COMPARISON_ROWS = 60
METHOD = (
    "Each axis is compared level against level on matched blocks (the same task, the same setting of every "
    "other axis and the same seed), on the task's own metric on test data; losses are never compared with "
    f"each other. With up to {pairwise.ALL_PAIRS_LEVELS} levels every pair is compared, with more each level "
    "against the best-ranked one. Advantage: the mean paired difference in the metric's units, positive when "
    "the first level did better (for RMSE: lower), with a 95% interval from a stratified bootstrap (the seeds "
    "of each setting resampled). Probability of improvement: the chance that a seed of the first level beats "
    "a seed of the second in the same setting (ties count half), averaged over settings and tasks, with its "
    "interval from the same bootstrap (Agarwal et al., 2021). Bayesian signed-rank test (Benavoli et al., "
    "2014 and 2017) with a region of practical equivalence (ROPE): the probabilities that the first level is "
    "better by more than the ROPE, that the two are practically equivalent, and that the second is better. "
    f"A verdict needs one of them to reach {pairwise.CREDIBLE}; otherwise it is undecided, and the seeds "
    "column says how many seeds in all would settle it (a one-sided t-test of the mean difference against "
    "the ROPE's edge at 80% power, from the observed spread). Seeds for the ROPE: how many would detect a "
    "true difference as large as the ROPE. Change the ROPE with --rope.",
)


def findings(data: ReportData) -> ReportSection:
    """The box right under the title: one verdict per varied axis, each linking to its evidence."""
    found = [verdicts.verdict(comparison) for comparison in data.comparisons]
    blocks: list[Any] = [Finding("verdict", v.text, link=f"#{v.anchor}") for v in found]
    warnings = data.warnings
    serious = int(warnings["severity"].eq("warning").sum()) if len(warnings) else 0
    if serious:
        noun = "fairness warnings qualify" if serious > 1 else "fairness warning qualifies"
        blocks.append(Finding("warning", f"{serious} {noun} these findings and the leaderboard",
                              link="#fair-comparison"))
    if not found:
        text = ("No axis was varied with the others held fixed, so there is nothing to compare; the leaderboard "
                "ranks the configurations." if len(data.main) else "No trials were stored, so there is no finding.")
        blocks = [Paragraph(text)]
    return ReportSection("Findings", blocks=blocks, anchor="findings", style="callout")


def _interval(low: Any, high: Any, digits: int = 3) -> str:
    return intervals.interval_text(float(low), float(high), digits)


def aggregates(data: ReportData) -> ReportSection:
    """Configurations ranked across tasks by the IQM of normalized scores, with stratified intervals."""
    section = new_section("aggregates", "Across tasks")
    tasks = list(dict.fromkeys(data.ok["task"]))
    if len(tasks) < 2:
        section.blocks.append(Note("one task only: the leaderboard gives its numbers"))
        return section
    scored, notes = intervals.normalized_scores(data.main, data.runs)
    if scored["task"].nunique() < 2:
        section.blocks.append(Note("fewer than two tasks could be put on one scale: " + "; ".join(
            f"{task}: {note}" for task, note in notes.items())))
        return section
    scored = scored.assign(configuration=intervals.across_task_configurations(scored))
    board = intervals.aggregates(scored)
    section.blocks.append(Paragraph(
        "Every configuration over the tasks it ran on, on one scale: each task's scores are put between 0 (a "
        "trivial model, or the worst configuration) and 1 (a perfect model, or the best configuration), higher "
        "always better. IQM: the interquartile mean of all its scores (the mean of the middle half, robust to "
        "a bad seed); optimality gap: the mean shortfall below 1. Intervals are 95% stratified bootstrap "
        "intervals: seeds resampled within each task (Agarwal et al., 2021). Scales: " + "; ".join(
            f"{task}: {note}" for task, note in notes.items()) + "."))
    shown = board.assign(
        rank=range(1, len(board) + 1),
        iqm_ci=[_interval(lo, hi) for lo, hi in zip(board["iqm_low"], board["iqm_high"], strict=True)],
        mean_ci=[_interval(lo, hi) for lo, hi in zip(board["mean_low"], board["mean_high"], strict=True)],
        gap_ci=[_interval(lo, hi) for lo, hi in zip(board["gap_low"], board["gap_high"], strict=True)])
    three = {name: (lambda v: f"{v:.3f}") for name in ("iqm", "mean", "gap")}
    section.blocks.append(table(
        shown[["rank", "configuration", "tasks", "trials", "iqm", "iqm_ci", "mean", "mean_ci", "gap", "gap_ci"]],
        {"rank": count, "tasks": count, "trials": count, **three},
        {"iqm": "IQM", "iqm_ci": "IQM 95% CI", "mean_ci": "mean 95% CI", "gap": "optimality gap",
         "gap_ci": "gap 95% CI"},
        "Ranked by IQM among configurations that ran on the most tasks.", limit=LEADERBOARD_ROWS))
    top = list(board["configuration"].head(PROFILE_LINES))
    profile = intervals.score_profiles(scored, top)
    if not profile.empty:
        more = f" The {len(top)} best by IQM are drawn." if len(board) > len(top) else ""
        section.blocks.append(plots.to_image(
            plots.score_profile(profile), "performance profiles of normalized scores with bootstrap bands",
            "Performance profiles: the fraction of runs scoring above each threshold, averaged over tasks; a "
            f"curve further up and right is better. Bands: 95% stratified bootstrap.{more}"))
    return section


def _decision(row: pd.Series) -> str:
    return {"first": f"{row['first']} better", "second": f"{row['second']} better", "equivalent": "equivalent",
            "undecided": "undecided"}.get(row["decision"], "–")


def _seeds(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "over 10⁶ blocks" if math.isinf(value) else f"{int(value):,}"


def _probability(value: Any) -> str:
    return f"{value:.3f}"


def comparisons(data: ReportData) -> ReportSection:
    """The evidence behind each finding: every pair compared, per task."""
    section = new_section("comparisons", "Comparisons")
    if not data.comparisons:
        section.blocks.append(Note("no axis was varied with the others held fixed, so there is nothing to compare"))
        return section
    section.blocks.extend(Paragraph(text) for text in METHOD)
    for comparison in data.comparisons:
        found = verdicts.verdict(comparison)
        section.blocks.append(Heading(comparison.axis, anchor=found.anchor))
        section.blocks.append(Paragraph(found.text if not found.parts else
                                        f"{comparison.axis}: " + "; ".join(found.parts)))
        frame = comparison.table()
        if frame.empty:
            continue
        rows = [frame]
        if len(comparison.tasks) > 1:
            rows.append(_across_tasks(comparison))
        frame = pd.concat(rows, ignore_index=True)
        shown = frame.assign(
            verdict=[_decision(row) for _, row in frame.iterrows()],
            advantage_ci=[_interval(lo, hi, 4) for lo, hi in zip(frame["advantage_low"], frame["advantage_high"],
                                                                   strict=True)],
            poi_ci=[_interval(lo, hi, 2) for lo, hi in zip(frame["poi_low"], frame["poi_high"], strict=True)],
            rope_text=frame["rope_text"].str.replace(" ", "\u00a0"))
        section.blocks.append(table(
            shown[["first", "second", "task", "blocks", "advantage", "advantage_ci", "poi", "poi_ci", "rope_text",
                   "p_first", "p_equivalent", "p_second", "verdict", "seeds", "seeds_needed", "seeds_for_rope"]],
            {"blocks": count, "seeds": count, "advantage": lambda v: f"{v:+.4f}", "poi": lambda v: f"{v:.2f}",
             "p_first": _probability, "p_equivalent": _probability, "p_second": _probability,
             "seeds_needed": _seeds, "seeds_for_rope": _seeds},
            {"advantage": "advantage of first", "advantage_ci": "95% CI", "poi": "P(first > second)",
             "poi_ci": "95% CI", "rope_text": "ROPE", "p_first": "P(first better)", "p_equivalent": "P(equivalent)",
             "p_second": "P(second better)", "seeds": "seeds", "seeds_needed": "seeds to settle",
             "seeds_for_rope": "seeds for the ROPE"},
            "Rows 'all tasks': the probability of improvement averaged over the tasks (the Bayesian test and the "
            "advantage are per task, in each task's own units).", limit=COMPARISON_ROWS))
    return section


def _across_tasks(comparison: pairwise.AxisComparison) -> pd.DataFrame:
    rows = []
    for pair in comparison.pairs:
        tasks = pair.tasks()
        if len(tasks) < 2:
            continue
        poi, low, high = pair.poi_over(tasks)
        rows.append({"first": pair.first, "second": pair.second, "task": "all tasks",
                     "blocks": int(pair.rows["blocks"].sum()), "poi": poi, "poi_low": low, "poi_high": high,
                     "advantage": math.nan, "advantage_low": math.nan, "advantage_high": math.nan, "rope_text": "",
                     "p_first": math.nan, "p_equivalent": math.nan, "p_second": math.nan, "decision": "",
                     "seeds": math.nan, "seeds_needed": math.nan, "seeds_for_rope": math.nan})
    return pd.DataFrame(rows, columns=pairwise.ROW_COLUMNS)
