"""``nnbench report`` and ``nnbench export``: stored results, read only."""

from __future__ import annotations

import difflib
from pathlib import Path
from typing import TYPE_CHECKING

import click

from nnbench.analysis.rope import parse_rope
from nnbench.cli import STORE_OPTION, current_session, friendly_errors
from nnbench.cli.compare import alpha_option, rope_option
from nnbench.contract.errors import NNBenchError
from nnbench.contract.paths import DEFAULT_REPORT_DIR
from nnbench.files import written_whole
from nnbench.storage.bundle import write_bundle
from nnbench.storage.store import ResultStore, StoreError

if TYPE_CHECKING:
    from nnbench.contract.specs import ExporterSpec
    from nnbench.storage.store import ResultStore


@click.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write (default: reports/<run>/index.html, or reports/combined-<runs>.html).")
@click.option("--all", "all_runs", is_flag=True, help="Report on every run in the store.")
@rope_option
@alpha_option
@click.option("--version-name", "version_names", multiple=True, metavar="RUN|CODE=NAME",
              help="Name the version of a component's code trained in RUN (a run id prefix) or with CODE (a prefix "
                   "of its hash): 'cnn NAME' instead of 'cnn v1' (repeatable).")
@click.option("--figures", type=click.Path(file_okay=False, path_type=Path),
              help="Also write every figure into this folder as SVG and PDF, sized for a paper's column.")
@friendly_errors
def report(runs: tuple[str, ...], store: Path, output: Path | None, all_runs: bool, rope: str | None, alpha: float,
           version_names: tuple[str, ...], figures: Path | None) -> None:
    """Build the HTML report of RUNS (default: the latest run) from the store.

    Several runs are combined into one report (last week's baselines plus today's new optimizer);
    a unique prefix of a run id is enough. A component whose code changed between the runs is compared
    with its earlier versions, and its axis uses its latest.
    """
    from nnbench.reporting import build_report  # pandas and seaborn: the command line starts without them

    given = parse_rope(rope).to_dict()  # a bad --rope is an error before anything is read
    names = {}
    for item in version_names:
        key, sep, name = item.partition("=")
        if not sep or not key.strip() or not name.strip():
            raise NNBenchError(f"--version-name {item!r} is not RUN=NAME or CODE=NAME: write it as "
                               "20260105-0930=before-fix")
        names[key.strip()] = name.strip()
    with ResultStore(store, readonly=True) as results:
        run_ids = results.run_ids() if all_runs else results.resolve_runs(list(runs))
        if not run_ids:
            raise StoreError(f"store {store} holds no runs yet; start one with `nnbench run`")
        if output is None:
            name = run_ids[0] if len(run_ids) == 1 else f"combined-{run_ids[0]}-{len(run_ids)}-runs"
            output = Path(DEFAULT_REPORT_DIR) / name / "index.html"
        built = build_report(results, run_ids, current_session().pm, given, alpha=alpha, version_names=names,
                             figures=figures)
        path = built.save(output)
    click.echo(f"report: {path}")
    if figures is not None:
        click.echo(f"figures: {len(built.figures)} files (SVG and PDF) in {figures}")


@click.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--output", "-o", type=click.Path(path_type=Path),
              help="File to write (.csv or .parquet), or what the tracker of --to writes to (TensorBoard: a folder).")
@click.option("--to", "tracker", metavar="TRACKER",
              help="Export to a tracker an installed plugin provides (mlflow, tensorboard; `nnbench list exporters`).")
@click.option("--bundle", type=click.Path(dir_okay=False, path_type=Path),
              help="Write a bundle (one self-describing file) to merge into another store with `nnbench merge`.")
