"""``nnbench run``: its options are derived from the session's domain (one flag per trial axis, a kind
a plugin adds included) and from the executors' own options (Ray's ``--address``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nnbench.analysis.rope import parse_rope
from nnbench.cli import STORE_SETTINGS, current_session, friendly_errors
from nnbench.cli.compare import ROPE_HELP
from nnbench.contract.errors import NNBenchError
from nnbench.contract.paths import DEFAULT_REPORT_DIR
from nnbench.contract.run_options import RUN_OPTIONS, RunOption, RunOptions
from nnbench.files import unwritable_folder
from nnbench.loading.exits import PluginExit
from nnbench.loading.plugins import SignalStop
from nnbench.progress import ConsoleProgress, print_plan
from nnbench.storage.store import ResultStore

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
    """The options of ``nnbench run`` that are not axes: how to execute (from :data:`RUN_OPTIONS`) and where
    results go."""
    execution = [click.Option([option.flag, option.name], is_flag=option.cli != "value", help=option.help,
                              type=option.value_type, metavar=option.metavar,
                              default=None if option.cli == "value" else False, show_default=_shown(option))
                 for option in RUN_OPTIONS]
    return [
        click.Option(["--store"], **STORE_SETTINGS),
        click.Option(["--force"], is_flag=True, help="Retrain trials that are already stored."),
        click.Option(["--dry-run"], is_flag=True, help="Print the trials and counts without training."),
        *execution,
        click.Option(["--report-dir"], type=click.Path(file_okay=False, path_type=Path), default=DEFAULT_REPORT_DIR,
                     show_default=True, help="Where the run's report goes (REPORT_DIR/<run>/index.html)."),
        click.Option(["--no-report"], is_flag=True, help="Do not write an HTML report at the end."),
        click.Option(["--rope"], metavar="WIDTH|KEY=WIDTH,...", help=ROPE_HELP),
        click.Option(["--quiet", "-q"], is_flag=True,
                     help="No progress bar (messages about trials and runs still show)."),
    ]


def _shown(option: RunOption) -> str | bool:
    """The default a value option shows in the help (``--workers auto``); a flag shows none."""
    return str(option.default) if option.cli == "value" and option.default is not None else False


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
         report_dir: Path, no_report: bool, quiet: bool, rope: str | None, **values: Any) -> None:
    given = parse_rope(rope).to_dict()  # a bad --rope is an error before anything is trained
    session = current_session()
    executor_keys = {o.name for e in session.catalogue.executors.entries() for o in e.spec.options}
    extra = {k: values.pop(k) for k in list(values) if k in executor_keys}
    chosen = {o.name: values.pop(o.name) for o in RUN_OPTIONS}
    # click passes a switch as False when not given; --no-vectorize (vectorize) reads the other way round
    chosen["vectorize"] = not chosen["vectorize"]
    grid = session.grid(grid_file, set_params, **values)
    options = RunOptions.from_values(chosen, extra)
    if dry_run:
        session.check_options(options)
        print_plan(session.dry_run(grid, store, force, options), click.echo, list_trials=True)
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
        outcome = session.run(grid, store, options, force=force, observer=progress, rope=given)
    except KeyboardInterrupt as exc:
        by = f" by {exc.name}" if isinstance(exc, SignalStop) else ""
        click.echo(f"\ninterrupted{by}: finished trials are stored in {store}; run the same command to resume",
                   err=True)
        if isinstance(exc, SignalStop):
            exc.end_process()  # the process was asked to end: it does, by that signal, now that the run is stored
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

    try:
        with ResultStore(store, readonly=True) as results:
            runs = results.runs()
    except NNBenchError:
        return ""
    return f" (stored as {runs.sort_values('started_at')['status'].iloc[-1]})" if len(runs) else ""
