"""Component specs: frozen data describing one named component plus the factory that builds it.

Nothing here trains anything: the trainer asks these specs how to build and combine things. The
registries that hold them are in :mod:`nnbench.loading.catalogue`; the kinds of component and the
trial axes are declared in :mod:`nnbench.contract.domain`.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import TYPE_CHECKING, Any, Literal

from nnbench.contract.metrics import primary_metric
from nnbench.contract.trial import Trial

if TYPE_CHECKING:
    from pathlib import Path

    import torch
    from torch import nn

    from nnbench.tracking.records import TrackedRun

TaskKind = Literal["binary", "multiclass", "regression"]
Modality = Literal["vector", "image", "sequence"]

TASK_KINDS: tuple[TaskKind, ...] = ("binary", "multiclass", "regression")
MODALITIES: tuple[Modality, ...] = ("vector", "image", "sequence")
Stage = Literal["core", "model", "build", "loss", "batch", "training"]

STAGES: dict[str, str] = {
    "model": "given the model the architecture built from the trial's seed, before the loss's head is added: "
             "factory(model, **params) changes it in place or returns the module to use instead "
             "(initializers, weight normalisation)",
    "build": "passed to the architecture's build as the keyword argument named after the kind, "
             "build(..., KIND=partial(factory, **params)); an architecture whose build has no such parameter "
             "does not take the kind (normalisation layers)",
    "loss": "wraps the training criterion: factory(criterion, model, **params) returns the criterion that "
            "training minimizes, while held-out losses stay the plain criterion's (regularizers)",
    "batch": "transforms each training batch: factory(context, **params) returns transform(x, y), called once per "
             "step, which returns (x, y) or (x, loss), loss(outputs, criterion) giving the batch's training loss "
             "(augmentations; mixup adapts the loss); random draws come from context.generator",
    "training": "follows the optimization: factory(context, **params) returns an object whose optional methods "
                "after_step(model, optimizer), after_epoch(model, optimizer, epoch) and scored(model) the trainer "
                "calls; scored returns the module validation and test data score, or None for the model itself "
                "(weight averaging)",
}
"""Where a kind that a plugin declares plugs into a trial. ``core`` kinds are the ones the trainer
itself is written against (activation, loss, optimizer, architecture, task, schedule, device,
executor); plugins cannot declare one. Every stage's factory may also take the trial's
:class:`TrialContext` as a keyword argument named ``context`` (``batch`` and ``training`` factories
receive it first, positionally)."""


@dataclass(frozen=True)
class TrialContext:
    """What a stage component knows of the trial it plugs into.

    ``steps_per_epoch`` counts optimizer steps (batches of the rows it trains on, ``train_rows``);
    ``generator`` is a CPU ``torch.Generator`` seeded from the trial's seed and the component's kind, the
    component's own: its draws are the same wherever the trial trains, alone or in a stack, and do not
    move any other random stream."""

    trial: Trial
    task: Task
    epochs: int
    steps_per_epoch: int
    train_rows: int
    seed: int
    device: str
    generator: torch.Generator


def _frozen(params: Mapping[Any, Any] | None) -> Mapping[Any, Any]:
    return MappingProxyType(dict(params or {}))


@dataclass(frozen=True)
class Activation:
    """An activation function: ``factory()`` returns a fresh ``nn.Module``.

    ``vectorizable`` declares that the module works under ``torch.func.vmap`` (several seeds of a
    model trained as one stacked ensemble); leave it ``False`` when unsure.
    """

    name: str
    factory: Callable[[], nn.Module]
    description: str = ""
    vectorizable: bool = False
    elementwise: bool = False
    """Parameter-free and element-wise (each output entry depends on its own input entry only): seeds of one
    configuration that differ only in activations of this sort can share one stack, each member applying its
    own. Proven before each such stack trains, like every stack."""


@dataclass(frozen=True)
class TaskData:
    """In-memory tensors of a task, already split three ways and standardized.

    Inputs are float32 with shape ``(n, *task.input_shape)``. Targets are int64 class indices of
    shape ``(n,)`` for classification and float32 of shape ``(n, task.output_dim)`` for regression.
    Anything chosen during a run (a learning rate, an epoch) is chosen on the validation split; the
    test split is only ever measured.
    """

    x_train: torch.Tensor
    y_train: torch.Tensor
    x_val: torch.Tensor
    y_val: torch.Tensor
    x_test: torch.Tensor
    y_test: torch.Tensor
    x_own_val: torch.Tensor | None = None
    y_own_val: torch.Tensor | None = None
    """The task's own validation split, when it has one (``Task.own_validation``), standardized like the others:
    what ``--validation task`` selects on, while the training and the carved-out validation rows all train."""


@dataclass(frozen=True)
class Task:
    """A data set with a fixed split and a primary metric.

    ``input_shape`` is per sample: ``(features,)`` for vectors, ``(channels, height, width)`` for
    images and ``(steps, features)`` for sequences. ``views`` lists further modalities the inputs
    can be read as (an image is also a sequence of rows). ``load()`` must be deterministic.
    ``prepare(download)``, when given, is called once before a run trains the task: it fetches
    data when ``download`` is true and otherwise raises :class:`NNBenchError` saying what is
    missing and how to get it. ``target`` is the validation metric that counts as solved, for
    time-to-target (accuracy to reach, or RMSE to get under). ``reference`` is the metric of a trivial
    and of a perfect model, ``(trivial, perfect)``, on which scores are put on one scale across tasks
    (default: chance accuracy and 1 for classes; none for regression, whose tasks are scaled between
    the worst and best configurations reported). ``own_validation`` declares that ``load()`` returns the
    task's own validation split too (``TaskData.x_own_val``), which ``--validation task`` selects on.
    """

    name: str
    kind: TaskKind
    modality: Modality
    input_shape: tuple[int, ...]
    load: Callable[[], TaskData]
    description: str = ""
    num_classes: int = 0
    output_dim: int = 1
    views: tuple[Modality, ...] = ()
    default_loss: str = ""
    prepare: Callable[[bool], None] | None = None
    target: float | None = None
    reference: tuple[float, float] | None = None
    own_validation: bool = False

    def __post_init__(self) -> None:
        if self.kind not in TASK_KINDS:
            raise ValueError(f"task {self.name!r}: kind must be one of {TASK_KINDS}, not {self.kind!r}")
        if self.modality not in MODALITIES:
            raise ValueError(f"task {self.name!r}: modality must be one of {MODALITIES}")
        if self.kind != "regression" and self.num_classes < 2:
            raise ValueError(f"task {self.name!r}: a {self.kind} task needs num_classes >= 2")

    @property
    def metric(self) -> str:
        """Name of the primary held-out metric: ``accuracy`` or ``rmse`` (:data:`nnbench.contract.metrics.METRICS`)."""
        return primary_metric(self.kind).name

    @property
    def higher_is_better(self) -> bool:
        return primary_metric(self.kind).higher_is_better

    @property
    def reference_scores(self) -> tuple[float, float] | None:
        """``reference``, or chance accuracy and 1 for a classification task."""
        if self.reference is not None:
            return (float(self.reference[0]), float(self.reference[1]))
        return None if self.kind == "regression" else (1.0 / self.num_classes, 1.0)

    @property
    def all_views(self) -> tuple[Modality, ...]:
        return (self.modality, *[v for v in self.views if v != self.modality])

    def view_for(self, accepted: tuple[Modality, ...]) -> Modality:
        """The modality an architecture reading ``accepted`` sees: the task's own when it reads it, else the
        first further view it reads."""
        for view in self.all_views:
            if view in accepted:
                return view
        raise ValueError(f"task {self.name} offers {self.all_views}; the architecture reads {accepted}")

    def shape_as(self, view: Modality) -> tuple[int, ...]:
        """The per-sample input shape read as ``view`` (an image ``(C, H, W)`` as ``H`` steps of ``C * W``)."""
        if view == self.modality:
            return self.input_shape
        if view == "vector":
            return (math.prod(self.input_shape),)
        if self.modality == "image" and view == "sequence":
            channels, height, width = self.input_shape
            return (height, channels * width)
        raise ValueError(f"cannot read {self.modality} inputs as {view}")


@dataclass(frozen=True)
class Loss:
    """A training criterion and the contract between it, the model head and the targets.

    ``outputs(task)`` is the head width the loss needs; ``encode_target(y, task)`` turns a task's
    targets into what the criterion expects (one-hot floats for MSE on classes, ...);
    ``head`` names a final activation appended to the model (``sigmoid`` or ``log_softmax``).
    """

    name: str
    factory: Callable[[], nn.Module]
    kinds: frozenset[TaskKind]
    outputs: Callable[[Task], int]
    encode_target: Callable[[torch.Tensor, Task], torch.Tensor]
    description: str = ""
    head: Literal["none", "sigmoid", "log_softmax"] = "none"
    vectorizable: bool = False
    default_for: frozenset[TaskKind] = frozenset()
    """The task kinds for which this is the loss ``--loss default`` means, unless a task names its own."""


@dataclass(frozen=True)
class SearchRange:
    """Where tuning looks for a numeric hyper-parameter: ``low`` to ``high``, on a log scale or not."""

    low: float
    high: float
    log: bool = True

    def __post_init__(self) -> None:
        if not self.low < self.high or (self.log and self.low <= 0):
            raise ValueError(f"a search range needs 0 < low < high on a log scale, low < high otherwise: {self}")


@dataclass(frozen=True)
class Optimizer:
    """An optimizer: ``factory(params, lr=..., **params)`` returns a ``torch.optim.Optimizer``.

    ``needs_closure`` marks optimizers (LBFGS) whose ``step`` re-evaluates the loss.
    ``vectorizable`` declares an element-wise update (each parameter entry's step depends only on
    its own gradient history), so models stacked along a new leading dimension are updated
    exactly as if each were trained alone. ``tunable`` names the hyper-parameters ``--tune`` may
    search and where; ``lr`` defaults to two decades either side of ``default_lr``.
    """

    name: str
    factory: Callable[..., torch.optim.Optimizer]
    default_lr: float
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    needs_closure: bool = False
    vectorizable: bool = False
    tunable: Mapping[str, SearchRange] = field(default_factory=dict)

    def __post_init__(self) -> None:
        if not self.default_lr > 0:
            raise ValueError(f"optimizer {self.name!r}: default_lr must be > 0")
        object.__setattr__(self, "params", _frozen(self.params))
        tunable = {"lr": SearchRange(self.default_lr / 100, self.default_lr * 100), **self.tunable}
        object.__setattr__(self, "tunable", _frozen(tunable))


@dataclass(frozen=True)
class InputSpec:
    """What an architecture is built for: the modality it reads and the per-sample shape."""

    modality: Modality
    shape: tuple[int, ...]


@dataclass(frozen=True)
class Architecture:
    """A model family: ``build(input, outputs, activation, **params)`` returns an ``nn.Module``.

    ``modalities`` are the input modalities it reads, in order of preference; ``params`` are its
    default hyper-parameters, each overridable from the grid. ``vectorizable`` declares that its
    modules can be trained as a stacked ensemble of seeds (``stacks_from`` says from how many seeds that
    is faster, per device type). ``takes_activation`` is ``False``
    for a model with nonlinearities of its own: the activation axis does not apply to it, so its
    trials are not repeated per activation (their activation reads ``none``).
    """

    name: str
    build: Callable[..., nn.Module]
    modalities: tuple[Modality, ...]
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    vectorizable: bool = False
    takes_activation: bool = True
    cost: Callable[[InputSpec, int, Mapping[str, Any]], tuple[float, float]] | None = None
    """An estimate of a training step's work, ``cost(input_spec, outputs, params)`` -> (multiply-adds per sample
    of one forward pass, kernels launched per step); the planner trains the longest work first with it. Without
    one, items are ordered by the epoch times measured so far."""
    stacked_forms: Mapping[type, Callable[..., Any]] = field(default_factory=dict)
    """The stacked forms of this architecture's own module classes: ``{ModuleClass: form}``, where
    ``form(stack, module, prefix)`` returns the layer that computes ``module`` for every member of a
    :class:`~nnbench.training.stacking.StackedModel` (torch's own layers have theirs already)."""
    stacks_from: Mapping[str, int] = field(default_factory=dict)
    """The fewest seeds from which training them as one stack is faster than one by one, per device type
    (``cpu``, ``cuda``, ``mps``); fewer train one by one. A device type not listed stacks from two seeds."""

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))
        object.__setattr__(self, "stacked_forms", _frozen(self.stacked_forms))
        object.__setattr__(self, "stacks_from", _frozen(self.stacks_from))
        bad = [m for m in self.modalities if m not in MODALITIES]
        if bad or not self.modalities:
            raise ValueError(f"architecture {self.name!r}: modalities must be a non-empty subset of {MODALITIES}")


