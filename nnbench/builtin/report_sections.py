"""The built-in sections of the report, added through ``report_sections`` like a plugin's."""

from __future__ import annotations

from collections.abc import Mapping
from functools import partial
from typing import TYPE_CHECKING, Any

from nnbench.contract.hookspecs import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.contract.section import ReportSection


@hookimpl
def report_sections(trials: pd.DataFrame, epochs: pd.DataFrame, runs: pd.DataFrame, skipped: pd.DataFrame,
                    micro: pd.DataFrame, rope: Mapping[str, float], alpha: float,
                    version_names: Mapping[str, str]) -> list[ReportSection]:
    # pandas and seaborn load with the first report, not with the plugins
    from nnbench.reporting import answer, fairness_sections, forked, micro_section, race_section, sections

    # A race's verdicts are drawn over the configurations that finished; its own section lists the pruned ones.
    data = sections.ReportData(runs, race_section.finished(trials), epochs, skipped, rope, alpha, version_names)
    # The answer first (findings, the leaderboard, the warnings that qualify both), the evidence after.
    # Each entry is built at once with the others, in forked children that inherit the frames.
    builders: list[partial[Any]] = [
        partial(answer.answer, data),
        partial(sections.effects, data),
        partial(sections.interactions, data),
        partial(sections.convergence, data),
        partial(sections.learning_rate, data),
        partial(sections.speed, data),
        partial(sections.robustness, data),
        partial(fairness_sections.tuned_against_default, data),
        partial(fairness_sections.time_to_target, data),
        partial(fairness_sections.performance_profile, data),
        *([partial(race_section.race, trials)] if race_section.raced(trials) else []),  # a raced run's only
        partial(micro_section.micro_benchmarks, micro),
        partial(sections.overview, data),
    ]
    # Started longest first, so that no long one is left alone at the end: the answer (its bootstrap and
    # pairwise comparisons grow fastest with the trials), then the figures that draw every trial.
    longest = [answer.answer, sections.convergence, sections.interactions, sections.effects,
               fairness_sections.performance_profile, sections.speed]
    order = sorted(range(len(builders)), key=lambda index: longest.index(builders[index].func)
                   if builders[index].func in longest else len(longest))
    answered, *figures = forked.build_all(builders, order=order)
    return [*answered, *figures]
