"""The report's built-in sections: each turns one analysis frame into headings, tables and figures.

A section whose data is absent says so in a note; a section of notes only is left out of the page and
named, with its notes, in one line under the table of contents.
"""

from __future__ import annotations

import itertools
import json
from collections.abc import Mapping
from dataclasses import dataclass, field
from functools import cached_property
from typing import Any

import pandas as pd

from nnbench.analysis import fairness, paired, verdicts
from nnbench.analysis import frames as analysis
from nnbench.analysis.pairwise import AxisComparison
from nnbench.analysis.rope import Rope, parse_rope
from nnbench.analysis.versions import titles_of, version_table
from nnbench.contract.section import Finding, Heading, Note, Paragraph, ReportSection
from nnbench.reporting import plots
from nnbench.reporting.html import new_section, table

LEADERBOARD_ROWS = 25
CONVERGENCE_CONFIGS = 8


@dataclass
class ReportData:
    """The store's frames for the reported runs. ``trials`` holds every trial; the rankings,
    effects, statistics and timings read :attr:`main`, which leaves out the tuning trials."""

    runs: pd.DataFrame
    trials: pd.DataFrame
    epochs: pd.DataFrame
    skipped: pd.DataFrame
    rope_given: Mapping[str, float] = field(default_factory=dict)
    alpha: float = paired.ALPHA
    """The family-wise error rate of the verdicts."""
    version_names: Mapping[str, str] = field(default_factory=dict)
    """Names of versions of a component's code, by run id or code (:mod:`nnbench.analysis.versions`)."""

    @cached_property
    def rope(self) -> Rope:
        """The region of practical equivalence the comparisons use (``--rope``, else the defaults)."""
        return parse_rope(dict(self.rope_given))

    @cached_property
    def warnings(self) -> pd.DataFrame:
        """The honesty warnings (:func:`nnbench.analysis.fairness.honesty_warnings`), shared by two sections."""
        return fairness.honesty_warnings(self.trials, self.runs)

    @cached_property
    def comparisons(self) -> list[AxisComparison]:
        """The pairwise evidence of every varied axis, shared by the findings and their evidence."""
        return verdicts.axis_comparisons(self.main, self.rope, self.alpha, self.version_names)

    @cached_property
    def versions(self) -> pd.DataFrame:
        """The versions of every component whose code changed between the reported runs, named."""
        return version_table(self.main, self.version_names)

    @cached_property
    def version_titles(self) -> dict[str, str]:
        """Hover text for each ``version`` cell (``cnn v2``, or several joined): each version's code and runs."""
        titles = titles_of(self.versions)
        cells = set(self.main["version"]) if "version" in self.main else set()
        return {cell: "; ".join(f"{part}: {titles[part]}" for part in cell.split(", ") if part in titles)
                for cell in cells if cell}

    @cached_property
    def main(self) -> pd.DataFrame:
        """The trials the report compares: defaults and tuned reruns, not the tuning search."""
        return fairness.compared_trials(self.trials)

    @cached_property
    def tuning(self) -> pd.DataFrame:
        """The tuning protocol's search trials."""
        return fairness.search_trials(self.trials)

    @cached_property
    def ok(self) -> pd.DataFrame:
        """The compared trials whose metric counts."""
        return analysis.ok_trials(self.main)


# -- formatting ------------------------------------------------------------------------------------


def duration(seconds: Any) -> str:
    seconds = float(seconds)
    if seconds >= 3600:
        return f"{int(seconds // 3600)} h {int(seconds % 3600 // 60):02d} min"
    if seconds >= 60:
        return f"{int(seconds // 60)} min {int(seconds % 60):02d} s"
    return f"{seconds:.3g} s"


def plural(n: int, noun: str) -> str:
    return f"{n:,} {noun}{'' if n == 1 else 's'}"


def metric(value: Any) -> str:
    return f"{value:.4f}"


def count(value: Any) -> str:
    return f"{int(value):,}"


def p_value(value: Any) -> str:
    return "< 0.0001" if value < 1e-4 else f"{value:.2g}"


