"""The body of a local worker process: work items in from its parent over a pipe, plain results out.

The worker is started with the run's :class:`~nnbench.execution.job.ItemTraining` and loads the run's plugins
once. For each item it receives (``(item, measure_capacity)``) it answers with messages:

``("ready",)``
    plugins loaded; the worker can take an item
``("started", trial_ids)``
    training of the item starts now: the parent's clock for killing a stuck worker starts here
``("capacity", trials, detail)``
    how many trials the item's accelerator can train at once, when the parent asked to measure it
``("log", message)``, ``("warning", message)``, ``("result", result)``, ``("done",)``
"""

from __future__ import annotations

import contextlib
import os
import signal
import threading
import time
import warnings
from multiprocessing.connection import Connection
from typing import Any

import torch

from nnbench.contract.trial import Trial
from nnbench.execution.job import ItemTraining, load_plugins
from nnbench.execution.launching import adopt
from nnbench.execution.messages import result_to_dict
from nnbench.loading.plugins import STOP_SIGNALS
from nnbench.training.capacity import device_capacity
from nnbench.training.placement import placed


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


def worker_main(conn: Connection, job: ItemTraining, settings: dict[str, Any] | None = None) -> None:
    """Serve work items from ``conn`` until the parent closes it, kills this process or goes away.

    ``settings`` (see :func:`nnbench.execution.launching.worker_settings`) are the parent's
    environment, folder and import path, taken over before the plugins load.
    """
    # Ctrl-C and stop signals sent to the whole process group are the parent's to handle: it stops its workers
    for signum in (signal.SIGINT, *STOP_SIGNALS):
        signal.signal(signum, signal.SIG_IGN)
    if settings is not None:
        adopt(settings)
    threading.Thread(target=_exit_with_parent, args=((settings or {}).get("parent", os.getppid()),),
                     daemon=True).start()
    _forward_warnings(conn)
    torch.set_num_threads(job.threads)
    try:
        _serve(conn, job)
    except (BrokenPipeError, ConnectionResetError):  # the parent is gone: nobody to train for, nothing to say
        os._exit(1)


def _serve(conn: Connection, job: ItemTraining) -> None:
    _, catalogue = load_plugins(job.plugins, lambda message: conn.send(("warning", message)))
    conn.send(("ready",))
    while True:
        try:
            item, measure = conn.recv()
        except EOFError:  # the parent closed the pipe: no more work
            return
        if measure:
            with placed(item.where or item.device):
                conn.send(("capacity", *_capacity(item.trials[0], catalogue)))
        conn.send(("started", [t.trial_id for t in item.trials]))
        for result in job(item):
            conn.send(("result", result_to_dict(result)))
        conn.send(("done",))


def _capacity(trial: Trial, catalogue: Any) -> tuple[int, str]:
    try:
        return device_capacity(trial, catalogue)
    except (Exception, SystemExit, KeyboardInterrupt) as exc:  # the trial itself will say what is wrong with it
        return 1, f"could not be measured: {type(exc).__name__}: {exc}"
