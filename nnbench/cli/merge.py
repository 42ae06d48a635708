"""``nnbench merge``: stores and bundles of other machines into one store."""

from __future__ import annotations

from pathlib import Path

import click

from nnbench.cli import STORE_SETTINGS, current_session, friendly_errors
from nnbench.storage.merging import merge as merge_stores

SHOWN_CONFLICTS = 10


@click.command()
@click.argument("sources", nargs=-1, required=True, type=click.Path(path_type=Path))
@click.option("--store", **{**STORE_SETTINGS, "help": "The store to merge into (created when absent)."})
@friendly_errors
def merge(sources: tuple[Path, ...], store: Path) -> None:
    """Merge SOURCES (stores, or bundles written by `nnbench export --bundle`) into --store.

    Everything is checked before the store changes, and the merge is one transaction: interrupted, the store
    is as it was. A trial present on both sides with the same numbers is kept once; with other numbers, both
    are kept and the difference is flagged (in this command's output and in the report). Trials whose code
    differs have different ids and stay apart.

    \b
    nnbench export --bundle laptop.zip --all --store laptop.db     # on the laptop
    nnbench merge laptop.zip --store workstation.db                # on the workstation
    """
    outcome = merge_stores(store, list(sources), axes=current_session().domain.axes)
    for summary in outcome.sources:
        click.echo(summary.describe())
        for conflict in summary.conflicts[:SHOWN_CONFLICTS]:
            click.echo(f"  other numbers: {conflict.describe(summary.source.name)}")
        if len(summary.conflicts) > SHOWN_CONFLICTS:
            click.echo(f"  ... and {len(summary.conflicts) - SHOWN_CONFLICTS} more (the report lists them)")
        for run_id in summary.running:
            click.echo(f"  run {run_id} was still running in {summary.source}: its finished trials are merged; "
                       "merge the source again once it ends")
    click.echo(f"{outcome.target} holds {outcome.trials} trials of {outcome.runs} runs")
    if len(outcome.hardware) > 1:
        machines = "; ".join(machine.describe() for machine in outcome.hardware)
        click.echo(f"note: its trials were trained on {len(outcome.hardware)} machines ({machines}): time and memory "
                   "compare only within one machine, and the report says so where it shows them")
