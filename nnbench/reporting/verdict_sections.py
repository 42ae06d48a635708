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
from nnbench.reporting.sections import LEADERBOARD_ROWS, ReportData, count, p_value

PROFILE_LINES = 8
COMPARISON_ROWS = 60


def method(alpha: float) -> tuple[str, ...]:
    """How the comparisons were made, for the section's opening paragraphs."""
    return (
        "Each axis is compared level against level on matched blocks (the same task, the same setting of every "
        "other axis and the same seed), on the task's own metric on test data; losses are never compared with "
        "each other. Every pair of levels is compared on every task. The unit of evidence is the paired seed: a "
        "seed's difference is the mean over the settings of the other axes, and 'seeds' counts them.",
        "Advantage: the mean paired difference in the metric's units, positive when the first level did better "
        "(for RMSE: lower), with its 95% Student t-interval over the paired seeds (valid from two seeds; for a "
        "metric that moves in steps, such as accuracy on a finite test set, the variance includes the rounding "
        "of those steps). p: the two-sided t-test of no difference, Holm-adjusted over the axis's family (every "
        "pair and task, and the tests across tasks). Equivalence p: two one-sided t-tests (TOST) that the "
        "difference lies inside the region of practical equivalence (ROPE), Holm-adjusted over the axis's "
        "equivalence tests. P(first wins): the fraction of paired seeds on which the first level did better "
        "(ties count half), with its exact Clopper-Pearson interval. Rows 'all tasks': the seeds of every task "
        "pooled, and the Wilcoxon signed-rank test over tasks of the section below.",
        f"A pair is practically equivalent on a task when its equivalence p is below {alpha:g}; otherwise better "
        f"or worse when its p is below {alpha:g}; otherwise undecided. The chance of any false 'better' or "
        f"'worse' within an axis is at most {alpha:g} (family-wise error rate), and so is that of any false "
        "'equivalent'. Seeds to settle: about how many paired seeds in all would decide an undecided pair (at "
        "80% power, from the observed spread, at the family's corrected level); seeds for the ROPE: how many "
        "would detect a true difference as large as the ROPE. Change the ROPE with --rope, and the error rate "
        "with nnbench report --alpha (alpha= in Python).",
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


def _interval(low: Any, high: Any, digits: int = 3, signed: bool = False) -> str:
    return intervals.interval_text(float(low), float(high), digits, signed)


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
        "a bad seed); optimality gap: the mean shortfall below 1 (Agarwal et al., 2021). The mean's and the "
        "gap's 95% intervals are Student t intervals of a mean stratified by task (each task's seeds give its "
        "variance); the IQM's is a stratified bootstrap interval (seeds resampled within each task), shown only "
        f"where every task has at least {intervals.BOOTSTRAP_MIN_SEEDS} seeds: on fewer, a bootstrap cannot "
        "see the spread. Scales: " + "; ".join(f"{task}: {note}" for task, note in notes.items()) + "."))
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
        banded = bool(profile["low"].notna().any())
        bands = (" Bands: 95% stratified bootstrap." if banded else
                 f" No bands: they need at least {intervals.BOOTSTRAP_MIN_SEEDS} seeds on every task.")
        section.blocks.append(plots.to_image(
            plots.score_profile(profile), "performance profiles of normalized scores",
            "Performance profiles: the fraction of runs scoring above each threshold, averaged over tasks; a "
            f"curve further up and right is better.{bands}{more}"))
    return section


def _decision(row: pd.Series) -> str:
    if row["task"] == ALL_TASKS:
        return {"first": f"{row['first']} ranks above", "second": f"{row['second']} ranks above",
                "undecided": "undecided"}.get(row["decision"], "–")
    return {"first": f"{row['first']} better", "second": f"{row['second']} better", "equivalent": "equivalent",
            "undecided": "undecided"}.get(row["decision"], "–")


def _seeds(value: Any) -> str:
    if value is None or (isinstance(value, float) and math.isnan(value)):
        return "–"
    return "over 10⁶" if math.isinf(value) else f"{int(value):,}"


def _advantage(row: pd.Series) -> str:
    """``+0.0217 [−0.0100, +0.0530]``: the interval may wrap below the value, never inside itself."""
    if not math.isfinite(float(row["advantage"])):
        return "–"
    interval = _interval(row["advantage_low"], row["advantage_high"], 4, signed=True)
    value = f"{row['advantage']:+.4f}".replace("-", "\u2212")
    return f"{value} {interval}" if interval != "–" else value


def _improvement(row: pd.Series) -> str:
    return f"{row['poi']:.2f} {_interval(row['poi_low'], row['poi_high'], 2)}"


ALL_TASKS = "all tasks"


