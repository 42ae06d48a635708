"""A trial and what training it produced: the plain data every stage passes on.

:class:`Trial` is also where the core trial axes are declared, once: each field made with
:func:`~nnbench.contract.axes.axis` is an axis (:data:`TRIAL_AXES`), and the grid, the grid file, the
command line, the store and the analysis are derived from these declarations.
"""

from __future__ import annotations

import dataclasses
import hashlib
import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from functools import cached_property
from typing import Any

from nnbench.contract.axes import NAMES_HELP, Axis, axis, field_axes, marked_yours, short_label

TRIAL_FORMAT = 1  # bump when the meaning of a trial's fields changes, so ids change with it
VALIDATION = ("split", "task", "none")
"""What a trial's numbers are selected on (its ``validation`` axis): a held-out part of the training data, the
task's own validation split, or nothing (no selection at all)."""
CONSTANT_SCHEDULE = "constant"
"""The schedule of a trial that names none: the learning rate stays as set (in the id of every stored trial)."""


@dataclass(frozen=True, eq=False)
class Trial:
    """One fully specified training run.

    ``params`` holds the effective hyper-parameters of the architecture, the optimizer, the
    schedule and any other component that takes some (defaults merged with the grid's overrides),
    and, for trials of a tuning protocol, their role. ``clip`` is the gradient-norm limit (``None``:
    no clipping); ``patience`` stops training after that many epochs without a better validation
    metric (``None``: never). ``components`` names the trial's component of each kind that a plugin
    added (``{"initializer": "xavier_uniform"}``), left out where it is the kind's default.

    Two trials are equal when their ids are.
    """

    task: str = axis(kind="task", role="task", help=f"Tasks. {NAMES_HELP}")
    arch: str = axis(kind="architecture", effect=4, label="{}", help=f"Architectures. {NAMES_HELP}")
    activation: str = axis(kind="activation", effect=1, label="/{}", help=f"Activations. {NAMES_HELP}")
    loss: str = axis(kind="loss", default=("default",), keyword="default", effect=3, label="/{}",
                     help=f"Losses ('default': each task's own). {NAMES_HELP}")
    optimizer: str = axis(kind="optimizer", effect=2, label="/{}", help=f"Optimizers. {NAMES_HELP}")
    lr: float = axis(default=("default",), keyword="default", noun="learning rates", effect=5, label="@{:g}",
                     help="Learning rates, comma-separated ('default': each optimizer's own).")
    batch_size: int = axis(default=(32,), noun="batch size", help="Mini-batch sizes, comma-separated.")
    epochs: int = axis(default=(15,), help="Training epochs per trial, comma-separated.")
    seed: int = axis(role="seed", grid_key="seeds", default=(3,), count=True,
                     help="Seeds per configuration (0 .. N-1).")
    device: str = axis(field_default="cpu", default=("cpu",), help="Devices, comma-separated: auto, all, cpu, cuda, "
                                                                    "cuda:N, mps.")
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict)
    schedule: str = axis(field_default=CONSTANT_SCHEDULE, kind="schedule", default=(CONSTANT_SCHEDULE,), effect=6,
                         label="+{}", label_unless=CONSTANT_SCHEDULE, help=f"Learning-rate schedules. {NAMES_HELP}")
    clip: float | None = axis(field_default=None, default=("none",), keyword="none", effect=7, label=" clip {:g}",
                              label_unless=None,
                              noun="gradient clipping limits",
                              help="Gradient-norm clipping limits, comma-separated ('none': no clipping).")
    patience: int | None = axis(field_default=None, default=("none",), keyword="none",
                                help="Early stopping: stop after this many epochs without a better validation "
                                     "metric (the best epoch's weights are kept); 'none': train every epoch.")
    validation: str = axis(field_default="split", default=("split",), neutral="split", choices=VALIDATION,
                           effect=8, label=" validation {}", label_unless="split",
                           help="What the trials are selected on: 'split' (a part of the training data held out, "
                                "the default), 'task' (the task's own validation split) or 'none' (no selection: "
                                "the whole training split trains and the last epoch is reported).")
    shuffle: str = axis(field_default="true", default=("true",), neutral="true", choices=("true", "false"), effect=9,
                        label=" unshuffled", label_unless="true",
                        help="Whether each epoch draws its batches in a new order ('true', from the trial's "
                             "seed) or keeps the data's order ('false').")
    components: Mapping[str, str] = field(default_factory=dict)

    def config(self) -> dict[str, Any]:
        """The canonical, JSON-ready form of this trial."""
        out: dict[str, Any] = {}
        for ax in TRIAL_AXES:
            value = getattr(self, ax.name)
            if ax.in_id(value):
                out[ax.name] = value
        out["params"] = {k: dict(v) for k, v in sorted(self.params.items())}
        out.update(sorted(self.components.items()))
        return out

    @cached_property
    def trial_id(self) -> str:
        """A stable id: the hash of the canonical form, the same in every process and session."""
        canonical = json.dumps({"format": TRIAL_FORMAT, **self.config()}, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    def key_without(self, *axes: str) -> str:
        """The id this trial would have with the values of ``axes`` (and the code versions of their components)
        left out: what trials that differ only on those axes have in common."""
        config = {**self.config(), **dict.fromkeys(axes, "*")}
        code = {k: v for k, v in config["params"].get("code", {}).items() if k not in axes}
        config["params"] = {**config["params"], "code": code}
        return Trial.from_config(config).trial_id

    @cached_property
    def configuration_key(self) -> str:
        """The trial without its seed: the id its seed-0 twin has, the same for every seed of a configuration."""
        return self.trial_id if self.seed == 0 else Trial.from_config({**self.config(), "seed": 0}).trial_id

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Trial) and other.trial_id == self.trial_id

    def __hash__(self) -> int:
        return hash(self.trial_id)

    def __getstate__(self) -> dict[str, Any]:
        return {k: v for k, v in self.__dict__.items() if k not in ("trial_id", "configuration_key")}

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Trial:
        """The trial whose :meth:`config` is ``config`` (keys that are not fields are components)."""
        known = {f.name for f in dataclasses.fields(cls)} - {"components"}
        return cls(**{k: v for k, v in config.items() if k in known - {"params"}},
                   params=dict(config.get("params", {})),
                   components={k: v for k, v in config.items() if k not in known})

    def value(self, name: str) -> Any:
        """The trial's value on the axis ``name`` (a component of a plugin's kind: ``None`` when it is the
        kind's default)."""
        if name in AXIS_FIELDS:
            return getattr(self, name)
        return self.components.get(name)

    def label(self) -> str:
        """A short human-readable name, without the seed."""
        code = self.params.get("code", {})
        own = short_label(marked_yours({ax.name: getattr(self, ax.name) for ax in TRIAL_AXES}, code), TRIAL_AXES)
        components = marked_yours(dict(self.components), code)
        return own + "".join(f" {kind}={name}" for kind, name in sorted(components.items()))


