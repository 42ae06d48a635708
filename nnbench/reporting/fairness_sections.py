"""The report's fair-comparison parts: the box of honesty warnings under the leaderboard, tuned against
default, time-to-target rankings and performance profiles (frames from :mod:`nnbench.analysis.fairness`)."""

from __future__ import annotations

import math
from typing import Any

import numpy as np
import pandas as pd

from nnbench.analysis import fairness, intervals
from nnbench.analysis import frames as analysis
from nnbench.contract.section import Finding, Heading, Note, Paragraph, ReportSection
from nnbench.reporting import plots
from nnbench.reporting.html import new_section, table
from nnbench.reporting.sections import LEADERBOARD_ROWS, ReportData, count, duration, interval, metric, plural

CLEAR = ("Nothing to warn about: every ranking compares configurations with equal tuning budgets and the same "
         f"number of seeds (at least {fairness.MIN_SEEDS}), no tuned value sits at the edge of its search range, "
         "and the top two of every task differ by more than their seed-to-seed spread.")


def fair_comparison(data: ReportData) -> ReportSection:
    """The box at the top of the report: every honesty warning, or one line saying there is none."""
    warnings = data.warnings
    if not len(warnings):
        clear = CLEAR if len(data.main) else "No trials were stored, so nothing was compared."
        return ReportSection("Fair comparison", blocks=[Paragraph(clear)], anchor="fair-comparison", style="callout")
    intro = Paragraph("Read the findings and rankings with these in mind: each line names the task and the "
                      "configurations concerned.")
    items = [Finding(severity, text) for severity, text in zip(warnings["severity"], warnings["warning"], strict=True)]
    return ReportSection("Fair comparison", blocks=[intro, *items], anchor="fair-comparison", style="callout")


def _mean_std(mean: Any, std: Any) -> str:
    if pd.isna(mean):
        return "–"
    return f"{mean:.4f}" if pd.isna(std) else f"{mean:.4f}\u00a0±\u00a0{std:.4f}"  # kept on one line


def _interval(low: Any, high: Any) -> str:
    return interval(low, high).replace(" – ", "\u00a0–\u2060\u00a0")  # no line break inside


def _time(seconds: Any) -> str:
    return "never" if math.isinf(seconds) else duration(seconds)


