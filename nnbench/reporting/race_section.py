"""The report's section on a race (``nnbench run --race``): when each configuration left and on what evidence, and
the compute the race spent against the exhaustive grid. The other sections' verdicts are drawn only over the
configurations that finished (:func:`~nnbench.analysis.race_frames.finished_configurations`)."""

from __future__ import annotations

import pandas as pd

from nnbench.analysis import race_frames
from nnbench.contract.section import Note, Paragraph, ReportSection
from nnbench.reporting.html import new_section, table


def raced(trials: pd.DataFrame) -> bool:
    """Whether a race pruned any of ``trials`` (a run without one has no race section, not even a note)."""
    return race_frames.raced(trials)


def finished(trials: pd.DataFrame) -> pd.DataFrame:
    """``trials`` without the configurations a race pruned: what the report's verdicts compare."""
    return race_frames.finished_configurations(trials)


def race(trials: pd.DataFrame) -> ReportSection:
    """The race section of ``trials`` (all of them, pruned ones included); a note alone when nothing was pruned."""
    section = new_section("race", "Race")
    if not race_frames.raced(trials):
        section.blocks.append(Note("no configuration was pruned by a race (`nnbench run --race`)"))
        return section
    spent = race_frames.compute_spent(trials)
    pruned = race_frames.pruned_configurations(trials)
    finished = race_frames.finished_configurations(trials)
    n_finished = race_frames.configuration_ids(finished).nunique()
    section.blocks.append(Paragraph(
        f"A race trained {spent['trained_epochs']:,.0f} of the {spent['planned_epochs']:,.0f} epochs the exhaustive "
        f"grid plans ({spent['share']:.0%}). {len(pruned):,} configurations were pruned: their paired seeds showed "
        f"them worse than the best configuration of their task on validation data, beyond the ROPE, at the level "
        f"shown (Holm-adjusted over the task's configurations, alpha split over the rungs; docs/racing.md). "
        f"{n_finished:,} configurations finished; the verdicts and leaderboards of this report compare only them."))
    for line in pruned["text"].head(20):
        section.blocks.append(Paragraph(line))
    shown = pruned[["task", "configuration", "rung", "epoch", "seeds", "against", "mean_difference", "rope",
                    "p_value", "alpha", "not_trained"]]
    section.blocks.append(table(
        shown, {"mean_difference": lambda v: f"{v:+.4g}", "rope": lambda v: f"±{v:.2g}",
                "p_value": lambda v: f"{v:.4g}", "alpha": lambda v: f"{v:.2g}"},
        {"rung": "rung", "seeds": "seeds", "against": "worse than", "mean_difference": "best's advantage",
         "p_value": "Holm-adjusted p", "not_trained": "trials not trained"},
        caption="Configurations a race pruned, in the order they left.", limit=200))
    return section
