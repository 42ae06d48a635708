"""Grid specs and their expansion into trials.

A :class:`GridSpec` holds the values a user asked for on every axis of the session's domain;
:func:`expand_grid` turns it into every compatible :class:`Trial` plus a list of :class:`Skipped`
combinations with the reason for each. Nothing here names an axis except where a keyword gets its
meaning (a task's own loss, an optimizer's own learning rate).
"""

from __future__ import annotations

import inspect
import itertools
import math
import warnings
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnbench.contract.axes import Axis
from nnbench.contract.domain import Domain, KindRecord
from nnbench.contract.errors import NNBenchError, echoed
from nnbench.contract.specs import Architecture, Component, Task
from nnbench.contract.trial import Skipped, Trial
from nnbench.loading.catalogue import Catalogue

FACTORY_INPUTS = {"architecture": 3, "optimizer": 1, "schedule": 2, "model": 1, "loss": 2, "batch": 1, "training": 1}
"""How many positional inputs a kind's factory takes before its hyper-parameters (the stage's, for a
plugin's kind; ``build`` is the kind's own contract with the architectures and is not checked)."""


def default_grid(domain: Domain) -> dict[str, Any]:
    """The grid ``nnbench run`` uses for every axis that neither a grid file nor a flag sets."""
    return {ax.grid_key: ax.default[0] if ax.count else list(ax.default) for ax in domain.axes}


MAX_NESTING = 32
"""How deeply lists and tables may nest in a value of a grid (a hyper-parameter is rarely past 2)."""
MAX_TRIALS = 100_000
"""How many trials a grid may expand to unless the run raises the bound (``--max-trials``)."""


def value_problem(value: Any) -> str | None:
    """Why ``value`` (a hyper-parameter, a grid file's content) cannot be part of a trial, or ``None``:
    a number that is not finite, which no store can hold, or nesting past :data:`MAX_NESTING`. Walks
    the value without recursion, so no depth makes it fail."""
    stack: list[tuple[Any, int]] = [(value, 0)]
    while stack:
        item, depth = stack.pop()
        if depth > MAX_NESTING:
            return f"nests lists or tables more than {MAX_NESTING} levels deep"
        if isinstance(item, float) and not math.isfinite(item):
            return f"holds {item}, which is not a finite number"
        if isinstance(item, Mapping):
            stack += [(v, depth + 1) for v in item.values()]
        elif isinstance(item, list | tuple | set | frozenset):
            stack += [(v, depth + 1) for v in item]
    return None


class GridWarning(UserWarning):
    """Something in the grid that is allowed but probably not meant."""


class GridError(NNBenchError):
    """A grid that cannot be expanded: unknown names, bad values, nothing compatible."""


