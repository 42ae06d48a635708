"""The body of a worker process (local pool or cluster task): plain data in, plain data out.

A local worker serves work items from its parent over a pipe. An item is a list of trial
configurations (a seed group, a part of one, or one trial), with the parent's choice of stacked or
one-by-one training when the parent knows it. The worker answers with messages:

``("ready",)``
    plugins loaded; the worker can take an item
``("started", trial_ids)``
    training of these trials starts now (after any calibration): the parent's clock for
    ``--timeout`` starts here, per trial
``("choice", key, choice)``
    a stacked-or-one-by-one choice measured here, for the parent to keep for the run
``("release", trial_ids, choice)``
    trials of the item this worker will not train, and why (a group that trains one by one keeps its
    first trial and hands the others back, so that idle workers take them)
``("capacity", trials, detail)``
    how many trials the item's accelerator can train at once, when the parent asked to measure it
``("log", message)``, ``("result", result)``, ``("done",)``
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from collections.abc import Callable
from dataclasses import asdict
from multiprocessing.connection import Connection
from typing import Any

from nnbench.loading.catalogue import Catalogue
from nnbench.loading.plugins import LifecycleHooks
from nnbench.training.calibration import StackingChoice, StackingChoices

Log = Callable[[str], None]


def load_catalogue(plugins: list[bytes], warn: Callable[[str], None] | None = None) -> tuple[LifecycleHooks, Catalogue]:
    """Plugins as in the parent: built-ins, entry points (same NNBENCH_PLUGINS), pickled extras; and
    the lifecycle hooks of this process (one that raises is named through ``warn`` and disabled)."""
    from nnbench.execution.messages import unpack_plugins
    from nnbench.loading.catalogue import collect_catalogue
    from nnbench.loading.plugins import make_plugin_manager

    pm = make_plugin_manager(extra=unpack_plugins(plugins))
    return LifecycleHooks(pm, warn), collect_catalogue(pm)


def reads_every_epoch(pm: Any) -> bool:
    """Whether a plugin implements ``after_epoch``: then every epoch's test numbers are measured for it."""
    return bool(pm.hook.after_epoch.get_hookimpls())


def train_unit(configs: list[dict[str, Any]], hooks: LifecycleHooks, catalogue: Catalogue, vectorize: bool,
               log: Log | None = None, choices: StackingChoices | None = None, choice: dict[str, Any] | None = None,
               on_start: Callable[[list[Any]], None] | None = None,
               release: Callable[[list[Any], StackingChoice], None] | None = None) -> list[dict[str, Any]]:
    """Train one work item given as trial configurations; return its results as plain dicts.

    ``choice`` (a :class:`~nnbench.training.calibration.StackingChoice` as a dict) is the parent's
    choice for these trials: a group trains stacked with it, a trial split from its group records it.
    """
    from nnbench.contract.trial import Trial
    from nnbench.execution.messages import result_to_dict
    from nnbench.planning.csvtask import ensure_csv_tasks
    from nnbench.training.calibration import calibration_key
    from nnbench.training.ensemble import train_group

    trials = [Trial.from_config(c) for c in configs]
    ensure_csv_tasks(catalogue, trials)
    choices = choices if choices is not None else StackingChoices()
    known = StackingChoice(**choice) if choice else None
    if known is not None and len(trials) > 1:
        choices.known[calibration_key(trials, catalogue)] = known

    def on_epoch(trial: Trial, record: Any) -> None:
        hooks("after_epoch", trial=trial, record=record)

    results = train_group(trials, catalogue, on_epoch, vectorize, log, choices=choices, on_start=on_start,
                          release=release, test_each_epoch=reads_every_epoch(hooks.pm))
    if known is not None and len(trials) == 1:
        results[0].training = known.record(1)
    return [result_to_dict(r) for r in results]


class ReportingChoices(StackingChoices):
    """A worker's stacking choices: what it measures goes to the parent, which keeps it for the run
    and says it once; the worker also keeps it for its own later items."""

    def __init__(self, conn: Connection) -> None:
        super().__init__()
        self.conn = conn

    def put(self, key: str, choice: StackingChoice) -> bool:
        super().put(key, choice)
        self.conn.send(("choice", key, asdict(choice)))
        return False  # the parent says it, once for the whole run


def _exit_with_parent(parent: int) -> None:
    """Workers must not outlive a parent killed with SIGKILL: they would train for nobody."""
    while True:
        time.sleep(0.5)
        try:
            os.kill(parent, 0)
        except ProcessLookupError:
            os._exit(1)
        except PermissionError:  # alive, owned by someone else (cannot be: it started us), keep going
            pass


def _forward_warnings(conn: Connection) -> None:
    """A warning in a worker reaches the parent as one line, shown like the parent's own warnings."""

    def show(message: Warning | str, category: type[Warning], filename: str, lineno: int, *args: Any,
             **kwargs: Any) -> None:
        with contextlib.suppress(OSError):  # the parent is gone
            conn.send(("log", f"warning: {message} ({category.__name__}, {os.path.basename(filename)}:{lineno})"))

    warnings.showwarning = show


def worker_main(conn: Connection, threads: int, plugins: list[bytes], vectorize: bool,
                settings: dict[str, Any] | None = None) -> None:
    """Serve work items from ``conn`` until the parent closes it, kills this process or goes away.

    ``settings`` (see :func:`nnbench.execution.launching.worker_settings`) are the parent's
    environment, folder and import path, taken over before the plugins load.
    """
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    if settings is not None:
        from nnbench.execution.launching import adopt

        adopt(settings)
    threading.Thread(target=_exit_with_parent, args=((settings or {}).get("parent", os.getppid()),),
                     daemon=True).start()
    _forward_warnings(conn)
    import torch

    torch.set_num_threads(threads)
    hooks, catalogue = load_catalogue(plugins, lambda message: conn.send(("warning", message)))
    choices = ReportingChoices(conn)
    conn.send(("ready",))
    while True:
        try:
            item = conn.recv()
        except EOFError:  # the parent closed the pipe: no more work
            return
        if item.get("measure_capacity"):
            from nnbench.contract.trial import Trial
            from nnbench.training.calibration import device_capacity

            try:
                capacity, detail = device_capacity(Trial.from_config(item["configs"][0]), catalogue)
            except Exception as exc:  # the trial itself will say what is wrong with it
                capacity, detail = 1, f"could not be measured: {type(exc).__name__}: {exc}"
            conn.send(("capacity", capacity, detail))
        results = train_unit(
            item["configs"], hooks, catalogue, vectorize, lambda message: conn.send(("log", message)), choices,
            item.get("choice"),
            on_start=lambda trials: conn.send(("started", [t.trial_id for t in trials])),
            release=lambda trials, choice: conn.send(("release", [t.trial_id for t in trials], asdict(choice))))
        for result in results:
            conn.send(("result", result))
        conn.send(("done",))
