"""Components given as Python objects (a class or function defined in a notebook cell, a torch class,
a spec), turned into specs that an in-process plugin of the session registers.

Each axis of ``nnbench.run`` takes names, objects or a mapping ``{name: object}``, mixed freely (what each kind
accepts: :mod:`nnbench.planning.converters`). How they are named:

- an object is named by its ``__name__`` unless a mapping names it;
- a name the user gives their own object is theirs in the call even where a built-in or another plugin has
  it (``arch={"cnn": MyCNN}``): it takes the place of that component for the call, its code identity is
  marked, so that the store keeps the two apart, and listings and the report show it as ``cnn (yours)``;
- torch's own classes and functions of the built-ins (``nn.ReLU``, ``torch.tanh``, ``nn.MSELoss``,
  ``torch.optim.RMSprop``), bare or under any name in a mapping, are the built-in components, with their
  stored trials; a mapping's value may also be a name (``{"relu": "ReLU"}``);
- two objects of one axis that would share a name (names are one whatever their case and underscores) are
  one error naming both, as is a name that would mean both a component of a plugin and one of the user's.

A component's code is part of its trials' identity (:func:`~nnbench.loading.identity.code_identity`), so editing
it and running again trains the edited trials while unchanged components reuse what is stored.
"""

from __future__ import annotations

import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nnbench.contract.axes import YOURS
from nnbench.contract.domain import Domain, KindRecord
from nnbench.contract.hookspecs import hookimpl
from nnbench.loading.catalogue import Registry, lookup_key
from nnbench.loading.identity import code_identity
from nnbench.planning.converters import Conversion, ObjectError, describe, is_spec, python_name, to_spec

PLUGIN_NAME = "session"
CORE_SPEC_KINDS = ("activation", "loss", "optimizer", "architecture", "task", "schedule")

__all__ = ["PLUGIN_NAME", "ObjectError", "SessionComponents", "adopt"]


@dataclass
class SessionComponents:
    """The in-process plugin that registers the components a session was given as objects. It is
    sent to worker processes by value, with everything it holds.

    ``replaces`` holds the ``(kind, name)`` of the user's components named as another plugin's component is:
    the catalogue registers them in its place (:meth:`nnbench.loading.catalogue.Registry.add`)."""

    specs: dict[str, list[Any]] = field(default_factory=dict)
    identities: dict[tuple[str, str], str] = field(default_factory=dict)
    replaces: set[tuple[str, str]] = field(default_factory=set)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, spec: Any, identity: str) -> None:
        self.specs.setdefault(kind, []).append(spec)
        self.identities[(kind, spec.name)] = identity
        if identity.endswith(YOURS):
            self.replaces.add((kind, spec.name))

    def __bool__(self) -> bool:
        return bool(self.specs)

    def _register(self, kind: str, register: Callable[[Any], None]) -> None:
        for spec in self.specs.get(kind, []):
            register(spec)

    @hookimpl
    def register_activations(self, register: Callable[[Any], None]) -> None:
        self._register("activation", register)

    @hookimpl
    def register_losses(self, register: Callable[[Any], None]) -> None:
        self._register("loss", register)

    @hookimpl
    def register_optimizers(self, register: Callable[[Any], None]) -> None:
        self._register("optimizer", register)

    @hookimpl
    def register_architectures(self, register: Callable[[Any], None]) -> None:
        self._register("architecture", register)

    @hookimpl
    def register_tasks(self, register: Callable[[Any], None]) -> None:
        self._register("task", register)

    @hookimpl
    def register_schedules(self, register: Callable[[Any], None]) -> None:
        self._register("schedule", register)

    @hookimpl
    def register_components(self, register: Callable[[Any], None]) -> None:
        for kind, specs in self.specs.items():
            if kind not in CORE_SPEC_KINDS:
                for spec in specs:
                    register(spec)


def items_of(value: Any) -> list[tuple[str | None, Any]]:
    """An axis value as ``(name, item)`` pairs: a mapping names its objects; text and objects are unnamed."""
    if isinstance(value, Mapping):
        return [(str(name), item) for name, item in value.items()]
    if isinstance(value, list | tuple):
        return [pair for item in value for pair in items_of(item)]
    return [(None, value)]


def is_plain(value: Any) -> bool:
    """Values the grid reads as they are: text and numbers."""
    return isinstance(value, str | int | float) or value is None


