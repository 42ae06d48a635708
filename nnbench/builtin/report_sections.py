"""The built-in sections of the report, added through ``report_sections`` like a plugin's."""

from __future__ import annotations

from collections.abc import Mapping
from typing import TYPE_CHECKING

from nnbench import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.contract.section import ReportSection


@hookimpl
def report_sections(trials: pd.DataFrame, epochs: pd.DataFrame, runs: pd.DataFrame, skipped: pd.DataFrame,
                    micro: pd.DataFrame, rope: Mapping[str, float]) -> list[ReportSection]:
    from nnbench.reporting import fairness_sections, sections, verdict_sections
    from nnbench.reporting.micro_section import micro_benchmarks
    from nnbench.reporting.statistics import statistics

    data = sections.ReportData(runs, trials, epochs, skipped, rope)
    # The answer first: findings, the leaderboard, the warnings that qualify both; the evidence after.
    return [
        verdict_sections.findings(data),
        sections.leaderboard(data),
        fairness_sections.fair_comparison(data),
        verdict_sections.aggregates(data),
        verdict_sections.comparisons(data),
        statistics(data),
        sections.effects(data),
        sections.interactions(data),
        sections.convergence(data),
        sections.learning_rate(data),
        sections.speed(data),
        sections.robustness(data),
        fairness_sections.tuned_against_default(data),
        fairness_sections.time_to_target(data),
        fairness_sections.performance_profile(data),
        micro_benchmarks(micro),
        sections.overview(data),
    ]
