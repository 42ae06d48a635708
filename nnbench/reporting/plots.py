"""The report's figures (seaborn on matplotlib's Agg canvas), drawn from the analysis layer's frames.

Figures are made without pyplot, so building a report never changes the backend of the process
(a notebook keeps its own); each is encoded as an SVG data URI (a PNG too when the SVG is large) and
released at once. Sizes grow
with the number of levels and tasks so that 20 levels on an axis stay legible.
"""

from __future__ import annotations

import base64
import io
import math
import re
import sys
import textwrap
import warnings
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any, Literal

import matplotlib as mpl
import numpy as np
import pandas as pd
import seaborn as sns
from matplotlib.axes import Axes
from matplotlib.axis import Axis
from matplotlib.backends.backend_agg import FigureCanvasAgg
from matplotlib.backends.backend_svg import FigureCanvasSVG
from matplotlib.figure import Figure
from matplotlib.text import Text
from matplotlib.ticker import FuncFormatter, LogFormatter, LogLocator, NullLocator

from nnbench.analysis.frames import format_level, higher_is_better
from nnbench.contract.section import Image

PALETTE = "colorblind"
DPI = 150
STRIP_POINTS = 600
"""An effect panel draws every trial as a dot up to this many trials."""
SVG_SHOWN_LIMIT = 200_000
"""An SVG larger than this many bytes is shown as a PNG (and still downloadable as SVG)."""
SCREEN_DPI = 96  # CSS pixels per inch: a figure shows at its size in inches
COLUMN_WIDTH = 3.5
"""Inches: one column of a two-column paper (IEEE, ACM, NeurIPS's single column is wider: 5.5)."""
TEXT_WIDTH = 7.0
"""Inches: the text width of a two-column paper, for a figure spanning both columns."""
COLUMN_LIMIT = 6.0
"""A screen figure at most this many inches wide becomes one column wide; a wider one spans the text."""
PAPER_FONT_SCALE = 0.8
PAPER_FONT_MIN = 6.0
PAPER_MIN_HEIGHT = 2.0
"""Inches: a paper copy is never made shallower than this (or than the figure was)."""
RC = {"font.size": 9, "axes.titlesize": 10, "axes.labelsize": 9, "legend.fontsize": 8,
      "xtick.labelsize": 8, "ytick.labelsize": 8,
      # Names come from users, plugins and files: `$` is a dollar sign, never the start of mathtext.
      "text.parse_math": False}


@contextmanager
def style() -> Iterator[None]:
    """seaborn's white grid and small, even fonts, for this figure only (rcParams are restored)."""
    with mpl.rc_context(), sns.axes_style("whitegrid"), warnings.catch_warnings():
        # seaborn 0.13 calls matplotlib APIs that newer matplotlib deprecates; nothing a reader can act on.
        warnings.filterwarnings("ignore", category=mpl.MatplotlibDeprecationWarning, module="seaborn")
        mpl.rcParams.update(RC)  # type: ignore[arg-type]
        yield


def to_image(figure: Figure, alt: str, caption: str = "") -> Image:
    """Encode ``figure`` as an inline image and release it (pyplot-managed plugin figures too).

    Every figure is drawn as SVG (text kept as text), which is what a reader downloads. A small SVG is
    also what the page shows; a large one (thousands of points) is shown as a PNG instead, and the SVG
    is kept only for the download.
    """
    FigureCanvasSVG(figure)  # attach a canvas; the process's backend stays as it is
    as_plain_text(figure)
    engine = figure.get_layout_engine()
    # No mathtext anywhere: a name holding "$" is plain text, in tick labels made while drawing too.
    with mpl.rc_context({"svg.fonttype": "none", "text.parse_math": False}):
        vector = io.BytesIO()
        figure.savefig(vector, format="svg", metadata={"Date": None, "Creator": None})
    svg = "data:image/svg+xml;base64," + base64.b64encode(vector.getvalue()).decode("ascii")
    width = round(figure.get_figwidth() * SCREEN_DPI)
    raster = ""
    if len(vector.getvalue()) > SVG_SHOWN_LIMIT:
        buffer = io.BytesIO()
        FigureCanvasAgg(figure)
        # Drawing the SVG laid the figure out; the PNG keeps that layout rather than redo it (a whole
        # extra pass over every artist, the longest step of a large figure).
        figure.set_layout_engine("none")
        with mpl.rc_context({"text.parse_math": False}):
            figure.savefig(buffer, format="png", dpi=DPI, metadata={"Software": None})
        raster = "data:image/png;base64," + base64.b64encode(buffer.getvalue()).decode("ascii")
    paper = paper_copy(figure, engine) if _PAPER["enabled"] else {}
    if "matplotlib.pyplot" in sys.modules:
        sys.modules["matplotlib.pyplot"].close(figure)
    figure.clear()
    name = re.sub(r"[^a-z0-9]+", "-", alt.lower()).strip("-")[:80].rstrip("-") or "figure"
    if raster:
        return Image(raster, alt, width, caption, svg=svg, name=name, paper=paper)
    return Image(svg, alt, width, caption, name=name, paper=paper)


