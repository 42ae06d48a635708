"""Training one work item wherever it runs: the run's :class:`~nnbench.contract.executor.TrainJob`.

:class:`ItemTraining` is what a :class:`~nnbench.contract.executor.WorkPlan` carries as ``plan.train``. In the
process that made it, it trains with that process's plugins and lifecycle hooks; sent to another process (a local
worker, a pool, a Ray task) it arrives without them and loads the run's plugins there once per process, from what it
carries: the built-ins, the entry points ``NNBENCH_PLUGINS`` allows, and the plugins registered in the run's own
process, packed by value (:func:`~nnbench.execution.messages.pack_plugins`). It trains on the device the item was
placed on, or on its process's current device of the kind the trials ask for, and records in each result's
``training`` record the node and device that trained it (:mod:`nnbench.training.placement`).
"""

from __future__ import annotations

import hashlib
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnbench.contract.executor import WorkItem
from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.execution.messages import unpack_plugins
from nnbench.loading.catalogue import Catalogue, collect_catalogue
from nnbench.loading.plugins import LifecycleHooks, make_plugin_manager
from nnbench.planning.csvtask import ensure_csv_tasks

Loaded = tuple[LifecycleHooks, Catalogue]
_LOADED: dict[str, Loaded] = {}  # per process: plugins load once per plugin set, not once per item


def load_plugins(plugins: Sequence[bytes], warn: Callable[[str], None] | None = None) -> Loaded:
    """The lifecycle hooks and catalogue of a run's plugins in this process, loaded once per plugin set: the
    built-ins, the entry points (the same ``NNBENCH_PLUGINS``) and the run's own plugins, unpacked. A lifecycle
    hook that raises is named through ``warn`` and disabled."""
    key = hashlib.sha256(b"".join(hashlib.sha256(blob).digest() for blob in plugins)).hexdigest()
    if key not in _LOADED:
        pm = make_plugin_manager(extra=unpack_plugins(plugins))
        _LOADED[key] = (LifecycleHooks(pm, warn), collect_catalogue(pm))
    return _LOADED[key]


@dataclass
class ItemTraining:
    """Trains a work item: ``job(item)`` -> one result per trial of it (see the module docstring).

    :param plugins: the run's own plugins, packed for other processes.
    :param threads: torch threads to train on.
    :param timeout: seconds each trial may train (a stack: that many per member).
    :param test_each_epoch: score the test split after every epoch (a plugin reads each epoch's numbers).
    :param here: the hooks and catalogue of the process that made the job; never sent to another process.
    """

    plugins: tuple[bytes, ...] = ()
    threads: int = 1
    timeout: float | None = None
    test_each_epoch: bool = False
    here: Loaded | None = field(default=None, repr=False, compare=False)

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "here": None}

    def __call__(self, item: WorkItem) -> list[TrialResult]:
        hooks, catalogue = self.here or load_plugins(self.plugins)
        ensure_csv_tasks(catalogue, list(item.trials))

        def on_epoch(trial: Trial, record: EpochRecord) -> None:
            hooks("after_epoch", trial=trial, record=record)

        from nnbench.training.ensemble import train_placed  # torch: a job is made, and sent, where none is needed

        return train_placed(item.where or item.device, item.trials, catalogue, stacked=item.stacked,
                            reason=item.reason, on_epoch=on_epoch, test_each_epoch=self.test_each_epoch,
                            timeout=self.timeout, threads=self.threads)

    def prepare(self) -> None:
        """Load what training needs in this process (the run's plugins), so that an item can start at once."""
        if self.here is None:
            load_plugins(self.plugins)
