"""Conformance checks: does a component keep the promises its spec makes?

Each ``check_*`` function exercises one component the way the trainer will and raises
:class:`ConformanceError` (an ``AssertionError``) naming the component and the broken promise.
Plugin authors reach them through :mod:`nnbench.testing`; ``tests/test_conformance.py`` runs
them on every built-in component.
"""

from __future__ import annotations

import contextlib
import functools
import hashlib
import warnings
from collections.abc import Callable, Iterator
from typing import Any

import torch
from torch import nn
from torch.func import vmap

from nnbench.contract.domain import CORE_KINDS
from nnbench.contract.specs import (
    MODALITIES,
    TASK_KINDS,
    Activation,
    Architecture,
    Component,
    InputSpec,
    Kind,
    Loss,
    Modality,
    Optimizer,
    Schedule,
    Spec,
    Task,
    TaskData,
    TaskKind,
)
from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import collect_catalogue, collect_kinds
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import takes_keyword
from nnbench.training.proof import MemberStep, prove_stack
from nnbench.training.stacked_networks import STACKED_FORMS
from nnbench.training.stacking import NotStackable
from nnbench.training.stages import Contexts, takes_context
from nnbench.training.trainer import to_view

OPTIMIZER_STEPS = 100
"""Steps an optimizer takes on the test quadratic at its default learning rate."""

MIN_IMPROVEMENT = 0.01
"""The fraction of the quadratic's initial loss an optimizer must remove in those steps."""

SHARED_ROW_SLACK = 0.05
"""How many more held-out rows (as a fraction) may equal a row of an earlier split than the data's
own rate of repeated rows explains; the margin absorbs sampling noise of small splits."""

SHAPES: dict[Modality, tuple[int, ...]] = {"vector": (6,), "image": (3, 8, 8), "sequence": (5, 3)}
"""The per-sample input shape an architecture is built for, per modality, in the checks."""

PROBE_EPOCHS, PROBE_ROWS, PROBE_BATCH = 4, 32, 8
"""The trial a stage component is made for in the checks: its epochs, training rows and batch size."""


class ConformanceError(AssertionError):
    """A component does not keep a promise of its spec; the message names the component and the promise."""


UNCHECKED_KINDS = {
    "device": "a device is what this machine has; there is nothing to promise",
    "executor": "an executor is checked by running grids with it: nnbench.testing.check_executor(name, folder)",
    "exporter": "an exporter is exercised by exporting stored runs and reading them back with its tracker's own "
                "reader (see plugins/nnbench-mlflow and plugins/nnbench-tensorboard)",
}
"""The core kinds without a conformance check, and why."""


def core_checks() -> dict[str, Callable[[Any], None]]:
    """The check of each core kind, by kind name."""
    return {"activation": check_activation, "loss": check_loss, "optimizer": check_optimizer,
            "architecture": check_architecture, "task": check_task, "schedule": check_schedule}


def check_component(spec: Spec, kind: Kind | None = None) -> None:
    """Run the check that fits ``spec``'s kind.

    A :class:`Component` of a kind a plugin declares is checked as its kind's stage says; ``kind``
    is that declaration (default: found among the kinds of the built-in and installed plugins).
    """
    if isinstance(spec, Component):
        declared = kind or find_kind(spec.kind)
        if declared.name != spec.kind:
            raise TypeError(f"component {spec.name!r} is of kind {spec.kind!r}, not {declared.name!r}")
        STAGE_CHECKS[declared.stage](spec, declared)
        return
    for record in CORE_KINDS:
        if isinstance(spec, record.spec_type) and record.name in core_checks():
            core_checks()[record.name](spec)
            return
    raise TypeError(f"no conformance check for a {type(spec).__name__}; checks exist for "
                    f"{', '.join(core_checks())} and the components of every declared kind")


def find_kind(name: str) -> Kind:
    """The declaration of the kind ``name`` among the built-in and installed plugins' kinds."""
    for kind, _plugin in collect_kinds(make_plugin_manager()):
        if kind.name == name:
            return kind
    raise TypeError(f"no loaded plugin declares the kind {name!r}; pass its declaration: "
                    "check_component(spec, kind=...)")


def _fail(kind: str, name: str, promise: str) -> ConformanceError:
    return ConformanceError(f"{kind} {name!r} {promise}")


@contextlib.contextmanager
def _naming(kind: str, name: str, where: str) -> Iterator[None]:
    """Turn an exception a component raises into a :class:`ConformanceError` that names it."""
    try:
        yield
    except ConformanceError:
        raise
    except Exception as exc:
        raise _fail(kind, name, f"raised {type(exc).__name__} {where}: {exc}") from exc


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


# -- activations -----------------------------------------------------------------------------------