_PAPER = {"enabled": False}


@contextmanager
def paper_copies(enabled: bool = True) -> Iterator[None]:
    """While inside, :func:`to_image` also draws every figure at the size of a paper's column
    (:func:`paper_copy`); sections built in forked children inherit the setting."""
    before = _PAPER["enabled"]
    _PAPER["enabled"] = enabled
    try:
        yield
    finally:
        _PAPER["enabled"] = before


def paper_copy(figure: Figure, engine: object = None) -> dict[str, bytes]:
    """``figure`` as SVG and PDF for a paper: :data:`COLUMN_WIDTH` wide when it is narrow enough to fit
    one column, else :data:`TEXT_WIDTH` (a figure spanning both columns), its height scaled alike (down to
    :data:`PAPER_MIN_HEIGHT`), its text at :data:`PAPER_FONT_SCALE` of the screen's sizes (at least
    :data:`PAPER_FONT_MIN` points) and laid out again."""
    width, height = figure.get_size_inches()
    target = COLUMN_WIDTH if width <= COLUMN_LIMIT else TEXT_WIDTH
    scale = target / width
    # A shallow figure keeps some height: its axis labels need it more than the page needs the space.
    figure.set_size_inches(target, max(height * scale, min(height, PAPER_MIN_HEIGHT)))

    def smaller(size: float | str) -> float:
        return max(PAPER_FONT_MIN, float(size) * PAPER_FONT_SCALE)

    # Tick labels are made anew when drawn: their size is set where they come from, the rest one by one.
    ticked: list[tuple[Axes, Literal["x", "y"], Literal["major", "minor"], float | str]] = []
    for ax in figure.axes:
        pairs: tuple[tuple[Literal["x", "y"], Axis], ...] = (("x", ax.xaxis), ("y", ax.yaxis))
        for name, axis in pairs:
            kinds: tuple[tuple[Literal["major", "minor"], list[Any]], ...] = (
                ("major", axis.get_major_ticks()), ("minor", axis.get_minor_ticks()))
            for which, ticks in kinds:
                if ticks:
                    ticked.append((ax, name, which, ticks[0].label1.get_fontsize()))
    labels = {id(label) for ax in figure.axes for axis in (ax.xaxis, ax.yaxis)
              for tick in [*axis.get_major_ticks(), *axis.get_minor_ticks()] for label in (tick.label1, tick.label2)}
    for text in figure.findobj(Text):
        if id(text) not in labels:
            text.set_fontsize(smaller(text.get_fontsize()))
    for ax, name, which, size in ticked:
        ax.tick_params(axis=name, which=which, labelsize=smaller(size))
    if engine is not None:
        figure.set_layout_engine(engine)  # type: ignore[arg-type]
    out = {}
    with mpl.rc_context({"svg.fonttype": "none", "pdf.fonttype": 42, "text.parse_math": False}):
        for kind in ("svg", "pdf"):
            buffer = io.BytesIO()
            figure.savefig(buffer, format=kind, metadata={"Creator": None} if kind == "pdf" else
                           {"Date": None, "Creator": None})
            out[kind] = buffer.getvalue()
    return out