def mebibytes(value: Any) -> str:
    return f"{value / 2**20:,.1f} MiB"


def timestamp(value: Any) -> str:
    return "unfinished" if pd.isna(value) else pd.Timestamp(value).strftime("%Y-%m-%d %H:%M:%S UTC")


def interval(low: Any, high: Any) -> str:
    return "–" if pd.isna(low) or pd.isna(high) else f"{low:.4f} – {high:.4f}"


# -- sections --------------------------------------------------------------------------------------


def overview(data: ReportData) -> ReportSection:
    section = new_section("overview", "Overview")
    runs = analysis.run_overview(data.runs)
    counts = analysis.status_counts(data.trials, data.skipped)
    total = data.trials["train_time"].sum()
    trained = counts[counts["status"] != "skipped"]
    by_status = ", ".join(f"{n:,} {status}" for status, n in zip(trained["status"], trained["trials"], strict=True))
    n_skipped = counts.loc[counts["status"] == "skipped", "trials"].sum()
    finished = data.runs["finished_at"]
    until = (f"to {timestamp(finished.max())}" if finished.notna().all()
             else "not finished (still running, or interrupted)")
    section.blocks.append(Paragraph(
        f"{plural(len(runs), 'run')} from {timestamp(data.runs['started_at'].min())} {until}: "
        f"{plural(len(data.trials), 'trial')} ({by_status or 'none'}) and "
        f"{plural(n_skipped, 'skipped combination')}; {duration(total)} of training in total."))
    if len(data.tuning):
        protocols = analysis.tidy(data.trials)["protocol"].value_counts()
        section.blocks.append(Paragraph(
            f"By protocol: {protocols.get('default', 0):,} untuned, {protocols.get('tuning', 0):,} tuning and "
            f"{protocols.get('tuned', 0):,} tuned trials. Tuning trials search for a setting on validation data "
            f"({duration(data.tuning['train_time'].sum())} of training) and are left out of the rankings, effects, "
            "statistics and timings; they appear in the learning-rate sweep and the tuning budgets."))
    section.blocks.append(table(runs[["run", "started", "finished", "status", "trials", "skipped"]],
                                {"started": timestamp, "finished": timestamp, "trials": count, "skipped": count},
                                caption="Runs."))
    section.blocks.append(table(runs[["run", "nnbench", "torch", "python", "host", "devices", "platform", "commit"]],
                                caption="Software and machine of each run."))
    section.blocks.append(table(analysis.grid_overview(data.runs), caption="The grid each run asked for."))
    versions = analysis.code_versions(data.trials)
    if len(versions):
        named = data.versions[["axis", "component", "code", "label"]].rename(columns={"label": "version"})
        versions = versions.merge(named, on=["axis", "component", "code"], how="left")
        columns = ["axis", "component", *(["version"] if versions["version"].notna().any() else []), "code", "trials",
                   "runs", "last trained"]
        section.blocks.append(table(versions[columns], {"trials": count, "last trained": timestamp}, caption=(
            "The code of each component that is not built in, as its trials ran it: an installed plugin's "
            "distribution and version, or a hash of the source of a component defined in a session. Code "
            "that changed trains again; a component trained under several codes has versions (cnn v1, cnn v2 "
            "in the order they were first trained), which the leaderboard keeps apart and the comparisons "
            "compare.")))
    section.blocks.append(table(counts, {"trials": count, "train_time": duration},
                                {"trials": "count", "train_time": "training time"}, "Trials by status."))
    return section