def tuned_against_default(data: ReportData) -> ReportSection:
    section = new_section("tuning", "Tuned against default")
    frame = fairness.tuned_vs_default(data.trials)
    if frame.empty:
        section.blocks.append(Note("no configuration was tuned (tune with --tune lr --budget N)"))
        return section
    section.blocks.append(Paragraph(
        "Each configuration gets a budget of tuning trials at seed 0, over the range each optimizer declares "
        "(the box at the top of the report says when budgets differ); the setting with the best validation "
        "metric was rerun over the seeds, and its test metric is the tuned result. The default is the same "
        "configuration as given, untuned (budget 0). Mean ± standard deviation over seeds, with the 95% "
        "confidence interval; the difference is tuned minus default."))
    for task, part in frame.groupby("task", sort=False):
        name = part["metric_name"].iloc[0]
        axes = analysis.varying(part, fairness.key_axes(part)) or ["arch", "activation", "optimizer"]
        shown = part.assign(
            tuned_score=[_mean_std(m, s) for m, s in zip(part["tuned_mean"], part["tuned_std"], strict=True)],
            tuned_ci=[_interval(lo, hi) for lo, hi in zip(part["tuned_ci_low"], part["tuned_ci_high"], strict=True)],
            default_ci=[_interval(lo, hi) for lo, hi in zip(part["default_ci_low"], part["default_ci_high"],
                                                            strict=True)],
            default_score=[_mean_std(m, s) for m, s in zip(part["default_mean"], part["default_std"], strict=True)],
            default_lr=part["default_lr"].map(lambda v: "–" if pd.isna(v) else analysis.format_level("lr", v)),
            better=part["tuned_better"].map(lambda v: "–" if pd.isna(v) else "tuned" if v else "default"))
        section.blocks.append(Heading(f"{task}: test {name}, {plots.direction(name)}"))
        section.blocks.append(table(
            shown[[*axes, "selected", "tuned_score", "default_score", "difference", "better", "tuned_ci",
                   "default_ci", "tuned_seeds", "default_seeds", "default_lr", "budget", "tuning_trials"]],
            {"budget": count, "tuning_trials": count, "tuned_seeds": count, "default_seeds": count,
             "difference": lambda v: f"{v:+.4f}"},
            {"selected": "selected on validation", "tuned_score": f"tuned {name}",
             "default_score": f"default {name}", "difference": "tuned − default", "tuned_ci": "tuned 95% CI",
             "default_ci": "default 95% CI", "tuned_seeds": "tuned seeds", "default_seeds": "default seeds",
             "default_lr": "default lr", "tuning_trials": "tuning trials stored"}, limit=LEADERBOARD_ROWS))
    budgets = fairness.budget_accounting(data.trials)
    section.blocks.append(Heading("Budget accounting"))
    section.blocks.append(table(
        budgets, {"tuned": count, "tuning_trials": count, "tuning_ok": count, "tuning_time": duration,
                  "untuned": count},
        {"tuned": "configurations tuned", "budget": "budget each", "tuning_trials": "tuning trials",
         "tuning_ok": "finished ok", "tuning_time": "tuning time", "untuned": "untuned (budget 0)"},
        "Tuning trials per task and optimizer: a fair comparison gives every optimizer the same budget. A tuning "
        "trial that failed still used its try."))
    return section


def time_to_target(data: ReportData) -> ReportSection:
    section = new_section("time-to-target", "Time to target")
    targets, _ = fairness.task_targets(data.runs)
    board = fairness.target_leaderboard(data.main, data.epochs, targets)
    if board.empty:
        section.blocks.append(Note("no task has a target validation metric, so there is no time-to-target "
                                   "(give one with --target-metric, or register a task with a target)"))
        return section
    section.blocks.append(Paragraph(
        "Configurations ranked by the wall time their seeds took until the validation metric first reached the "
        "task's target: the median over seeds, a seed that never reached it counting as infinitely slow. "
        "Time is the training time of the epochs up to and including that one. Configurations with the same "
        "median share a rank unless more of one's seeds reached the target. The final-metric rank is the "
        "configuration's place on the leaderboard (test data) for comparison."))
    missing = [task for task in dict.fromkeys(data.main["task"]) if task not in targets]
    if missing:
        section.blocks.append(Note(f"no target for {', '.join(missing)}, so those tasks are not ranked here"))
    for task, whole in board.groupby("task", sort=False):
        name, target = whole["metric_name"].iloc[0], whole["target"].iloc[0]
        sign = "≥" if analysis.higher_is_better(name) else "≤"
        axes = analysis.varying(whole) or ["arch", "activation", "optimizer"]
        part = whole[whole["reached"].gt(0)]  # a configuration no seed of which got there is named once, below
        never = whole[whole["reached"].eq(0)]
        shown = part.assign(
            lr=part["lr"].map(lambda v: analysis.format_level("lr", v)),
            reached=[f"{r}/{n}" for r, n in zip(part["reached"], part["seeds"], strict=True)],
            median_epoch=part["median_epoch"].map(lambda e: "never" if math.isinf(e) else f"{e:g}"))
        section.blocks.append(Heading(f"{task}: validation {name} {sign} {target:g}"))
        section.blocks.append(table(
            shown[["rank", *axes, "median_time", "median_epoch", "reached", "metric_rank", "mean"]],
            {"median_time": _time, "metric_rank": count, "mean": metric},
            {"median_time": "time to target (median)", "median_epoch": "epoch (median)",
             "reached": "seeds reached", "metric_rank": "final-metric rank", "mean": f"mean test {name}"},
            limit=LEADERBOARD_ROWS) if len(part) else Note(f"no configuration reached the target of {task}"))
        if len(never):
            labels = analysis.config_labels(never, axes)
            section.blocks.append(Paragraph(
                f"Never reached {sign} {target:g} on any seed ({len(never)}): " + ", ".join(labels) + "."))
    return section


