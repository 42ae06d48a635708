"""The report's answer: the sections that share the pairwise evidence and the warnings, computed once for all."""

from __future__ import annotations

from nnbench.contract.section import ReportSection
from nnbench.reporting import fairness_sections, sections, statistics, verdict_sections
from nnbench.reporting.sections import ReportData


def answer(data: ReportData) -> list[ReportSection]:
    """The findings, the leaderboard, the fair-comparison warnings, the aggregates, the comparisons and the
    statistics across tasks, in that order."""
    return [
        verdict_sections.findings(data),
        sections.leaderboard(data),
        fairness_sections.fair_comparison(data),
        verdict_sections.aggregates(data),
        verdict_sections.comparisons(data),
        statistics.statistics(data),
    ]