def leaderboard(data: ReportData) -> ReportSection:
    section = new_section("leaderboard", "Leaderboard")
    board = analysis.leaderboard(data.main)
    if board.empty:
        section.blocks.append(Note("no trials were stored for these runs"))
        return section
    section.blocks.append(Paragraph(
        "Ranked by the task's metric on test data, over the seeds that finished ok: mean, standard deviation, "
        "interquartile mean (IQM: the middle half of the seeds) and the mean's 95% t-interval; time per trial. "
        "Click a column's heading to sort."))
    for task, part in board.groupby("task", sort=False):
        name = part["metric_name"].iloc[0]
        axes = analysis.varying(part) or ["arch", "activation", "loss", "optimizer", "lr"]
        shown = part.assign(
            ci=[interval(lo, hi) for lo, hi in zip(part["ci_low"], part["ci_high"], strict=True)],
            seeds=[f"{ok}/{ok + bad}" for ok, bad in zip(part["seeds"], part["failed"], strict=True)],
            lr=part["lr"].map(lambda v: analysis.format_level("lr", v)))
        section.blocks.append(Heading(f"{task}: test {name}, {plots.direction(name)}"))
        section.blocks.append(table(
            shown[["rank", *axes, "mean", "std", "iqm", "ci", "seeds", "train_time", "n_params"]],
            {"mean": metric, "std": metric, "iqm": metric, "train_time": duration, "n_params": count},
            {"mean": f"mean {name}", "std": "std", "iqm": "IQM", "ci": "95% CI", "seeds": "seeds ok",
             "train_time": "time / trial", "n_params": "parameters"},
            limit=LEADERBOARD_ROWS, titles={"version": data.version_titles}))
    return section


def effects(data: ReportData) -> ReportSection:
    section = new_section("effects", "Effect of each axis")
    if data.ok.empty:
        section.blocks.append(Note("no trial finished ok, so there is no metric to compare"))
        return section
    varied = analysis.varying_axes(data.main)
    section.blocks.append(Paragraph(
        "The held-out metric of every trial that finished ok, per level of one axis, pooled over seeds "
        "and the other axes: boxes show quartiles, dots single trials (when a panel has at most "
        f"{plots.STRIP_POINTS}), diamonds the mean with its 95% confidence interval."))
    for axis in varied:
        section.blocks.append(Heading(axis))
        summary = analysis.level_summary(data.main, axis)
        section.blocks.append(plots.to_image(
            plots.effect(data.ok, summary, axis), f"test metric per {axis}, one panel per task"))
    still = [axis for axis in analysis.effect_axes(data.main) if axis not in varied]
    if still:
        section.blocks.append(Note("not varied, so no effect to show: "
                                   + ", ".join(_not_varied(data.main, axis) for axis in still)))
    if not varied:
        section.blocks[:] = [block for block in section.blocks if isinstance(block, Note)]
    return section


def _not_varied(trials: pd.DataFrame, axis: str) -> str:
    """Why ``axis`` has no effect to show, in a few words: ``arch (only fnn)``."""
    levels = list(dict.fromkeys(analysis.tidy(trials)[axis]))
    if len(levels) <= 1:
        return f"{axis} (only {analysis.format_level(axis, levels[0]) if levels else 'none'})"
    if axis == "lr":
        return "lr (each optimizer at its own learning rate)"
    return f"{axis} (never changed with the other axes held fixed: each task used its own)"


def interactions(data: ReportData) -> ReportSection:
    section = new_section("interactions", "Interactions")
    varied = analysis.varying_axes(data.ok)
    if len(varied) < 2:
        section.blocks.append(Note("fewer than two axes were varied, so there are no interactions to show"))
        return section
    section.blocks.append(Paragraph(
        "Mean held-out metric for each pair of levels of two axes, over seeds and the remaining axes. "
        "Brighter cells are better, for every metric."))
    for first, second in itertools.combinations(varied, 2):
        section.blocks.append(Heading(f"{first} × {second}"))
        frame = analysis.interaction(data.main, first, second)
        section.blocks.append(plots.to_image(plots.interaction(frame, first, second),
                                             f"heatmap of mean test metric, {first} by {second}, per task"))
    return section


