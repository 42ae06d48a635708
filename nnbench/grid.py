"""Grid specs and their expansion into trials.

A :class:`GridSpec` holds the axes a user asked for; :func:`expand_grid` turns it into every
compatible :class:`Trial` plus a list of :class:`Skipped` combinations with the reason for each.
"""

from __future__ import annotations

import dataclasses
import hashlib
import inspect
import itertools
import json
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnbench.components import Catalogue, Task
from nnbench.errors import NNBenchError

AXES = ("task", "arch", "activation", "loss", "optimizer", "lr", "device", "schedule", "clip")
COMPONENT_AXES = {"task": "task", "arch": "architecture", "activation": "activation", "loss": "loss",
                  "optimizer": "optimizer", "schedule": "schedule"}
PARAM_KINDS = {"arch": "architecture", "optimizer": "optimizer", "schedule": "schedule"}
TRIAL_FORMAT = 1  # bump when the meaning of a trial's fields changes, so ids change with it

DEFAULT_GRID: dict[str, Any] = {
    "task": ["spirals", "digits", "sine"],
    "arch": ["fnn", "cnn", "lstm"],
    "activation": ["relu", "tanh", "gelu"],
    "loss": ["default"],
    "optimizer": ["sgd", "adam"],
    "lr": ["default"],
    "seeds": 3,
    "epochs": 15,
    "batch_size": 32,
    "device": ["cpu"],
    "schedule": ["constant"],
    "clip": ["none"],
}
"""The grid ``nnbench run`` uses for every axis that neither a grid file nor a flag sets."""


class GridWarning(UserWarning):
    """Something in the grid that is allowed but probably not meant."""


class GridError(NNBenchError):
    """A grid that cannot be expanded: unknown names, bad values, nothing compatible."""


@dataclass(frozen=True)
class Trial:
    """One fully specified training run.

    ``params`` holds the effective hyper-parameters of the architecture, the optimizer and the
    schedule (defaults merged with the grid's overrides), and, for trials of a tuning protocol,
    their role. ``clip`` is the gradient-norm limit (``None``: no clipping); ``patience`` stops
    training after that many epochs without a better validation metric (``None``: never).
    """

    task: str
    arch: str
    activation: str
    loss: str
    optimizer: str
    lr: float
    batch_size: int
    epochs: int
    seed: int
    device: str = "cpu"
    params: Mapping[str, Mapping[str, Any]] = field(default_factory=dict, hash=False, compare=False)
    schedule: str = "constant"
    clip: float | None = None
    patience: int | None = None

    def config(self) -> dict[str, Any]:
        """The canonical, JSON-ready form of this trial."""
        return {
            "task": self.task,
            "arch": self.arch,
            "activation": self.activation,
            "loss": self.loss,
            "optimizer": self.optimizer,
            "lr": self.lr,
            "batch_size": self.batch_size,
            "epochs": self.epochs,
            "seed": self.seed,
            "device": self.device,
            "schedule": self.schedule,
            "clip": self.clip,
            "patience": self.patience,
            "params": {k: dict(v) for k, v in sorted(self.params.items())},
        }

    @property
    def trial_id(self) -> str:
        """A stable id: the hash of the canonical form, the same in every process and session."""
        canonical = json.dumps({"format": TRIAL_FORMAT, **self.config()}, sort_keys=True, default=str)
        return hashlib.sha256(canonical.encode()).hexdigest()[:16]

    @classmethod
    def from_config(cls, config: Mapping[str, Any]) -> Trial:
        return cls(**{**config, "params": dict(config.get("params", {}))})

    def label(self) -> str:
        """A short human-readable name, without the seed."""
        schedule = "" if self.schedule == "constant" else f"+{self.schedule}"
        clip = "" if self.clip is None else f" clip {self.clip:g}"
        return f"{self.arch}/{self.activation}/{self.loss}/{self.optimizer}@{self.lr:g}{schedule}{clip}"


@dataclass(frozen=True)
class Skipped:
    """A combination of the grid that will not be trained, and why."""

    combination: Mapping[str, Any]
    reason: str