def as_plain_text(figure: Figure) -> None:
    """Show every text of ``figure`` as written: a name holding ``$`` (``cost_in_$.csv``) is not
    mathtext, so it neither fails to parse nor renders as a formula."""
    for text in figure.findobj(Text):
        text.set_parse_math(False)


class PlainLogFormatter(LogFormatter):
    """matplotlib's choice of which log ticks to label, each labelled in plain numbers (0.1, 0.04, 1e-05)."""

    def _num_to_string(self, x: float, vmin: float, vmax: float) -> str:
        return thousands(x)


def plain_log_labels(axis: Axis) -> None:
    """Label a log-scale ``axis`` in plain numbers: matplotlib's own labels are mathtext
    (``$\\mathdefault{10^{-1}}$``), which a figure of plain text would show as written."""
    axis.set_major_formatter(PlainLogFormatter())
    axis.set_minor_formatter(PlainLogFormatter(labelOnlyBase=False))


def thousands(value: float, _position: object = None) -> str:
    """Tick labels such as ``40,000`` and ``0.02``."""
    return f"{value:,.0f}" if abs(value) >= 1000 else f"{value:g}"


def direction(metric_name: str) -> str:
    return "higher is better" if higher_is_better(metric_name) else "lower is better"


def metric_label(metric_name: str, split: str = "test") -> str:
    return f"{split} {metric_name} ({direction(metric_name)})"


def wrap(label: object, width: int = 22) -> str:
    return "\n".join(textwrap.wrap(str(label), width)) or str(label)


def legend_below(figure: Figure, ax: Axes, title: str | None = None) -> None:
    """One legend for the whole figure, under it, so it never hides data."""
    handles, labels = ax.get_legend_handles_labels()
    for each in figure.axes:
        legend = each.get_legend()
        if legend is not None:
            legend.remove()
    figure.legend(handles, labels, title=title, loc="outside lower center", ncols=min(len(labels), 6),
                  frameon=False)


def facets(count: int, width: float, height: float, max_columns: int = 3) -> tuple[Figure, list[Axes]]:
    """A figure with ``count`` panels of ``width`` x ``height`` inches, wrapped into rows."""
    columns = min(max_columns, count)
    rows = math.ceil(count / columns)
    figure = Figure(figsize=(width * columns, height * rows), layout="constrained")
    axes = figure.subplots(rows, columns, squeeze=False).ravel()
    for spare in axes[count:]:
        spare.set_visible(False)
    return figure, list(axes[:count])


def per_task(frame: pd.DataFrame, width: float, height: float, draw: Callable[[Axes, str, pd.DataFrame], None],
             max_columns: int = 3) -> Figure:
    tasks = list(dict.fromkeys(frame["task"]))
    figure, axes = facets(len(tasks), width, height, max_columns)
    for ax, task in zip(axes, tasks, strict=True):
        draw(ax, task, frame[frame["task"] == task])
    for ax in figure.axes:  # long task names (a CSV file's path) wrap instead of squeezing the panel
        ax.set_title(wrap(ax.get_title(), 48))
    return figure


def effect(trials: pd.DataFrame, summary: pd.DataFrame, axis: str) -> Figure:
    """The metric of every ``ok`` trial per level of ``axis`` (box, and points up to :data:`STRIP_POINTS`
    per panel) with the mean and its 95% interval, one panel per task. Levels run down the y axis so long
    names stay readable."""
    levels = list(dict.fromkeys(summary["level"]))
    if axis == "lr":
        levels.sort()
    labels = [wrap(format_level(axis, level)) for level in levels]
    colour = sns.color_palette(PALETTE)[0]

    def draw(ax: Axes, task: str, points: pd.DataFrame) -> None:
        points = points.assign(label=points[axis].map(lambda v: wrap(format_level(axis, v))))
        stats = summary[summary["task"] == task].set_index("level").reindex(levels)
        sns.boxplot(data=points, x="metric", y="label", order=labels, ax=ax, color=colour, fill=False,
                    fliersize=0, width=0.5, linewidth=1)
        if len(points) <= STRIP_POINTS:  # past that, dots only hide the boxes (and weigh down the page)
            sns.stripplot(data=points, x="metric", y="label", order=labels, ax=ax, color=colour, size=3,
                          alpha=0.45, jitter=0.15)
        err = np.vstack([stats["mean"] - stats["ci_low"], stats["ci_high"] - stats["mean"]])
        # Just under each box, so the interval's caps are not mistaken for the box's whiskers.
        ax.errorbar(stats["mean"], np.arange(len(levels)) + 0.36, xerr=np.nan_to_num(err), fmt="D",
                    color="black", markersize=3.5, capsize=2.5, linewidth=1.2, label="mean and 95% CI")
        ax.set(title=task, xlabel=metric_label(points["metric_name"].iloc[0]), ylabel=axis)

    with style():
        figure = per_task(trials, 4.6, max(2.4, 0.32 * len(levels) + 1.4), draw)
        legend_below(figure, figure.axes[0])
    return figure