def convergence(data: ReportData) -> ReportSection:
    section = new_section("convergence", "Convergence")
    frame = analysis.convergence(data.main, data.epochs, top=CONVERGENCE_CONFIGS)
    if frame.empty:
        section.blocks.append(Note("no per-epoch curves of trials that finished ok were stored"))
        return section
    section.blocks.append(plots.to_image(
        plots.convergence(frame), f"{frame['split'].iloc[0]} metric and training loss against epoch, per task",
        f"The best configurations of each task's leaderboard, at most {CONVERGENCE_CONFIGS}, numbered by rank: "
        f"mean over seeds, the band is the 95% confidence interval; the metric is measured on "
        f"{frame['split'].iloc[0]} data after every epoch. On a log scale the training loss is the geometric "
        "mean over seeds and its band the interval of the log loss (computed in log space, so never below "
        "zero). Losses of different loss functions are not comparable with each other."))
    for note in protocol_notes(data.main):
        section.blocks.append(Note(note))
    return section


def protocol_notes(trials: pd.DataFrame) -> list[str]:
    """What a reader must know of trials whose protocol differs from holding out a validation split: those
    that made no selection and those whose training loss a batch-stage component adapted."""
    notes = []
    if "validation" in trials and (trials["validation"] == "none").any():
        notes.append("trials with validation none made no selection: they trained on every training row and "
                     "report their last epoch; their validation numbers are blank, and figures of validation data "
                     "leave them out")
    adapted = trials["training"].map(lambda t: isinstance(t, str) and '"train_loss"' in t) \
        if "training" in trials else pd.Series(False, index=trials.index)
    if adapted.any():
        notes.append(f"the training loss of {int(adapted.sum())} trials is the loss a batch-stage component adapted "
                     "(mixup's mixed targets, say), not the plain criterion's: compare it within those trials only")
    return notes


def learning_rate(data: ReportData) -> ReportSection:
    section = new_section("learning-rate", "Learning-rate sensitivity")
    frame = analysis.lr_sensitivity(data.main)
    sweep = fairness.tuning_sweep(data.trials)
    if frame.empty and sweep.empty:
        section.blocks.append(Note("the learning rate was not swept: no optimizer ran at more than one"))
        return section
    if not frame.empty:
        if not sweep.empty:
            section.blocks.append(Heading("Untuned trials: test metric"))
        section.blocks.append(plots.to_image(
            plots.lr_sensitivity(frame), "test metric against learning rate per optimizer, per task",
            "Mean over seeds and the other axes, with 95% confidence intervals."))
    if not sweep.empty:
        section.blocks.append(Heading("Tuning trials: validation metric"))
        if frame.empty:
            section.blocks.append(Note("the untuned trials did not sweep the learning rate"))
        section.blocks.append(plots.to_image(
            plots.lr_sensitivity(sweep, split="validation"),
            "validation metric of the tuning trials against learning rate per optimizer, per task",
            "The learning rates the tuning search tried (seed 0), judged on validation data as the selection "
            "was: mean over the other axes, with 95% confidence intervals; a ring marks a learning rate that "
            "some configuration selected. Test data took no part in the selection."))
    return section


def speed(data: ReportData) -> ReportSection:
    section = new_section("speed", "Speed")
    frame = analysis.speed(data.main)
    if frame.empty:
        section.blocks.append(Note("no trial trained a full epoch, so there are no timings"))
        return section
    section.blocks.append(plots.to_image(plots.speed(frame), "time per epoch and throughput per architecture"))
    measured = frame["peak_memory"].notna().any()
    columns = ["task", "arch", "device", "trials", "epoch_time", "throughput", *(["peak_memory"] if measured else [])]
    section.blocks.append(table(
        frame[columns], {"trials": count, "epoch_time": duration, "throughput": count, "peak_memory": mebibytes},
        {"arch": "architecture", "epoch_time": "time / epoch (median)", "throughput": "samples/s (median)",
         "peak_memory": "peak memory (max)"},
        "Timings exclude data loading; throughput counts training samples per second."))
    if not measured:
        section.blocks.append(Note("peak memory was not measured (nnbench measures it on CUDA devices)"))
    section.blocks += company_blocks(data.main)
    devices = analysis.device_comparison(data.main)
    section.blocks.append(Heading("Device against device"))
    if devices.empty:
        only = ", ".join(dict.fromkeys(data.main["device"]))
        section.blocks.append(Note(f"only one device ran ({only}), so there is nothing to compare"))
    else:
        section.blocks.append(table(
            devices, {"matched": count, "speedup": lambda v: f"{v:.2f}×"},
            {"arch": "architecture", "matched": "matched trials", "speedup": "speed-up (median)"},
            "Speed-up: the baseline's time per epoch divided by the device's, over trials with the same "
            "configuration and seed."))
    return section