TRIAL_AXES: tuple[Axis, ...] = field_axes(Trial)
"""The core trial axes, in field order."""
AXIS_FIELDS = frozenset(ax.name for ax in TRIAL_AXES)


@dataclass(frozen=True)
class Skipped:
    """A combination of the grid that will not be trained, and why."""

    combination: Mapping[str, Any]
    reason: str


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of one trial. ``metric`` is the task's primary metric on the test split,
    ``val_metric`` the same metric on the validation split."""

    epoch: int
    train_loss: float
    test_loss: float
    metric: float
    epoch_time: float
    val_loss: float | None = None
    val_metric: float | None = None
    accuracy: float | None = None
    rmse: float | None = None
    r2: float | None = None


@dataclass
class TrialResult:
    """What training a trial produced. ``status`` is ``ok``, ``diverged``, ``failed``, ``timeout``, or ``pruned``
    (a race stopped its configuration before this trial trained: neither failed nor finished)."""

    trial: Trial
    status: str
    metric_name: str = ""
    metric: float | None = None
    train_loss: float | None = None
    test_loss: float | None = None
    val_loss: float | None = None
    val_metric: float | None = None
    accuracy: float | None = None
    rmse: float | None = None
    r2: float | None = None
    n_params: int | None = None
    train_time: float = 0.0
    throughput: float | None = None
    peak_memory: int | None = None
    best_epoch: int | None = None
    error: str | None = None
    curve: list[EpochRecord] = field(default_factory=list)
    training: dict[str, Any] | None = None
    """How the trial was trained (JSON-ready; ``None`` for results stored before it was recorded):
    ``mode`` (``stacked`` or ``one_by_one``), ``members`` (trials trained together as one stack), the
    measured ``ratio`` of stacked to one-by-one speed or the ``reason`` it was not measured, and from
    the executor ``concurrent`` (work items training on the same device at once, itself included) and
    ``slots`` (how many could without sharing it: one per accelerator, the cores a CPU gives its
    workers)."""
    race: dict[str, Any] | None = None
    """Why a race pruned the trial (status ``pruned``; JSON-ready): the ``rung``, the ``epoch`` and the ``seeds``
    its configuration's evidence was read at, the configuration it was shown worse than (``against``), the
    ``mean_difference`` of their validation scores over those seeds, the ``rope``, the Holm-adjusted ``p_value``
    and the ``alpha`` it was compared with. ``None`` for every trial a race did not prune."""

    def summary(self) -> dict[str, Any]:
        """Flat, JSON-ready fields (no curve, no trial; ``training`` is a dict)."""
        out = asdict(self)
        out.pop("trial")
        out.pop("curve")
        return out
