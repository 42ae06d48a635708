"""Where the components of a plugin's kinds plug into a trial: the ``build``, ``model`` and ``loss``
stages of :data:`nnbench.contract.specs.STAGES`.

A trial's ``components`` name only non-default components (a kind's default is never applied), and
each is given the hyper-parameters the trial stores under its kind's name.
"""

from __future__ import annotations

import functools
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn

from nnbench.contract.specs import Component
from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import Catalogue

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def staged(trial: Trial, catalogue: Catalogue, stage: str) -> Iterator[tuple[Component, dict[str, Any]]]:
    """The trial's components that plug in at ``stage``, in the order their kinds were declared,
    each with its hyper-parameters."""
    for record in catalogue.domain.stage_kinds(stage):
        name = trial.components.get(record.name)
        if name is not None:
            yield catalogue.registry(record.name).get(name), dict(trial.params.get(record.name, {}))


def build_keywords(trial: Trial, catalogue: Catalogue) -> dict[str, Any]:
    """What the architecture's build receives besides its own hyper-parameters: one factory per
    ``build``-stage kind, under the kind's name."""
    return {component.kind: functools.partial(component.factory, **params)
            for component, params in staged(trial, catalogue, "build")}


def apply_to_model(model: nn.Module, trial: Trial, catalogue: Catalogue) -> nn.Module:
    """The built model after every ``model``-stage component (it may change it in place or replace it)."""
    for component, params in staged(trial, catalogue, "model"):
        replaced = component.factory(model, **params)
        if replaced is not None:
            if not isinstance(replaced, nn.Module):
                raise TypeError(f"{component.kind} {component.name!r} must change the model in place (returning "
                                f"None) or return an nn.Module, not a {type(replaced).__name__}")
            model = replaced
    return model


def training_criterion(criterion: Criterion, model: nn.Module, trial: Trial, catalogue: Catalogue) -> Criterion:
    """The criterion training minimizes: ``criterion`` wrapped by every ``loss``-stage component."""
    for component, params in staged(trial, catalogue, "loss"):
        criterion = component.factory(criterion, model, **params)
        if not callable(criterion):
            raise TypeError(f"{component.kind} {component.name!r} must return a criterion (a callable of outputs "
                            "and targets)")
    return criterion