@dataclass
class GridSpec:
    """The axes of a grid: ``values`` maps each axis (but the seed) to its values in the grid's own
    words (component names, numbers, keywords such as ``default`` and ``none``); ``seeds`` is how
    many seeds each configuration gets."""

    values: dict[str, list[Any]]
    seeds: int
    tune: list[str] = field(default_factory=list)  # hyper-parameters to tune, e.g. ["lr"]
    budget: int | None = None  # tuning trials per configuration
    target_metric: dict[str, float] = field(default_factory=dict)  # task (or "*") -> validation target
    exclude: list[dict[str, Any]] = field(default_factory=list)
    overrides: dict[str, dict[str, dict[str, Any]]] = field(default_factory=dict)
    target: str | None = None  # the column to predict, for csv: tasks
    kind: str | None = None  # binary, multiclass or regression for csv: tasks (inferred when None)
    max_trials: int | None = None  # the bound on the grid's size (None: MAX_TRIALS); not part of the grid

    def __getitem__(self, axis: str) -> list[Any]:
        return self.values[axis]

    def with_values(self, axis: str, values: list[Any]) -> GridSpec:
        """A copy with ``axis`` set to ``values``."""
        return GridSpec(**{**self.__dict__, "values": {**self.values, axis: list(values)}})

    def to_dict(self) -> dict[str, Any]:
        """JSON-ready, keyed as in a grid file (``seeds``, ``batch_size``): what a run stores."""
        out: dict[str, Any] = dict(self.values)
        out["seeds"] = self.seeds
        out.update(tune=self.tune, budget=self.budget, target_metric=self.target_metric, exclude=self.exclude,
                   overrides=self.overrides, target=self.target, kind=self.kind)
        return out

    def validate(self, catalogue: Catalogue) -> None:
        """Raise :class:`GridError` naming the first bad value and what would be right."""
        domain = catalogue.domain
        if not isinstance(self.seeds, int) or isinstance(self.seeds, bool) or self.seeds < 1:
            raise GridError(f"seeds must be an integer >= 1, not {self.seeds!r}")
        for ax in domain.axes:
            if ax.count:
                continue
            values = self.values.get(ax.name, [])
            if not values:
                what = f"one {ax.kind}" if ax.kind else "one value"
                keyword = f" (or {ax.keyword!r})" if ax.keyword else ""
                raise GridError(f"the {ax.grid_key} axis is empty; give at least {what}{keyword}")
            for value in values:
                problem = ax.problem(value)
                if problem:
                    keyword = f" or {ax.keyword!r}" if ax.keyword else ""
                    raise GridError(f"{ax.noun} {problem}{keyword}, not {value!r}")
                if ax.kind is not None and value != ax.keyword:
                    catalogue.registry(ax.kind).get(value)  # raises with the closest match and what is available
        if self.tune and (self.budget is None or self.budget < 1):
            raise GridError("--tune needs --budget N, the number of tuning trials each configuration gets (N >= 1)")
        if self.budget is not None and not self.tune:
            raise GridError("--budget sets how many tuning trials each configuration gets; add --tune lr (or "
                            "another tunable hyper-parameter)")
        if "lr" in self.tune and self.values.get("lr") != ["default"]:
            raise GridError("--tune lr searches the learning rate over each optimizer's declared range; "
                            "drop --lr (or tune other hyper-parameters only)")
        self._validate_protocol()
        names = [ax.name for ax in domain.axes if not ax.count]
        for rule in self.exclude:
            unknown = set(rule) - set(names)
            if unknown or not rule:
                raise GridError(f"exclude rule {rule!r} must name only the axes {', '.join(names)}")
        self._validate_overrides(catalogue)

    def _validate_protocol(self) -> None:
        """``--validation none`` leaves nothing to select on: refuse what would select."""
        if "none" not in self.values.get("validation", []):
            return
        selecting = [what for what, given in (
            ("--patience (early stopping picks an epoch on validation data)",
             any(p not in ("none", None) for p in self.values.get("patience", []))),
            ("--tune (tuning picks a setting on validation data)", bool(self.tune)),
            ("--target-metric (time-to-target reads validation scores)", bool(self.target_metric)),
        ) if given]
        if selecting:
            raise GridError(f"--validation none holds no data out, but {selecting[0]} needs it; drop it or use "
                            "--validation split (or task, for tasks with a validation split of their own)")

    def _validate_overrides(self, catalogue: Catalogue) -> None:
        param_axes = catalogue.domain.param_axes
        for axis_name, per_component in self.overrides.items():
            if axis_name not in param_axes:
                raise GridError(f"hyper-parameter overrides are for {', '.join(param_axes)}, not {axis_name!r}")
            record = param_axes[axis_name]
            registry = catalogue.registry(record.name)
            for name, values in per_component.items():
                spec = registry.get(name)
                accepted = hyper_parameters(spec, record, catalogue.domain)
                if accepted is None:  # the factory takes **kwargs (or its inputs are the kind's own): no check
                    continue
                missing = sorted(set(values) - accepted)
                if missing:
                    raise GridError(
                        f"{record.name} {name!r} has no hyper-parameter {missing[0]!r}; it takes: "
                        f"{', '.join(sorted(accepted)) or 'none'}"
                    )


def hyper_parameters(spec: Any, record: KindRecord, domain: Domain) -> set[str] | None:
    """The hyper-parameters ``spec`` (a component of ``record``'s kind) accepts, or ``None`` when its
    factory accepts any keyword or its inputs are not known."""
    inputs = FACTORY_INPUTS.get(record.name, FACTORY_INPUTS.get(record.stage))
    if inputs is None:
        return None
    factory = spec.build if isinstance(spec, Architecture) else spec.factory
    accepted = _keyword_names(factory, inputs)
    if accepted is None:
        return None
    accepted -= {"context"}  # a stage's trial context, given by the trainer, not a hyper-parameter
    return (accepted | set(spec.params)) - {r.name for r in domain.stage_kinds("build")}


def _check_params(record: KindRecord, spec: Any, params: Mapping[str, Any], catalogue: Catalogue) -> None:
    """Every hyper-parameter a trial of ``spec`` gets (a plugin's defaults merged with the grid's
    overrides) is a value a trial can hold."""
    for key, value in params.items():
        problem = value_problem(value)
        if problem:
            plugin = catalogue.registry(record.name).plugin_of(spec.name)
            raise GridError(f"hyper-parameter {key!r} of {record.name} {spec.name!r} (plugin {plugin!r}, or the grid's "
                            f"override) {problem}; give a finite value")


def count_trials(grid: GridSpec, domain: Domain) -> int:
    """How many trials ``grid`` can expand to at most (before compatibility and exclusions), with
    the tuning trials: counted, not built, so that a grid of a billion seeds is refused at once."""
    configurations = math.prod(len(grid.values.get(ax.name, ax.default)) for ax in domain.axes if not ax.count)
    if not grid.tune:
        return configurations * grid.seeds
    # the defaults over the seeds, the budget's tuning trials, the selected setting over the seeds
    return configurations * (2 * grid.seeds + (grid.budget or 0))


