"""The domain, declared once: the kinds of component and the trial axes.

The core kinds are declared in :data:`CORE_KINDS` (one row each: the kind, the spec type its
registry holds, the hook that fills it, its trial axis); the core axes are the fields of
:class:`~nnbench.contract.trial.Trial`. Plugins add kinds through the ``register_kinds`` hook; each
becomes a registry filled by ``register_components`` and a trial axis of its own. Everything that
speaks of kinds or axes (the grid, grid files, command-line flags and their help, the store's
columns, ``nnbench list``, conformance checks, micro-benchmarks, the analysis and the report) is
derived from the :class:`Domain` built here.
"""

from __future__ import annotations

import dataclasses
import difflib
import re
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, fields
from typing import Any

from nnbench.contract.axes import Axis
from nnbench.contract.errors import NNBenchError
from nnbench.contract.specs import (
    STAGES,
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
from nnbench.contract.trial import TRIAL_AXES, Trial, TrialResult

NAME_PATTERN = re.compile(r"[a-z][a-z0-9_]{0,31}")


class KindError(NNBenchError):
    """A kind that cannot be declared (a bad or taken name, an unknown stage) or a word that names no kind."""


@dataclass(frozen=True)
class KindRecord:
    """A kind as the domain knows it: its declaration, the spec type its registry holds, the hook
    that fills the registry, its trial axis (``None``: components of the kind are not a trial's)
    and the plugin that declared it."""

    kind: Kind
    spec_type: type
    hook: str
    axis: str | None
    plugin: str = "nnbench"

    @property
    def name(self) -> str:
        return self.kind.name

    @property
    def plural(self) -> str:
        return self.kind.plural

    @property
    def stage(self) -> str:
        return self.kind.stage

    @property
    def words(self) -> tuple[str, ...]:
        """Every word the command line accepts for the kind."""
        return (self.kind.name, self.kind.plural, *self.kind.aliases)


def _core(name: str, plural: str, spec_type: type, description: str, axis: str | None = "",
          aliases: tuple[str, ...] = ()) -> KindRecord:
    return KindRecord(Kind(name, plural, "core", "", description, aliases), spec_type, f"register_{plural}",
                      name if axis == "" else axis)


CORE_KINDS: tuple[KindRecord, ...] = (
    _core("activation", "activations", Activation, "hidden-layer nonlinearities"),
    _core("loss", "losses", Loss, "training criteria, with their head and target encoding"),
    _core("optimizer", "optimizers", Optimizer, "parameter update rules, with a default learning rate"),
    _core("architecture", "architectures", Architecture, "model families built for a task's inputs", "arch",
          ("arch", "archs")),
    _core("task", "tasks", Task, "data sets with a fixed split and a primary metric"),
    _core("schedule", "schedules", Schedule, "learning-rate schedules"),
    _core("device", "devices", Device, "where trials run"),
    _core("executor", "executors", ExecutorSpec, "how trials are scheduled", None),
    _core("exporter", "exporters", ExporterSpec, "trackers stored results are exported to (export --to)", None,
          ("tracker", "trackers")),
)
"""The kinds the trainer is written against, in the order ``nnbench list`` shows them."""

RESERVED_NAMES = frozenset(
    {f.name for f in fields(Trial)} | {f.name for f in fields(TrialResult)}
    | {"trial_id", "run_id", "params", "epochs_run", "finished_at", "protocol", "variant", "components", "seeds",
       "tune", "budget", "target_metric", "target", "kind", "exclude", "grid", "all", "default", "none", "format"}
)
"""Names a plugin's kind cannot take: they are fields, store columns or grid keys already."""


@dataclass(frozen=True)
class Domain:
    """The kinds of component and the trial axes of one session (core ones and the plugins')."""

    kinds: tuple[KindRecord, ...]
    axes: tuple[Axis, ...]

    def kind(self, word: str) -> KindRecord:
        """The kind that ``word`` names (its name, plural or an alias, in any case)."""
        lowered = word.lower()
        for record in self.kinds:
            if lowered in record.words:
                return record
        words = [w for r in self.kinds for w in (r.name, r.plural)]
        close = difflib.get_close_matches(lowered, words, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        raise KindError(f"unknown component kind {word!r}{hint} kinds: {', '.join(r.plural for r in self.kinds)}")

    def axis(self, name: str) -> Axis:
        for ax in self.axes:
            if ax.name == name:
                return ax
        raise KeyError(name)

    def axis_of(self, kind: str) -> Axis | None:
        """The trial axis whose values are components of ``kind``."""
        return next((ax for ax in self.axes if ax.kind == kind), None)

    def kind_of(self, axis: str) -> KindRecord | None:
        """The kind whose components the axis ``axis`` takes (``None`` for an axis of numbers)."""
        return next((r for r in self.kinds if r.axis == axis), None)

    @property
    def plugin_kinds(self) -> tuple[KindRecord, ...]:
        """The kinds that plug into a trial at a stage (declared through ``register_kinds``)."""
        return tuple(r for r in self.kinds if r.stage != "core")

    def stage_kinds(self, stage: str) -> tuple[KindRecord, ...]:
        return tuple(r for r in self.kinds if r.stage == stage)

    @property
    def component_axes(self) -> tuple[Axis, ...]:
        return tuple(ax for ax in self.axes if ax.kind is not None)

    @property
    def param_axes(self) -> dict[str, KindRecord]:
        """Axis -> kind, for the axes whose components take hyper-parameters (``[arch.fnn]``)."""
        out = {}
        for ax in self.axes:
            record = self.kind_of(ax.name)
            if record is not None and "params" in {f.name for f in fields(record.spec_type)}:
                out[ax.name] = record
        return out


def build_domain(declared: Iterable[tuple[Kind, str]] = (), defaults: Mapping[str, Sequence[Any]] | None = None
                 ) -> Domain:
    """The core kinds and axes plus the kinds that plugins ``declared`` (``(kind, plugin)`` pairs), with the default
    grid's values the plugins registered (``defaults``: axis -> values).

    Raises :class:`KindError` naming the plugin for a kind whose name is malformed or taken, or
    whose stage is unknown.
    """
    kinds = list(CORE_KINDS)
    given = dict(defaults or {})
    axes = [dataclasses.replace(ax, default=tuple(given[ax.name])) if ax.name in given else ax for ax in TRIAL_AXES]
    taken = {word: "nnbench" for record in kinds for word in record.words} | dict.fromkeys(RESERVED_NAMES, "nnbench")
    effect = max(ax.effect for ax in axes)
    for kind, plugin in declared:
        if not isinstance(kind, Kind):
            raise KindError(f"plugin {plugin!r} registered a {type(kind).__name__} as a kind, but a kind must be a "
                            "nnbench.Kind")
        if kind.stage not in STAGES:
            raise KindError(f"plugin {plugin!r} declares kind {kind.name!r} at stage {kind.stage!r}; a plugin's kind "
                            f"plugs in at one of the stages {', '.join(STAGES)}")
        for word in (kind.name, kind.plural, *kind.aliases):
            if not NAME_PATTERN.fullmatch(word):
                raise KindError(f"plugin {plugin!r} declares kind {kind.name!r} with the word {word!r}; names of kinds "
                                "are lower-case letters, digits and underscores, starting with a letter")
            if word in taken:
                owner = taken[word]
                raise KindError(f"plugin {plugin!r} declares kind {kind.name!r}, but {word!r} is taken"
                                + (f" by plugin {owner!r}" if owner != "nnbench" else " by nnbench itself")
                                + "; choose another name")
        if not kind.default:
            raise KindError(f"plugin {plugin!r} declares kind {kind.name!r} without a default component; name the "
                            "component that leaves a trial as it is (e.g. 'none')")
        taken.update(dict.fromkeys((kind.name, kind.plural, *kind.aliases), plugin))
        effect += 1
        kinds.append(KindRecord(kind, Component, "register_components", kind.name, plugin))
        axes.append(Axis.for_kind(kind.name, kind.plural, kind.default, kind.description, effect))
    return Domain(tuple(kinds), tuple(axes))
