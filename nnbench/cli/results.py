"""``nnbench report`` and ``nnbench export``: stored results, read only."""

from __future__ import annotations

from pathlib import Path

import click

from nnbench.cli import STORE_OPTION, current_session, friendly_errors
from nnbench.cli.compare import alpha_option, rope_option
from nnbench.contract.errors import NNBenchError


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
    from nnbench.analysis.rope import parse_rope
    from nnbench.reporting import build_report
    from nnbench.storage.store import ResultStore, StoreError

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
            output = Path("reports") / name / "index.html"
        built = build_report(results, run_ids, current_session().pm, given, alpha=alpha, version_names=names,
                             figures=figures)
        path = built.save(output)
    click.echo(f"report: {path}")
    if figures is not None:
        click.echo(f"figures: {len(built.figures)} files (SVG and PDF) in {figures}")


@click.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path), required=True,
              help="File to write; .csv or .parquet.")
@click.option("--epochs", "per_epoch", is_flag=True, help="Export per-epoch curves instead of one row per trial.")
@click.option("--all", "all_runs", is_flag=True, help="Export every run in the store.")
@friendly_errors
def export(runs: tuple[str, ...], store: Path, output: Path, per_epoch: bool, all_runs: bool) -> None:
    """Write results of RUNS (default: the latest run) to CSV or Parquet."""
    from nnbench.storage.store import ResultStore

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
