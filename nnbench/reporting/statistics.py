"""The statistics section: each axis's levels across tasks, from the same evidence as the findings and the
comparisons (:class:`nnbench.analysis.pairwise.AxisComparison`), so the three never disagree.

With one task there is nothing to say across tasks, and the section is left out (the per-task
comparisons are the evidence then)."""

from __future__ import annotations

import pandas as pd

from nnbench.analysis import paired
from nnbench.analysis.pairwise import AxisComparison
from nnbench.contract.section import Block, Heading, Note, Paragraph, ReportSection
from nnbench.reporting import plots
from nnbench.reporting.html import new_section, table
from nnbench.reporting.sections import ReportData, count, p_value


def method(alpha: float) -> tuple[str, ...]:
    """The section's account of its methods and what they assume."""
    least = paired.min_tasks(alpha)
    return (
        "Each task counts once. A level's score on a task is its mean over seeds and the settings of the other "
        "axes; within a task the levels are ranked (1 is the best), and the mean rank over the tasks where "
        "every level ran orders them. Two levels are compared with the Wilcoxon signed-rank test over the tasks "
        "where both ran, on their mean paired differences (in the metric's units when every task's metric has a "
        "fixed scale, such as accuracy; otherwise each task's difference divided by its seed-to-seed spread). "
        "The tests assume the tasks are independent of each other and say nothing about tasks not run.",
        f"These tests join the family of the axis's comparisons: one Holm correction over every pair and task "
        f"of the axis and these across-task tests holds the chance of any false 'better' or 'worse' at {alpha:g} "
        f"(family-wise). An exact test over n tasks cannot reach a p-value below 2/2ⁿ, so pairs compared on "
        f"fewer than {least} tasks are not tested. In the diagram, levels joined by a bar could not be told "
        "apart (Benavoli, Corani and Mangili, 2016, recommend these pairwise tests over the Nemenyi test, whose "
        "verdict on a pair depends on which other levels are in the pool).",
    )


def statistics(data: ReportData) -> ReportSection:
    """Mean ranks over tasks and the pairwise tests across tasks of every axis compared on two or more tasks."""
    section = new_section("statistics", "Statistics across tasks")
    several = [c for c in data.comparisons if c.ranked_tasks >= 2 or len(c.tasks) >= 2]
    if not several:
        one = "no axis was compared" if not data.comparisons else "every comparison is on one task"
        section.blocks.append(Note(f"{one}, so there is nothing to test across tasks"))
        return section
    section.blocks.extend(Paragraph(text) for text in method(data.alpha))
    for comparison in several:
        section.blocks.append(Heading(comparison.label, anchor=f"statistics-{comparison.key}"))
        section.blocks.extend(axis_blocks(comparison))
    return section


def axis_blocks(comparison: AxisComparison) -> list[Block]:
    """One axis: its mean ranks, its pairwise tests across tasks and their diagram."""
    blocks: list[Block] = []
    ranks = comparison.ranks_over_tasks
    if comparison.ranked_tasks >= 2:
        frame = pd.DataFrame({"level": ranks.index, "mean rank": ranks.to_numpy()})
        blocks.append(table(frame, {"mean rank": lambda v: f"{v:.2f}"},
                            caption=f"Mean rank over the {comparison.ranked_tasks} tasks where every level ran "
                                    "(1 = best).", titles={"level": comparison.titles}))
    across = comparison.across()
    tested = across[across["p_value"].notna()]
    least = paired.min_tasks(comparison.alpha)
    if tested.empty:
        most = int(across["tasks"].max()) if len(across) else len(comparison.tasks)
        blocks.append(Note(f"compared on at most {most} tasks: a test over tasks needs at least {least}, so the "
                           "per-task comparisons are the evidence"))
        return blocks
    shown = tested.assign(verdict=[_decision(row) for _, row in tested.iterrows()],
                          ahead=[f"{a} / {b}" for a, b in zip(tested["ahead"], tested["behind"], strict=True)])
    blocks.append(table(
        shown[["first", "second", "tasks", "ahead", "statistic", "p_value", "p_adjusted", "verdict"]],
        {"tasks": count, "statistic": lambda v: f"{v:.4g}", "p_value": p_value, "p_adjusted": p_value},
        {"ahead": "tasks ahead / behind", "statistic": "signed-rank sum", "p_value": "p",
         "p_adjusted": "Holm-adjusted p"},
        f"Wilcoxon signed-rank tests over tasks, Holm-adjusted within the axis's family of "
        f"{comparison.family} tests; decided at a family-wise error rate of {comparison.alpha:g}.",
        titles={"first": comparison.titles, "second": comparison.titles}))
    full = ranks.index[ranks.index.isin(list(dict.fromkeys([*tested["first"], *tested["second"]])))]
    if comparison.ranked_tasks >= least and len(full) >= 2:
        matrix = pd.DataFrame(1.0, index=list(full), columns=list(full))
        for row in tested.itertuples(index=False):
            if row.first in matrix.index and row.second in matrix.index:
                matrix.loc[row.first, row.second] = matrix.loc[row.second, row.first] = float(row.p_adjusted)
        title = f"{comparison.label}: mean rank over {comparison.ranked_tasks} tasks (1 = best)"
        blocks.append(plots.to_image(
            plots.rank_diagram(ranks[list(full)], matrix, comparison.alpha, title),
            f"diagram of {comparison.label}: mean ranks over tasks",
            f"Levels joined by a bar could not be told apart by the Holm-adjusted Wilcoxon signed-rank tests over "
            f"tasks at {comparison.alpha:g}; the number beside each level is its mean rank."))
    return blocks


def _decision(row: pd.Series) -> str:
    return {"first": f"{row['first']} ranks above", "second": f"{row['second']} ranks above",
            "undecided": "undecided"}.get(row["decision"], "–")
