"""The Python API: :func:`run` and :func:`report`, the same sequence as the command line's, and the
verdicts: :func:`findings` and :func:`compare`.

``run``'s keyword arguments are the trial axes (derived from their declaration, so a kind a plugin
adds is one more keyword) and the run options; see ``help(nnbench.run)``.
"""

from __future__ import annotations

import inspect
import sys
from collections.abc import Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnbench.analysis.rope import parse_rope
from nnbench.contract.axes import marked_yours
from nnbench.contract.errors import NNBenchError
from nnbench.contract.paths import DEFAULT_STORE
from nnbench.contract.run_options import RUN_OPTIONS, RunOptions
from nnbench.loading.exits import exits_guarded
from nnbench.loading.plugins import SignalStop
from nnbench.notebook import in_notebook, short_errors
from nnbench.progress import ConsoleProgress, print_plan
from nnbench.run_doc import signature_and_doc
from nnbench.session import Session
from nnbench.storage.store import ResultStore

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.analysis.comparison import RunComparison
    from nnbench.analysis.verdicts import Verdict
    from nnbench.contract.specs import TaskData
    from nnbench.reporting import Report
    from nnbench.session import Plan, RunOutcome

class RunFunction:
    # ``nnbench.run``: :func:`_run`, with a signature and docstring that list the axes and options of the plugins
    # installed (:mod:`nnbench.run_doc`). They are made when read, so that ``import nnbench`` loads no plugin; a
    # class with ``__get__`` is a routine to ``inspect`` and ``help``, as a function is.

    def __init__(self) -> None:
        self.__name__ = self.__qualname__ = "run"
        self.__module__ = __name__

    def __call__(self, grid_file: str | Path | None = None, **values: Any) -> pd.DataFrame:
        return _run(grid_file, **values)

    def __get__(self, instance: Any, owner: Any = None) -> RunFunction:
        return self

    @property
    def __doc__(self) -> str:  # type: ignore[override]  # the docstring, made when read
        return _described()[1]

    @property
    def __signature__(self) -> inspect.Signature:
        return _described()[0]


def _described() -> tuple[inspect.Signature, str]:
    return signature_and_doc(Session())


run = RunFunction()


def _run(grid_file: str | Path | None = None, *, store: str | Path = DEFAULT_STORE, force: bool = False,
         set_params: Sequence[str] = (), dry_run: bool = False, quiet: bool = False, rope: Any = None,
         **values: Any) -> pd.DataFrame:
    short_errors()
    given = parse_rope(rope).to_dict()  # a bad rope is an error before anything is trained
    session = Session()
    executor_names = {o.name for e in session.catalogue.executors.entries() for o in e.spec.options}
    options = RunOptions.from_values({o.name: values.pop(o.name, None) for o in RUN_OPTIONS},
                                     {k: values.pop(k) for k in list(values) if k in executor_names})
    grid = session.grid(grid_file, set_params, **session.adopt(values))
    if dry_run:
        session.check_options(options)
        plan = session.dry_run(grid, store, force, options)
        if not quiet:
            print_plan(plan, _echo, list_trials=False)
        return planned_trials(plan)
    observer = _Trials(session.domain, session.pm, _echo, bar=not quiet, plan=not quiet, summary=not quiet,
                       notebook=in_notebook())
    try:
        with exits_guarded():  # a plugin hook's os._exit raises PluginExit here, not ending the kernel
            session.run(grid, store, options, force=force, observer=observer, rope=given)
    except KeyboardInterrupt as exc:
        by = f" by {exc.name}" if isinstance(exc, SignalStop) else ""
        print(f"interrupted{by}: finished trials are stored in {store}; run the same call to resume", file=sys.stderr)
        if isinstance(exc, SignalStop):
            exc.end_process()  # the process was asked to end: it does, now that the run is stored as interrupted
        raise
    return observer.frame


def _echo(message: str = "", err: bool = False) -> None:
    print(message, file=sys.stderr if err else sys.stdout)


def planned_trials(plan: Plan) -> pd.DataFrame:
    """One row per planned trial: its id, whether it is stored already or to train, and its axes."""
    import pandas as pd

    stored = {t.trial_id for t in plan.reused}
    rows = [{"trial_id": t.trial_id, "state": "stored" if t.trial_id in stored else "to train",
             **marked_yours({k: v for k, v in t.config().items() if k != "params"}, t.params.get("code", {})),
             "label": t.label()} for t in plan.trials]
    return pd.DataFrame(rows)