def performance_profile(data: ReportData) -> ReportSection:
    section = new_section("performance-profile", "Performance profile")
    targets, _ = fairness.task_targets(data.runs)
    times = fairness.profile_times(fairness.target_leaderboard(data.main, data.epochs, targets))
    if times.empty:
        section.blocks.append(Note("no task has a target validation metric, so there is nothing to profile"))
        return section
    if not times["time"].map(math.isfinite).any():
        section.blocks.append(Note("no configuration reached the target of any task, so there is nothing to "
                                   "profile"))
        return section
    if times["task"].nunique() < 2:
        section.blocks.append(Note("one task has a target: a profile over tasks needs two or more (time to target "
                                   "ranks the configurations of one task)"))
        return section
    ratios = fairness.profile_ratios(times)
    profile = fairness.performance_profile(times)
    per_trial = fairness.time_to_target(data.main, data.epochs, targets)
    tuned = dict(zip(data.main["trial_id"], fairness.tuning_info(analysis.tidy(data.main))["tuned"], strict=True))
    per_trial = per_trial.assign(tuned=per_trial["trial_id"].map(tuned).fillna(""), median_time=per_trial["time"])
    lines = min(12, profile["configuration"].nunique())
    drawn = list(dict.fromkeys(profile["configuration"]))[:lines]  # the figure's curves: the only bands shown
    taus = np.unique(profile["tau"].to_numpy(float))
    bands = intervals.time_profile_bands(fairness.profile_times(per_trial), taus, only=drawn)
    profile = profile.merge(bands, on=["configuration", "tau"], how="left")
    tasks = ratios["task"].nunique()
    section.blocks.append(Paragraph(
        f"One curve per configuration over {plural(tasks, 'task')}: "
        "the fraction of tasks on which its median time-to-target is within a factor τ of the fastest "
        "configuration on that task (Dolan and Moré, 2002). At τ = 1 it is the fraction of tasks where it was "
        "the fastest; where a curve ends on the right is the fraction of tasks it solved at all. Higher and "
        "further left is better. A configuration is named by its axes other than the task; a tuned "
        "configuration's learning rate is chosen per task and reads 'tuned'; when each task used its own loss, "
        "the loss is left out of the name. A configuration not trained on a task counts as not reaching it. "
        + ("Bands: 95% stratified bootstrap (each configuration's seeds resampled within each task, the medians, "
           "ratios and profile recomputed)." if len(bands) else
           f"No bands: a bootstrap band needs at least {intervals.BOOTSTRAP_MIN_SEEDS} seeds of every "
           "configuration on every task.")))
    more = (f" The {lines} configurations best at τ = 1 are drawn; the table lists all."
            if profile["configuration"].nunique() > lines else "")
    section.blocks.append(plots.to_image(
        plots.performance_profile(profile, lines), "performance profile of time to target, fraction of tasks "
        "against tau", f"Steps: the fraction of tasks within a factor τ of the fastest.{more}"))
    wide = ratios.pivot_table(index="configuration", columns="task", values="ratio", sort=False)
    wide = wide.reindex(list(dict.fromkeys(profile["configuration"])))
    section.blocks.append(table(
        wide.reset_index(), {task: (lambda v: "never" if math.isinf(v) else f"{v:.2f}") for task in wide.columns},
        caption="Performance ratio per task: the configuration's median time-to-target over the fastest one's "
                "(1.00 = fastest; never: the median seed did not reach the target, or it was not trained there).",
        limit=LEADERBOARD_ROWS))
    return section
