"""The report's note on where its results come from (several machines, trials with other copies), added through
``report_sections`` like any section; registered before the other built-in sections, so it comes first."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnbench.contract.hookspecs import hookimpl

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.contract.section import ReportSection


@hookimpl
def report_sections(trials: pd.DataFrame, runs: pd.DataFrame) -> list[ReportSection]:
    from nnbench.reporting.provenance import provenance  # pandas: loading the plugins imports none

    return provenance(trials, runs)
