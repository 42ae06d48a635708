"""``nnbench run``: its options are derived from the session's domain (one flag per trial axis, a kind
a plugin adds included) and from the executors' own options (Ray's ``--address``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nnbench.cli import STORE_SETTINGS, current_session, friendly_errors
from nnbench.cli.compare import ROPE_HELP
from nnbench.contract.errors import NNBenchError
from nnbench.files import unwritable_folder
from nnbench.loading.exits import PluginExit
from nnbench.progress import ConsoleProgress, print_plan

if TYPE_CHECKING:
    from nnbench.session import Session

GRID_OPTIONS = (
    click.Option(["--tune"], help="Hyper-parameters to tune on validation data, comma-separated (e.g. lr,momentum)."),
    click.Option(["--budget"], type=int, help="Tuning trials per configuration (equal for all), with --tune."),
    click.Option(["--target-metric"], help="Validation target for time-to-target: a number for every task, or "
                                            "TASK=NUMBER pairs (default: each task's own)."),
    click.Option(["--target"], help="Column to predict, for csv:PATH tasks."),
    click.Option(["--kind"], type=click.Choice(["binary", "multiclass", "regression"]),
                 help="Task kind of csv:PATH tasks (inferred from the target column when omitted)."),
    click.Option(["--max-trials"], type=int, help="Refuse a grid of more trials than this (default 100,000): "
                                                  "the grid is counted before anything is built."),
    click.Option(["--set", "set_params"], multiple=True, metavar="KIND.NAME.PARAM=VALUE",
                 help="Override a hyper-parameter, e.g. arch.fnn.hidden=[128,128] (repeatable)."),
)


def run_options() -> list[click.Option]:
    """The options of ``nnbench run`` that are not axes: how to execute and where results go."""
    return [
        click.Option(["--store"], **STORE_SETTINGS),
        click.Option(["--force"], is_flag=True, help="Retrain trials that are already stored."),
        click.Option(["--dry-run"], is_flag=True, help="Print the trials and counts without training."),
        click.Option(["--workers"], default="auto", show_default=True, metavar="N|auto",
                     help="Worker processes for CPU trials: auto is one per core (in this process for a grid too "
                          "small to pay for workers), 1 trains in this process."),
        click.Option(["--per-device"], default="auto", show_default=True, metavar="N|auto",
                     help="Trials training at once on each accelerator: auto measures what the device keeps busy."),
        click.Option(["--threads"], type=int, default=1, show_default=True,
                     help="Torch threads per training process (more cores are better used through --workers)."),
        click.Option(["--executor"], default=None,
                     help="inline, processes, ray, or one a plugin registers (default: this machine, in worker "
                          "processes or this one as --workers says; inline becomes processes with --workers > 1 "
                          "or --timeout)."),
        click.Option(["--timeout"], type=float, help="Stop a trial after this many seconds (status timeout)."),
        click.Option(["--max-failures"], type=int,
                     help="Stop the grid once more trials than this failed or timed out."),
        click.Option(["--fail-fast"], is_flag=True, help="Stop the grid at the first failed or timed-out trial."),
        click.Option(["--no-vectorize"], is_flag=True, help="Train seeds one by one instead of as stacked ensembles."),
        click.Option(["--download"], is_flag=True, help="Download data sets that tasks need and are missing."),
        click.Option(["--report-dir"], type=click.Path(file_okay=False, path_type=Path), default="reports",
                     show_default=True, help="Where the run's report goes (REPORT_DIR/<run>/index.html)."),
        click.Option(["--no-report"], is_flag=True, help="Do not write an HTML report at the end."),
        click.Option(["--rope"], metavar="WIDTH|KEY=WIDTH,...", help=ROPE_HELP),
        click.Option(["--quiet", "-q"], is_flag=True,
                     help="No progress bar (messages about trials and runs still show)."),
    ]


def make_run_command(session: Session) -> click.Command:
    """``nnbench run`` for the session's axes and executors."""
    axis_options = [click.Option([ax.flag], help=ax.help) for ax in session.domain.axes]
    executor_options = [click.Option([option.flag, option.name], envvar=option.envvar,
                                     help=f"{option.help} [{spec.spec.name} executor]")
                        for spec in session.catalogue.executors.entries() for option in spec.spec.options]
    params = [click.Argument(["grid_file"], required=False, type=click.Path(dir_okay=False, path_type=Path)),
              *axis_options, *GRID_OPTIONS, *run_options(), *executor_options]
    return click.Command("run", callback=friendly_errors(_run), params=params, help=RUN_HELP,
                         short_help="Train every compatible combination of the grid and store the results.")


RUN_HELP = """Train every compatible combination of the grid and store the results.

Axes come from GRID_FILE (TOML) when given, flags override it, and anything unset takes the
default grid's value. Trials already in the store are not trained again (resume), unless
--force.
"""


def _run(grid_file: Path | None, set_params: tuple[str, ...], store: Path, force: bool, dry_run: bool,
         workers: str, per_device: str, threads: int, executor: str | None, timeout: float | None,
         max_failures: int | None,
         fail_fast: bool, no_vectorize: bool, download: bool, report_dir: Path, no_report: bool, quiet: bool,
         rope: str | None, **values: Any) -> None:
    from nnbench.analysis.rope import parse_rope
    from nnbench.session import RunOptions

    given = parse_rope(rope).to_dict()  # a bad --rope is an error before anything is trained
    session = current_session()
    executor_keys = {o.name for e in session.catalogue.executors.entries() for o in e.spec.options}
    extra = {k: values.pop(k) for k in list(values) if k in executor_keys}
    grid = session.grid(grid_file, set_params, **values)
    options = RunOptions(executor=executor, workers=workers, per_device=per_device, threads=threads, timeout=timeout,
                         max_failures=0 if fail_fast else max_failures, vectorize=not no_vectorize,
                         download=download, extra=extra)
    if dry_run:
        session.check_options(options)
        print_plan(session.dry_run(grid, store, force), click.echo, list_trials=True)
        return
    if not no_report:  # found now, not once the whole grid has trained
        problem = unwritable_folder(report_dir)
        if problem:
            raise NNBenchError(f"cannot write the report to {report_dir} ({problem}); give a writable "
                               "--report-dir, or --no-report; nothing was trained")
    # -q hides the bar only: a line that names a crashed or interrupted trial is always shown
    progress = ConsoleProgress(session.domain, session.pm, click.echo, bar=not quiet, messages=True,
                               report_dir=None if no_report else report_dir, rope=given)
    try:
        outcome = session.run(grid, store, options, force=force, observer=progress)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished trials are stored in {store}; run the same command to resume", err=True)
        sys.exit(130)
    except PluginExit as exc:  # never a silent success: the plugin is named, the run's status stored true
        raise click.ClickException(f"{exc.where} called os._exit({exc.code}): the run stopped there"
                                   f"{_stored_as(store)}; its finished trials are stored in {store}, and the same "
                                   "command resumes the rest") from None
    if outcome.status == "stopped":
        raise click.ClickException(
            f"stopped early: more than {options.max_failures} trials failed or timed out; finished trials "
            "are stored and the same command resumes the rest")


def _stored_as(store: Path) -> str:
    """`` (stored as failed)``: how the store's latest run ended, or nothing where it cannot be read."""
    from nnbench.storage.store import ResultStore

    try:
        with ResultStore(store, readonly=True) as results:
            runs = results.runs()
    except NNBenchError:
        return ""
    return f" (stored as {runs.sort_values('started_at')['status'].iloc[-1]})" if len(runs) else ""