def interaction(frame: pd.DataFrame, first: str, second: str) -> Figure:
    """Heatmaps of the mean metric for each pair of levels of two axes, one per task. Brighter is
    better for every metric (the colour map flips for RMSE)."""
    rows = sorted(frame[first].unique()) if first == "lr" else list(dict.fromkeys(frame[first]))
    columns = sorted(frame[second].unique()) if second == "lr" else list(dict.fromkeys(frame[second]))

    def draw(ax: Axes, task: str, part: pd.DataFrame) -> None:
        metric = part["metric_name"].iloc[0]
        present = [r for r in rows if r in set(part[first])], [c for c in columns if c in set(part[second])]
        grid = part.pivot_table(index=first, columns=second, values="mean").reindex(index=present[0],
                                                                                    columns=present[1])
        grid.index = [wrap(format_level(first, v)) for v in grid.index]
        grid.columns = [wrap(format_level(second, v), 14) for v in grid.columns]
        annotate = grid.size <= 120 and grid.shape[1] <= 12
        sns.heatmap(grid, ax=ax, cmap="viridis" if higher_is_better(metric) else "viridis_r", annot=annotate,
                    fmt=".3g", linewidths=0.5, cbar_kws={"label": f"mean test {metric}"})
        ax.set(title=task, xlabel=second, ylabel=first)
        ax.tick_params(axis="x", labelrotation=45 if len(columns) > 4 else 0)
        ax.tick_params(axis="y", labelrotation=0)

    with style():
        width = max(4.2, 0.6 * len(columns) + 2.6)
        height = max(2.8, 0.38 * len(rows) + 1.8)
        return per_task(frame, width, height, draw, max_columns=max(1, int(12 // width)))


def convergence(frame: pd.DataFrame) -> Figure:
    """Per task (one row each): held-out metric and training loss against epoch, a line per
    configuration with a band for the 95% interval over seeds. Where every loss is positive the loss is
    drawn on a log axis as the geometric mean over seeds, its band the interval of the log loss (computed
    in log space, so it is never below zero)."""
    tasks = list(dict.fromkeys(frame["task"]))
    colours = sns.color_palette(PALETTE)
    with style():
        figure = Figure(figsize=(11.5, 3.2 * len(tasks)), layout="constrained")
        axes = figure.subplots(len(tasks), 2, squeeze=False)
        for (metric_ax, loss_ax), task in zip(axes, tasks, strict=True):
            part = frame[frame["task"] == task]
            log_loss = bool(part["train_loss"].gt(0).all()) and "train_loss_geomean" in part
            loss = ("train_loss_geomean", "train_loss_geo_low", "train_loss_geo_high") if log_loss else (
                "train_loss", "train_loss_low", "train_loss_high")
            for i, (config, curve) in enumerate(part.groupby(["rank", "config"], sort=True)):
                label, colour = wrap(f"{config[0]}. {config[1]}", 40), colours[i % len(colours)]
                for ax, (column, low, high) in ((metric_ax, ("mean", "ci_low", "ci_high")), (loss_ax, loss)):
                    ax.plot(curve["epoch"], curve[column], color=colour, marker="o", markersize=3, label=label)
                    ax.fill_between(curve["epoch"], curve[low], curve[high], color=colour, alpha=0.15, linewidth=0)
            split = part["split"].iloc[0] if "split" in part else "test"
            metric_ax.set(title=f"{task}: {split} metric", xlabel="epoch",
                          ylabel=metric_label(part["metric_name"].iloc[0], split))
            loss_ax.set(title=f"{task}: training loss", xlabel="epoch",
                        ylabel="training loss (log scale)" if log_loss else "training loss",
                        yscale="log" if log_loss else "linear")
            if log_loss:
                plain_log_labels(loss_ax.yaxis)
            for ax in (metric_ax, loss_ax):
                ax.xaxis.get_major_locator().set_params(integer=True)
            loss_ax.legend(title="leaderboard rank", loc="upper left", bbox_to_anchor=(1.02, 1))
    return figure


def rank_diagram(ranks: pd.Series, p_adjusted: pd.DataFrame, alpha: float, title: str) -> Figure:
    """A critical-difference style diagram (scikit-posthocs draws it): each level at its mean rank over
    tasks, bars joining levels that the Holm-adjusted Wilcoxon signed-rank tests over tasks
    (``p_adjusted``, a symmetric matrix of the levels) could not tell apart at ``alpha``."""
    import scikit_posthocs  # imports pyplot: only when a diagram is drawn

    levels = list(ranks.index)
    # Past 8 levels the palette's light colours would be unreadable as text: all dark then.
    colours = sns.color_palette(PALETTE, 8)[: len(levels)] if len(levels) <= 8 else ["#333"] * len(levels)
    with style():
        figure = Figure(figsize=(8, 1.6 + 0.28 * len(levels)), layout="constrained")
        ax = figure.subplots()
        scikit_posthocs.critical_difference_diagram(
            ranks, p_adjusted.loc[levels, levels], alpha=alpha, ax=ax, label_fmt_left="{label} ({rank:.2f})",
            label_fmt_right="({rank:.2f}) {label}", color_palette=colours)
        ax.grid(False)
        ax.set_xlim(1, len(levels))  # the full range of possible mean ranks
        ax.set_xticks(range(1, len(levels) + 1))
        ax.set_title(title, pad=16)
    return figure


def lr_sensitivity(frame: pd.DataFrame, split: str = "test") -> Figure:
    """The metric on the ``split`` data against the learning rate (log scale), a line per optimizer,
    one panel per task; where ``frame`` has a ``selected`` count, a ring marks selected rates."""
    optimizers = list(dict.fromkeys(frame["optimizer"]))
    colours = dict(zip(optimizers, sns.color_palette(PALETTE, len(optimizers)), strict=True))

    def draw(ax: Axes, task: str, part: pd.DataFrame) -> None:
        for optimizer, line in part.groupby("optimizer", sort=False):
            err = np.vstack([line["mean"] - line["ci_low"], line["ci_high"] - line["mean"]])
            ax.errorbar(line["lr"], line["mean"], yerr=np.nan_to_num(err), color=colours[optimizer], marker="o",
                        markersize=4, capsize=3, label=optimizer)
            if "selected" in line:
                chosen = line[line["selected"].gt(0)]
                ax.scatter(chosen["lr"], chosen["mean"], s=110, facecolors="none", edgecolors=colours[optimizer],
                           linewidths=1.5, zorder=3, label="selected by tuning" if optimizer == optimizers[0] else None)
        ax.set_xscale("log")
        plain_log_labels(ax.xaxis)
        rates = sorted(part["lr"].unique())
        if len(rates) <= 8:
            ax.set_xticks(rates, [format_level("lr", rate) for rate in rates], minor=False)
            ax.minorticks_off()
        ax.set(title=task, xlabel="learning rate (log scale)",
               ylabel=metric_label(part["metric_name"].iloc[0], split))

    with style():
        figure = per_task(frame, 4.8, 3.4, draw)
        legend_below(figure, figure.axes[0], "optimizer")
    return figure


def performance_profile(profile: pd.DataFrame, max_lines: int = 12) -> Figure:
    """Dolan–Moré performance profiles: the fraction of tasks on which each configuration reached the
    target within a factor tau of the fastest, against tau (log scale), as steps, with bands where
    ``profile`` has ``low`` and ``high``. Only the first
    ``max_lines`` configurations of ``profile`` (it lists the best first) are drawn; past the
    palette's ten colours the line style changes."""
    configurations = list(dict.fromkeys(profile["configuration"]))[:max_lines]
    colours = sns.color_palette(PALETTE, 10)
    styles = ["-", "--", ":"]
    with style():
        figure = Figure(figsize=(9.5, 4.4), layout="constrained")
        ax = figure.subplots()
        for i, name in enumerate(configurations):
            curve = profile[profile["configuration"] == name]
            ax.step(curve["tau"], curve["rho"], where="post", color=colours[i % 10], linestyle=styles[i // 10 % 3],
                    linewidth=1.6, label=wrap(name, 40))
            if "low" in curve and curve["low"].notna().any():  # the bootstrap band
                ax.fill_between(curve["tau"], curve["low"], curve["high"], step="post", color=colours[i % 10],
                                alpha=0.12, linewidth=0)
        ax.set_xscale("log")
        top = profile["tau"].max()
        # Ticks at round factors (1, 1.5, 2, 3, ...): the log axis's own would label 2 as 2×10⁰.
        ax.xaxis.set_major_locator(LogLocator(subs=(1, 1.5, 2, 3, 5, 7) if top < 10 else (1, 2, 5)))
        ax.xaxis.set_major_formatter(FuncFormatter(thousands))
        ax.xaxis.set_minor_locator(NullLocator())
        ax.set_xlim(1, top)
        ax.set_ylim(-0.03, 1.03)
        ax.set(title="Performance profile: time to reach the target", ylabel="fraction of tasks",
               xlabel="τ: within a factor τ of the fastest configuration's wall time (log scale)")
        ax.legend(title="configuration (best first)", loc="upper left", bbox_to_anchor=(1.02, 1))
    return figure


def score_profile(profile: pd.DataFrame) -> Figure:
    """Performance profiles of normalized scores: per configuration, the fraction of runs above each
    threshold (averaged over tasks), with its bootstrap band; best IQM first in the legend."""
    configurations = list(dict.fromkeys(profile["configuration"]))
    colours = sns.color_palette(PALETTE, 10)
    with style():
        figure = Figure(figsize=(8.6, 3.4), layout="constrained")
        ax = figure.subplots()
        for i, name in enumerate(configurations):
            curve = profile[profile["configuration"] == name]
            colour = colours[i % 10]
            ax.plot(curve["tau"], curve["fraction"], color=colour, linewidth=1.5, label=wrap(name, 40),
                    linestyle="-" if i < 10 else "--")
            if curve["low"].notna().any():  # a band only where there were seeds enough for one
                ax.fill_between(curve["tau"], curve["low"], curve["high"], color=colour, alpha=0.15, linewidth=0)
        ax.set_ylim(-0.03, 1.03)
        ax.set(xlabel="normalized score τ (0: trivial or worst, 1: perfect or best)",
               ylabel="fraction of runs > τ", title="Performance profiles across tasks")
        ax.legend(title="configuration (best IQM first)", loc="upper left", bbox_to_anchor=(1.02, 1))
    return figure


def speed(frame: pd.DataFrame) -> Figure:
    """Median time per epoch and throughput per task and architecture, a bar colour per device."""
    frame = frame.assign(label=(frame["task"] + " · " + frame["arch"]).map(lambda text: wrap(text, 32)))
    with style():
        figure, (time_ax, rate_ax) = facets(2, 5.6, max(2.4, 0.3 * frame["label"].nunique() + 1.3))
        for ax, column, label in ((time_ax, "epoch_time", "median time per epoch (s)"),
                                  (rate_ax, "throughput", "median throughput (samples/s)")):
            values = frame[column].dropna()
            sns.barplot(data=frame, x=column, y="label", hue="device", ax=ax, palette=PALETTE, errorbar=None)
            if len(values) and values.min() > 0 and values.max() / values.min() > 50:
                ax.set_xscale("log")
                plain_log_labels(ax.xaxis)
                label += ", log scale"
            else:
                ax.xaxis.set_major_formatter(FuncFormatter(thousands))
            ax.set(xlabel=label, ylabel="task · architecture")
        legend_below(figure, time_ax, "device")
    return figure