@dataclass
class GridSpec:
    """The axes of a grid. List axes hold component names (``lr`` holds floats or ``"default"``)."""

    task: list[str]
    arch: list[str]
    activation: list[str]
    loss: list[str]
    optimizer: list[str]
    lr: list[float | str]
    seeds: int
    epochs: int
    batch_size: int
    device: list[str] = field(default_factory=lambda: ["cpu"])
    schedule: list[str] = field(default_factory=lambda: ["constant"])
    clip: list[float | str] = field(default_factory=lambda: ["none"])  # gradient-norm limits; "none": no clipping
    patience: int | None = None  # early stopping on validation; None: train every epoch
    tune: list[str] = field(default_factory=list)  # hyper-parameters to tune, e.g. ["lr"]
    budget: int | None = None  # tuning trials per configuration
    target_metric: dict[str, float] = field(default_factory=dict)  # task (or "*") -> validation target
    exclude: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    target: str | None = None  # the column to predict, for csv: tasks
    kind: str | None = None  # binary, multiclass or regression for csv: tasks (inferred when None)

    def to_dict(self) -> dict[str, Any]:
        return {k: getattr(self, k) for k in self.__dataclass_fields__}

    def validate(self, catalogue: Catalogue) -> None:
        """Raise :class:`GridError` naming the first bad value and what would be right."""
        for name, value in (("seeds", self.seeds), ("epochs", self.epochs), ("batch size", self.batch_size)):
            if not isinstance(value, int) or isinstance(value, bool) or value < 1:
                raise GridError(f"{name} must be an integer >= 1, not {value!r}")
        for axis, keyword in (("lr", "default"), ("clip", "none"), ("device", None)):
            if not getattr(self, axis):
                raise GridError(f"the {axis} axis is empty; give at least one value"
                                + (f" (or {keyword!r})" if keyword else ""))
        for lr in self.lr:
            if lr != "default" and not _positive_number(lr):
                raise GridError(f"learning rates must be finite numbers > 0 or 'default', not {lr!r}")
        for clip in self.clip:
            if clip != "none" and not _positive_number(clip):
                raise GridError(f"gradient clipping limits must be finite numbers > 0 or 'none', not {clip!r}")
        if self.patience is not None and (not isinstance(self.patience, int) or self.patience < 1):
            raise GridError(f"patience must be an integer >= 1 (epochs without improvement), not {self.patience!r}")
        if self.tune and (self.budget is None or self.budget < 1):
            raise GridError("--tune needs --budget N, the number of tuning trials each configuration gets (N >= 1)")
        if self.budget is not None and not self.tune:
            raise GridError("--budget sets how many tuning trials each configuration gets; add --tune lr (or "
                            "another tunable hyper-parameter)")
        if "lr" in self.tune and self.lr != ["default"]:
            raise GridError("--tune lr searches the learning rate over each optimizer's declared range; "
                            "drop --lr (or tune other hyper-parameters only)")
        for axis, kind in COMPONENT_AXES.items():
            if axis == "loss":
                continue
            names = getattr(self, axis)
            if not names:
                raise GridError(f"the {axis} axis is empty; give at least one {kind}")
            registry = catalogue.registry(kind)
            for name in names:
                registry.get(name)  # raises with the closest match and what is available
        if not self.loss:
            raise GridError("the loss axis is empty; give a loss or 'default' (each task's own loss)")
        for name in self.loss:
            if name != "default":
                catalogue.losses.get(name)
        for rule in self.exclude:
            unknown = set(rule) - set(AXES)
            if unknown or not rule:
                raise GridError(
                    f"exclude rule {rule!r} must name only the axes {', '.join(AXES)}"
                )
        for kind, per_component in self.overrides.items():
            if kind not in PARAM_KINDS:
                raise GridError(
                    f"hyper-parameter overrides are for {' and '.join(PARAM_KINDS)}, not {kind!r}"
                )
            registry = catalogue.registry(PARAM_KINDS[kind])
            for name, values in per_component.items():
                spec = registry.get(name)
                inputs = {"arch": 3, "optimizer": 1, "schedule": 2}[kind]
                accepted = _keyword_names(spec.build if kind == "arch" else spec.factory, inputs)
                if accepted is None:  # the factory takes **kwargs: nothing to check here
                    continue
                accepted |= set(spec.params)
                missing = sorted(set(values) - accepted)
                if missing:
                    raise GridError(
                        f"{PARAM_KINDS[kind]} {name!r} has no hyper-parameter {missing[0]!r}; it takes: "
                        f"{', '.join(sorted(accepted)) or 'none'}"
                    )


def _positive_number(value: Any) -> bool:
    return isinstance(value, int | float) and not isinstance(value, bool) and math.isfinite(value) and value > 0


def _keyword_names(factory: Any, inputs: int) -> set[str] | None:
    """Hyper-parameters a factory accepts after its ``inputs`` positional inputs (and ``lr``),
    or ``None`` when it accepts any keyword (``**kwargs``)."""
    try:
        parameters = list(inspect.signature(factory).parameters.values())[inputs:]
    except (TypeError, ValueError):
        return None
    if any(p.kind is p.VAR_KEYWORD for p in parameters):
        return None
    return {p.name for p in parameters if p.kind in (p.KEYWORD_ONLY, p.POSITIONAL_OR_KEYWORD)} - {"lr"}