def name_of(obj: Any) -> str:
    """An object's own name: a spec's ``name``, else its ``__name__`` (a class's or function's), else its
    class's name (an instance)."""
    if isinstance(obj, functools.partial):
        return name_of(obj.func)
    name = getattr(obj, "name", None) if is_spec(obj) else getattr(obj, "__name__", None)
    return str(name) if name else type(obj).__name__


def adopt(values: Mapping[str, Any], domain: Domain, catalogue: Any) -> tuple[dict[str, Any], SessionComponents]:
    """``values`` (axis -> what the user gave) with every object replaced by the name of its component,
    and the plugin that registers the new components (see the module docstring)."""
    plugin = SessionComponents()
    conversion = Conversion(domain, _learning_rates(values.get("lr")), plugin.notes)
    out: dict[str, Any] = {}
    for key, value in values.items():
        ax = next((a for a in domain.axes if a.grid_key == key), None)
        record = domain.kind_of(ax.name) if ax is not None else None
        pairs = items_of(value) if record is not None else []
        if record is None or all(is_plain(item) and name is None for name, item in pairs):
            out[key] = value
            continue
        out[key] = _AxisNames(key, record, catalogue.registry(record.name), conversion, plugin).adopt(pairs)
    return out, plugin


@dataclass
class _AxisNames:
    """The names one axis of a call gives: each object's component, and which object has which name."""

    key: str
    record: KindRecord
    registry: Registry[Any]
    conversion: Conversion
    plugin: SessionComponents
    objects: dict[str, tuple[str, Any, str]] = field(default_factory=dict)  # lookup key -> (name, object, identity)

    def adopt(self, pairs: list[tuple[str | None, Any]]) -> list[Any]:
        names: list[Any] = []
        others: list[str] = []  # names that mean a component that is not one of the user's objects
        for given, item in pairs:
            if isinstance(item, str) and given is not None:
                item = self._mapped_name(given, item)
                others.append(item)
            elif is_plain(item):
                others += [part.strip() for part in item.split(",")] if isinstance(item, str) else []
            else:
                item, own = self._component(given, item)
                if not own:
                    others.append(item)
            names.append(item)
        self._check_others(others)
        return names

    def _mapped_name(self, given: str, name: str) -> str:
        """``{given: name}``: the component ``name`` names (a mapping's value may be a name)."""
        if name not in self.registry:
            return name  # a keyword, a wildcard or a misspelling: the grid reads it and explains
        found = self.registry.resolve(name)
        if lookup_key(given) != lookup_key(found):
            self.conversion.notes.append(f"{self.key}={{{given!r}: {name!r}}} is the {self.record.name} {found!r}: its "
                                         f"trials are stored and shown as {found!r}")
        return found

    def _component(self, given: str | None, item: Any) -> tuple[str, bool]:
        """The name of ``item``'s component, and whether it is the user's own (not a built-in)."""
        kind = self.record.name
        builtin = _builtin_name(kind, item, self.registry)
        if builtin is not None:
            if given is not None and lookup_key(given) != lookup_key(builtin):
                self.conversion.notes.append(
                    f"{self.key}={{{given!r}: {python_name(item)}}} is the built-in {kind} {builtin!r}: its trials are "
                    f"stored and shown as {builtin!r}")
            return builtin, False
        name = given or name_of(item)
        if not isinstance(name, str) or not name.isidentifier():
            raise ObjectError(f"{kind} {describe(item)} has no usable name ({name!r}); give it one in a mapping, "
                              f"e.g. {self.key}={{'my_{kind}': ...}}")
        spec = to_spec(self.record, item, name, self.conversion)
        identity = code_identity(item)
        holder = self.registry.taken(name)
        if holder is not None and self.registry.plugin_of(holder) != PLUGIN_NAME:
            identity += YOURS  # another plugin's name: the user's own component takes its place in this call
        earlier = self.objects.get(lookup_key(name))
        if earlier is not None:
            if earlier[2] == identity and earlier[0] == name:
                return name, True  # the same object (or the same code) twice
            raise ObjectError(self._clash_message(earlier[0], earlier[1], name, item))
        self.objects[lookup_key(name)] = (name, item, identity)
        if identity.endswith(YOURS):
            self.conversion.notes.append(
                f"{kind} {name!r} is yours ({describe(item)}): in this call it takes the place of the {kind} "
                f"{self.plugin_holder(name)}, and results show it as '{name}{YOURS}'")
        _note_transport(kind, name, item, identity, self.conversion.notes)
        self.plugin.add(kind, spec, identity)
        return name, True

    def _clash_message(self, name: str, item: Any, other_name: str, other: Any) -> str:
        same = "" if name == other_name else f" ({name!r} and {other_name!r} are one name: case and underscores " \
                                             "do not count)"
        return (f"{self.key}: {describe(item)} and {describe(other)} would both be the {self.record.name} "
                f"{other_name!r}{same}; name them apart in a mapping, e.g. {self.key}={{{name!r}: "
                f"{python_name(item)}, '{other_name}_2': {python_name(other)}}}")

    def _check_others(self, others: list[str]) -> None:
        """A name that means another plugin's component cannot also be the name of one of the user's objects."""
        for name in others:
            mine = self.objects.get(lookup_key(name))
            if mine is None or not mine[2].endswith(YOURS):
                continue
            raise ObjectError(
                f"{self.key} has {name!r} and gives your {describe(mine[1])} the name {mine[0]!r}; in this call that "
                f"name is yours, so it cannot also mean the {self.record.name} {self.plugin_holder(mine[0])}: to "
                f"compare the two, name yours apart, e.g. {self.key}=[{name!r}, {{'my_{lookup_key(mine[0])}': "
                f"{python_name(mine[1])}}}]")

    def plugin_holder(self, name: str) -> str:
        holder = self.registry.taken(name) or name
        return f"{holder!r} of plugin {self.registry.plugin_of(holder)!r}"


