"""The body of a worker process (local pool or cluster task): plain data in, plain data out."""

from __future__ import annotations

import os
import signal
import threading
import time
from collections.abc import Callable
from multiprocessing.connection import Connection
from typing import Any

from nnbench.loading.catalogue import Catalogue
from nnbench.loading.plugins import LifecycleHooks


def load_catalogue(plugins: list[bytes], warn: Callable[[str], None] | None = None) -> tuple[LifecycleHooks, Catalogue]:
    """Plugins as in the parent: built-ins, entry points (same NNBENCH_PLUGINS), pickled extras; and
    the lifecycle hooks of this process (one that raises is named through ``warn`` and disabled)."""
    from nnbench.execution.messages import unpack_plugins
    from nnbench.loading.catalogue import collect_catalogue
    from nnbench.loading.plugins import make_plugin_manager

    pm = make_plugin_manager(extra=unpack_plugins(plugins))
    return LifecycleHooks(pm, warn), collect_catalogue(pm)


def train_unit(configs: list[dict[str, Any]], hooks: LifecycleHooks, catalogue: Catalogue, vectorize: bool,
               log: Any = None) -> list[dict[str, Any]]:
    """Train one unit given as trial configurations; return its results as plain dicts."""
    from nnbench.contract.trial import Trial
    from nnbench.execution.messages import result_to_dict
    from nnbench.planning.csvtask import ensure_csv_tasks
    from nnbench.training.ensemble import train_group

    trials = [Trial.from_config(c) for c in configs]
    ensure_csv_tasks(catalogue, trials)

    def on_epoch(trial: Trial, record: Any) -> None:
        hooks("after_epoch", trial=trial, record=record)

    return [result_to_dict(r) for r in train_group(trials, catalogue, on_epoch, vectorize, log)]


def _exit_with_parent() -> None:
    """Workers must not outlive a parent killed with SIGKILL: they would train for nobody."""
    parent = os.getppid()
    while True:
        time.sleep(0.5)
        if os.getppid() != parent:
            os._exit(1)


def worker_main(conn: Connection, threads: int, plugins: list[bytes], vectorize: bool) -> None:
    """Serve units from ``conn`` until the parent closes it, kills this process or goes away."""
    signal.signal(signal.SIGINT, signal.SIG_IGN)  # Ctrl-C is the parent's to handle
    threading.Thread(target=_exit_with_parent, daemon=True).start()
    import torch

    torch.set_num_threads(threads)
    hooks, catalogue = load_catalogue(plugins, lambda message: conn.send(("warning", message)))
    conn.send(("ready",))
    while True:
        try:
            configs = conn.recv()
        except EOFError:  # the parent closed the pipe: no more work
            return
        results = train_unit(configs, hooks, catalogue, vectorize, lambda message: conn.send(("log", message)))
        for result in results:
            conn.send(("result", result))
        conn.send(("done",))
