"""Conformance checks for executors: what every executor, built in or a plugin's, must do with a work plan.

:func:`check_executor` runs small grids through the executor named and through this process alone, and raises
:class:`ExecutorConformanceError` naming the promise it broke:

- the same stored numbers as training in this process, trial by trial;
- a result for every trial of every item;
- a failing item contained to itself (its trials ``failed``, every other trial ``ok``);
- time limits honoured (a trial that trains past ``--timeout`` is stored as ``timeout``);
- every trial trained recording the node and device that trained it;
- an interrupted run resumable (what was stored stays, the next run trains only the rest, none twice).

::

    def test_my_executor_conforms(tmp_path):
        check_executor("my_executor", tmp_path)
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

import numpy as np

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.run_options import RunOptions
from nnbench.contract.specs import Architecture, InputSpec, Task
from nnbench.contract.trial import TrialResult
from nnbench.execution.planner import LocalExecutors
from nnbench.loading.plugins import make_plugin_manager
from nnbench.observer import RunObserver
from nnbench.planning.task_data import make_task_data
from nnbench.session import Session

NUMBERS = ("status", "metric", "train_loss", "test_loss", "val_loss", "val_metric", "epochs_run", "best_epoch")


class ExecutorConformanceError(AssertionError):
    """An executor broke a promise of the executor contract."""


def _fails(spec: InputSpec, outputs: int, activation: Any, **params: Any) -> Any:
    raise ValueError("this architecture fails on purpose")


def _small_net(spec: InputSpec, outputs: int, activation: Any, hidden: int = 8) -> Any:
    from torch import nn  # torch loads with the first check

    return nn.Sequential(nn.Linear(spec.shape[0], hidden), activation(), nn.Linear(hidden, outputs))


def _points() -> Any:
    """Two Gaussian blobs: 240 points of 2 features, half of each class."""
    rng = np.random.default_rng(0)
    x = np.concatenate([rng.normal(-1.0, 1.0, (120, 2)), rng.normal(1.0, 1.0, (120, 2))])
    return make_task_data(x, np.repeat([0, 1], 120), classification=True)


class ConformancePlugin:
    """What the checks train, of their own: a task of two Gaussian blobs (``conformance_points``), a small network
    (``conformance_net``) and an architecture that always raises (``conformance_fails``)."""

    @hookimpl
    def register_architectures(self, register: Callable[[Architecture], None]) -> None:
        register(Architecture("conformance_net", _small_net, ("vector",), "a small network", vectorizable=True))
        register(Architecture("conformance_fails", _fails, ("vector",), "raises while it is built"))

    @hookimpl
    def register_tasks(self, register: Callable[[Task], None]) -> None:
        register(Task("conformance_points", "binary", "vector", (2,), _points, "two Gaussian blobs", num_classes=2))


def _grid(session: Session) -> dict[str, Any]:
    """Two element-wise activations and two element-wise optimizers that nnbench ships (the first registered)."""
    activations = [e.spec.name for e in session.catalogue.activations.entries()
                   if e.spec.vectorizable and e.spec.elementwise][:2]
    optimizers = [e.spec.name for e in session.catalogue.optimizers.entries()
                  if e.spec.vectorizable and not e.spec.needs_closure][:2]
    return {"task": "conformance_points", "arch": "conformance_net,conformance_fails", "activation": activations,
            "optimizer": optimizers, "seeds": 2, "epochs": 2}


class _StopAfter(RunObserver):
    """Interrupts the run (as Ctrl-C does) once ``count`` results are stored."""

    def __init__(self, count: int) -> None:
        self.count, self.seen = count, 0

    def result(self, result: TrialResult) -> None:
        self.seen += 1
        if self.seen == self.count:
            raise KeyboardInterrupt


def check_executor(name: str, folder: Path, options: Mapping[str, Any] | None = None) -> None:
    """Check the executor ``name`` (see the module docstring), writing stores in ``folder``; ``options`` are
    run options for its runs (``workers``, its own ``extra`` ones)."""
    given = dict(options or {})
    extra = given.pop("extra", {})

    def run(store: str, observer: RunObserver | None = None, executor: str | None = name, **more: Any) -> str:
        session = Session(make_plugin_manager(extra=[ConformancePlugin()]))
        here = LocalExecutors.of(session.catalogue).here
        executor = executor or here
        grid = session.grid(None, (), **{**_grid(session), **{k: v for k, v in more.items() if k in ("epochs", "arch",
                                                                                                    "seeds")}})
        run_options = {"workers": 1} if executor == here else {"workers": 2, **given}
        run_options.update({k: v for k, v in more.items() if k == "timeout"})
        outcome = session.run(grid, folder / store, RunOptions(executor=executor, **run_options,
                                                               extra=extra if executor == name != here else {}),
                              observer=observer)
        return outcome.run_id

    run("here.db", executor=None)  # this process
    run("there.db")
    here, there = _rows(folder / "here.db"), _rows(folder / "there.db")
    if set(there) != set(here):
        raise ExecutorConformanceError(f"executor {name!r} stored {len(there)} trials where this process stored "
                                       f"{len(here)}: every trial of every item must yield one result")
    differ = sorted(t for t in here if here[t] != there[t])
    if differ:
        raise ExecutorConformanceError(f"executor {name!r} stored other numbers than this process for {len(differ)} "
                                       f"trials, e.g. {differ[0]}: {there[differ[0]]} against {here[differ[0]]}")
    unplaced = sorted(t for t, where in _places(folder / "there.db").items() if not (where.get("node")
                                                                                    and where.get("device")))
    if unplaced:
        raise ExecutorConformanceError(f"executor {name!r} stored {len(unplaced)} trials without the node and device "
                                       f"that trained them, e.g. {unplaced[0]}: train items with plan.train, which "
                                       "records them")
    statuses = {status for status, *_ in there.values()}
    failing = [t for t, row in there.items() if row[0] == "failed"]
    if statuses != {"ok", "failed"} or len(failing) != len(there) // 2:
        raise ExecutorConformanceError(f"executor {name!r} did not contain a failing item to itself: statuses "
                                       f"{sorted(statuses)}, {len(failing)} failed of {len(there)}")
    run("limit.db", arch="conformance_net", epochs=1_000_000, seeds=1, timeout=0.5)
    limited = _rows(folder / "limit.db")
    if {row[0] for row in limited.values()} != {"timeout"}:
        raise ExecutorConformanceError(f"executor {name!r} did not honour --timeout: statuses "
                                       f"{sorted(row[0] for row in limited.values())}")
    try:
        run("resume.db", observer=_StopAfter(2))
    except KeyboardInterrupt:
        pass
    else:
        raise ExecutorConformanceError(f"executor {name!r} swallowed an interruption of the run")
    first = _rows(folder / "resume.db")
    run("resume.db")
    resumed = _rows(folder / "resume.db")
    if not 2 <= len(first) < len(here) or resumed != here:
        other = "" if resumed == here or set(resumed) != set(here) else " with other numbers"
        raise ExecutorConformanceError(f"executor {name!r}: a run interrupted after 2 results kept {len(first)}, and "
                                       f"resuming it stored {len(resumed)} of {len(here)} trials{other}")
    finished_first = sorted(t for t, row in first.items() if row[0] == "ok")
    with sqlite3.connect(folder / "resume.db") as db:
        statuses_of_runs = [r[0] for r in db.execute("SELECT status FROM runs ORDER BY rowid")]
        last = db.execute("SELECT run_id FROM runs ORDER BY rowid DESC").fetchone()[0]
        again = [r[0] for r in db.execute("SELECT trial_id FROM run_trials WHERE run_id = ? AND reused = 0", (last,))
                 if r[0] in finished_first]
    if statuses_of_runs != ["interrupted", "finished"] or again:
        raise ExecutorConformanceError(f"executor {name!r}: the interrupted run and its resumption read "
                                       f"{statuses_of_runs}, and {len(again)} trials stored ok were trained again")


def _places(store: Path) -> dict[str, dict[str, Any]]:
    """Each ok trial's ``training`` record (where it trained)."""
    with sqlite3.connect(store) as db:
        return {row[0]: json.loads(row[1] or "{}")
                for row in db.execute("SELECT trial_id, training FROM trials WHERE status = 'ok'")}


def _rows(store: Path) -> dict[str, tuple[Any, ...]]:
    with sqlite3.connect(store) as db:
        return {row[0]: row[1:] for row in db.execute(f"SELECT trial_id, {', '.join(NUMBERS)} FROM trials")}