def _learning_rates(value: Any) -> list[Any]:
    """The learning rates a call gives (``lr=0.01``, ``lr=[0.01, 0.1]``, ``lr="0.01,default"``), numbers where
    they are numbers; empty where it gives none (each optimizer's default)."""
    if value is None:
        return []
    rates: list[Any] = []
    for _, item in items_of(value):
        for part in str(item).split(",") if isinstance(item, str) else [item]:
            try:
                rates.append(float(part))
            except (TypeError, ValueError):
                rates.append(part)
    return rates


def _note_transport(kind: str, name: str, item: Any, identity: str, notes: list[str]) -> None:
    target = item.func if isinstance(item, functools.partial) else item
    qualname = getattr(target, "__qualname__", "")
    if "<locals>" in qualname:
        notes.append(f"{kind} {name!r} is defined inside a function: it travels to worker processes by value, and "
                     "its identity is its source and the values it captured")
    if identity.startswith("pickle:"):
        notes.append(f"{kind} {name!r} has no source to read (typed at a prompt?): its trials are identified by its "
                     "pickled bytes, so redefining it, even unchanged, trains them again")


def _builtin_name(kind: str, item: Any, registry: Registry[Any]) -> str | None:
    """The built-in component ``item`` is (``nn.ReLU``, ``torch.tanh``, ``torch.optim.Adam``), if any."""
    if is_spec(item) or is_plain(item) or isinstance(item, functools.partial):
        return None
    for entry in registry.entries():
        if not entry.plugin.startswith("nnbench.builtin"):
            continue
        spec = entry.spec
        factory = getattr(spec, "factory", None) or getattr(spec, "build", None)
        if factory is item and _defaults_of(item, getattr(spec, "params", {})):
            return str(spec.name)
        if isinstance(factory, type) and type(item) is factory and _default_instance(item):
            return str(spec.name)  # nn.MSELoss(), as a tutorial writes it
    if kind == "activation" and inspect.isroutine(item):
        import torch
        from torch.nn import functional

        short = getattr(item, "__name__", "")
        if short in registry and item in (getattr(torch, short, None), getattr(functional, short, None)):
            return str(registry.resolve(short))
    return None


def _defaults_of(cls: Any, params: Mapping[str, Any]) -> bool:
    """Whether ``params`` are what ``cls`` takes anyway (``AdamW`` and the built-in adamw's weight decay)."""
    if not params:
        return True
    try:
        signature = inspect.signature(cls).parameters
    except (TypeError, ValueError):
        return False
    return all(name in signature and signature[name].default == value for name, value in params.items())


def _default_instance(item: Any) -> bool:
    """Whether a module instance has its class's default settings (its plain attributes, buffers aside)."""
    try:
        fresh = type(item)()
    except Exception:
        return False
    plain = (bool, int, float, str, type(None))
    mine = {k: v for k, v in vars(item).items() if isinstance(v, plain)}
    theirs = {k: v for k, v in vars(fresh).items() if isinstance(v, plain)}
    return mine == theirs