def check_activation(spec: Activation) -> None:
    """``factory()`` returns a fresh ``nn.Module`` that keeps its input's shape and dtype and passes
    gradients; when ``vectorizable``, it gives the same values under ``torch.func.vmap``."""
    with _naming("activation", spec.name, "when built"):
        module = spec.factory()
    if not isinstance(module, nn.Module):
        raise _fail("activation", spec.name, f"factory must return an nn.Module, not {_describe(module)}")
    if spec.factory() is module:
        raise _fail("activation", spec.name, "factory must return a fresh module on every call")
    generator = torch.Generator().manual_seed(0)
    for shape in ((7,), (4, 5), (2, 3, 4, 4)):
        x = torch.randn(shape, generator=generator, requires_grad=True)
        with _naming("activation", spec.name, f"on inputs of shape {shape}"):
            y = module(x)
        if not isinstance(y, torch.Tensor) or y.shape != x.shape or y.dtype != x.dtype:
            raise _fail("activation", spec.name,
                        f"must keep its input's shape and dtype: {_describe(x.detach())} became {_describe(y)}")
        if not torch.isfinite(y).all():
            raise _fail("activation", spec.name, "returned non-finite values for standard normal inputs")
        if not y.requires_grad:
            raise _fail("activation", spec.name, "is not differentiable: its output carries no gradient")
        (grad,) = torch.autograd.grad(y.sum(), x)
        if not torch.isfinite(grad).all():
            raise _fail("activation", spec.name, "has non-finite gradients for standard normal inputs")
        if not grad.abs().sum() > 0:
            raise _fail("activation", spec.name, "has a zero gradient everywhere: nothing trains through it")
    if spec.vectorizable:
        stacked = torch.randn(3, 4, 5, generator=generator)
        _same_under_vmap("activation", spec.name, lambda: vmap(module)(stacked),
                         lambda: torch.stack([module(x) for x in stacked]))
        # in the vector model its seeds train in, training mode included (an image model's stacked convolutions
        # take only the layers they know: other activations train one by one there, as the run says)
        for arch, modality in _probe_architectures()[:1]:
            input_spec = InputSpec(modality, SHAPES[modality])
            x = torch.randn(4, *input_spec.shape, generator=torch.Generator().manual_seed(0))
            with _naming("activation", spec.name, f"in the built-in {arch.name}"):
                models = [_build(arch, input_spec, 3, spec.factory, seed=seed) for seed in range(3)]
            _check_proven("activation", spec.name, models, {**STACKED_FORMS, **arch.stacked_forms}, x)


def _same_under_vmap(kind: str, name: str, vectorized: Callable[[], torch.Tensor],
                     looped: Callable[[], torch.Tensor]) -> None:
    """``vectorized()`` (under ``torch.func.vmap``) runs and equals ``looped()`` (one model at a time)."""
    with torch.no_grad(), warnings.catch_warnings():
        # torch warns when an op has no batching rule yet: slower under vmap, but still exact.
        warnings.filterwarnings("ignore", message="There is a performance drop")
        try:
            together = vectorized()
        except Exception as exc:
            raise _fail(kind, name, f"is declared vectorizable but fails under torch.func.vmap: "
                                    f"{type(exc).__name__}: {exc}") from exc
        apart = looped()
    if together.shape != apart.shape or not torch.allclose(together, apart, rtol=1e-4, atol=1e-5):
        raise _fail(kind, name, "is declared vectorizable but gives other values under torch.func.vmap "
                                "than one model at a time")


# -- losses ----------------------------------------------------------------------------------------


def probe_task(kind: TaskKind) -> Task:
    """A data-less task of ``kind`` for checking losses: 2 classes, 4 classes, or 2 regression targets."""

    def no_data() -> TaskData:
        raise RuntimeError("a probe task has no data")

    classes = {"binary": 2, "multiclass": 4, "regression": 0}[kind]
    return Task(f"probe_{kind}", kind, "vector", (3,), no_data, num_classes=classes, output_dim=2)


def check_loss(spec: Loss) -> None:
    """For every task kind the loss claims, on a model head as wide as ``outputs(task)`` says and
    with targets from ``encode_target``, the criterion returns a finite scalar with finite,
    non-zero gradients; when ``vectorizable``, it gives the same values under ``torch.func.vmap``."""
    if not spec.kinds or not set(spec.kinds) <= set(TASK_KINDS):
        raise _fail("loss", spec.name, f"must claim a non-empty subset of the task kinds {TASK_KINDS}, "
                                       f"not {sorted(spec.kinds)}")
    generator = torch.Generator().manual_seed(0)
    for kind in sorted(spec.kinds):
        with _naming("loss", spec.name, f"on a {kind} task"):
            _check_loss_on(spec, kind, generator)