@dataclass(frozen=True)
class Schedule:
    """A learning-rate schedule: ``factory(optimizer, total_steps, **params)`` returns a
    ``torch.optim.lr_scheduler.LRScheduler`` that the trainer steps after every optimizer step, or
    ``None`` to leave the rate as it is."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))


@dataclass(frozen=True)
class Device:
    """A device trials can run on; ``name`` is what ``torch.device`` accepts (``cpu``, ``cuda:1``). Trials ask for
    a device's kind (``cuda``: any device of it where they train) or, on this machine, for the device itself."""

    name: str
    description: str = ""

    @property
    def is_accelerator(self) -> bool:
        return self.name != "cpu"


@dataclass(frozen=True)
class ExecutorOption:
    """A command-line option of one executor (``nnbench run --address``): its value reaches the
    executor as ``options.extra[name]`` (``None`` when not given)."""

    name: str
    help: str
    envvar: str | None = None

    @property
    def flag(self) -> str:
        return "--" + self.name.replace("_", "-")


@dataclass(frozen=True)
class ExecutorSpec:
    """A way of scheduling trials: ``factory()`` returns an executor (see :mod:`nnbench.contract.executor`);
    ``options`` are the command-line options it adds to ``nnbench run``, which reach it in ``plan.options``.

    ``check(options)``, when given, is called with those options before anything is planned or stored, and raises
    :class:`~nnbench.contract.errors.NNBenchError` with one line where the executor cannot run (its library is
    missing, an option is malformed). ``devices(options, log)``, when given, says where the executor's trials run
    when that is not this machine: called before the grid is planned (``log`` tells the user something in one
    line), it returns the devices there, one per kind (``cpu``, ``cuda``) with what stands behind it in its
    description, asking the cluster (it may connect, and wait for nodes); ``None``: this machine's devices. It
    raises an ``NNBenchError`` with one line when the cluster cannot be reached."""

    name: str
    factory: Callable[..., Any]
    description: str = ""
    options: tuple[ExecutorOption, ...] = ()
    scope: Literal["", "this_process", "local_workers"] = ""
    """Marks this machine's two executors: ``this_process`` trains in the run's own process, ``local_workers`` in
    worker processes it starts. When ``--executor`` is not given, the planner chooses between them as ``--workers``
    says."""
    check: Callable[[Mapping[str, Any]], None] | None = None
    devices: Callable[[Mapping[str, Any], Callable[[str], None]], Sequence[Device] | None] | None = None


