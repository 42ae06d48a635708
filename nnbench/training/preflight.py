"""Checks before anything is stored: every model whose hyper-parameters the user changed, and every architecture
given as an object, is built once and run on a tiny batch, so that a bad value is one clear error rather than a
column of failed trials. Components left as they are registered are not run here: a plugin that crashes or hangs
must do so in a worker."""

from __future__ import annotations

import json
import math
from collections.abc import Mapping, Sequence
from typing import Any

import torch

from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import Catalogue
from nnbench.planning.objects import PLUGIN_NAME as OBJECTS_PLUGIN
from nnbench.training.stages import BatchStage, TrainingStage, training_criterion
from nnbench.training.trainer import build_model, choose_view, contexts_for, make_schedule, set_up, to_view


def check_overrides(trials: Sequence[Trial], catalogue: Catalogue,
                    overrides: Mapping[str, Mapping[str, Any]]) -> None:
    """Build once each model, optimizer, schedule and loss-stage component whose hyper-parameters the
    user overrode (a schedule is stepped, a criterion evaluated), so a bad value is one clear error
    before anything is stored rather than a column of failed trials. Components left at their
    defaults are not run here: a plugin that crashes or hangs must do so in a worker."""
    models: dict[str, Trial] = {}
    optimizers: dict[str, Trial] = {}
    schedules: dict[str, Trial] = {}
    loops: dict[str, Trial] = {}
    for trial in trials:
        overridden = [axis for axis in ("arch", *trial.components)
                      if trial.value(axis) in overrides.get(axis, {})]
        if overridden and any(catalogue.domain.kind(a).stage in ("core", "build", "model", "loss")
                              for a in overridden):
            models.setdefault(json.dumps([trial.task, trial.arch, trial.activation, trial.loss,
                                          trial.components, trial.params], sort_keys=True, default=str), trial)
        if any(catalogue.domain.kind(a).stage in ("batch", "training") for a in overridden):
            loops.setdefault(json.dumps([trial.task, trial.components, trial.params], sort_keys=True, default=str),
                             trial)
        given_as_object = catalogue.optimizers.plugin_of(trial.optimizer) == OBJECTS_PLUGIN
        if trial.optimizer in overrides.get("optimizer", {}) or given_as_object:
            optimizers.setdefault(json.dumps([trial.optimizer, trial.params.get("optimizer")], sort_keys=True,
                                             default=str), trial)
        if trial.schedule in overrides.get("schedule", {}):
            schedules.setdefault(json.dumps([trial.schedule, trial.params.get("schedule")], sort_keys=True,
                                            default=str), trial)
    for trial in models.values():
        task = catalogue.tasks.get(trial.task)
        try:
            view = choose_view(task, catalogue.architectures.get(trial.arch).modalities)
            model = build_model(trial, catalogue, task, view)
            _check_training_criterion(trial, catalogue, task, view, model)
        except Exception as exc:
            given = "".join(f" and {k} {v!r} with {dict(trial.params.get(k, {}))}" for k, v in trial.components.items())
            raise NNBenchError(
                f"architecture {trial.arch!r} cannot be built for task {trial.task!r} with "
                f"{dict(trial.params.get('arch', {}))}{given}: {type(exc).__name__}: {exc}"
            ) from None
    for trial in optimizers.values():
        spec = catalogue.optimizers.get(trial.optimizer)
        try:
            spec.factory([torch.zeros(1, requires_grad=True)], lr=trial.lr, **dict(trial.params.get("optimizer", {})))
        except Exception as exc:
            raise NNBenchError(
                f"optimizer {trial.optimizer!r} rejects its hyper-parameters "
                f"{dict(trial.params.get('optimizer', {}))}: {type(exc).__name__}: {exc}"
            ) from None
    for trial in loops.values():
        _check_loop_stages(trial, catalogue)
    for trial in schedules.values():
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=trial.lr)
        try:
            schedule = make_schedule(trial, catalogue, probe, 10)
            for _ in range(10):  # a bad value often shows only once the rate is computed
                probe.step()
                if schedule is not None:
                    schedule.step()
            rates = [group["lr"] for group in probe.param_groups]
            if not all(isinstance(r, int | float) and math.isfinite(r) and r >= 0 for r in rates):
                raise ValueError(f"it set the learning rate to {rates[0]!r}")
        except Exception as exc:
            raise NNBenchError(
                f"schedule {trial.schedule!r} rejects its hyper-parameters "
                f"{dict(trial.params.get('schedule', {}))}: {type(exc).__name__}: {exc}"
            ) from None


def _check_loop_stages(trial: Trial, catalogue: Catalogue) -> None:
    """Make the batch- and training-stage components (their factories see the overridden values) and pass a
    batch of two rows through the batch stage."""
    task = catalogue.tasks.get(trial.task)
    contexts = contexts_for(trial, task)
    try:
        batches = BatchStage(trial, catalogue, contexts)
        TrainingStage(trial, catalogue, contexts)
        if batches:
            setup = set_up(trial, catalogue)
            batches(setup.x[:2].clone(), setup.y[:2].clone())
            batches.check()
    except Exception as exc:
        given = ", ".join(f"{k} {v!r} with {dict(trial.params.get(k, {}))}" for k, v in trial.components.items())
        raise NNBenchError(f"{given} cannot train on task {trial.task!r}: {exc}") from None


def _check_training_criterion(trial: Trial, catalogue: Catalogue, task: Any, view: Any, model: Any) -> None:
    """Evaluate the training criterion (loss-stage components included) once on a tiny batch."""
    if not any(catalogue.domain.kind(kind).stage == "loss" for kind in trial.components):
        return
    loss = catalogue.losses.get(trial.loss)
    x = to_view(torch.zeros(2, *task.input_shape), task.modality, view)
    y = torch.zeros(2, dtype=torch.int64) if task.kind != "regression" else torch.zeros(2, task.output_dim)
    criterion = training_criterion(loss.factory(), model, trial, catalogue, contexts_for(trial, task))
    value = criterion(model(x), loss.encode_target(y, task))
    if not (isinstance(value, torch.Tensor) and value.numel() == 1 and torch.isfinite(value).all()):
        raise ValueError(f"the training criterion returned {value!r}, not a finite scalar")


def check_object_architectures(trials: Sequence[Trial], catalogue: Catalogue) -> None:
    """Build each architecture given as an object once per task and loss and run it on two training
    samples, so that a model that cannot read the task's inputs, or whose output does not fit the loss,
    is one clear error before anything is stored."""
    seen: set[tuple[str, str, str]] = set()
    for trial in trials:
        key = (trial.arch, trial.task, trial.loss)
        if key in seen or catalogue.architectures.plugin_of(trial.arch) != OBJECTS_PLUGIN:
            continue
        seen.add(key)
        task = catalogue.tasks.get(trial.task)
        outputs = catalogue.losses.get(trial.loss).outputs(task)
        view = choose_view(task, catalogue.architectures.get(trial.arch).modalities)
        where = f"architecture {trial.arch!r} on task {trial.task!r} ({view} inputs of shape {task.input_shape})"
        try:
            model = build_model(trial, catalogue, task, view)
            with torch.no_grad():
                out = model(set_up(trial, catalogue).x[:2])
        except Exception as exc:
            raise NNBenchError(f"{where} fails: {type(exc).__name__}: {exc}") from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, outputs):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NNBenchError(f"{where} returns {got} for a batch of 2, but loss {trial.loss!r} needs (2, {outputs}): "
                               "give it the build arguments (input_spec, outputs, activation) so it can fit any task, "
                               "or choose a task and loss it fits")