def family_text(comparison: pairwise.AxisComparison) -> str:
    """What the axis's verdict rests on: its paired seeds, tasks and error control."""
    counts = comparison.seed_counts
    seeds = (f"{counts[0]}" if len(counts) == 1 else f"{counts[0]} to {counts[-1]}") if counts else "no"
    tests = f"{comparison.family} difference test{'s' if comparison.family != 1 else ''}"
    equivalence = f"{comparison.equivalence_family} equivalence test{'s' if comparison.equivalence_family != 1 else ''}"
    return (f"Rests on {seeds} paired seeds per comparison, over {len(comparison.tasks)} "
            f"task{'s' if len(comparison.tasks) != 1 else ''}; family-wise error rate {comparison.alpha:g} (Holm) "
            f"over its {tests} and over its {equivalence}.")


def comparisons(data: ReportData) -> ReportSection:
    """The evidence behind each finding: every pair compared, per task."""
    section = new_section("comparisons", "Comparisons")
    if not data.comparisons:
        section.blocks.append(Note("no axis was varied with the others held fixed, so there is nothing to compare"))
        return section
    if not any(count >= 2 for comparison in data.comparisons for count in comparison.seed_counts):
        section.blocks.append(Note("every comparison rests on one paired seed, which has no spread to compare a "
                                   "difference with: run two seeds or more"))
        return section
    section.blocks.extend(Paragraph(text) for text in method(data.alpha))
    for comparison in data.comparisons:
        found = verdicts.verdict(comparison)
        section.blocks.append(Heading(comparison.label, anchor=found.anchor))
        section.blocks.append(Paragraph(found.text if not found.parts else
                                        f"{comparison.label}: " + "; ".join(found.parts)))
        section.blocks.append(Paragraph(family_text(comparison)))
        if comparison.titles:
            section.blocks.append(Paragraph("Versions: " + "; ".join(
                f"{label}: {title}" for label, title in comparison.titles.items()
                if label in comparison.levels) + "."))
        frame = evidence_rows(comparison)
        if frame.empty:
            continue
        ropes = comparison.table().drop_duplicates("task")
        section.blocks.append(Paragraph("ROPE: " + "; ".join(
            f"{task} {text}" for task, text in zip(ropes["task"], ropes["rope_text"], strict=True)) + "."))
        shown = frame.assign(
            verdict=[_decision(row) for _, row in frame.iterrows()],
            advantage_ci=[_advantage(row) for _, row in frame.iterrows()],
            poi_ci=[_improvement(row) for _, row in frame.iterrows()])
        section.blocks.append(table(
            shown[["first", "second", "task", "seeds", "advantage_ci", "p_adjusted", "p_equivalence_adjusted",
                   "poi_ci", "verdict", "seeds_needed", "seeds_for_rope"]],
            {"seeds": count, "p_adjusted": p_value, "p_equivalence_adjusted": p_value, "seeds_needed": _seeds,
             "seeds_for_rope": _seeds},
            {"advantage_ci": "advantage of first [95% CI]", "p_adjusted": "p (Holm)",
             "p_equivalence_adjusted": "equivalence p (Holm)", "poi_ci": "P(first wins) [95% CI]",
             "seeds": "paired seeds", "seeds_needed": "seeds to settle", "seeds_for_rope": "seeds for the ROPE"},
            "Decided pairs first. Rows 'all tasks': P(first wins) over the seeds of every task, and p from the "
            "Wilcoxon signed-rank test over tasks (when there are enough tasks to test).", limit=COMPARISON_ROWS,
            titles={"first": comparison.titles, "second": comparison.titles}))
    return section


def evidence_rows(comparison: pairwise.AxisComparison) -> pd.DataFrame:
    """Every pair's rows, each pair followed by its row over all tasks (when it ran on several); pairs with
    a decision first."""
    blocks = []
    for pair in comparison.pairs:
        rows = [pair.rows]
        tasks = pair.tasks()
        if len(tasks) > 1:
            rows.append(_across_tasks(pair, tasks))
        decided = bool(pair.rows["decision"].ne("undecided").any()) or pair.across.get("decision") in ("first",
                                                                                                      "second")
        blocks.append((not decided, pd.concat(rows, ignore_index=True)))
    ordered = [frame for _, frame in sorted(blocks, key=lambda item: item[0])]
    return pd.concat(ordered, ignore_index=True) if ordered else pd.DataFrame(columns=pairwise.ROW_COLUMNS)


def _across_tasks(pair: pairwise.PairEvidence, tasks: list[str]) -> pd.DataFrame:
    poi, low, high = pair.poi_over(tasks)
    across = pair.across or {}
    row: dict[str, object] = {column: math.nan for column in pairwise.ROW_COLUMNS}
    row.update({"first": pair.first, "second": pair.second, "task": ALL_TASKS, "seeds": int(pair.rows["seeds"].sum()),
                "poi": poi, "poi_low": low, "poi_high": high, "rope_text": "", "decision": across.get("decision", ""),
                "p_adjusted": across.get("p_adjusted", math.nan)})
    return pd.DataFrame([row], columns=pairwise.ROW_COLUMNS)
