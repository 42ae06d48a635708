"""``nnbench micro``: component micro-benchmarks through pytest-benchmark."""

from __future__ import annotations

import math
from pathlib import Path

import click

from nnbench.cli import STORE_OPTION, current_session, friendly_errors
from nnbench.contract.errors import NNBenchError


@click.command()
@click.option("--kind", "kinds", help="Component kinds to measure, comma-separated (default: every kind "
                                      "nnbench micro can measure: activation, loss, optimizer and the kinds "
                                      "with a benchmark, such as norm).")
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
def micro(kinds: str | None, names: str, shape: str, sizes: str, devices: str, max_time: float, json_path: Path | None,
          store: Path) -> None:
    """Micro-benchmark components (forward + backward, optimizer steps) with pytest-benchmark.

    Results are stored (shown by `nnbench report`) and printed as a table per kind.
    """
    from nnbench.training.micro import measurable_kinds, parse_ints, run_micro  # torch: the command line starts without

    if not math.isfinite(max_time):
        raise NNBenchError(f"--max-time must be a finite number of seconds > 0, not {max_time}")
    if json_path is not None and not json_path.parent.is_dir():
        raise NNBenchError(f"cannot write --benchmark-json {json_path}: folder {json_path.parent} does not exist; "
                           "create it or give another path")
    session = current_session()
    chosen = kinds.split(",") if kinds else measurable_kinds(session.domain)
    frame = run_micro(store, chosen, names.split(","), parse_ints(shape, "--shape"), devices.split(","),
                      json_path, sizes=parse_ints(sizes, "--sizes"), max_time=max_time, echo=click.echo,
                      session=session)
    failed = int((frame["status"] != "ok").sum())
    click.echo(f"micro run {frame['run_id'].iloc[0]}: {len(frame)} cases, {failed} failed, stored in {store}")