def _check_loss_on(spec: Loss, kind: TaskKind, generator: torch.Generator) -> None:
    task = probe_task(kind)
    width = spec.outputs(task)
    if not isinstance(width, int) or width < 1:
        raise _fail("loss", spec.name, f"outputs() must be a positive int for a {kind} task, not {width!r}")
    n = 8
    if kind == "regression":
        y = torch.randn(n, task.output_dim, generator=generator)
    else:
        y = torch.arange(n) % task.num_classes
    target = spec.encode_target(y, task)
    criterion = spec.factory()
    raw = torch.randn(n, width, generator=generator, requires_grad=True)
    value = criterion(_head(spec, raw), target)
    if not isinstance(value, torch.Tensor) or value.ndim != 0 or not value.is_floating_point():
        raise _fail("loss", spec.name, f"must return a floating scalar on a {kind} task, not {_describe(value)}")
    if not torch.isfinite(value):
        raise _fail("loss", spec.name, f"returned {float(value)} on a {kind} task")
    (grad,) = torch.autograd.grad(value, raw)
    if not torch.isfinite(grad).all() or not grad.abs().sum() > 0:
        raise _fail("loss", spec.name, f"gives no finite, non-zero gradient to the model on a {kind} task")
    if spec.vectorizable:
        stacked = _head(spec, torch.randn(3, n, width, generator=generator))
        _same_under_vmap("loss", spec.name, lambda: vmap(criterion, in_dims=(0, None))(stacked, target),
                         lambda: torch.stack([criterion(out, target) for out in stacked]))


def _head(spec: Loss, outputs: torch.Tensor) -> torch.Tensor:
    """The final activation the trainer appends for this loss."""
    if spec.head == "sigmoid":
        return outputs.sigmoid()
    if spec.head == "log_softmax":
        return outputs.log_softmax(dim=-1)
    return outputs


# -- optimizers ------------------------------------------------------------------------------------


def check_optimizer(spec: Optimizer) -> None:
    """At its default learning rate and parameters, the optimizer lowers a small quadratic (a weight
    matrix and a bias) by at least :data:`MIN_IMPROVEMENT` in :data:`OPTIMIZER_STEPS` steps, keeping
    every parameter finite; when ``vectorizable``, two problems stacked into one tensor follow
    exactly the path each follows alone."""
    problem = _Quadratic.random(seed=0)
    with _naming("optimizer", spec.name, f"when built with lr={spec.default_lr:g} and params {dict(spec.params)}"):
        optimizer = spec.factory(problem.parameters, lr=spec.default_lr, **dict(spec.params))
    if not isinstance(optimizer, torch.optim.Optimizer):
        raise _fail("optimizer", spec.name, f"factory must return a torch.optim.Optimizer, not {_describe(optimizer)}")
    start = problem.loss().item()
    for step in range(1, OPTIMIZER_STEPS + 1):
        with _naming("optimizer", spec.name, f"at step {step} on a quadratic"):
            _step(spec, optimizer, problem.loss)
        if not all(torch.isfinite(p).all() for p in problem.parameters):
            raise _fail("optimizer", spec.name, f"produced non-finite parameters at step {step} on a quadratic")
    end = problem.loss().item()
    if not end <= (1 - MIN_IMPROVEMENT) * start:
        raise _fail("optimizer", spec.name,
                    f"did not lower a quadratic: loss {start:.4g} -> {end:.4g} after {OPTIMIZER_STEPS} steps at "
                    f"its default lr {spec.default_lr:g} (at least {MIN_IMPROVEMENT:.0%} lower expected)")
    if spec.vectorizable:
        _check_elementwise(spec)


class _Quadratic:
    """``0.5 * sum(h * (p - target)^2)`` over a weight and a bias, starting from zero."""

    def __init__(self, targets: list[torch.Tensor], curvatures: list[torch.Tensor]) -> None:
        self.targets, self.curvatures = targets, curvatures
        self.parameters = [torch.zeros_like(t, requires_grad=True) for t in targets]

    @classmethod
    def random(cls, seed: int, lead: tuple[int, ...] = ()) -> _Quadratic:
        """A (4, 3) weight and a (3,) bias (each with the ``lead`` dimensions in front), curvature in [0.5, 2]."""
        generator = torch.Generator().manual_seed(seed)
        targets = [torch.randn(*lead, *shape, generator=generator) for shape in ((4, 3), (3,))]
        return cls(targets, [0.5 + 1.5 * torch.rand(t.shape, generator=generator) for t in targets])

    def row(self, i: int) -> _Quadratic:
        """The ``i``-th of the problems stacked along the first dimension, on its own."""
        return _Quadratic([t[i] for t in self.targets], [h[i] for h in self.curvatures])

    def loss(self) -> torch.Tensor:
        return 0.5 * sum((h * (p - t) ** 2).sum()  # type: ignore[return-value]
                         for p, t, h in zip(self.parameters, self.targets, self.curvatures, strict=True))


def _step(spec: Optimizer, optimizer: torch.optim.Optimizer, loss: Callable[[], torch.Tensor]) -> None:
    def closure() -> torch.Tensor:
        optimizer.zero_grad(set_to_none=True)
        value = loss()
        value.backward()
        return value

    if spec.needs_closure:
        optimizer.step(closure)  # type: ignore[arg-type]
    else:
        closure()
        optimizer.step()


