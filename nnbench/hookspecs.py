"""Every hook a plugin can implement: the whole contract for plugin authors.

A plugin is any module or object whose functions are decorated with :data:`nnbench.hookimpl` and
named after a hook below. Registration hooks receive a ``register`` callable; call it once per
component, passing a spec (``register(Activation("swish", nn.SiLU, "x * sigmoid(x)"))``), so that
nnbench can record which plugin provided each name. A name registered twice is an error naming
both plugins. Lifecycle hooks are called in every plugin, in no guaranteed order, and their return
values are ignored.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import pluggy

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.components import Activation, Architecture, Device, ExecutorSpec, Loss, Optimizer, Schedule, Task
    from nnbench.grid import Trial
    from nnbench.report import ReportSection
    from nnbench.train import EpochRecord, TrialResult

PROJECT = "nnbench"

hookspec = pluggy.HookspecMarker(PROJECT)


@hookspec
def register_activations(register: Callable[[Activation], None]) -> None:
    """Register activation functions.

    :param register: call ``register(Activation(name, factory, description))`` for each one;
        ``factory()`` must return a fresh shape-preserving ``nn.Module``.
    """


@hookspec
def register_losses(register: Callable[[Loss], None]) -> None:
    """Register training losses.

    :param register: call ``register(Loss(...))``; the spec says which task kinds the loss trains,
        how wide the model head must be and how targets are encoded.
    """


@hookspec
def register_optimizers(register: Callable[[Optimizer], None]) -> None:
    """Register optimizers.

    :param register: call ``register(Optimizer(name, factory, default_lr, ...))``; ``factory`` is
        called as ``factory(parameters, lr=lr, **params)``.
    """


@hookspec
def register_architectures(register: Callable[[Architecture], None]) -> None:
    """Register model architectures.

    :param register: call ``register(Architecture(name, build, modalities, ...))``; ``build`` is
        called as ``build(input_spec, outputs, activation, **params)`` where ``activation`` is a
        zero-argument factory of the activation under test.
    """


@hookspec
def register_tasks(register: Callable[[Task], None]) -> None:
    """Register tasks (data sets with a fixed split and a primary metric).

    :param register: call ``register(Task(...))``; ``Task.load`` must be deterministic.
    """


@hookspec
def register_schedules(register: Callable[[Schedule], None]) -> None:
    """Register learning-rate schedules.

    :param register: call ``register(Schedule(name, factory, description, params))``; ``factory``
        is called as ``factory(optimizer, total_steps, **params)`` and returns an LR scheduler the
        trainer steps once after every optimizer step (or ``None``: the rate stays constant).
    """


@hookspec
def register_devices(register: Callable[[Device], None]) -> None:
    """Register the devices trials can run on (the built-in plugin finds cpu, each cuda:N, mps).

    :param register: call ``register(Device(name, description))`` for each device present, where
        ``name`` is what ``torch.device(name)`` accepts.
    """


@hookspec
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    """Register executors: ways of scheduling trials (in process, local workers, a cluster engine).

    :param register: call ``register(ExecutorSpec(name, factory, description))``; ``factory`` is
        called with an :class:`nnbench.executors.ExecutorOptions` and returns an object with a
        ``run(units, sink)`` method (see :class:`nnbench.executors.Executor`).
    """


@hookspec
def before_run(run_id: str, trials: list[Trial]) -> None:
    """Called once before the first trial of a run is trained.

    :param run_id: the id under which the run is stored.
    :param trials: the trials that will be trained (already-finished ones excluded).
    """


@hookspec
def after_epoch(trial: Trial, record: EpochRecord) -> None:
    """Called after every training epoch of every trial, in the process that trains it.

    :param trial: the trial being trained.
    :param record: the epoch's losses, held-out metrics and duration.
    """


@hookspec
def after_trial(trial: Trial, result: TrialResult) -> None:
    """Called after each trial ends (``ok``, ``diverged`` or ``failed``) and is stored.

    :param trial: the trial.
    :param result: its status, final metrics, curve and error, if any.
    """


@hookspec
def after_run(run_id: str, results: list[TrialResult]) -> None:
    """Called once after the last trial of a run.

    :param run_id: the id under which the run is stored.
    :param results: the results of the trials trained in this invocation.
    """


@hookspec
def report_sections(  # type: ignore[empty-body]
    trials: pd.DataFrame, epochs: pd.DataFrame, runs: pd.DataFrame
) -> list[ReportSection]:
    """Add sections to the HTML report, after the built-in ones; called once per report built.

    Every string of a returned section (title, text, table cells) is HTML-escaped: a plugin adds
    data to the page, never markup or scripts. A plugin that raises is named in a note in the
    report and the other sections are still built.

    :param trials: one row per trial of the reported runs, with the columns of the store's
        ``trials`` table (configuration, ``status``, ``metric_name``, ``metric``, timings, ``error``).
    :param epochs: the per-epoch curves of those trials (``trial_id``, ``epoch``, losses, metrics).
    :param runs: the reported runs, with their ``grid`` and ``environment`` as JSON text.
    :return: a list of :class:`nnbench.report.ReportSection` (title, plain text, optional
        DataFrame and optional matplotlib figure), shown in order.
    """


REGISTRATION_HOOKS: dict[str, str] = {
    "activation": "register_activations",
    "loss": "register_losses",
    "optimizer": "register_optimizers",
    "architecture": "register_architectures",
    "task": "register_tasks",
    "schedule": "register_schedules",
    "device": "register_devices",
    "executor": "register_executors",
}
