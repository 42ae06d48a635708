"""``nnbench run``: its options are derived from the session's domain (one flag per trial axis, a kind
a plugin adds included) and from the executors' own options (Ray's ``--address``)."""

from __future__ import annotations

import sys
from pathlib import Path
from typing import TYPE_CHECKING, Any

import click

from nnbench.cli import STORE_SETTINGS, current_session, friendly_errors
from nnbench.contract.axes import short_label
from nnbench.session import RunObserver

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.contract.domain import Domain
    from nnbench.contract.trial import TrialResult
    from nnbench.session import Plan, RunOutcome, Session
    from nnbench.storage.store import ResultStore

GRID_OPTIONS = (
    click.Option(["--tune"], help="Hyper-parameters to tune on validation data, comma-separated (e.g. lr,momentum)."),
    click.Option(["--budget"], type=int, help="Tuning trials per configuration (equal for all), with --tune."),
    click.Option(["--target-metric"], help="Validation target for time-to-target: a number for every task, or "
                                            "TASK=NUMBER pairs (default: each task's own)."),
    click.Option(["--target"], help="Column to predict, for csv:PATH tasks."),
    click.Option(["--kind"], type=click.Choice(["binary", "multiclass", "regression"]),
                 help="Task kind of csv:PATH tasks (inferred from the target column when omitted)."),
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
        click.Option(["--quiet", "-q"], is_flag=True, help="No progress bar."),
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
         **values: Any) -> None:
    from nnbench.session import RunOptions

    session = current_session()
    executor_keys = {o.name for e in session.catalogue.executors.entries() for o in e.spec.options}
    extra = {k: values.pop(k) for k in list(values) if k in executor_keys}
    grid = session.grid(grid_file, set_params, **values)
    options = RunOptions(executor=executor, workers=workers, per_device=per_device, threads=threads, timeout=timeout,
                         max_failures=0 if fail_fast else max_failures, vectorize=not no_vectorize,
                         download=download, extra=extra)
    if dry_run:
        session.check_options(options)
        print_plan(session.dry_run(grid, store, force), list_trials=True)
        return
    progress = ProgressBar(session, quiet, None if no_report else report_dir)
    try:
        outcome = session.run(grid, store, options, force=force, observer=progress)
    except KeyboardInterrupt:
        click.echo(f"\ninterrupted: finished trials are stored in {store}; run the same command to resume", err=True)
        sys.exit(130)
    if outcome.status == "stopped":
        raise click.ClickException(
            f"stopped early: more than {options.max_failures} trials failed or timed out; finished trials "
            "are stored and the same command resumes the rest")


class ProgressBar(RunObserver):
    """The run's observer on a terminal: the plan, then a tqdm bar advanced per stored result, with
    messages printed above it (messages that differ only in the configuration they name, once)."""

    def __init__(self, session: Session, quiet: bool, report_dir: Path | None) -> None:
        self.session, self.quiet, self.report_dir = session, quiet, report_dir
        self.repeats: dict[str, int] = {}
        self.bar: Any = None

    def planned(self, plan: Plan) -> None:
        from tqdm import tqdm

        print_plan(plan, list_trials=False)
        self.bar = tqdm(total=len(plan.todo), unit="trial", dynamic_ncols=True, file=sys.stderr,
                        disable=self.quiet or None)

    def result(self, result: TrialResult) -> None:
        trial = result.trial
        self.bar.set_postfix_str(f"{trial.task} {trial.label()} seed {trial.seed}: {result.status}", refresh=False)
        self.bar.update(1)

    def log(self, message: str) -> None:
        reason = message.partition(" because ")[2] or message
        self.repeats[reason] = self.repeats.get(reason, -1) + 1
        if not self.quiet and not self.repeats[reason]:
            if self.bar is not None:
                self.bar.write(message, file=sys.stderr)
            else:
                click.echo(message, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        repeated = sum(self.repeats.values())
        if repeated and not self.quiet:
            click.echo(f"({repeated} more messages like the ones above were not repeated)", err=True)

    def finished(self, outcome: RunOutcome, store: ResultStore) -> None:
        """The leaderboard per task, the trials that did not finish ok, and the report."""
        from nnbench.analysis.frames import leaderboard

        domain = self.session.domain
        frame = store.trials([outcome.run_id])
        print_leaderboard(leaderboard(frame[frame["protocol"] != "tuning"]), domain)  # tuning trials: search steps
        print_failures(frame, domain)
        click.echo(f"run {outcome.run_id}: {len(outcome.results)} trained, {len(outcome.plan.reused)} reused, "
                   f"stored in {store.path}")
        if self.report_dir is not None:
            from nnbench.reporting import write_run_report

            path = write_run_report(store, [outcome.run_id], self.report_dir / outcome.run_id, self.session.pm)
            click.echo(f"report: {path}")


def print_plan(plan: Plan, list_trials: bool) -> None:
    if plan.skipped:
        reasons: dict[str, int] = {}
        for s in plan.skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        click.echo(f"skipped {len(plan.skipped)} combinations:")
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:>4} x {reason}")
    if list_trials:
        stored = {t.trial_id for t in plan.reused}
        for t in plan.trials:
            state = "stored" if t.trial_id in stored else "to train"
            click.echo(f"{t.trial_id}  {t.task:<14} {t.label():<45} seed {t.seed}  {t.device}  [{state}]")
    click.echo(f"{len(plan.trials)} trials: {len(plan.todo)} to train, {len(plan.reused)} already stored, "
               f"{len(plan.skipped)} combinations skipped")


def row_label(row: Any, domain: Domain) -> str:
    """A results row's configuration, as ``nnbench run`` names it."""
    values = row._asdict() if hasattr(row, "_asdict") else dict(row)
    return short_label(values, domain.axes)


def print_leaderboard(board: pd.DataFrame, domain: Domain, top: int = 10) -> None:
    for task, part in board.groupby("task", sort=False):
        metric = part["metric_name"].iloc[0]
        arrow = "lower is better" if metric == "rmse" else "higher is better"
        click.echo(f"\n{task} — test {metric} ({arrow}), mean ± std over seeds")
        for row in part.head(top).itertuples():
            std = f"{row.std:.4f}" if row.std == row.std else "n/a"
            score = f"{row.mean:.4f} ± {std}" if row.mean == row.mean else "no successful seed"
            config = row_label(row, domain)
            if getattr(row, "protocol", "default") == "tuned":
                config += " (tuned)"
            if getattr(row, "variant", ""):
                config += f" [{row.variant}]"
            extra = f"  ({row.failed} failed/diverged)" if row.failed else ""
            click.echo(f"  {row.rank:>3}. {config:<45} {score}  n={row.seeds}{extra}")
        if len(part) > top:
            click.echo(f"  ... {len(part) - top} more configurations")


def print_failures(frame: pd.DataFrame, domain: Domain) -> None:
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return
    click.echo(f"\n{len(bad)} trials did not finish ok:")
    for row in bad.head(20).itertuples():
        last_line = (row.error or "").strip().splitlines()[-1:] or [""]
        click.echo(f"  {row.status:<8} {row.task} {row_label(row, domain)} seed {row.seed}: {last_line[0][:160]}")