def _check_elementwise(spec: Optimizer) -> None:
    stacked = _Quadratic.random(seed=1, lead=(2,))
    alone = [stacked.row(i) for i in range(2)]
    problems = (stacked, *alone)
    optimizers = [spec.factory(q.parameters, lr=spec.default_lr, **dict(spec.params)) for q in problems]
    for _ in range(10):
        for problem, optimizer in zip(problems, optimizers, strict=True):
            _step(spec, optimizer, problem.loss)
    for i, single in enumerate(alone):
        for together, apart in zip(stacked.parameters, single.parameters, strict=True):
            if not torch.allclose(together[i], apart, rtol=1e-5, atol=1e-6):
                raise _fail("optimizer", spec.name,
                            "is declared vectorizable, but its update is not element-wise: two problems "
                            "stacked into one tensor move differently than each alone")


# -- architectures ---------------------------------------------------------------------------------


def check_architecture(spec: Architecture, activation: Callable[[], nn.Module] | None = None) -> None:
    """For every modality it reads (at the shapes in :data:`SHAPES`) and for 1 and 3 outputs, ``build``
    with the default ``params`` returns a module mapping a batch to ``(batch, outputs)`` floats,
    the same seed builds the same model, and one SGD step changes the weights and keeps the loss
    finite; when ``vectorizable``, models stacked as nnbench stacks seeds
    (:class:`~nnbench.training.stacking.StackedModel`) give each model's outputs.

    ``activation`` is the activation factory to build with (default ``nn.ReLU``).
    """
    activation = activation or nn.ReLU
    for modality in spec.modalities:
        input_spec = InputSpec(modality, SHAPES[modality])
        x = torch.randn(4, *input_spec.shape, generator=torch.Generator().manual_seed(0))
        for outputs in (1, 3):
            where = f"for {modality} inputs of shape {input_spec.shape} and {outputs} outputs"
            with _naming("architecture", spec.name, where):
                _check_architecture_on(spec, input_spec, outputs, activation, x, where)
        if spec.vectorizable:
            with _naming("architecture", spec.name, f"stacked for {modality} inputs"):
                _check_stacked(spec, input_spec, activation, x)


def _check_architecture_on(spec: Architecture, input_spec: InputSpec, outputs: int,
                           activation: Callable[[], nn.Module], x: torch.Tensor, where: str) -> None:
    model = _build(spec, input_spec, outputs, activation, seed=0)
    if not isinstance(model, nn.Module):
        raise _fail("architecture", spec.name, f"build must return an nn.Module {where}, not {_describe(model)}")
    out = model(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), outputs) or not out.is_floating_point():
        raise _fail("architecture", spec.name,
                    f"must map a batch of {len(x)} to a floating ({len(x)}, {outputs}) tensor {where}, but "
                    f"returned {_describe(out)}")
    twin = _build(spec, input_spec, outputs, activation, seed=0)
    model.eval()
    twin.eval()
    with torch.no_grad():
        if not torch.equal(model(x), twin(x)):
            raise _fail("architecture", spec.name,
                        f"builds different models from the same seed {where}: draw every random number from "
                        "torch's global generator")
    model.train()
    _train_one_step(spec, model, x, where)


def _build(spec: Architecture, input_spec: InputSpec, outputs: int, activation: Callable[[], nn.Module],
           seed: int) -> nn.Module:
    torch.manual_seed(seed)  # as the trainer does before every build
    return spec.build(input_spec, outputs, activation, **dict(spec.params))


def _train_one_step(spec: Architecture, model: nn.Module, x: torch.Tensor, where: str) -> None:
    parameters = [p for p in model.parameters() if p.requires_grad]
    if not parameters:
        raise _fail("architecture", spec.name, f"has no trainable parameters {where}")
    before = [p.detach().clone() for p in parameters]
    optimizer = torch.optim.SGD(parameters, lr=0.01)
    loss = model(x).pow(2).mean()
    loss.backward()
    if not all(p.grad is None or torch.isfinite(p.grad).all() for p in parameters):
        raise _fail("architecture", spec.name, f"has non-finite gradients {where}")
    optimizer.step()
    if all(torch.equal(b, p) for b, p in zip(before, parameters, strict=True)):
        raise _fail("architecture", spec.name, f"did not change any weight in a training step {where}")
    if not torch.isfinite(model(x).pow(2).mean()):
        raise _fail("architecture", spec.name, f"returns non-finite outputs after one training step {where}")


def _check_stacked(spec: Architecture, input_spec: InputSpec, activation: Callable[[], nn.Module],
                   x: torch.Tensor) -> None:
    models = [_build(spec, input_spec, 3, activation, seed=seed) for seed in range(3)]
    _check_proven("architecture", spec.name, models, {**STACKED_FORMS, **spec.stacked_forms}, x)


def _check_proven(kind: str, name: str, models: list[nn.Module], forms: Any, x: torch.Tensor) -> None:
    """The seeds' ``models`` stacked as nnbench stacks them compute what each computes alone: outputs in
    evaluation and training mode, losses, gradients and one optimizer step (what the trainer proves before a
    stack trains; here a declared ``vectorizable`` that no stack can keep fails)."""
    y = torch.randn(len(x), 3, generator=torch.Generator().manual_seed(1))
    steps = [MemberStep(_sgd, 0.01, {}, None) for _ in models]
    try:
        prove_stack(models, forms, x, y, nn.MSELoss(), steps)
    except NotStackable as exc:
        raise _fail(kind, name, f"is declared vectorizable but its seeds do not compute alike stacked: {exc}") from exc


