"""The ``nnbench`` command line: parse, call the library, print. No logic of its own."""

from __future__ import annotations

import dataclasses
import functools
import json
import sys
import warnings
from collections.abc import Callable
from pathlib import Path
from typing import TYPE_CHECKING, Any, TypeVar

import click

from nnbench import __version__
from nnbench.errors import NNBenchError

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.runner import Plan
    from nnbench.train import TrialResult

F = TypeVar("F", bound=Callable[..., Any])

KIND_ALIASES = {
    "activation": "activation", "activations": "activation",
    "loss": "loss", "losses": "loss",
    "optimizer": "optimizer", "optimizers": "optimizer",
    "architecture": "architecture", "architectures": "architecture", "arch": "architecture", "archs": "architecture",
    "task": "task", "tasks": "task",
    "schedule": "schedule", "schedules": "schedule",
    "device": "device", "devices": "device",
    "executor": "executor", "executors": "executor",
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
@click.option("--device", help="Devices, comma-separated: auto, all, cpu, cuda, cuda:N, mps.")
@click.option("--schedule", help=f"Learning-rate schedules (constant, step, cosine, warmup). {AXIS_HELP}")
@click.option("--clip", help="Gradient-norm clipping limits, comma-separated ('none': no clipping).")
@click.option("--patience", type=int, help="Early stopping: stop after this many epochs without a better "
                                           "validation metric (the best epoch's weights are kept).")
@click.option("--tune", help="Hyper-parameters to tune on validation data, comma-separated (e.g. lr,momentum).")
@click.option("--budget", type=int, help="Tuning trials per configuration (equal for all), with --tune.")
@click.option("--target-metric", help="Validation target for time-to-target: a number for every task, or "
                                       "TASK=NUMBER pairs (default: each task's own).")
@click.option("--target", help="Column to predict, for csv:PATH tasks.")
@click.option("--kind", type=click.Choice(["binary", "multiclass", "regression"]),
              help="Task kind of csv:PATH tasks (inferred from the target column when omitted).")
@click.option("--set", "set_params", multiple=True, metavar="KIND.NAME.PARAM=VALUE",
              help="Override a hyper-parameter, e.g. arch.fnn.hidden=[128,128] (repeatable).")
@STORE_OPTION
@click.option("--force", is_flag=True, help="Retrain trials that are already stored.")
@click.option("--dry-run", is_flag=True, help="Print the trials and counts without training.")
@click.option("--workers", type=int, default=1, show_default=True, help="Worker processes for CPU trials.")
@click.option("--threads", type=int, default=1, show_default=True,
              help="Torch threads per training process (more cores are better used through --workers).")
@click.option("--executor", default="inline", show_default=True,
              help="inline, processes, ray, or one a plugin registers (inline becomes processes with "
                   "--workers > 1 or --timeout).")
@click.option("--address", help="Ray cluster address for --executor ray (default: $RAY_ADDRESS, else a local Ray).")
@click.option("--timeout", type=float, help="Stop a trial after this many seconds (status timeout).")
@click.option("--max-failures", type=int, help="Stop the grid once more trials than this failed or timed out.")
@click.option("--fail-fast", is_flag=True, help="Stop the grid at the first failed or timed-out trial.")
@click.option("--no-vectorize", is_flag=True, help="Train seeds one by one instead of as stacked ensembles.")
@click.option("--download", is_flag=True, help="Download data sets that tasks need and are missing.")
@click.option("--report-dir", type=click.Path(file_okay=False, path_type=Path), default="reports",
              show_default=True, help="Where the run's report goes (REPORT_DIR/<run>/index.html).")
@click.option("--no-report", is_flag=True, help="Do not write an HTML report at the end.")
@click.option("--quiet", "-q", is_flag=True, help="No progress bar.")
@friendly_errors
def run(grid_file: Path | None, set_params: tuple[str, ...], store: Path, force: bool, dry_run: bool,
        workers: int, threads: int, executor: str, address: str | None, timeout: float | None, max_failures: int | None,
        fail_fast: bool, no_vectorize: bool, download: bool, report_dir: Path, no_report: bool, quiet: bool,
        **axes: Any) -> None:
    """Train every compatible combination of the grid and store the results.

    Axes come from GRID_FILE (TOML) when given, flags override it, and anything unset takes the
    default grid's value. Trials already in the store are not trained again (resume), unless
    --force.
    """
    from nnbench.config import build_grid, load_grid_file
    from nnbench.runner import RunOptions, Session
    from nnbench.store import ResultStore

    file_values = load_grid_file(grid_file) if grid_file else None
    grid = build_grid(file_values, set_params, **axes)
    options = RunOptions(executor=executor, workers=workers, threads=threads, timeout=timeout,
                         max_failures=0 if fail_fast else max_failures, vectorize=not no_vectorize,
                         address=address, download=download)
    options.validate()
    session = Session()
    session.catalogue.executors.get(options.executor_name())
    plan = session.plan(grid, None, force)  # every check before the store is opened (or created)
    if dry_run:
        if store.exists():
            with ResultStore(store, readonly=True) as results:
                plan = session.resume(plan, results, force)
        _print_plan(plan, list_trials=True)
        return
    with ResultStore(store) as results:
        plan = session.resume(plan, results, force)
        _print_plan(plan, list_trials=False)
        bar = _progress_bar(len(plan.todo), quiet)
        try:
            outcome = session.execute(plan, results, options, on_result=bar.result, on_log=bar.log)
        except KeyboardInterrupt:
            bar.close()
            click.echo(f"\ninterrupted: finished trials are stored in {store}; run the same command to resume",
                       err=True)
            sys.exit(130)
        bar.close()
        from nnbench.analysis import leaderboard

        frame = results.trials([outcome.run_id])
        _print_leaderboard(leaderboard(frame[frame["protocol"] != "tuning"]))  # tuning trials are search steps
        _print_failures(frame)
        click.echo(f"run {outcome.run_id}: {len(outcome.results)} trained, {len(plan.reused)} reused, "
                   f"stored in {store}")
        if not no_report:
            from nnbench.report import write_run_report

            path = write_run_report(results, [outcome.run_id], report_dir / outcome.run_id, session.pm)
            click.echo(f"report: {path}")
        if outcome.status == "stopped":
            raise click.ClickException(
                f"stopped early: more than {options.max_failures} trials failed or timed out; finished trials "
                "are stored and the same command resumes the rest")


class _progress_bar:  # noqa: N801 - used like a function
    """A tqdm bar advanced per stored result, with the last trial and messages printed above it."""

    def __init__(self, total: int, quiet: bool) -> None:
        from tqdm import tqdm

        self.bar = tqdm(total=total, unit="trial", dynamic_ncols=True, file=sys.stderr, disable=quiet or None)
        self.quiet = quiet
        self.repeats: dict[str, int] = {}

    def result(self, result: TrialResult) -> None:
        trial = result.trial
        self.bar.set_postfix_str(f"{trial.task} {trial.label()} seed {trial.seed}: {result.status}", refresh=False)
        self.bar.update(1)

    def log(self, message: str) -> None:
        # Messages that differ only in the configuration they name ("... because X") print once.
        reason = message.partition(" because ")[2] or message
        self.repeats[reason] = self.repeats.get(reason, -1) + 1
        if not self.quiet and not self.repeats[reason]:
            self.bar.write(message, file=sys.stderr)

    def close(self) -> None:
        self.bar.close()
        repeated = sum(self.repeats.values())
        if repeated and not self.quiet:
            click.echo(f"({repeated} more messages like the ones above were not repeated)", err=True)


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
            if getattr(row, "schedule", "constant") != "constant":
                config += f"+{row.schedule}"
            if getattr(row, "clip", "none") not in ("none", None) and row.clip == row.clip:
                config += f" clip {row.clip}"
            if getattr(row, "protocol", "default") == "tuned":
                config += " (tuned)"
            if getattr(row, "variant", ""):
                config += f" [{row.variant}]"
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


def _component_row(kind: str, registry: Any, name: str) -> dict[str, Any]:
    spec = registry.get(name)
    return {"kind": kind, "name": name, "description": getattr(spec, "description", ""),
            "details": _component_details(kind, spec), "plugin": registry.plugin_of(name)}


@cli.command("list")
@click.argument("kind", required=False)
@click.argument("pattern", required=False)
@click.option("--plugin", "plugin_name", help="Only components of this plugin.")
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@friendly_errors
def list_components(kind: str | None, pattern: str | None, plugin_name: str | None, as_json: bool) -> None:
    """List registered components.

    KIND is activations, losses, optimizers, architectures, tasks, devices or executors; PATTERN
    filters names with wildcards (e.g. 'adam*'). A lone wildcard pattern searches every kind.
    """
    from nnbench.components import KINDS, PLURALS
    from nnbench.plugins import collect_catalogue, make_plugin_manager

    if kind is not None and kind.lower() not in KIND_ALIASES:
        if pattern is None and any(ch in kind for ch in "*?["):
            kind, pattern = None, kind  # `nnbench list 'adam*'`
        else:
            raise NNBenchError(f"unknown component kind {kind!r}; kinds: {', '.join(PLURALS.values())}")
    catalogue = collect_catalogue(make_plugin_manager())
    kinds = [KIND_ALIASES[kind.lower()]] if kind else list(KINDS)
    rows: dict[str, list[dict[str, Any]]] = {}
    for k in kinds:
        registry = catalogue.registry(k)
        rows[k] = [row for row in (_component_row(k, registry, n) for n in registry.names(pattern or "*"))
                   if plugin_name is None or row["plugin"] == plugin_name]
    if pattern and not any(rows.values()):
        raise NNBenchError(f"no {PLURALS[kinds[0]] if kind else 'component'} matches {pattern!r}; "
                           f"`nnbench list{' ' + kind if kind else ''}` shows them all")
    if plugin_name is not None and not any(rows.values()):
        known = sorted({e.plugin for r in catalogue.registries() for e in r.entries()})
        raise NNBenchError(f"no component matches plugin {plugin_name!r}; plugins: {', '.join(known)}")
    if as_json:
        click.echo(json.dumps([row for part in rows.values() for row in part], indent=2))
        return
    for k, part in rows.items():
        if pattern and not part and not kind:
            continue
        click.echo(f"{PLURALS[k]} ({len(part)}):")
        for row in part:
            details = f" [{row['details']}]" if row["details"] else ""
            click.echo(f"  {row['name']:<16} {row['description']}{details}  (plugin: {row['plugin']})")


@cli.command()
@click.option("--json", "as_json", is_flag=True, help="Print JSON instead of text.")
@friendly_errors
def plugins(as_json: bool) -> None:
    """List loaded plugins: version, hooks and the components each contributed."""
    from nnbench.components import PLURALS
    from nnbench.plugins import collect_catalogue, make_plugin_manager

    pm = make_plugin_manager()
    catalogue = collect_catalogue(pm)
    described = []
    for info in pm.describe():
        components = {PLURALS[r.kind]: [e.spec.name for e in r.entries() if e.plugin == info.name]
                      for r in catalogue.registries()}
        described.append({**dataclasses.asdict(info), "components": {k: v for k, v in components.items() if v}})
    if as_json:
        click.echo(json.dumps(described, indent=2))
        return
    for item in described:
        origin = f"{item['distribution']} {item['version']}".strip()
        click.echo(f"{item['name']}  ({item['source']}{', ' + origin if origin else ''})")
        click.echo(f"  hooks: {', '.join(item['hooks']) or 'none'}")
        for plural, names in item["components"].items():
            click.echo(f"  {plural}: {', '.join(names)}")


# -- report ----------------------------------------------------------------------------------------


@cli.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write (default: reports/<run>/index.html, or reports/combined-<runs>.html).")
@click.option("--all", "all_runs", is_flag=True, help="Report on every run in the store.")
@friendly_errors
def report(runs: tuple[str, ...], store: Path, output: Path | None, all_runs: bool) -> None:
    """Build the HTML report of RUNS (default: the latest run) from the store.

    Several runs are combined into one report (last week's baselines plus today's new optimizer);
    a unique prefix of a run id is enough.
    """
    from nnbench.plugins import make_plugin_manager
    from nnbench.report import build_report
    from nnbench.store import ResultStore, StoreError

    with ResultStore(store, readonly=True) as results:
        run_ids = results.run_ids() if all_runs else results.resolve_runs(list(runs))
        if not run_ids:
            raise StoreError(f"store {store} holds no runs yet; start one with `nnbench run`")
        if output is None:
            name = run_ids[0] if len(run_ids) == 1 else f"combined-{run_ids[0]}-{len(run_ids)}-runs"
            output = Path("reports") / name / "index.html"
        path = build_report(results, run_ids, make_plugin_manager()).save(output)
    click.echo(f"report: {path}")


# -- micro -----------------------------------------------------------------------------------------


@cli.command()
@click.option("--kind", "kinds", default="activation,loss,optimizer", show_default=True,
              help="Component kinds to measure, comma-separated.")
@click.option("--name", "names", default="*", show_default=True, help="Names, comma-separated; wildcards allowed.")
@click.option("--shape", default="256,256", show_default=True,
              help="Input shape of activations; (rows, classes) for losses.")
@click.option("--sizes", default="10000,1000000", show_default=True,
              help="Parameter counts for optimizer steps, comma-separated.")
@click.option("--device", "devices", default="cpu", show_default=True, help="cpu, cuda, cuda:N, mps, auto, all.")
@click.option("--max-time", type=click.FloatRange(min=0, min_open=True), default=0.5, show_default=True,
              help="Seconds per case at most.")
@click.option("--benchmark-json", "json_path", type=click.Path(dir_okay=False, path_type=Path),
              help="Also write pytest-benchmark's JSON to this file.")
@STORE_OPTION
@friendly_errors
def micro(kinds: str, names: str, shape: str, sizes: str, devices: str, max_time: float, json_path: Path | None,
          store: Path) -> None:
    """Micro-benchmark components (forward + backward, optimizer steps) with pytest-benchmark.

    Results are stored (shown by `nnbench report`) and printed as a table per kind.
    """
    from nnbench.micro import parse_ints, run_micro

    frame = run_micro(store, kinds.split(","), names.split(","), parse_ints(shape, "--shape"), devices.split(","),
                      json_path, sizes=parse_ints(sizes, "--sizes"), max_time=max_time, echo=click.echo)
    failed = int((frame["status"] != "ok").sum())
    click.echo(f"micro run {frame['run_id'].iloc[0]}: {len(frame)} cases, {failed} failed, stored in {store}")


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
    from nnbench.store import ResultStore

    suffix = output.suffix.lower()
    if suffix not in (".csv", ".parquet"):
        raise NNBenchError(f"cannot export to {output.name!r}: the file name must end in .csv or .parquet")
    with ResultStore(store, readonly=True) as results:
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