@dataclass(frozen=True)
class ExporterSpec:
    """A tracker that stored results can be exported to: ``nnbench export --to NAME [-o OUTPUT] [RUN ...]``.

    ``export(runs, output)`` receives the chosen runs as :class:`nnbench.tracking.records.TrackedRun`
    (each with its trials, their curves and its seed groups with their intervals) and ``output``, the path
    given with ``-o`` (``None`` when none was given), and returns one line saying what it wrote. Exporting
    the same runs again must not duplicate anything: find a trial again by its ``trial_id``. It raises
    :class:`~nnbench.contract.errors.NNBenchError` with one line when the tracker cannot be written.
    ``output`` says what ``-o`` names for this tracker (``"a folder of event files"``); empty, the tracker
    takes no ``-o`` and writes where its library's own settings say.
    """

    name: str
    export: Callable[[Sequence[TrackedRun], Path | None], str]
    description: str = ""
    output: str = ""


@dataclass(frozen=True)
class Kind:
    """A kind of component: what a plugin declares through ``register_kinds`` to add one.

    ``stage`` says where its components plug into a trial (a key of :data:`STAGES`); ``default``
    names the component a trial takes when the grid names none. The default must leave a trial
    as it would be without the kind: it is never applied and never part of a trial's id, so
    results stored before the kind existed keep their ids and read as trained with it.
    ``aliases`` are further words for the kind on the command line (``nnbench list inits``).
    ``benchmark(component, device, shape)``, when given, returns the call ``nnbench micro``
    times for one component (forward and backward of its module on an input of ``shape``, say).
    """

    name: str
    plural: str
    stage: Stage
    default: str
    description: str = ""
    aliases: tuple[str, ...] = ()
    benchmark: Callable[..., Callable[[], None]] | None = None


@dataclass(frozen=True)
class Component:
    """A component of a kind declared through ``register_kinds`` (see :class:`Kind` and
    :data:`STAGES` for what ``factory`` is called with at each stage).

    ``params`` are its default hyper-parameters, each overridable from the grid (``--set
    KIND.NAME.PARAM=VALUE``). ``vectorizable`` declares that seeds using it can still be trained
    as one stacked ensemble. ``compatible(task, architecture)``, when given, returns why the
    component cannot be used with them (the combination is skipped with that reason), or ``None``.
    """

    kind: str
    name: str
    factory: Callable[..., Any]
    description: str = ""
    params: Mapping[str, Any] = field(default_factory=dict)
    vectorizable: bool = False
    compatible: Callable[[Task, Architecture], str | None] | None = None

    def __post_init__(self) -> None:
        object.__setattr__(self, "params", _frozen(self.params))


Spec = Activation | Loss | Optimizer | Architecture | Task | Schedule | Device | ExecutorSpec | ExporterSpec | Component