def _sgd(params: list[torch.Tensor], lr: float, options: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr)


# -- tasks -----------------------------------------------------------------------------------------


def check_task(spec: Task) -> None:
    """``load()`` returns a :class:`TaskData` whose six tensors have the dtypes and shapes the spec
    declares (float32 inputs of ``input_shape``; int64 class indices below ``num_classes``, or
    float32 ``(n, output_dim)`` targets), finite values, three non-empty splits, inputs readable
    in every declared view, the same tensors on a second load, and no more rows shared between
    splits than the data's own repeated rows explain.

    A task with ``prepare`` must have its data in place (call ``spec.prepare(False)`` first).
    """
    with _naming("task", spec.name, "in load()"):
        data = spec.load()
    if not isinstance(data, TaskData):
        raise _fail("task", spec.name, f"load() must return a TaskData, not {_describe(data)}")
    for split in ("train", "val", "test"):
        _check_split(spec, split, getattr(data, f"x_{split}"), getattr(data, f"y_{split}"))
    bad_views = [v for v in spec.views if v not in MODALITIES]
    if bad_views:
        raise _fail("task", spec.name, f"declares unknown views {bad_views}; views are {MODALITIES}")
    for view in spec.all_views:
        try:
            to_view(data.x_train[:2], spec.modality, view)
        except ValueError as exc:
            raise _fail("task", spec.name, f"declares the view {view!r}, but: {exc}") from None
    cache_clear = getattr(spec.load, "cache_clear", None)
    if cache_clear is not None:
        cache_clear()  # a cached load() would compare the same tensors with themselves
    with _naming("task", spec.name, "in a second load()"):
        again = spec.load()
    for field_name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        if not torch.equal(getattr(data, field_name), getattr(again, field_name)):
            raise _fail("task", spec.name, f"load() is not deterministic: {field_name} differs on a second load")
    train, val, test = (_row_digests(getattr(data, f"x_{split}")) for split in ("train", "val", "test"))
    for earlier, later, names in ((train, val, "validation rows equal training rows"),
                                  (train, test, "test rows equal training rows"),
                                  (val, test, "test rows equal validation rows")):
        seen = set(earlier)
        shared = sum(row in seen for row in later) / len(later)
        repeated = _repeated_fraction(earlier)
        if shared > repeated + SHARED_ROW_SLACK:
            raise _fail("task", spec.name,
                        f"splits overlap: {shared:.1%} of {names}, while only {repeated:.1%} of the earlier "
                        "split's rows repeat within it; every sample must go to exactly one split")


def _check_split(spec: Task, split: str, x: torch.Tensor, y: torch.Tensor) -> None:
    if not isinstance(x, torch.Tensor) or x.dtype != torch.float32 or tuple(x.shape[1:]) != spec.input_shape:
        raise _fail("task", spec.name, f"x_{split} must be a float32 tensor of shape (n, *{spec.input_shape}), "
                                       f"not {_describe(x)}")
    if len(x) == 0:
        raise _fail("task", spec.name, f"has an empty {split} split")
    if not isinstance(y, torch.Tensor) or len(y) != len(x):
        raise _fail("task", spec.name, f"y_{split} must be a tensor with one target per row of x_{split} "
                                       f"({len(x)}), not {_describe(y)}")
    if spec.kind == "regression":
        if y.dtype != torch.float32 or tuple(y.shape[1:]) != (spec.output_dim,):
            raise _fail("task", spec.name, f"y_{split} must be float32 of shape (n, {spec.output_dim}) for a "
                                           f"regression task, not {_describe(y)}")
        if not torch.isfinite(y).all():
            raise _fail("task", spec.name, f"y_{split} has non-finite targets")
    elif y.dtype != torch.int64 or y.ndim != 1 or y.min() < 0 or y.max() >= spec.num_classes:
        raise _fail("task", spec.name, f"y_{split} must be int64 class indices in [0, {spec.num_classes}) of "
                                       f"shape (n,), not {_describe(y)} with values {y.min().item()}..{y.max().item()}")
    if not torch.isfinite(x).all():
        raise _fail("task", spec.name, f"x_{split} has non-finite inputs")


def _row_digests(x: torch.Tensor) -> list[bytes]:
    # Digests, not the rows: comparing CIFAR-sized splits row by row would hold gigabytes.
    rows = x.detach().cpu().reshape(len(x), -1).contiguous().numpy()
    return [hashlib.blake2b(row.tobytes(), digest_size=16).digest() for row in rows]


def _repeated_fraction(digests: list[bytes]) -> float:
    """The fraction of rows that equal another row of the same split."""
    counts: dict[bytes, int] = {}
    for digest in digests:
        counts[digest] = counts.get(digest, 0) + 1
    return sum(c for c in counts.values() if c > 1) / len(digests)


