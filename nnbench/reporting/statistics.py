"""The statistics section: rank tests of each varied axis, with effect sizes and post-hoc results."""

from __future__ import annotations

import pandas as pd

from nnbench.analysis import frames as analysis
from nnbench.contract.section import Heading, Note, Paragraph, ReportSection
from nnbench.reporting import plots
from nnbench.reporting.html import new_section, table
from nnbench.reporting.sections import ReportData, count, p_value

DESIGN = (
    "Each test compares the levels of one axis over matched blocks. A block is one task, one setting "
    "of every other axis and one seed: its trials differ only in the level tested, and share the "
    "seed's batch order (and initial weights, where the shapes agree). Each seed is its own block; "
    "blocks where a level is missing or did not finish ok are left out. Optimizers that each ran at "
    "their own default learning rate are compared at those rates, tuned optimizers each at the rate its "
    "tuning chose, and a tuned configuration (protocol) with its untuned default whatever the two rates. "
    "Tuning trials take no part. Within a block the levels are "
    "ranked by the task's held-out metric, rank 1 being the best (highest accuracy, lowest RMSE), so "
    "tasks with different metrics pool fairly.",
    "Three or more levels: Friedman test, with Kendall's W as effect size (0: no consistent order, 1: "
    "the same order in every block), followed by the Nemenyi post-hoc test and a critical-difference "
    "diagram. Two levels: Wilcoxon signed-rank test of the paired differences, with the matched-pairs "
    "rank-biserial correlation as effect size (−1 to 1, positive when the level with the better mean "
    f"rank wins). Significance level {analysis.ALPHA}, not corrected across axes; a test needs at least "
    f"{analysis.MIN_BLOCKS} complete blocks.",
)


def statistics(data: ReportData) -> ReportSection:
    section = new_section("statistics", "Statistics")
    tests = analysis.rank_tests(data.main)
    if not tests:
        section.blocks.append(Note("no axis was varied with the others held fixed, so there is nothing to test"))
        return section
    section.blocks.extend(Paragraph(text) for text in DESIGN)
    section.blocks.append(table(
        analysis.rank_test_table(tests),
        {"levels": count, "blocks": count, "incomplete": count, "statistic": lambda v: f"{v:.4g}",
         "p_value": p_value, "effect_size": lambda v: f"{v:.2f}"},
        {"incomplete": "blocks left out", "p_value": "p", "effect_size": "effect size", "best": "best mean rank"}))
    for test in tests:
        section.blocks.append(Heading(test.axis))
        section.blocks.append(Paragraph(f"{test.axis}: {test.verdict}.{_effect(test)}"))
        if test.posthoc is not None:
            caveat = "" if test.significant else (
                " The Friedman test found no overall difference: read the diagram as mean ranks only.")
            section.blocks.append(plots.to_image(
                plots.critical_difference(test), f"critical-difference diagram of {test.axis}",
                "Levels joined by a bar are not significantly different (Nemenyi post-hoc test, α = "
                f"{analysis.ALPHA}); the number beside each level is its mean rank.{caveat}"))
        elif len(test.mean_ranks):
            ranks = pd.DataFrame({"level": test.mean_ranks.index, "mean rank": test.mean_ranks.to_numpy()})
            section.blocks.append(table(ranks, {"mean rank": lambda v: f"{v:.2f}"},
                                        caption=f"Mean rank over {test.blocks:,} blocks (1 = best)."))
    return section


def _effect(test: analysis.RankTest) -> str:
    if not test.test:
        return ""
    if test.effect_name == "rank-biserial r":
        better, worse = test.levels if test.effect_size >= 0 else reversed(test.levels)
        return f" Effect size: rank-biserial r = {test.effect_size:.2f} ({better} over {worse})."
    return f" Effect size: Kendall's W = {test.effect_size:.2f}."
