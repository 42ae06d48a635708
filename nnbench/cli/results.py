"""``nnbench report`` and ``nnbench export``: stored results, read only."""

from __future__ import annotations

from pathlib import Path

import click

from nnbench.cli import STORE_OPTION, current_session, friendly_errors
from nnbench.cli.compare import rope_option
from nnbench.contract.errors import NNBenchError
from nnbench.contract.paths import DEFAULT_REPORT_DIR
from nnbench.files import written_whole


@click.command()
@click.argument("runs", nargs=-1)
@STORE_OPTION
@click.option("--output", "-o", type=click.Path(dir_okay=False, path_type=Path),
              help="HTML file to write (default: reports/<run>/index.html, or reports/combined-<runs>.html).")
@click.option("--all", "all_runs", is_flag=True, help="Report on every run in the store.")
@rope_option
@friendly_errors
def report(runs: tuple[str, ...], store: Path, output: Path | None, all_runs: bool, rope: str | None) -> None:
    """Build the HTML report of RUNS (default: the latest run) from the store.

    Several runs are combined into one report (last week's baselines plus today's new optimizer);
    a unique prefix of a run id is enough.
    """
    from nnbench.analysis.rope import parse_rope
    from nnbench.reporting import build_report
    from nnbench.storage.store import ResultStore, StoreError

    given = parse_rope(rope).to_dict()  # a bad --rope is an error before anything is read
    with ResultStore(store, readonly=True) as results:
        run_ids = results.run_ids() if all_runs else results.resolve_runs(list(runs))
        if not run_ids:
            raise StoreError(f"store {store} holds no runs yet; start one with `nnbench run`")
        if output is None:
            name = run_ids[0] if len(run_ids) == 1 else f"combined-{run_ids[0]}-{len(run_ids)}-runs"
            output = Path(DEFAULT_REPORT_DIR) / name / "index.html"
        path = build_report(results, run_ids, current_session().pm, given).save(output)
    click.echo(f"report: {path}")


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
        with written_whole(output) as partial:  # a full disk leaves an earlier export as it was
            if suffix == ".csv":
                frame.to_csv(partial, index=False)
            else:
                frame.to_parquet(partial, index=False)
    except ImportError as exc:
        raise NNBenchError(f"Parquet export needs pyarrow: pip install 'nnbench-arena[parquet]' ({exc})") from None
    except OSError as exc:
        kept = "; the file already there is kept" if output.is_file() else ""
        raise NNBenchError(f"cannot write {output}: {exc.strerror or exc}{kept}") from None
    click.echo(f"wrote {len(frame)} rows to {output}")