def check_size(grid: GridSpec, domain: Domain) -> None:
    """Refuse a grid of more than ``grid.max_trials`` trials (default :data:`MAX_TRIALS`), saying how
    to raise the bound."""
    bound = MAX_TRIALS if grid.max_trials is None else grid.max_trials
    if isinstance(bound, bool) or not isinstance(bound, int) or bound < 1:
        raise GridError(f"--max-trials must be a whole number >= 1 (the most trials the grid may have), not {bound!r}")
    count = count_trials(grid, domain)
    if count > bound:
        sizes = " x ".join(f"{len(grid.values.get(ax.name, ax.default))} {ax.grid_key}" for ax in domain.axes
                           if not ax.count and len(grid.values.get(ax.name, ax.default)) > 1)
        raise GridError(f"the grid has up to {count:,} trials ({sizes + ' x ' if sizes else ''}{grid.seeds:,} seeds"
                        f"{', with tuning' if grid.tune else ''}), more than the bound of {bound:,}; narrow the grid "
                        "or raise the bound with --max-trials N")


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


def takes_keyword(build: Any, name: str) -> bool:
    """Whether an architecture's ``build`` has a parameter called ``name``."""
    try:
        parameter = inspect.signature(build).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)


def incompatibility(catalogue: Catalogue, task: Task, arch: str, loss: str,
                    components: Mapping[str, str] | None = None) -> str | None:
    """Why ``arch`` with ``loss`` (and the plugin kinds' ``components``) cannot train ``task``, or ``None``."""
    architecture = catalogue.architectures.get(arch)
    if not set(task.all_views) & set(architecture.modalities):
        return (
            f"architecture {arch} reads {'/'.join(architecture.modalities)} inputs; task {task.name} "
            f"offers {'/'.join(task.all_views)}"
        )
    spec = catalogue.losses.get(loss)
    if task.kind not in spec.kinds:
        return f"loss {loss} trains {'/'.join(sorted(spec.kinds))} tasks; task {task.name} is {task.kind}"
    for kind, name in (components or {}).items():
        record = catalogue.domain.kind(kind)
        component: Component = catalogue.registry(kind).get(name)
        if record.stage == "build" and not takes_keyword(architecture.build, kind):
            takers = [a for a in catalogue.architectures if takes_keyword(catalogue.architectures.get(a).build, kind)]
            return (f"architecture {arch} takes no {kind}, so {kind} {name} cannot apply; "
                    f"architectures that do: {', '.join(takers) or 'none'}")
        if component.compatible is not None:
            reason = component.compatible(task, architecture)
            if reason:
                return f"{kind} {name}: {reason}"
    return None


OWN_ACTIVATION = "none"
"""The activation of a trial whose architecture builds its own nonlinearities (``takes_activation=False``)."""


def code_versions(catalogue: Catalogue, chosen: Mapping[str, Any], components: Mapping[str, str]) -> dict[str, str]:
    """Axis -> the code of the trial's component on it, for every component that is not built in (a plugin's
    distribution and version, a session's source hash): part of the trial's id, so that edited code is
    trained again. Built-in components add nothing, so their trials keep their ids."""
    versions = {}
    for ax in catalogue.domain.component_axes:
        name = chosen.get(ax.name)
        if not isinstance(name, str) or (ax.name == "activation" and name == OWN_ACTIVATION):
            continue
        if catalogue.domain.kind_of(ax.name) in catalogue.domain.plugin_kinds and ax.name not in components:
            continue  # a kind's default is never applied
        code = catalogue.registry(ax.kind or "").code_of(name)
        if code is not None:
            versions[ax.name] = code
    return versions


def resolve_patterns(grid: GridSpec, catalogue: Catalogue) -> GridSpec:
    """Replace ``all`` and wildcards (``adam*``) on the component axes by the names they match, and
    every name by the name it was registered under (``ReLU`` -> ``relu``). An axis the grid does not
    mention (a kind of a plugin loaded after the grid was built) takes its default."""
    values = {ax.name: list(grid.values.get(ax.name, ax.default)) for ax in catalogue.domain.axes if not ax.count}
    for ax in catalogue.domain.component_axes:
        if ax.name not in values:
            continue
        registry = catalogue.registry(ax.kind or "")
        names: list[str] = []
        for name in values[ax.name]:
            if not isinstance(name, str) or name.startswith("csv:") or name == ax.keyword:
                names.append(name)
            elif name == "all" or any(ch in name for ch in "*?["):
                matches = registry.names("*" if name == "all" else name)
                if not matches:
                    raise GridError(f"no {ax.kind} matches {name!r}; available: {', '.join(registry)}")
                names += matches
            else:
                names.append(registry.resolve(name) if name in registry else name)
        values[ax.name] = list(dict.fromkeys(names))
    return GridSpec(**{**grid.__dict__, "values": values})


