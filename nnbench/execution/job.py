"""Training one work item wherever it runs: the run's :class:`~nnbench.contract.executor.TrainJob`.

:class:`ItemTraining` is what a :class:`~nnbench.contract.executor.WorkPlan` carries as ``plan.train``. In the
process that made it, it trains with that process's plugins and lifecycle hooks; sent to another process (a local
worker, a pool, a Ray task) it arrives without them and loads the run's plugins there once per process, from what it
carries: the built-ins, the entry points ``NNBENCH_PLUGINS`` allows, and the plugins registered in the run's own
process, packed by value (:func:`~nnbench.execution.messages.pack_plugins`). It trains on the device the item was
placed on, or on its process's current device of the kind the trials ask for, and records in each result's
``training`` record the node and device that trained it (:mod:`nnbench.training.placement`).

A component that ends its training with ``sys.exit`` or a ``KeyboardInterrupt`` of its own is the component's
fault, not a stop the user asked for (:func:`~nnbench.loading.plugins.user_interrupted` tells them apart): its trial
is stored as ``failed`` with that cause and the run goes on. In a stack, each seed is trained again alone first, so
that only the trials that raise are failed. A trial whose component comes from a plugin that loaded where the run
started but not in this process is stored as ``failed`` with the plugin's own error.
"""

from __future__ import annotations

import hashlib
import traceback
import warnings
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnbench.contract.errors import echoed
from nnbench.contract.executor import WorkItem, failed_result
from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.execution.messages import unpack_plugins
from nnbench.loading.catalogue import Catalogue, collect_catalogue
from nnbench.loading.plugins import (
    LifecycleHooks,
    PluginLoadWarning,
    describe_fault,
    make_plugin_manager,
    user_interrupted,
)
from nnbench.planning.csvtask import ensure_csv_tasks

Loaded = tuple[LifecycleHooks, Catalogue]
_LOADED: dict[str, Loaded] = {}  # per process: plugins load once per plugin set, not once per item
_UNLOADED: dict[str, list[str]] = {}  # per plugin set: why plugins failed to load in this process (each one line)

COMPONENT_EXITS: tuple[type[BaseException], ...] = (SystemExit, KeyboardInterrupt)
"""What a component may raise to end its own training, which fails its trial and nothing else."""


def _key(plugins: Sequence[bytes]) -> str:
    return hashlib.sha256(b"".join(hashlib.sha256(blob).digest() for blob in plugins)).hexdigest()


def load_plugins(plugins: Sequence[bytes], warn: Callable[[str], None] | None = None) -> Loaded:
    """The lifecycle hooks and catalogue of a run's plugins in this process, loaded once per plugin set: the
    built-ins, the entry points (the same ``NNBENCH_PLUGINS``) and the run's own plugins, unpacked. A lifecycle
    hook that raises is named through ``warn`` and disabled."""
    key = _key(plugins)
    if key not in _LOADED:
        with warnings.catch_warnings(record=True) as caught:
            warnings.simplefilter("always", PluginLoadWarning)
            pm = make_plugin_manager(extra=unpack_plugins(plugins))
            catalogue = collect_catalogue(pm)
            catalogue.registries()  # every kind filled now: a plugin that fails while registering is known now
        for warning in caught:  # told as ever, and kept to explain a component missing here
            warnings.showwarning(warning.message, warning.category, warning.filename, warning.lineno)
        _UNLOADED[key] = [str(w.message) for w in caught if issubclass(w.category, PluginLoadWarning)]
        _LOADED[key] = (LifecycleHooks(pm, warn), catalogue)
    return _LOADED[key]


def _first_the_cause(unloaded: list[str]) -> str:
    """``ImportError: ... (in this worker process, plugin 'x' (...) failed to load and was skipped)``: each plugin's
    own error first, where a line that shows the start of a message shows it; one that was never sent, as is."""
    parts = []
    for message in unloaded:
        who, found, why = message.partition(" skipped: ")
        parts.append(f"{why} (in this worker process, {who} skipped)" if found else message)
    return "; ".join(parts)


