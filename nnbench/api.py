"""The Python API: :func:`run` and :func:`report`, the same sequence as the command line's."""

from __future__ import annotations

import dataclasses
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnbench.session import RunObserver

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.reporting import Report
    from nnbench.session import RunOutcome
    from nnbench.storage.store import ResultStore

DEFAULT_STORE = "nnbench.db"


def run(grid_file: str | Path | None = None, *, store: str | Path = DEFAULT_STORE, force: bool = False,
        set_params: Sequence[str] = (), **values: Any) -> pd.DataFrame:
    """Run a grid and return one row per trial of it (reused trials included) as a DataFrame.

    Takes the axes ``nnbench run`` takes (``task="digits"``, ``arch=["fnn", "cnn"]``, ``seeds=2``,
    ``initializer="default,xavier_uniform"``, ...), a grid file as the first argument, ``--set``
    assignments as ``set_params``, and the run options (``workers=``, ``threads=``, ``timeout=``,
    ``executor=``, ``max_failures=``, ``vectorize=``, ``download=``, and each executor's own, such
    as Ray's ``address=``).
    """
    from nnbench.session import RunOptions, Session

    session = Session()
    option_names = {f.name for f in dataclasses.fields(RunOptions)} - {"extra"}
    executor_names = {o.name for e in session.catalogue.executors.entries() for o in e.spec.options}
    options = RunOptions(**{k: values.pop(k) for k in list(values) if k in option_names},
                         extra={k: values.pop(k) for k in list(values) if k in executor_names})
    grid = session.grid(grid_file, set_params, **values)
    collected = _Trials()
    session.run(grid, store, options, force=force, observer=collected)
    return collected.frame


class _Trials(RunObserver):
    """Keeps the trials of the run, read while the store is open."""

    frame: pd.DataFrame

    def finished(self, outcome: RunOutcome, store: ResultStore) -> None:
        self.frame = store.trials([outcome.run_id])


def report(*run_ids: str, store: str | Path = DEFAULT_STORE) -> Report:
    """Build the HTML report of ``run_ids`` (default: the latest run) from ``store``.

    The returned :class:`nnbench.reporting.Report` displays inline in a notebook and has
    ``.save(path)``.
    """
    from nnbench.reporting import build_report
    from nnbench.session import Session
    from nnbench.storage.store import ResultStore

    with ResultStore(store, readonly=True) as results:
        return build_report(results, results.resolve_runs(list(run_ids)), Session().pm)