class _Trials(ConsoleProgress):
    """Prints what the command line prints and keeps the run's trials, read while the store is open."""

    frame: Any = None

    def finished(self, outcome: RunOutcome, store: ResultStore) -> None:
        super().finished(outcome, store)
        from nnbench.analysis.frames import mark_yours  # pandas and scipy: imported once a run has trained

        self.frame = mark_yours(store.trials([outcome.run_id]))


def report(*run_ids: str, store: str | Path = DEFAULT_STORE, rope: Any = None, alpha: float = 0.05,
           versions: Mapping[str, str] | None = None, figures: str | Path | None = None) -> Report:
    """Build the HTML report of ``run_ids`` (default: the latest run) from ``store``; call it as often as
    you like. The returned :class:`nnbench.reporting.Report` displays inline in a notebook and has
    ``.save(path)``. ``rope``, ``alpha`` and ``versions`` are as in :func:`findings`; ``figures``, a folder
    to write every figure into as SVG and PDF sized for a paper's column."""
    from nnbench.reporting import build_report  # pandas and seaborn: importing nnbench loads neither

    short_errors()
    if not Path(store).exists():
        raise NNBenchError(f"store {store} does not exist; run a grid first (nnbench.run(...)) or pass store=")
    with ResultStore(store, readonly=True) as results:
        return build_report(results, results.resolve_runs(list(run_ids)), Session().pm, parse_rope(rope).to_dict(),
                            alpha=alpha, version_names=versions, figures=figures)


def load_task(name: str) -> TaskData:
    """The data of task ``name`` (split three ways and standardized, as trials see it), for a loop of your own."""
    short_errors()
    return Session().catalogue.tasks.get(name).load()


# -- verdicts --------------------------------------------------------------------------------------


def findings(*run_ids: str, store: str | Path = DEFAULT_STORE, rope: Any = None, alpha: float = 0.05,
             versions: Mapping[str, str] | None = None) -> list[Verdict]:
    """The verdicts of ``run_ids`` (default: the latest run), one per axis that varied (and one per
    component whose code changed between the runs), as the report opens with them and ``nnbench run``
    prints them.

    :param rope: the region of practical equivalence: a number for every task (``0.005``), a mapping or
        ``"METRIC=NUMBER,TASK=NUMBER"`` text; ``None`` for each metric's default.
    :param alpha: the family-wise error rate of each axis's "better" and "worse" claims.
    :param versions: names for versions of a component's code, by run id or code hash prefix
        (``{"20260105-0930": "before the fix"}``); default ``cnn v1``, ``cnn v2``.
    """
    from nnbench.analysis.verdicts import findings as axis_findings  # pandas: importing nnbench loads none

    short_errors()
    with ResultStore(store, readonly=True) as results:
        trials = results.trials(results.resolve_runs(list(run_ids)))
    return axis_findings(trials, rope, alpha, versions)


def compare(baseline: str | None = None, candidate: str | None = None, *, store: str | Path = DEFAULT_STORE,
            candidate_filter: Mapping[str, Any] | Sequence[str] | None = None,
            baseline_filter: Mapping[str, Any] | Sequence[str] | None = None, rope: Any = None,
            alpha: float = 0.05) -> RunComparison:
    """Did the candidate beat the stored baseline? Compare run ``candidate`` with run ``baseline`` (the
    candidate's own new trials with the baseline's), or, with ``candidate_filter``, the trials of one run
    that match it (``{"activation": "squareplus"}`` or ``["activation=squareplus"]``) with the others
    (or with those matching ``baseline_filter``). ``baseline`` defaults to the latest run.

    Returns a :class:`nnbench.analysis.comparison.RunComparison`: per task the advantage with its
    interval, the tests behind its decision and the share of seeds it won, a verdict (``.verdict``),
    ``.worse`` and ``.to_dict()``. Trials that differ in anything but the compared axes are refused with
    what differs.
    """
    from nnbench.analysis.comparison import compare_trials, select  # pandas: importing nnbench loads none

    short_errors()
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
                          baseline_name=names[0], candidate_name=names[1], alpha=alpha)


def parse_filter(given: Mapping[str, Any] | Sequence[str] | str | None) -> dict[str, list[str]]:
    """``{"activation": ["squareplus"]}`` from ``["activation=squareplus"]``, ``"activation=a,b"`` or a
    mapping of axis to a value or a list of values."""
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
