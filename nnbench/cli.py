"""The ``nnbench`` command line: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import functools
import sys
import warnings
from collections.abc import Callable, Iterator, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nnbench import __version__
from nnbench.errors import NNBenchError

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.grid import Trial
    from nnbench.runner import Plan

F = TypeVar("F", bound=Callable[..., Any])

KIND_ALIASES = {
    "activation": "activation", "activations": "activation",
    "loss": "loss", "losses": "loss",
    "optimizer": "optimizer", "optimizers": "optimizer",
    "architecture": "architecture", "architectures": "architecture", "arch": "architecture", "archs": "architecture",
    "task": "task", "tasks": "task",
}
STORE_OPTION = click.option("--store", type=click.Path(dir_okay=False, path_type=Path), default="nnbench.db",
                            show_default=True, envvar="NNBENCH_STORE", help="Results database (SQLite).")


def friendly_errors(func: F) -> F:
    """Turn nnbench's own errors into a one-line message and exit status 1, never a traceback."""

    @functools.wraps(func)
    def wrapper(*args: Any, **kwargs: Any) -> Any:
        try:
            return func(*args, **kwargs)
        except NNBenchError as exc:
            raise click.ClickException(str(exc)) from None

    return wrapper  # type: ignore[return-value]


def _short_warning(message: Warning | str, category: type[Warning], *args: Any, **kwargs: Any) -> str:
    return f"warning: {message}\n"


@click.group(context_settings={"help_option_names": ["-h", "--help"], "max_content_width": 100})
@click.version_option(__version__, prog_name="nnbench")
def cli() -> None:
    """Benchmark neural-network components against each other, with evidence.

    Run `nnbench run` for the default grid, `nnbench list` to see the components.
    """
    warnings.formatwarning = _short_warning


def main() -> None:
    """Console-script entry point."""
    cli(prog_name="nnbench")


# -- run -------------------------------------------------------------------------------------------

AXIS_HELP = "Comma-separated names; wildcards and 'all' allowed."


@cli.command()
@click.argument("grid_file", required=False, type=click.Path(dir_okay=False, path_type=Path))
@click.option("--task", help=f"Tasks. {AXIS_HELP}")
@click.option("--arch", help=f"Architectures. {AXIS_HELP}")
@click.option("--activation", help=f"Activations. {AXIS_HELP}")
@click.option("--loss", help=f"Losses ('default': each task's own). {AXIS_HELP}")
@click.option("--optimizer", help=f"Optimizers. {AXIS_HELP}")
@click.option("--lr", help="Learning rates, comma-separated ('default': each optimizer's own).")
@click.option("--seeds", type=int, help="Seeds per configuration (0 .. N-1).")
@click.option("--epochs", type=int, help="Training epochs per trial.")
@click.option("--batch-size", type=int, help="Mini-batch size.")
@click.option("--device", help="Device to train on: cpu, cuda, cuda:N or mps.")
@click.option("--set", "set_params", multiple=True, metavar="KIND.NAME.PARAM=VALUE",
              help="Override a hyper-parameter, e.g. arch.fnn.hidden=[128,128] (repeatable).")