def device_company(trials: pd.DataFrame) -> pd.DataFrame:
    """Per task, architecture and device: trials that trained with their device to themselves, trials
    that trained in company (more work at once on the device than it has slots: cores for CPU workers,
    one per accelerator), and the most that trained on it at once. Empty when no trial recorded it
    (stores written before nnbench recorded how trials were trained)."""
    columns = ["task", "arch", "device", "alone", "in_company", "at_once"]
    if "training" not in trials.columns or trials["training"].isna().all():
        return pd.DataFrame(columns=columns)
    records = trials["training"].map(lambda text: json.loads(text) if isinstance(text, str) else {})
    at_once = records.map(lambda r: r.get("concurrent"))
    known = at_once.notna()
    frame = trials.loc[known, ["task", "arch", "device"]].assign(
        at_once=at_once[known].astype(int),
        shared=[r["concurrent"] > r.get("slots", 1) for r in records[known]])
    out = frame.groupby(["task", "arch", "device"], sort=False).agg(
        alone=("shared", lambda v: int((~v).sum())), in_company=("shared", "sum"), at_once=("at_once", "max"))
    return out.reset_index()[columns]


def company_blocks(trials: pd.DataFrame) -> list[Any]:
    """How many trials shared a device while they were timed, and a warning where timings measured
    alone and in company are compared (the table above, or device against device)."""
    company = device_company(trials)
    if company.empty or not company["in_company"].any():
        return []
    blocks: list[Any] = [Heading("Trials that shared a device"), table(
        company, {"alone": count, "in_company": count, "at_once": count},
        {"arch": "architecture", "alone": "trials alone", "in_company": "trials in company",
         "at_once": "most at once"},
        "A trial in company trained while more work shared its device than the device has slots (the cores of "
        "a CPU, one per accelerator); its time per epoch is not comparable with a time measured alone.")]
    mixed = company[(company["alone"] > 0) & (company["in_company"] > 0)]
    for row in mixed.itertuples():
        blocks.append(Finding("warning", f"{row.task} {row.arch} on {row.device}: {row.alone} trials were timed "
                                         f"alone and {row.in_company} in company; their times above mix the two "
                                         "and are not comparable"))
    devices = company.groupby("device")["in_company"].sum()
    if len(devices) > 1 and devices.gt(0).any() and devices.eq(0).any():
        shared = ", ".join(devices[devices.gt(0)].index)
        blocks.append(Finding("warning", f"trials on {shared} shared their device while others did not: a "
                                         "comparison of devices mixes times measured alone and in company"))
    return blocks


def robustness(data: ReportData) -> ReportSection:
    section = new_section("robustness", "Robustness")
    counts = analysis.status_counts(data.trials, data.skipped)
    section.blocks.append(table(counts[["status", "trials"]], {"trials": count}, {"trials": "count"}))
    failed = analysis.failures(data.trials)
    section.blocks.append(Heading("Trials that did not finish ok"))
    if failed.empty:
        section.blocks.append(Note(f"all {len(data.trials):,} trials finished ok"))
    else:
        section.blocks.append(table(failed, {"trials": count}, {"example": "example trial"}, limit=50))
    skipped = analysis.skipped_reasons(data.skipped)
    section.blocks.append(Heading("Skipped combinations"))
    if skipped.empty:
        section.blocks.append(Note("no combination of the grid was skipped"))
    else:
        section.blocks.append(table(skipped, {"combinations": count}, {"example": "example combination"}, limit=50))
    return section
