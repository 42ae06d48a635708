"""Where the components of a plugin's kinds plug into a trial: the ``build``, ``model``, ``loss``, ``batch`` and
``training`` stages of :data:`nnbench.contract.specs.STAGES`.

A trial's ``components`` name only non-default components (a kind's default is never applied), and each is given
the hyper-parameters the trial stores under its kind's name, and the trial's :class:`TrialContext` (always at the
``batch`` and ``training`` stages; at the others when its factory has a ``context`` parameter). Whatever a stage
component raises, and any tensor it returns of the wrong shape or with non-finite values, fails the trial with one
line naming the component, its plugin and its stage (:class:`StageError`).
"""

from __future__ import annotations

import functools
import hashlib
import inspect
import math
from collections.abc import Callable, Iterator
from contextlib import contextmanager
from typing import Any

import torch
from torch import nn

from nnbench.contract.specs import Component, Task, TrialContext
from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import Catalogue

Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
LossAdapter = Callable[[torch.Tensor, Criterion], torch.Tensor]


class StageError(Exception):
    """A stage component raised, changed a tensor's shape or returned non-finite values; the message is one line
    naming it, its plugin and its stage."""


def stage_error(component: Component, catalogue: Catalogue, problem: str) -> StageError:
    plugin = catalogue.registry(component.kind).plugin_of(component.name)
    stage = catalogue.domain.kind(component.kind).stage
    return StageError(f"{component.kind} {component.name!r} (plugin {plugin!r}, {stage} stage) {problem}")


@contextmanager
def blamed(component: Component, catalogue: Catalogue, doing: str = "") -> Iterator[None]:
    """Turn whatever the component's code raises into a :class:`StageError` that names it."""
    try:
        yield
    except StageError:
        raise
    except Exception as exc:
        first = (str(exc).strip().splitlines() or [""])[0]
        raise stage_error(component, catalogue, f"raised {type(exc).__name__}{doing}: {first}") from exc


def stream_seed(seed: int, name: str) -> int:
    """A seed of its own for the random stream named ``name`` of a trial with ``seed``: the same in every process,
    and apart from the trial's other streams (its shuffling, its weights)."""
    return int.from_bytes(hashlib.sha256(f"{seed}/{name}".encode()).digest()[:8], "little") & (2**63 - 1)


class Contexts:
    """The :class:`TrialContext` each stage component of one trial receives, its generator its own.

    ``rows``: how many rows the trial trains on, or a function that counts them (called only when a component
    asks for a context)."""

    def __init__(self, trial: Trial, task: Task, rows: int | Callable[[], int]) -> None:
        self.trial, self.task, self._rows = trial, task, rows

    @functools.cached_property
    def rows(self) -> int:
        return self._rows if isinstance(self._rows, int) else self._rows()

    def of(self, component: Component) -> TrialContext:
        trial = self.trial
        generator = torch.Generator().manual_seed(stream_seed(trial.seed, component.kind))
        return TrialContext(trial, self.task, trial.epochs, math.ceil(self.rows / trial.batch_size), self.rows,
                            trial.seed, trial.device, generator)


def staged(trial: Trial, catalogue: Catalogue, stage: str) -> Iterator[tuple[Component, dict[str, Any]]]:
    """The trial's components that plug in at ``stage``, in the order their kinds were declared,
    each with its hyper-parameters."""
    for record in catalogue.domain.stage_kinds(stage):
        name = trial.components.get(record.name)
        if name is not None:
            yield catalogue.registry(record.name).get(name), dict(trial.params.get(record.name, {}))


def takes_context(factory: Callable[..., Any]) -> bool:
    """Whether a factory of the ``model``, ``build`` or ``loss`` stage has a parameter named ``context``."""
    try:
        parameter = inspect.signature(factory).parameters.get("context")
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)


def _with_context(component: Component, params: dict[str, Any], contexts: Contexts) -> dict[str, Any]:
    return {**params, "context": contexts.of(component)} if takes_context(component.factory) else params