@STORE_OPTION
@click.option("--force", is_flag=True, help="Retrain trials that are already stored.")
@click.option("--dry-run", is_flag=True, help="Print the trials and counts without training.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@friendly_errors
def run(grid_file: Path | None, set_params: tuple[str, ...], store: Path, force: bool, dry_run: bool,
        quiet: bool, **axes: Any) -> None:
    """Train every compatible combination of the grid and store the results.

    Axes come from GRID_FILE (TOML) when given, flags override it, and anything unset takes the
    default grid's value. Trials already in the store are not trained again (resume), unless
    --force.
    """
    from nnbench.config import build_grid, load_grid_file
    from nnbench.runner import Session
    from nnbench.store import ResultStore

    file_values = load_grid_file(grid_file) if grid_file else None
    grid = build_grid(file_values, set_params, **axes)
    session = Session()
    if dry_run:
        plan = session.plan(grid, ResultStore(store) if store.exists() else None, force)
        _print_plan(plan, list_trials=True)
        return
    with ResultStore(store) as results:
        plan = session.plan(grid, results, force)
        _print_plan(plan, list_trials=False)
        try:
            outcome = session.execute(plan, results, None if quiet else _progress_bar)
        except KeyboardInterrupt:
            click.echo(f"\ninterrupted: finished trials are stored in {store}; run the same command to resume",
                       err=True)
            sys.exit(130)
        from nnbench.analysis import leaderboard

        frame = results.trials([outcome.run_id])
        _print_leaderboard(leaderboard(frame))
        _print_failures(frame)
        click.echo(f"run {outcome.run_id}: {len(outcome.results)} trained, {len(plan.reused)} reused, "
                   f"stored in {store}")


def _progress_bar(trials: Sequence[Trial]) -> Iterator[Trial]:
    from tqdm import tqdm

    bar = tqdm(trials, unit="trial", dynamic_ncols=True, file=sys.stderr)
    for trial in bar:
        bar.set_postfix_str(f"{trial.task} {trial.label()} seed {trial.seed}", refresh=False)
        yield trial


def _print_plan(plan: Plan, list_trials: bool) -> None:
    if plan.skipped:
        reasons: dict[str, int] = {}
        for s in plan.skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        click.echo(f"skipped {len(plan.skipped)} combinations:")
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            click.echo(f"  {count:>4} x {reason}")
    if list_trials:
        for t in plan.trials:
            state = "stored" if t in plan.reused else "to train"
            click.echo(f"{t.trial_id}  {t.task:<14} {t.label():<45} seed {t.seed}  {t.device}  [{state}]")
    click.echo(f"{len(plan.trials)} trials: {len(plan.todo)} to train, {len(plan.reused)} already stored, "
               f"{len(plan.skipped)} combinations skipped")


def _print_leaderboard(board: pd.DataFrame, top: int = 10) -> None:
    for task, part in board.groupby("task", sort=False):
        metric = part["metric_name"].iloc[0]
        arrow = "lower is better" if metric == "rmse" else "higher is better"
        click.echo(f"\n{task} — test {metric} ({arrow}), mean ± std over seeds")
        for row in part.head(top).itertuples():
            std = f"{row.std:.4f}" if row.std == row.std else "n/a"
            score = f"{row.mean:.4f} ± {std}" if row.mean == row.mean else "no successful seed"
            config = f"{row.arch}/{row.activation}/{row.loss}/{row.optimizer}@{row.lr:g}"
            extra = f"  ({row.failed} failed/diverged)" if row.failed else ""
            click.echo(f"  {row.rank:>3}. {config:<45} {score}  n={row.seeds}{extra}")
        if len(part) > top:
            click.echo(f"  ... {len(part) - top} more configurations")


def _print_failures(frame: pd.DataFrame) -> None:
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return
    click.echo(f"\n{len(bad)} trials did not finish ok:")
    for row in bad.head(20).itertuples():
        last_line = (row.error or "").strip().splitlines()[-1:] or [""]
        click.echo(f"  {row.status:<8} {row.task} {row.arch}/{row.activation}/{row.loss}/{row.optimizer} "
                   f"seed {row.seed}: {last_line[0][:160]}")


# -- list / plugins --------------------------------------------------------------------------------


def _component_details(kind: str, spec: Any) -> str:
    if kind == "task":
        return f"{spec.kind}, {spec.modality} {tuple(spec.input_shape)}, metric {spec.metric}"
    if kind == "loss":
        return "trains " + "/".join(sorted(spec.kinds))
    if kind == "optimizer":
        return f"default lr {spec.default_lr:g}"
    if kind == "architecture":
        return "reads " + "/".join(spec.modalities)
    return ""


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False, default="*")
@friendly_errors
def list_components(kind: str | None, pattern: str) -> None:
    """List registered components: KIND is activations, losses, optimizers, architectures or tasks.

    PATTERN filters names with wildcards (e.g. 'adam*').
    """
    from nnbench.components import KINDS, PLURALS
    from nnbench.plugins import collect_catalogue, make_plugin_manager

    if kind is not None and kind.lower() not in KIND_ALIASES:
        raise NNBenchError(f"unknown component kind {kind!r}; kinds: activations, losses, optimizers, "
                           "architectures, tasks")
    catalogue = collect_catalogue(make_plugin_manager())
    kinds = [KIND_ALIASES[kind.lower()]] if kind else list(KINDS)
    for k in kinds:
        registry = catalogue.registry(k)
        names = registry.names(pattern)
        click.echo(f"{PLURALS[k]} ({len(names)}):")
        for name in names:
            spec = registry.get(name)
            details = _component_details(k, spec)
            details = f" [{details}]" if details else ""
            click.echo(f"  {name:<16} {spec.description}{details}  (plugin: {registry.plugin_of(name)})")


@cli.command()
@friendly_errors
def plugins() -> None:
    """List loaded plugins: version, hooks and the components each contributed."""
    from nnbench.components import PLURALS
    from nnbench.plugins import collect_catalogue, make_plugin_manager

    pm = make_plugin_manager()
    catalogue = collect_catalogue(pm)
    for info in pm.describe():
        origin = f"{info.distribution} {info.version}".strip()
        click.echo(f"{info.name}  ({info.source}{', ' + origin if origin else ''})")
        click.echo(f"  hooks: {', '.join(info.hooks) or 'none'}")
        for registry in catalogue.registries():
            names = [e.spec.name for e in registry.entries() if e.plugin == info.name]
            if names:
                click.echo(f"  {PLURALS[registry.kind]}: {', '.join(names)}")


# -- export ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write; .csv or .parquet.")
@click.option("--epochs", "per_epoch", is_flag=True, help="Export per-epoch curves instead of one row per trial.")
@click.option("--all", "all_runs", is_flag=True, help="Export every run in the store.")
@friendly_errors
def export(runs: tuple[str, ...], store: Path, output: Path, per_epoch: bool, all_runs: bool) -> None:
    """Write results of RUNS (default: the latest run) to CSV or Parquet."""
    from nnbench.store import ResultStore, StoreError

    if not store.exists():
        raise StoreError(f"store {store} does not exist; run `nnbench run` first or pass --store")
    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise NNBenchError(f"cannot export to {output.name!r}: the file name must end in .csv or .parquet")
    with ResultStore(store) as results:
        run_ids = None if all_runs else results.resolve_runs(list(runs))
        frame = results.epochs(run_ids) if per_epoch else results.trials(run_ids)
    try:
        if suffix == ".csv":
            frame.to_csv(output, index=False)
        else:
            frame.to_parquet(output, index=False)
    except ImportError as exc:
        raise NNBenchError(f"Parquet export needs pyarrow: pip install 'nnbench-arena[parquet]' ({exc})") from None
    except OSError as exc:
        raise NNBenchError(f"cannot write {output}: {exc.strerror or exc}") from None
    click.echo(f"wrote {len(frame)} rows to {output}")
