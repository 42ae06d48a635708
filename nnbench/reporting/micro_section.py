"""The report's section of component micro-benchmarks (``nnbench micro``): a table and a bar plot per kind."""

from __future__ import annotations

import pandas as pd
import seaborn as sns
from matplotlib.figure import Figure

from nnbench.contract.section import Heading, Note, Paragraph, ReportSection
from nnbench.reporting import plots
from nnbench.reporting.html import new_section, table

MICROSECONDS = 1e6


def latest_micro_run(micro: pd.DataFrame) -> pd.DataFrame:
    """The rows of the most recent ``nnbench micro`` run in the store."""
    if micro.empty:
        return micro
    latest = micro.sort_values("created_at")["run_id"].iloc[-1]
    return micro[micro["run_id"] == latest]


def timing_plot(rows: pd.DataFrame, kind: str) -> Figure:
    """Median time per call, one bar per component (and device), fastest first."""
    ordered = rows.sort_values("median")
    labels = ordered["name"] + (" @ " + ordered["device"] if ordered["device"].nunique() > 1 else "")
    if kind == "optimizer":
        labels = labels + " (" + ordered["size"].map(lambda n: f"{n:,}") + " params)"
    with plots.style():
        figure = Figure(figsize=(7.0, 0.9 + 0.28 * len(ordered)), layout="constrained")
        ax = figure.subplots()
        sns.barplot(x=ordered["median"] * MICROSECONDS, y=list(labels), ax=ax, color=sns.color_palette("colorblind")[0],
                    orient="h")
        ax.errorbar(ordered["median"] * MICROSECONDS, range(len(ordered)), xerr=ordered["iqr"] * MICROSECONDS / 2,
                    fmt="none", ecolor="black", elinewidth=0.8, capsize=2)
        ax.set_xlabel("median time per call (µs; bars: interquartile range)")
        ax.set_ylabel(kind)
        ax.set_title(f"{kind}s: {'step' if kind == 'optimizer' else 'forward + backward'} time")
    return figure


def micro_benchmarks(micro: pd.DataFrame) -> ReportSection:
    section = new_section("micro", "Component micro-benchmarks")
    rows = latest_micro_run(micro)
    if rows.empty:
        section.blocks.append(Note("no micro-benchmarks are stored; `nnbench micro` measures every component"))
        return section
    section.blocks.append(Paragraph(
        f"From {rows['run_id'].iloc[0]}: pytest-benchmark's calibrated rounds for each component, forward and "
        "backward for activations and losses on the input shape shown, one step for optimizers of the given "
        "parameter count."))
    for kind, part in rows.groupby("kind", sort=False):
        section.blocks.append(Heading(f"{kind}s"))
        ok = part[part["status"] == "ok"]
        if not ok.empty:
            section.blocks.append(plots.to_image(timing_plot(ok, str(kind)), f"median time per call of each {kind}"))
        shown = part.assign(median_us=part["median"] * MICROSECONDS, iqr_us=part["iqr"] * MICROSECONDS)
        section.blocks.append(table(
            shown[["name", "plugin", "device", "shape", "size", "status", "median_us", "iqr_us", "ops", "rounds",
                   "error"]],
            {"median_us": lambda v: f"{v:,.1f}", "iqr_us": lambda v: f"{v:,.1f}", "ops": lambda v: f"{v:,.0f}",
             "size": lambda v: f"{int(v):,}", "rounds": lambda v: f"{int(v):,}"},
            {"median_us": "median (µs)", "iqr_us": "IQR (µs)", "ops": "calls/s", "size": "elements"}))
    return section