# -- schedules -------------------------------------------------------------------------------------


SCHEDULE_STEPS = 50
"""Optimizer steps a schedule is followed for in its check."""


def check_schedule(spec: Schedule) -> None:
    """``factory(optimizer, total_steps, **params)`` returns ``None`` (the rate stays as it is) or a
    learning-rate scheduler whose rates over ``total_steps`` steps are finite, never negative, not
    all zero, and the same when built again."""
    traces = [_schedule_trace(spec) for _ in range(2)]
    if traces[0] is None:
        return
    rates = traces[0]
    if not all(torch.isfinite(torch.tensor(rates))) or min(rates) < 0 or max(rates) <= 0:
        raise _fail("schedule", spec.name, f"must keep the rate finite and >= 0 (and not always 0), but gave "
                                           f"{min(rates):g} .. {max(rates):g}")
    if traces[0] != traces[1]:
        raise _fail("schedule", spec.name, "gives other rates when built again for the same optimizer and steps")


def _schedule_trace(spec: Schedule) -> list[float] | None:
    weight = torch.zeros(3, requires_grad=True)
    optimizer = torch.optim.SGD([weight], lr=0.1)
    with _naming("schedule", spec.name, f"when built for {SCHEDULE_STEPS} steps with params {dict(spec.params)}"):
        scheduler = spec.factory(optimizer, SCHEDULE_STEPS, **dict(spec.params))
    if scheduler is None:
        return None
    if not hasattr(scheduler, "step"):
        raise _fail("schedule", spec.name, f"factory must return None or an LR scheduler, not {_describe(scheduler)}")
    rates = []
    for step in range(SCHEDULE_STEPS):
        rates.append(float(optimizer.param_groups[0]["lr"]))
        optimizer.step()
        with _naming("schedule", spec.name, f"at step {step}"):
            scheduler.step()
    return rates


# -- components of the kinds plugins declare -------------------------------------------------------


def _probe_architectures() -> list[tuple[Architecture, Modality]]:
    """The first architecture nnbench ships for vector inputs and the first for images (built-ins register first)."""
    registered = [entry.spec for entry in collect_catalogue(make_plugin_manager(load_entry_points=False))
                  .architectures.entries()]
    return [(next(a for a in registered if a.modalities[0] == modality), modality)
            for modality in ("vector", "image")]


def _stage_models(component: Component, kind: Kind) -> Iterator[tuple[str, Callable[[], nn.Module], torch.Tensor, Any]]:
    """Small models that nnbench ships, to try a component on: (where, seeded builder, a batch of inputs, the
    stacked forms of the architecture's layers)."""
    keywords = {}
    if kind.stage == "build":
        keywords = {kind.name: functools.partial(component.factory, **dict(component.params))}
    for arch, modality in _probe_architectures():
        if kind.stage == "build" and not takes_keyword(arch.build, kind.name):
            continue
        spec = InputSpec(modality, SHAPES[modality])
        x = torch.randn(4, *spec.shape, generator=torch.Generator().manual_seed(0))

        def build(arch: Architecture = arch, spec: InputSpec = spec) -> nn.Module:
            torch.manual_seed(0)
            return arch.build(spec, 3, nn.ReLU, **dict(arch.params), **keywords)

        yield f"on the built-in {arch.name} for {modality} inputs", build, x, {**STACKED_FORMS, **arch.stacked_forms}


def _check_model_stage(component: Component, kind: Kind) -> None:
    """At the ``model`` stage: given a built model, the factory changes it in place or returns a
    module; the result maps a batch to the same shape, is the same for the same seed, and trains."""
    for where, build, x, forms in _stage_models(component, kind):
        def applied(build: Callable[[], nn.Module] = build, where: str = where, seed: int = 0) -> nn.Module:
            model = build() if seed == 0 else _reseeded(build, seed)
            params = dict(component.params)
            if takes_context(component.factory):
                params["context"] = probe_context(component, kind, seed)
            with _naming(kind.name, component.name, where):
                result = component.factory(model, **params)
            if result is not None and not isinstance(result, nn.Module):
                raise _fail(kind.name, component.name, f"must return None or an nn.Module {where}, not "
                                                       f"{_describe(result)}")
            return model if result is None else result

        model, twin = applied(), applied()
        _check_trains(kind.name, component.name, model, twin, x, where)
        if component.vectorizable:
            _check_proven(kind.name, component.name, [applied(seed=seed) for seed in range(3)], forms, x)


def _reseeded(build: Callable[[], nn.Module], seed: int) -> nn.Module:
    """``build()`` with the global generator at ``seed`` after its own seeding (another seed's weights)."""
    model = build()
    torch.manual_seed(seed)
    for parameter in model.parameters():
        with torch.no_grad():
            parameter.copy_(torch.randn_like(parameter) * 0.3)
    return model


