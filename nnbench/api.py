"""The Python API: :func:`run` and :func:`report`, the same sequence as the command line's, and the
verdicts: :func:`findings` and :func:`compare`."""

from __future__ import annotations

import dataclasses
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnbench.session import RunObserver

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.analysis.comparison import RunComparison
    from nnbench.analysis.verdicts import Verdict
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


# -- verdicts --------------------------------------------------------------------------------------


def findings(*run_ids: str, store: str | Path = DEFAULT_STORE, rope: Any = None) -> list[Verdict]:
    """The verdicts of ``run_ids`` (default: the latest run), one per axis that varied, as the report
    opens with them and ``nnbench run`` prints them.

    :param rope: the region of practical equivalence: a number for every task (``0.005``), a mapping or
        ``"METRIC=NUMBER,TASK=NUMBER"`` text; ``None`` for each metric's default.
    """
    from nnbench.analysis.verdicts import findings as axis_findings
    from nnbench.storage.store import ResultStore

    with ResultStore(store, readonly=True) as results:
        trials = results.trials(results.resolve_runs(list(run_ids)))
    return axis_findings(trials, rope)


def compare(baseline: str | None = None, candidate: str | None = None, *, store: str | Path = DEFAULT_STORE,
            candidate_filter: Mapping[str, Any] | Sequence[str] | None = None,
            baseline_filter: Mapping[str, Any] | Sequence[str] | None = None, rope: Any = None) -> RunComparison:
    """Did the candidate beat the stored baseline? Compare run ``candidate`` with run ``baseline`` (the
    candidate's own new trials with the baseline's), or, with ``candidate_filter``, the trials of one run
    that match it (``{"activation": "squareplus"}`` or ``["activation=squareplus"]``) with the others
    (or with those matching ``baseline_filter``). ``baseline`` defaults to the latest run.

    Returns a :class:`nnbench.analysis.comparison.RunComparison`: per task the advantage with its
    interval, the probability of improvement and the Bayesian probabilities, a verdict (``.verdict``),
    ``.worse`` and ``.to_dict()``. Trials that differ in anything but the compared axes are refused with
    what differs.
    """
    from nnbench.analysis.comparison import compare_trials, select
    from nnbench.analysis.rope import parse_rope
    from nnbench.contract.errors import NNBenchError
    from nnbench.storage.store import ResultStore

    chosen_candidate, chosen_baseline = parse_filter(candidate_filter), parse_filter(baseline_filter)
    if candidate is None and not chosen_candidate:
        raise NNBenchError("say what the candidate is: a second run id, or a filter such as --candidate "
                           "activation=squareplus")
    with ResultStore(store, readonly=True) as results:
        baseline_id = results.resolve_runs([baseline] if baseline else [])[0]
        candidate_id = results.resolve_runs([candidate])[0] if candidate else baseline_id
        base, cand = results.trials([baseline_id]), results.trials([candidate_id])
    if chosen_candidate:
        cand = cand[select(cand, chosen_candidate, "candidate")]
    else:  # a candidate run also holds the baseline trials it reused: its own are the new ones
        cand = cand[~cand["trial_id"].isin(base["trial_id"])]
    if chosen_baseline:
        base = base[select(base, chosen_baseline, "baseline")]
    base = base[~base["trial_id"].isin(cand["trial_id"])]
    if cand.empty:
        raise NNBenchError(f"run {candidate_id} has no trials of its own to compare with run {baseline_id}: "
                           "every trial of it is also in the baseline; use --candidate AXIS=VALUE")
    names = _side_names(baseline_id, candidate_id, chosen_baseline, chosen_candidate)
    return compare_trials(base, cand, parse_rope(rope), axes=list(dict.fromkeys([*chosen_candidate, *chosen_baseline])),
                          baseline_name=names[0], candidate_name=names[1])


def parse_filter(given: Mapping[str, Any] | Sequence[str] | str | None) -> dict[str, list[str]]:
    """``{"activation": ["squareplus"]}`` from ``["activation=squareplus"]``, ``"activation=a,b"`` or a
    mapping of axis to a value or a list of values."""
    from nnbench.contract.errors import NNBenchError

    if not given:
        return {}
    if isinstance(given, Mapping):
        return {str(k): [str(x) for x in (v if isinstance(v, list | tuple) else [v])] for k, v in given.items()}
    chosen: dict[str, list[str]] = {}
    for item in [given] if isinstance(given, str) else given:
        axis, sep, values = str(item).partition("=")
        if not sep or not axis.strip() or not values.strip():
            raise NNBenchError(f"{item!r} is not AXIS=VALUE: write it as activation=squareplus (several values "
                               "comma-separated)")
        chosen.setdefault(axis.strip(), []).extend(v.strip() for v in values.split(",") if v.strip())
    return chosen


def _side_names(baseline_id: str, candidate_id: str, baseline: dict[str, list[str]],
                candidate: dict[str, list[str]]) -> tuple[str, str]:
    def named(run: str, chosen: dict[str, list[str]]) -> str:
        return run + "".join(f" {axis}={','.join(values)}" for axis, values in chosen.items())

    return named(baseline_id, baseline), named(candidate_id, candidate)