def _missing_here(trial: Trial, catalogue: Catalogue) -> list[str]:
    """The components of ``trial`` that this process's catalogue does not know (``activation 'x'``)."""
    values = trial.config()
    return [f"{ax.kind} {echoed(values[ax.name])}" for ax in catalogue.domain.axes
            if ax.kind and isinstance(values.get(ax.name), str) and values[ax.name]
            and values[ax.name] not in catalogue.registry(ax.kind)]


@dataclass
class ItemTraining:
    """Trains a work item: ``job(item)`` -> one result per trial of it (see the module docstring).

    :param plugins: the run's own plugins, packed for other processes.
    :param threads: torch threads to train on.
    :param timeout: seconds each trial may train (a stack: that many per member).
    :param test_each_epoch: score the test split after every epoch (a plugin reads each epoch's numbers).
    :param here: the hooks and catalogue of the process that made the job; never sent to another process.
    :param unsent: why plugins of the run's own process could not be packed (one line each): a trial that needs
        one of their components fails with that cause in another process.
    """

    plugins: tuple[bytes, ...] = ()
    threads: int = 1
    timeout: float | None = None
    test_each_epoch: bool = False
    here: Loaded | None = field(default=None, repr=False, compare=False)
    unsent: tuple[str, ...] = ()

    def __getstate__(self) -> dict[str, Any]:
        return {**self.__dict__, "here": None}

    def __call__(self, item: WorkItem) -> list[TrialResult]:
        hooks, catalogue = self.here or load_plugins(self.plugins)
        ensure_csv_tasks(catalogue, list(item.trials))
        unloaded = [] if self.here else [*_UNLOADED.get(_key(self.plugins), []), *self.unsent]
        lost = {t.trial_id: missing for t in item.trials if unloaded and (missing := _missing_here(t, catalogue))}
        if lost:  # a plugin loaded where the run started but not in this process: its own error says why
            rest = [t for t in item.trials if t.trial_id not in lost]
            results = [failed_result(t, "failed", f"{_first_the_cause(unloaded)}, so {' and '.join(lost[t.trial_id])} "
                                                  "cannot be trained there") for t in item.trials if t.trial_id in lost]
            return results + (self(item.only(rest)) if rest else [])

        def on_epoch(trial: Trial, record: EpochRecord) -> None:
            hooks("after_epoch", trial=trial, record=record)

        from nnbench.training.ensemble import train_placed  # torch: a job is made, and sent, where none is needed

        def train(trials: Sequence[Trial], stacked: bool) -> list[TrialResult]:
            return train_placed(item.where or item.device, trials, catalogue, stacked=stacked, reason=item.reason,
                                on_epoch=on_epoch, test_each_epoch=self.test_each_epoch, timeout=self.timeout,
                                threads=self.threads)

        try:
            return train(item.trials, item.stacked)
        except COMPONENT_EXITS as exc:
            if user_interrupted(exc):
                raise
            return [_alone(trial, train) for trial in item.trials] if len(item.trials) > 1 else [
                _exited(item.trials[0], exc)]

    def prepare(self) -> None:
        """Load what training needs in this process (the run's plugins), so that an item can start at once."""
        if self.here is None:
            load_plugins(self.plugins)


def _alone(trial: Trial, train: Callable[[Sequence[Trial], bool], list[TrialResult]]) -> TrialResult:
    """``trial`` trained by itself, after a component ended the training of its item; failed if it ends this one."""
    try:
        return train([trial], False)[0]
    except COMPONENT_EXITS as exc:
        if user_interrupted(exc):
            raise
        return _exited(trial, exc)


def _exited(trial: Trial, exc: BaseException) -> TrialResult:
    """The failed result of ``trial``, whose training a component ended with ``exc`` (``sys.exit``, a
    ``KeyboardInterrupt`` of its own): the traceback, then a last line that says what happened."""
    trace = "".join(traceback.format_exception(type(exc), exc, exc.__traceback__))
    return failed_result(trial, "failed", f"{trace}a component of this trial ended its training: "
                                          f"{describe_fault(exc)}; the trial is stored as failed and the run went on")