def probe_context(component: Component, kind: Kind, seed: int = 0) -> Any:
    """The :class:`~nnbench.contract.specs.TrialContext` a component of ``kind`` gets in the checks: a trial of
    :data:`PROBE_EPOCHS` epochs over :data:`PROBE_ROWS` rows in batches of :data:`PROBE_BATCH`."""
    task = probe_task("multiclass")
    trial = Trial(task=task.name, arch="probe", activation="probe", loss="probe", optimizer="probe", lr=0.01,
                  batch_size=PROBE_BATCH, epochs=PROBE_EPOCHS, seed=seed, components={kind.name: component.name})
    return Contexts(trial, task, PROBE_ROWS).of(component)


def _check_build_stage(component: Component, kind: Kind) -> None:
    """At the ``build`` stage: every built-in architecture that takes the kind builds with the
    component into a model that maps a batch to (batch, outputs), is the same for the same seed,
    and trains."""
    tried = False
    for where, build, x, forms in _stage_models(component, kind):
        tried = True
        with _naming(kind.name, component.name, where):
            model, twin = build(), build()
        _check_trains(kind.name, component.name, model, twin, x, where)
        if component.vectorizable:
            with _naming(kind.name, component.name, where):
                members = [_reseeded(build, seed) for seed in range(3)]
            _check_proven(kind.name, component.name, members, forms, x)
    if not tried:
        return  # no built-in architecture takes this kind: a plugin's architectures are checked with it


def _check_trains(kind: str, name: str, model: nn.Module, twin: nn.Module, x: torch.Tensor, where: str) -> None:
    model.eval()  # evaluation first: a training forward pass would move batch-norm statistics
    twin.eval()
    with _naming(kind, name, where), torch.no_grad():
        out = model(x)
        again = twin(x)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != (len(x), 3) or not out.is_floating_point():
        raise _fail(kind, name, f"must leave a model that maps a batch of {len(x)} to ({len(x)}, 3) floats {where}, "
                                f"but it returned {_describe(out)}")
    if not torch.isfinite(out).all():
        raise _fail(kind, name, f"leaves a model with non-finite outputs {where}")
    if not torch.equal(out, again):
        raise _fail(kind, name, f"gives different models for the same seed {where}: draw every random number "
                                "from torch's global generator")
    model.train()
    parameters = [p for p in model.parameters() if p.requires_grad]
    before = [p.detach().clone() for p in parameters]
    loss = model(x).pow(2).mean()
    loss.backward()
    torch.optim.SGD(parameters, lr=0.01).step()
    if all(torch.equal(b, p) for b, p in zip(before, parameters, strict=True)):
        raise _fail(kind, name, f"leaves a model whose weights a training step does not change {where}")
    if not torch.isfinite(model(x)).all():
        raise _fail(kind, name, f"leaves a model with non-finite outputs after one training step {where}")


def _check_loss_stage(component: Component, kind: Kind) -> None:
    """At the ``loss`` stage: the wrapped criterion returns a finite floating scalar whose gradient
    reaches the model's weights, finite and not all zero."""
    torch.manual_seed(0)
    model = nn.Linear(3, 2)
    x = torch.randn(8, 3, generator=torch.Generator().manual_seed(0))
    y = torch.randn(8, 2, generator=torch.Generator().manual_seed(1))
    with _naming(kind.name, component.name, "when wrapping an MSE criterion"):
        criterion = component.factory(nn.MSELoss(), model, **dict(component.params))
    if not callable(criterion):
        raise _fail(kind.name, component.name, f"must return a criterion (a callable), not {_describe(criterion)}")
    with _naming(kind.name, component.name, "when called on a batch"):
        value = criterion(model(x), y)
    if not isinstance(value, torch.Tensor) or value.ndim != 0 or not value.is_floating_point():
        raise _fail(kind.name, component.name, f"must return a floating scalar, not {_describe(value)}")
    if not torch.isfinite(value):
        raise _fail(kind.name, component.name, f"returned {float(value)}")
    grads = [g for g in torch.autograd.grad(value, list(model.parameters()), allow_unused=True) if g is not None]
    if not all(torch.isfinite(g).all() for g in grads) or not any(g.abs().sum() > 0 for g in grads):
        raise _fail(kind.name, component.name, "gives the model's weights no finite, non-zero gradient")


def _probe_batch() -> tuple[torch.Tensor, torch.Tensor]:
    generator = torch.Generator().manual_seed(2)
    return torch.randn(PROBE_BATCH, 6, generator=generator), torch.randint(0, 3, (PROBE_BATCH,), generator=generator)