def _matching_rules(combinations: Sequence[Mapping[str, Any]], rules: Sequence[Mapping[str, Any]]) -> list[int]:
    """Indexes of the exclude rules that match any of ``combinations`` (one combination in the
    grid's own words, one resolved)."""
    return [i for i, rule in enumerate(rules)
            if any(all(combination.get(k) == v for k, v in rule.items()) for combination in combinations)]


def incompatibility(catalogue: Catalogue, task: Task, arch: str, loss: str) -> str | None:
    """Why ``arch`` with ``loss`` cannot train ``task``, or ``None`` when they can."""
    architecture = catalogue.architectures.get(arch)
    if not set(task.all_views) & set(architecture.modalities):
        return (
            f"architecture {arch} reads {'/'.join(architecture.modalities)} inputs; task {task.name} "
            f"offers {'/'.join(task.all_views)}"
        )
    spec = catalogue.losses.get(loss)
    if task.kind not in spec.kinds:
        return f"loss {loss} trains {'/'.join(sorted(spec.kinds))} tasks; task {task.name} is {task.kind}"
    return None


def resolve_patterns(grid: GridSpec, catalogue: Catalogue) -> GridSpec:
    """Replace ``all`` and wildcards (``adam*``) on the component axes by the names they match."""
    resolved = dataclasses.replace(grid)
    for axis, kind in COMPONENT_AXES.items():
        names: list[str] = []
        for name in getattr(grid, axis):
            if not name.startswith("csv:") and (name == "all" or any(ch in name for ch in "*?[")):
                matches = catalogue.registry(kind).names("*" if name == "all" else name)
                if not matches:
                    raise GridError(f"no {kind} matches {name!r}; available: {', '.join(catalogue.registry(kind))}")
                names += matches
            else:
                names.append(name)
        setattr(resolved, axis, list(dict.fromkeys(names)))
    return resolved


def expand_grid(
    grid: GridSpec, catalogue: Catalogue, task_params: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[list[Trial], list[Skipped]]:
    """Every compatible trial of ``grid`` (seeds innermost) and the combinations skipped.

    ``task_params`` holds what identifies a task beyond its name (a CSV file's target and
    checksum); it becomes part of each trial. Raises :class:`GridError` when no combination is
    compatible, explaining why.
    """
    grid = resolve_patterns(grid, catalogue)
    grid.validate(catalogue)
    trials: list[Trial] = []
    skipped: list[Skipped] = []
    used_rules: set[int] = set()
    for task_name, arch, activation, loss_name, opt_name, lr_value, device, schedule, clip_value in itertools.product(
        grid.task, grid.arch, grid.activation, grid.loss, grid.optimizer, grid.lr, grid.device, grid.schedule,
        grid.clip,
    ):
        task = catalogue.tasks.get(task_name)
        loss = task.default_loss if loss_name == "default" else loss_name
        optimizer = catalogue.optimizers.get(opt_name)
        lr = float(optimizer.default_lr if lr_value == "default" else lr_value)
        clip = None if clip_value == "none" else float(clip_value)
        combination = {"task": task_name, "arch": arch, "activation": activation, "loss": loss,
                       "optimizer": opt_name, "lr": lr, "device": device, "schedule": schedule, "clip": clip}
        matched = _matching_rules(
            [{**combination, "lr": lr_value, "clip": clip_value, "loss": loss_name}, combination], grid.exclude)
        if matched:
            used_rules.update(matched)
            skipped.append(Skipped(combination, "excluded by the grid"))
            continue
        reason = incompatibility(catalogue, task, arch, loss)
        if reason:
            skipped.append(Skipped(combination, reason))
            continue
        params = {
            "arch": {**catalogue.architectures.get(arch).params, **grid.overrides.get("arch", {}).get(arch, {})},
            "optimizer": {**optimizer.params, **grid.overrides.get("optimizer", {}).get(opt_name, {})},
            "schedule": {**catalogue.schedules.get(schedule).params,
                         **grid.overrides.get("schedule", {}).get(schedule, {})},
        }
        if task_params and task_name in task_params:
            params["task"] = dict(task_params[task_name])
        for seed in range(grid.seeds):
            trials.append(Trial(task_name, arch, activation, loss, opt_name, lr, grid.batch_size, grid.epochs,
                                seed, device, params, schedule, clip, grid.patience))
    for i, rule in enumerate(grid.exclude):
        if i not in used_rules:
            warnings.warn(f"exclude rule {rule} matches no combination of this grid (a misspelled name or "
                          "value?)", GridWarning, stacklevel=2)
    trials = list({t.trial_id: t for t in trials}.values())  # "default" may coincide with a listed lr
    if not trials:
        reasons = sorted({s.reason for s in skipped})
        raise GridError(
            "no combination in the grid is compatible, so there is nothing to train:\n  "
            + "\n  ".join(reasons[:10])
        )
    return trials, skipped