def build_keywords(trial: Trial, catalogue: Catalogue, contexts: Contexts) -> dict[str, Any]:
    """What the architecture's build receives besides its own hyper-parameters: one factory per
    ``build``-stage kind, under the kind's name."""
    keywords = {}
    for component, params in staged(trial, catalogue, "build"):
        keywords[component.kind] = _blaming(component, catalogue,
                                            functools.partial(component.factory,
                                                              **_with_context(component, params, contexts)))
    return keywords


def _blaming(component: Component, catalogue: Catalogue, factory: Callable[..., Any]) -> Callable[..., Any]:
    @functools.wraps(factory)
    def call(*args: Any, **kwargs: Any) -> Any:
        with blamed(component, catalogue):
            return factory(*args, **kwargs)

    return call


def hooked_layers(model: nn.Module) -> set[str]:
    """The layers of ``model`` with forward or backward hooks, which run when the layer is called as a module."""
    return {name or "the model" for name, module in model.named_modules()
            if module._forward_hooks or module._forward_pre_hooks or module._backward_hooks
            or module._backward_pre_hooks}


def apply_to_model(model: nn.Module, trial: Trial, catalogue: Catalogue, contexts: Contexts,
                   hooks_by: dict[str, str] | None = None) -> nn.Module:
    """The built model after every ``model``-stage component (it may change it in place or replace it).
    ``hooks_by``, when given, learns which component hooked which layer (``{layer: "kind 'name' (plugin 'p')"}``)."""
    for component, params in staged(trial, catalogue, "model"):
        before = hooked_layers(model) if hooks_by is not None else set()
        with blamed(component, catalogue):
            replaced = component.factory(model, **_with_context(component, params, contexts))
        if replaced is not None:
            if not isinstance(replaced, nn.Module):
                raise stage_error(component, catalogue, "must change the model in place (returning None) or return "
                                  f"an nn.Module, not a {type(replaced).__name__}")
            model = replaced
        if hooks_by is not None:
            plugin = catalogue.registry(component.kind).plugin_of(component.name)
            for layer in hooked_layers(model) - before:
                hooks_by.setdefault(layer, f"{component.kind} {component.name!r} (plugin {plugin!r})")
    return model


def training_criterion(criterion: Criterion, model: nn.Module, trial: Trial, catalogue: Catalogue,
                       contexts: Contexts) -> Criterion:
    """The criterion training minimizes: ``criterion`` wrapped by every ``loss``-stage component."""
    for component, params in staged(trial, catalogue, "loss"):
        with blamed(component, catalogue):
            wrapped = component.factory(criterion, model, **_with_context(component, params, contexts))
        if not callable(wrapped):
            raise stage_error(component, catalogue, "must return a criterion (a callable of outputs and targets)")
        criterion = _blaming(component, catalogue, wrapped)
    return criterion


