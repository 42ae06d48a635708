"""Starting worker processes cheaply: forked from a server that has already imported torch.

A fresh Python process pays seconds before it can train (importing torch, loading the plugins), and
a grid of small trials pays it once per worker and again for every replacement of a worker that
crashed or ran out of time. Workers are therefore forked from
:mod:`multiprocessing`'s fork server, which imports :data:`PRELOAD` once; a worker then costs a
fork and loading the plugins (a tenth of a second or so). The server is started as early as a run
knows it may need workers (:func:`prestart`), so its imports overlap the grid's planning in the
parent. Forking happens in the server, which never touches CUDA, so workers may use GPUs. Where
there is no fork server (Windows), workers are spawned.

A forked worker inherits the server's environment, working folder and import path, which date from
when the server started; :func:`worker_settings` carries the parent's current ones to each worker.
"""

from __future__ import annotations

import multiprocessing
import os
import sys
from multiprocessing.context import BaseContext
from typing import Any

PRELOAD = (
    "torch", "torch._dynamo", "torch.func", "numpy",
    "nnbench.loading.plugins", "nnbench.loading.catalogue", "nnbench.execution.worker", "nnbench.training.ensemble",
    "nnbench.training.stacked_networks", "nnbench.builtin.datasets",
    "nnbench.execution.preloaded",  # last: freezes what the imports above made
)
"""What the fork server imports once for every worker (a module that is not installed is skipped).
``torch._dynamo`` is what building the first optimizer imports: seconds a trial would pay otherwise.
scikit-learn is left out: built-in tasks read their saved splits (:mod:`nnbench.builtin.split_cache`),
so only a worker that makes a split for the first time imports it, and the server starts a second sooner.
The last, :mod:`nnbench.execution.preloaded`, freezes the garbage collector's view of all that, so that
workers share the server's pages instead of copying them and the server ends promptly after the run."""

_CONTEXT: BaseContext | None = None


def worker_context() -> BaseContext:
    """The context workers start from: the fork server (preloading :data:`PRELOAD`), else spawn."""
    global _CONTEXT
    if _CONTEXT is None:
        if "forkserver" in multiprocessing.get_all_start_methods():
            server = multiprocessing.get_context("forkserver")
            server.set_forkserver_preload(list(PRELOAD))
            _CONTEXT = server
        else:
            _CONTEXT = multiprocessing.get_context("spawn")
    return _CONTEXT


def prestart() -> None:
    """Start the fork server now (if there is one), so that its imports run while the parent plans;
    returns at once. Starting a worker later waits for the server only as long as it still needs."""
    context = worker_context()
    if context.get_start_method() == "forkserver":
        from multiprocessing import forkserver

        forkserver.ensure_running()


def worker_settings() -> dict[str, Any]:
    """What a worker takes over from the parent as the parent is now: environment, working folder,
    import path and process id (the worker ends when that process is gone)."""
    return {"env": dict(os.environ), "cwd": os.getcwd(), "sys_path": list(sys.path), "parent": os.getpid()}


def adopt(settings: dict[str, Any]) -> None:
    """In a worker: take over the parent's environment, working folder and import path."""
    os.environ.clear()
    os.environ.update(settings["env"])
    os.chdir(settings["cwd"])
    sys.path[:] = settings["sys_path"]