@click.option("--epochs", "per_epoch", is_flag=True, help="Export per-epoch curves instead of one row per trial.")
@click.option("--all", "all_runs", is_flag=True, help="Export every run in the store.")
@friendly_errors
def export(runs: tuple[str, ...], store: Path, output: Path | None, tracker: str | None, bundle: Path | None,
           per_epoch: bool, all_runs: bool) -> None:
    """Write results of RUNS (default: the latest run) to CSV or Parquet (-o), to a tracker (--to), or to a
    bundle (--bundle) that `nnbench merge` adds to another store.

    \b
    nnbench export -o results.csv
    nnbench export --to mlflow --all              # to MLFLOW_TRACKING_URI (else MLflow's default)
    nnbench export --to tensorboard -o tb RUN     # event files; tensorboard --logdir tb
    nnbench export --bundle laptop.zip --all
    """
    if tracker is not None and bundle is not None:
        raise NNBenchError("give either --to TRACKER or --bundle FILE, not both")
    if bundle is not None and output is not None:
        raise NNBenchError("--bundle names the file to write; leave out -o")
    if per_epoch and (tracker is not None or bundle is not None):
        raise NNBenchError("--epochs is for -o FILE.csv|.parquet; trackers and bundles hold the curves anyway")
    spec = _exporter(tracker, output) if tracker is not None else None
    if spec is None and bundle is None:
        _check_table_output(output)
    with ResultStore(store, readonly=True) as results:
        run_ids = results.run_ids() if all_runs else results.resolve_runs(list(runs))
        if not run_ids and (bundle is not None or spec is not None):
            raise StoreError(f"store {store} holds no runs yet; start one with `nnbench run`")
        if bundle is not None:
            _write_bundle(results, run_ids, bundle)
            return
        if spec is not None:
            from nnbench.tracking.reading import from_store  # pandas: as above

            tracked = from_store(results, run_ids)
            try:
                click.echo(spec.export(tracked, output))
            except NNBenchError:
                raise
            except Exception as exc:  # the tracker's library failed (a server down, a full disk): one line
                raise NNBenchError(f"exporting to {spec.name} failed: {type(exc).__name__}: {exc}") from None
            return
        frame = results.epochs(None if all_runs else run_ids) if per_epoch else \
            results.trials(None if all_runs else run_ids)
    assert output is not None
    try:
        with written_whole(output) as partial:  # a full disk leaves an earlier export as it was
            if output.suffix.lower() == ".csv":
                frame.to_csv(partial, index=False)
            else:
                frame.to_parquet(partial, index=False)
    except ImportError as exc:
        raise NNBenchError(f"Parquet export needs pyarrow: pip install 'nnbench-arena[parquet]' ({exc})") from None
    except OSError as exc:
        kept = "; the file already there is kept" if output.is_file() else ""
        raise NNBenchError(f"cannot write {output}: {exc.strerror or exc}{kept}") from None
    click.echo(f"wrote {len(frame)} rows to {output}")


def _check_table_output(output: Path | None) -> None:
    if output is None:
        raise NNBenchError("say where to export: -o FILE.csv|.parquet, --to TRACKER or --bundle FILE")
    if output.suffix.lower() not in (".csv", ".parquet"):
        raise NNBenchError(f"cannot export to {output.name!r}: the file name must end in .csv or .parquet "
                           "(or give --to TRACKER, or --bundle FILE)")
    if output.is_dir():
        raise NNBenchError(f"cannot export to {output}: it is a folder; give a file name ending in .csv or .parquet")


def _exporter(name: str, output: Path | None) -> ExporterSpec:
    """The exporter ``name`` of an installed plugin, checked against ``-o``; one line naming the installed
    trackers when there is no such exporter."""
    registry = current_session().catalogue.exporters
    if name not in registry:
        close = difflib.get_close_matches(name.lower(), list(registry), n=1)
        hint = f"did you mean {close[0]!r}? " if close else ""
        raise NNBenchError(f"no tracker {name!r} is installed; {hint}installed trackers: "
                           f"{', '.join(sorted(registry)) or 'none'} (trackers come from plugins, such as "
                           "plugins/nnbench-mlflow and plugins/nnbench-tensorboard: pip install one, and check that "
                           "NNBENCH_PLUGINS does not leave it out)")
    spec: ExporterSpec = registry.get(name)
    if spec.output and output is None:
        raise NNBenchError(f"--to {spec.name} writes {spec.output}: give it with -o")
    if not spec.output and output is not None:
        raise NNBenchError(f"--to {spec.name} writes where its own settings say, not to -o; leave out -o")
    return spec


def _write_bundle(results: ResultStore, run_ids: list[str], path: Path) -> None:
    manifest = write_bundle(results, run_ids, path)
    counts = manifest["counts"]
    click.echo(f"wrote {path}: {len(run_ids)} run{'s' * (len(run_ids) != 1)}, {counts['trials']} trials, "
               f"{counts['epochs']} epochs (merge it with `nnbench merge {path} --store TARGET`)")