class BatchStage:
    """The trial's ``batch``-stage components, made for one trial: each training batch passes through them in
    the order their kinds were declared. At most one may adapt the loss (return ``(x, loss)``)."""

    def __init__(self, trial: Trial, catalogue: Catalogue, contexts: Contexts) -> None:
        self.catalogue = catalogue
        self.transforms: list[tuple[Component, Callable[..., Any]]] = []
        for component, params in staged(trial, catalogue, "batch"):
            with blamed(component, catalogue):
                transform = component.factory(contexts.of(component), **params)
            if not callable(transform):
                raise stage_error(component, catalogue, "must return a transform of a batch (x, y), not a "
                                  f"{type(transform).__name__}")
            self.transforms.append((component, transform))
        self._finite: list[torch.Tensor] = []
        self.adapts_loss = False
        """Whether any batch's loss was adapted (the training loss is then not the plain criterion's)."""

    def __bool__(self) -> bool:
        return bool(self.transforms)

    def __call__(self, x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor, LossAdapter | None]:
        """The batch ``(x, y)`` after every transform, and the loss adapter one of them returned (or ``None``)."""
        adapter: LossAdapter | None = None
        if not self._finite:
            self._finite = [torch.ones((), dtype=torch.bool, device=x.device) for _ in self.transforms]
        for k, (component, transform) in enumerate(self.transforms):
            with blamed(component, catalogue=self.catalogue):
                out = transform(x, y)
            if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)):
                raise stage_error(component, self.catalogue, f"must return (x, y) or (x, loss), not {_shape_of(out)}")
            new_x, second = out
            if new_x.shape != x.shape or not new_x.is_floating_point():
                raise stage_error(component, self.catalogue, f"changed the batch's inputs from {_shape_of(x)} to "
                                  f"{_shape_of(new_x)}; a batch transform keeps their shape")
            if callable(second) and not isinstance(second, torch.Tensor):
                if adapter is not None:
                    raise stage_error(component, self.catalogue, "adapts the loss, which another batch-stage "
                                      "component of this trial does already")
                adapter = _blaming(component, self.catalogue, second)
                self.adapts_loss = True
            elif adapter is not None and isinstance(second, torch.Tensor) and second is not y and not (
                    second.shape == y.shape and torch.equal(second, y)):
                raise stage_error(component, self.catalogue, "changed the batch's targets after another batch-stage "
                                  "component adapted the loss to them; put the target change first")
            elif not isinstance(second, torch.Tensor) or second.shape != y.shape or second.dtype != y.dtype:
                raise stage_error(component, self.catalogue, f"changed the batch's targets from {_shape_of(y)} to "
                                  f"{_shape_of(second)}; return them as they are, or (x, loss) to adapt the loss")
            else:
                y = second
            self._finite[k] = self._finite[k] & torch.isfinite(new_x).all()
            x = new_x
        return x, y, adapter

    def check(self) -> None:
        """Raise :class:`StageError` for a component that returned non-finite inputs since the last check (read
        once an epoch, so that steps never wait for the device)."""
        for (component, _), finite in zip(self.transforms, self._finite, strict=False):
            if not bool(finite):
                raise stage_error(component, self.catalogue, "returned inputs that are not finite numbers")
        self._finite = []


def _shape_of(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    if isinstance(value, tuple):
        return f"a tuple of {len(value)}"
    return f"a {type(value).__name__}"


def batch_loss(outputs: torch.Tensor, y: torch.Tensor, criterion: Criterion,
               adapter: LossAdapter | None) -> torch.Tensor:
    """A training batch's loss: the criterion's, or as the batch stage adapted it."""
    return criterion(outputs, y) if adapter is None else adapter(outputs, criterion)


class TrainingStage:
    """The trial's ``training``-stage components, made for one trial: told of every optimizer step and epoch end,
    and asked which module held-out data score."""

    def __init__(self, trial: Trial, catalogue: Catalogue, contexts: Contexts) -> None:
        self.catalogue = catalogue
        self.followers: list[tuple[Component, Any]] = []
        for component, params in staged(trial, catalogue, "training"):
            with blamed(component, catalogue):
                follower = component.factory(contexts.of(component), **params)
            if follower is not None:
                self.followers.append((component, follower))

    def __bool__(self) -> bool:
        return bool(self.followers)

    def after_step(self, model: nn.Module, optimizer: torch.optim.Optimizer) -> None:
        for component, follower in self.followers:
            if hasattr(follower, "after_step"):
                with blamed(component, self.catalogue, " after a step"):
                    follower.after_step(model, optimizer)

    def after_epoch(self, model: nn.Module, optimizer: torch.optim.Optimizer, epoch: int) -> None:
        for component, follower in self.followers:
            if hasattr(follower, "after_epoch"):
                with blamed(component, self.catalogue, f" after epoch {epoch}"):
                    follower.after_epoch(model, optimizer, epoch)

    def scored(self, model: nn.Module) -> nn.Module:
        """The module validation and test data score: the last component's that names one, else ``model``."""
        chosen = model
        for component, follower in self.followers:
            if hasattr(follower, "scored"):
                with blamed(component, self.catalogue, " choosing the scored weights"):
                    module = follower.scored(model)
                if module is not None:
                    if not isinstance(module, nn.Module):
                        raise stage_error(component, self.catalogue, "must return an nn.Module or None from "
                                          f"scored(model), not a {type(module).__name__}")
                    chosen = module
        return chosen