def _transformed(component: Component, kind: Kind, global_seed: int) -> tuple[torch.Tensor, Any]:
    """A fresh transform's output on the probe batch, with torch's global generator at ``global_seed``."""
    x, y = _probe_batch()
    with _naming(kind.name, component.name, "made for a trial"):
        transform = component.factory(probe_context(component, kind), **dict(component.params))
    if not callable(transform):
        raise _fail(kind.name, component.name, f"must return a transform of a batch (x, y), not {_describe(transform)}")
    torch.manual_seed(global_seed)
    with _naming(kind.name, component.name, "on a batch"):
        out = transform(x.clone(), y.clone())
    if not (isinstance(out, tuple) and len(out) == 2 and isinstance(out[0], torch.Tensor)):
        raise _fail(kind.name, component.name, f"must return (x, y) or (x, loss), not {_describe(out)}")
    new_x, second = out
    if new_x.shape != x.shape or not new_x.is_floating_point() or not torch.isfinite(new_x).all():
        raise _fail(kind.name, component.name, f"must return finite inputs of the batch's shape {tuple(x.shape)}, "
                                               f"not {_describe(new_x)}")
    if callable(second) and not isinstance(second, torch.Tensor):
        torch.manual_seed(0)
        model = nn.Linear(6, 3)
        with _naming(kind.name, component.name, "adapting the loss"):
            value = second(model(new_x), nn.CrossEntropyLoss())
        if not (isinstance(value, torch.Tensor) and value.ndim == 0 and torch.isfinite(value)):
            raise _fail(kind.name, component.name, f"adapted the loss to {_describe(value)}, not a finite scalar")
        grads = torch.autograd.grad(value, list(model.parameters()))
        if not any(g.abs().sum() > 0 for g in grads):
            raise _fail(kind.name, component.name, "adapted the loss to one with no gradient for the model")
        return new_x, float(value.detach())
    if not isinstance(second, torch.Tensor) or second.shape != y.shape or second.dtype != y.dtype:
        raise _fail(kind.name, component.name, f"must return the targets as they came ({_describe(y)}) or a loss "
                                               f"adapter, not {_describe(second)}")
    return new_x, second


def _check_batch_stage(component: Component, kind: Kind) -> None:
    """At the ``batch`` stage: the factory, given the trial's context, returns a transform of a training batch
    ``(x, y)`` into finite inputs of the same shape and either the targets or a loss adapter
    ``adapter(outputs, criterion)`` (a finite scalar with gradients); when ``vectorizable``, its draws come from
    the context's generator alone, so a seed's batches are the same in a stack and alone."""
    first_x, first_y = _transformed(component, kind, global_seed=0)
    if component.vectorizable:
        again_x, again_y = _transformed(component, kind, global_seed=1)
        same_y = (torch.equal(first_y, again_y) if isinstance(first_y, torch.Tensor) else first_y == again_y)
        if not (torch.equal(first_x, again_x) and same_y):
            raise _fail(kind.name, component.name, "is declared vectorizable but its batches change with torch's "
                                                   "global generator; draw from context.generator")


def _check_training_stage(component: Component, kind: Kind) -> None:
    """At the ``training`` stage: the factory, given the trial's context, returns ``None`` or an object whose
    optional ``after_step(model, optimizer)`` and ``after_epoch(model, optimizer, epoch)`` run through a short
    training, and whose ``scored(model)`` returns ``None`` or a module with the model's outputs' shape, finite."""
    torch.manual_seed(0)
    model = nn.Sequential(nn.Linear(6, 8), nn.ReLU(), nn.Linear(8, 3))
    optimizer = torch.optim.SGD(model.parameters(), lr=0.05)
    with _naming(kind.name, component.name, "made for a trial"):
        follower = component.factory(probe_context(component, kind), **dict(component.params))
    if follower is None:
        return
    x, y = _probe_batch()
    for epoch in range(1, PROBE_EPOCHS + 1):
        for _ in range(PROBE_ROWS // PROBE_BATCH):
            optimizer.zero_grad()
            nn.functional.cross_entropy(model(x), y).backward()
            optimizer.step()
            if hasattr(follower, "after_step"):
                with _naming(kind.name, component.name, "after a step"):
                    follower.after_step(model, optimizer)
        if hasattr(follower, "after_epoch"):
            with _naming(kind.name, component.name, f"after epoch {epoch}"):
                follower.after_epoch(model, optimizer, epoch)
    if not hasattr(follower, "scored"):
        return
    with _naming(kind.name, component.name, "choosing the scored weights"):
        scored = follower.scored(model)
    if scored is None:
        return
    if not isinstance(scored, nn.Module):
        raise _fail(kind.name, component.name, f"scored(model) must return None or an nn.Module, not "
                                               f"{_describe(scored)}")
    scored.eval()
    with torch.no_grad(), _naming(kind.name, component.name, "scoring"):
        out = scored(x)
    if not isinstance(out, torch.Tensor) or out.shape != (len(x), 3) or not torch.isfinite(out).all():
        raise _fail(kind.name, component.name, f"scored(model) must map a batch as the model does ({len(x)}, 3), "
                                               f"finite, but gave {_describe(out)}")


STAGE_CHECKS: dict[str, Callable[[Component, Kind], None]] = {
    "model": _check_model_stage, "build": _check_build_stage, "loss": _check_loss_stage,
    "batch": _check_batch_stage, "training": _check_training_stage,
}
"""The check of a plugin kind's components, by the stage the kind plugs in at."""
