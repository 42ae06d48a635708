"""Every hook a plugin can implement: the whole contract for plugin authors.

A plugin is any module or object whose functions are decorated with :data:`nnbench.hookimpl` and
named after a hook below. Registration hooks receive a ``register`` callable; call it once per
component, passing a spec (``register(Activation("swish", nn.SiLU, "x * sigmoid(x)"))``), so that
nnbench can record which plugin provided each name. A name registered twice is an error naming
both plugins. Lifecycle hooks are called in every plugin, in no guaranteed order, and their return
values are ignored.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

import pluggy

if TYPE_CHECKING:
    import click
    import pandas as pd

    from nnbench.contract.section import ReportSection
    from nnbench.contract.specs import (
        Activation,
        Architecture,
        Component,
        Device,
        ExecutorSpec,
        ExporterSpec,
        Kind,
        Loss,
        Optimizer,
        Schedule,
        Task,
    )
    from nnbench.contract.trial import EpochRecord, Trial, TrialResult
    from nnbench.session import Session

PROJECT = "nnbench"

hookspec = pluggy.HookspecMarker(PROJECT)
hookimpl = pluggy.HookimplMarker(PROJECT)
"""Decorator marking a plugin's hook implementations (exported as ``nnbench.hookimpl``)."""


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

    :param register: call ``register(ExecutorSpec(name, factory, description, options))``; ``factory()``
        returns an object with a ``run(plan, sink)`` method: the whole contract is
        :mod:`nnbench.contract.executor` (the work plan in, every result to the sink out).
    """


@hookspec
def register_exporters(register: Callable[[ExporterSpec], None]) -> None:
    """Register trackers that ``nnbench export --to NAME`` writes stored runs to (MLflow, TensorBoard, ...).

    :param register: call ``register(ExporterSpec(name, export, description, output))``; ``export`` is
        called as ``export(runs, output)`` with the chosen runs (trials, curves and seed groups with their
        intervals) and the ``-o`` path, and returns one line saying what it wrote.
    """


@hookspec
def register_defaults(register: Callable[[str, Sequence[Any]], None]) -> None:
    """Say what the default grid holds on the axes of components (the built-in plugin names its tasks, networks,
    activations and optimizers; a lab's plugin may name its own).

    :param register: call ``register(axis, values)``, e.g. ``register("activation", ["relu", "tanh"])``; a plugin
        loaded later overrides what an earlier one registered for the same axis.
    """


@hookspec
def register_kinds(register: Callable[[Kind], None]) -> None:
    """Declare new kinds of component (initializers, normalisation layers, regularizers, ...).

    Called once per session, before any component is registered. Each kind becomes a registry
    (``nnbench list PLURAL``), a trial axis (``--KIND`` flag and TOML key, with wildcards and
    ``all``), a store column and an axis of the report.

    :param register: call ``register(Kind(name, plural, stage, default, description))`` for each
        kind; ``stage`` is where its components plug into a trial (``model``, ``build`` or
        ``loss``, see :data:`nnbench.contract.specs.STAGES`) and ``default`` the component a
        trial takes when the grid names none, which must leave the trial unchanged.
    """


@hookspec
def register_components(register: Callable[[Component], None]) -> None:
    """Register components of the kinds declared through ``register_kinds`` (by any plugin).

    :param register: call ``register(Component(kind, name, factory, description, params))`` for
        each one; ``factory`` is called as the kind's stage says.
    """


@hookspec
def register_commands(register: Callable[[click.Command], None], session: Session) -> None:
    """Add commands to the ``nnbench`` command line (the built-in ones come through this hook too).

    Called when the command line starts, after the plugins are loaded.

    :param register: call ``register(command)`` with a ``click.Command``; a command name taken
        twice is an error naming both plugins.
    :param session: the session the command line runs in: its ``domain`` (kinds and axes),
        ``catalogue`` (components) and ``pm`` (plugin manager).
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
    trials: pd.DataFrame, epochs: pd.DataFrame, runs: pd.DataFrame, skipped: pd.DataFrame, micro: pd.DataFrame,
    rope: Mapping[str, float], alpha: float, version_names: Mapping[str, str],
) -> list[ReportSection]:
    """Add sections to the HTML report; called once per report built, plugin by plugin in the order
    they were loaded (the built-in sections come first, through this hook too).

    Every string of a returned section (title, text, table cells) is HTML-escaped: a plugin adds
    data to the page, never markup or scripts. A plugin that raises is named in a note in the
    report and the other sections are still built.

    :param trials: one row per trial of the reported runs, with the columns of the store's
        ``trials`` table (configuration, ``status``, ``metric_name``, ``metric``, timings, ``error``).
    :param epochs: the per-epoch curves of those trials (``trial_id``, ``epoch``, losses, metrics).
    :param runs: the reported runs, with their ``grid`` and ``environment`` as JSON text, and ``conflicts``: the
        trials they cover that a merged store held with other numbers (JSON, see ``ResultStore.runs``).
    :param skipped: the combinations those runs skipped (``run_id``, ``combination`` as JSON, ``reason``).
    :param micro: every micro-benchmark row of the store (``nnbench micro``).
    :param rope: the half-widths of practical equivalence the user gave (``--rope``), by task name,
        metric name or ``*`` for every task; empty when the defaults apply
        (``nnbench.analysis.rope.parse_rope(rope)`` reads it with the defaults).
    :param alpha: the family-wise error rate of the verdicts' "better" and "worse" claims (0.05 unless
        the user gave another).
    :param version_names: names the user gave to versions of a component's code, by run id or code
        (``nnbench.analysis.versions``); empty: ``cnn v1``, ``cnn v2``.
    :return: a list of :class:`nnbench.reporting.ReportSection` (title, plain text, optional
        DataFrame and optional matplotlib figure), shown in order.
    """
