"""``nnbench compare``: did the candidate beat the stored baselines? Stored results, read only."""

from __future__ import annotations

import json
import math
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nnbench.api import compare as compare_runs
from nnbench.cli import STORE_OPTION, friendly_errors
from nnbench.contract import metrics
from nnbench.contract.errors import NNBenchError

if TYPE_CHECKING:
    from nnbench.analysis.comparison import RunComparison

ROPE_HELP = ("Region of practical equivalence: a half-width for every task (0.005), or METRIC=NUMBER and "
             "TASK=NUMBER pairs (accuracy=0.005,rmse=0.02); a task's own beats its metric's, which beats a bare "
             "number; default: half an accuracy point, 1% of the RMSE.")
rope_option = click.option("--rope", metavar="WIDTH|KEY=WIDTH,...", help=ROPE_HELP)
alpha_option = click.option("--alpha", type=click.FloatRange(0, 1, min_open=True, max_open=True), default=0.05,
                            show_default=True, help="Family-wise error rate of the verdicts: the chance of any false "
                                                    "'better' or 'worse' claim over every task and pair compared.")


@click.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--candidate", "candidate_filter", multiple=True, metavar="AXIS=VALUE[,VALUE]",
              help="The candidate's trials: those of the (last) run matching this (repeatable).")
@click.option("--baseline", "baseline_filter", multiple=True, metavar="AXIS=VALUE[,VALUE]",
              help="The baseline's trials: those of the first run matching this (default: all but the candidate's).")
@rope_option
@alpha_option
@click.option("--fail-if-worse", is_flag=True, help="Exit with status 1 when the candidate is credibly worse than a "
                                                     "baseline on any task (at the --alpha false-positive rate over "
                                                     "every task and pair compared).")
@click.option("--json", "as_json", is_flag=True, help="Print the comparison as JSON.")
@friendly_errors
def compare(runs: tuple[str, ...], store: Path, candidate_filter: tuple[str, ...], baseline_filter: tuple[str, ...],
            rope: str | None, alpha: float, fail_if_worse: bool, as_json: bool) -> None:
    """Compare CANDIDATE with BASELINE: did the new component beat the stored baselines?

    RUNS are BASELINE CANDIDATE (run ids; a unique prefix is enough), or one run with --candidate
    AXIS=VALUE (its other trials are the baseline). Trials are matched on everything but the compared
    axes (same task, other axes and seed); trials that differ in anything else are refused. Prints, per
    task, the candidate's advantage with its 95% t-interval over the paired seeds, the Holm-adjusted
    p-values of the difference and equivalence tests and the share of seeds the candidate won, then the
    verdict. --fail-if-worse makes it a CI gate: exit status 1 when the candidate is credibly worse on
    any task, with the chance of a false alarm at most --alpha.
    """
    if len(runs) > 2:
        raise NNBenchError(f"compare takes BASELINE and CANDIDATE, not {len(runs)} runs")
    result = compare_runs(runs[0] if runs else None, runs[1] if len(runs) > 1 else None, store=store,
                          candidate_filter=candidate_filter, baseline_filter=baseline_filter, rope=rope, alpha=alpha)
    if as_json:
        click.echo(json.dumps(result.to_dict(), indent=2))
    else:
        print_comparison(result)
    if fail_if_worse and result.worse:
        worse = result.worse_on()
        where = "; ".join(f"{row.baseline} on {row.task} (Holm-adjusted p = {row.p_adjusted:.2g})"
                          for row in worse.itertuples())
        click.echo(f"the candidate ({result.candidate}) is credibly worse than the baseline ({result.baseline}): "
                   f"{where}; {result.error_control}", err=True)
        raise SystemExit(1)


def print_comparison(result: RunComparison) -> None:
    """The comparison as a table per task, then its verdict."""
    from nnbench.analysis.comparison import DECISION_WORDS  # pandas and scipy: only once there is a comparison

    axes = ", ".join(result.axes) or "the runs"
    click.echo(f"baseline: {result.baseline}\ncandidate: {result.candidate}\ncompared: {axes}\n"
               f"error control: {result.error_control}")
    table = result.table()
    for task, part in table.groupby("task", sort=False):
        metric = part["metric_name"].iloc[0]
        click.echo(f"\n{task}: test {metric} ({metrics.metric(metric).direction}), ROPE {part['rope_text'].iloc[0]}")
        for row in part.itertuples():
            settle = "" if math.isnan(row.seeds_needed) else (
                "; no practical number of seeds would settle it" if math.isinf(row.seeds_needed)
                else f"; about {int(row.seeds_needed):,} paired seeds would settle it")
            interval = ("" if not math.isfinite(row.advantage_low) else
                        f" [{row.advantage_low:+.4f}, {row.advantage_high:+.4f}]")
            click.echo(f"  {row.candidate} vs {row.baseline}: advantage {row.advantage:+.4f}{interval} over "
                       f"{row.seeds} paired seeds; p (Holm) {_p(row.p_adjusted)}, equivalence p (Holm) "
                       f"{_p(row.p_equivalence_adjusted)}; won {row.wins} of {row.seeds} seeds "
                       f"-> {DECISION_WORDS[row.decision]}{settle}")
    click.echo(f"\nverdict: {result.verdict}")


def _p(value: float) -> str:
    return "–" if math.isnan(value) else "< 0.0001" if value < 1e-4 else f"{value:.2g}"
