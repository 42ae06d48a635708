"""``nnbench compare``: did the candidate beat the stored baselines? Stored results, read only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nnbench.api import compare as compare_runs
from nnbench.cli import STORE_OPTION, friendly_errors
from nnbench.contract.errors import NNBenchError

if TYPE_CHECKING:
    from nnbench.analysis.comparison import RunComparison

ROPE_HELP = ("Region of practical equivalence: a half-width for every task (0.005), or METRIC=NUMBER and "
             "TASK=NUMBER pairs (accuracy=0.005,rmse=0.02); default: half an accuracy point, 1% of the RMSE.")
rope_option = click.option("--rope", metavar="WIDTH|KEY=WIDTH,...", help=ROPE_HELP)


@click.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--candidate", "candidate_filter", multiple=True, metavar="AXIS=VALUE[,VALUE]",
              help="The candidate's trials: those of the (last) run matching this (repeatable).")
@click.option("--baseline", "baseline_filter", multiple=True, metavar="AXIS=VALUE[,VALUE]",
              help="The baseline's trials: those of the first run matching this (default: all but the candidate's).")
@rope_option
@click.option("--fail-if-worse", is_flag=True, help="Exit with status 1 when the candidate is credibly worse than a "
                                                     "baseline on some task.")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@friendly_errors
def compare(runs: tuple[str, ...], store: Path, candidate_filter: tuple[str, ...], baseline_filter: tuple[str, ...],
            rope: str | None, fail_if_worse: bool, as_json: bool) -> None:
    """Compare CANDIDATE with BASELINE: did the new component beat the stored baselines?

    RUNS are BASELINE CANDIDATE (run ids; a unique prefix is enough), or one run with --candidate
    AXIS=VALUE (its other trials are the baseline). Trials are matched on everything but the compared
    axes (same task, other axes and seed); trials that differ in anything else are refused. Prints, per
    task, the candidate's advantage with its 95% interval, the probability of improvement and the
    Bayesian signed-rank probabilities, then the verdict.
    """
    if len(runs) > 2:
        raise NNBenchError(f"compare takes BASELINE and CANDIDATE, not {len(runs)} runs")
    result = compare_runs(runs[0] if runs else None, runs[1] if len(runs) > 1 else None, store=store,
                          candidate_filter=candidate_filter, baseline_filter=baseline_filter, rope=rope)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_comparison(result)
    if fail_if_worse and result.worse:
        worse = result.table().query("decision == 'second'")
        where = ", ".join(f"{row.baseline} on {row.task} (P = {row.p_baseline:.2f})" for row in worse.itertuples())
        click.echo(f"the candidate is credibly worse than {where}", err=True)
        raise SystemExit(1)


def print_comparison(result: RunComparison) -> None:
    """The comparison as a table per task, then its verdict."""
    axes = ", ".join(result.axes) or "the runs"
    click.echo(f"baseline: {result.baseline}\ncandidate: {result.candidate}\ncompared: {axes}")
    table = result.table()
    for task, part in table.groupby("task", sort=False):
        metric = part["metric_name"].iloc[0]
        direction = "higher" if metric != "rmse" else "lower"
        click.echo(f"\n{task}: test {metric} ({direction} is better), ROPE {part['rope_text'].iloc[0]}")
        for row in part.itertuples():
            settle = "" if math.isnan(row.seeds_needed) else (
                "; no practical number of seeds would settle it" if math.isinf(row.seeds_needed)
                else f"; about {int(row.seeds_needed):,} seeds would settle it")
            click.echo(f"  {row.candidate} vs {row.baseline}: advantage {row.advantage:+.4f} "
                       f"[{row.advantage_low:+.4f}, {row.advantage_high:+.4f}], P(candidate > baseline) "
                       f"{row.poi:.2f} [{row.poi_low:.2f}, {row.poi_high:.2f}]; P(candidate better) "
                       f"{row.p_candidate:.3f}, P(equivalent) {row.p_equivalent:.3f}, P(baseline better) "
                       f"{row.p_baseline:.3f}; {row.blocks} blocks -> {_decision(row.decision)}{settle}")
    click.echo(f"\nverdict: {result.verdict}")


def _decision(decision: str) -> str:
    return {"first": "candidate better", "second": "baseline better", "equivalent": "practically equivalent",
            "undecided": "undecided"}[decision]