def resolve_value(ax: Axis, value: Any, chosen: Mapping[str, Any], catalogue: Catalogue) -> Any:
    """A grid value as a trial holds it: keywords get their meaning, numbers their type."""
    if value == ax.keyword == "none":
        return None
    if value == ax.keyword == "default":
        if ax.name == "loss":
            return catalogue.default_loss(catalogue.tasks.get(chosen["task"]))
        if ax.name == "lr":
            return float(catalogue.optimizers.get(chosen["optimizer"]).default_lr)
        raise GridError(f"the {ax.name} axis has no meaning for 'default'")
    if ax.value_type is float:
        return float(value)
    if ax.value_type is int:
        return int(value)
    return value


def expand_grid(
    grid: GridSpec, catalogue: Catalogue, task_params: Mapping[str, Mapping[str, Any]] | None = None
) -> tuple[list[Trial], list[Skipped]]:
    """Every compatible trial of ``grid`` (seeds innermost) and the combinations skipped.

    ``task_params`` holds what identifies a task beyond its name (a CSV file's target and
    checksum); it becomes part of each trial. Raises :class:`GridError` when no combination is
    compatible, explaining why, and before building anything when the grid has more than
    ``grid.max_trials`` trials (default :data:`MAX_TRIALS`).
    """
    domain = catalogue.domain
    grid = resolve_patterns(grid, catalogue)
    check_size(grid, domain)
    grid.validate(catalogue)
    axes = [ax for ax in domain.axes if not ax.count]
    plugin_kinds = {record.name: record for record in domain.plugin_kinds}
    param_axes = domain.param_axes
    trials: list[Trial] = []
    skipped: list[Skipped] = []
    used_rules: set[int] = set()
    checked: set[tuple[str, str]] = set()
    for values in itertools.product(*(grid[ax.name] for ax in axes)):
        given = dict(zip((ax.name for ax in axes), values, strict=True))
        chosen: dict[str, Any] = {}
        for ax in axes:  # in declaration order: a task before its loss, an optimizer before its lr
            chosen[ax.name] = resolve_value(ax, given[ax.name], chosen, catalogue)
        matched = _matching_rules([given, chosen], grid.exclude)
        if matched:
            used_rules.update(matched)
            skipped.append(Skipped(chosen, "excluded by the grid"))
            continue
        components = {name: chosen[name] for name, record in plugin_kinds.items()
                      if chosen[name] != record.kind.default}
        task = catalogue.tasks.get(chosen["task"])
        reason = incompatibility(catalogue, task, chosen["arch"], chosen["loss"], components)
        if not reason and chosen.get("validation") == "task" and not task.own_validation:
            reason = (f"task {task.name!r} has no validation split of its own (--validation task); "
                      "--validation split holds out part of its training data")
        if reason:
            skipped.append(Skipped(chosen, reason))
            continue
        architecture = catalogue.architectures.get(chosen["arch"])
        if not architecture.takes_activation:
            chosen["activation"] = OWN_ACTIVATION  # the axis does not apply: one trial, not one per activation
        params: dict[str, dict[str, Any]] = {}
        for axis_name, record in param_axes.items():
            if axis_name in plugin_kinds and axis_name not in components:
                continue  # a kind's default is not applied, so its hyper-parameters mean nothing
            spec = catalogue.registry(record.name).get(chosen[axis_name])
            params[axis_name] = {**spec.params, **grid.overrides.get(axis_name, {}).get(chosen[axis_name], {})}
            if (axis_name, chosen[axis_name]) not in checked:
                _check_params(record, spec, params[axis_name], catalogue)
                checked.add((axis_name, chosen[axis_name]))
        if task_params and task.name in task_params:
            params["task"] = dict(task_params[task.name])
        code = code_versions(catalogue, chosen, components)
        if code:
            params["code"] = code
        fields = {ax.name: chosen[ax.name] for ax in axes if ax.name not in plugin_kinds}
        for seed in range(grid.seeds):
            trials.append(Trial(**fields, seed=seed, params=params, components=components))
    for i, rule in enumerate(grid.exclude):
        if i not in used_rules:
            warnings.warn(f"exclude rule {echoed(rule)} matches no combination of this grid (a misspelled name or "
                          "value?)", GridWarning, stacklevel=2)
    trials = list({t.trial_id: t for t in trials}.values())  # "default" may coincide with a listed lr
    if not trials:
        reasons = sorted({s.reason for s in skipped})
        raise GridError(
            "no combination in the grid is compatible, so there is nothing to train:\n  "
            + "\n  ".join(reasons[:10])
        )
    return trials, skipped
