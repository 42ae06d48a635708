"""Registries: name -> spec for one kind of component, remembering which plugin provided each name.

A :class:`Catalogue` holds one registry per kind of the session's :class:`~nnbench.contract.domain.Domain`
and fills each from its registration hook the first time it is asked for, so that a command that needs
only the executors never loads the plugins' models.
"""

from __future__ import annotations

import difflib
import fnmatch
import re
import warnings
from collections.abc import Callable, Iterator
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Generic, TypeVar

from nnbench.contract.domain import Domain, KindRecord, build_domain
from nnbench.contract.errors import DuplicateComponentError, InvalidComponentError, UnknownComponentError
from nnbench.contract.specs import Component
from nnbench.contract.trial import TRIAL_AXES
from nnbench.loading.identity import code_identity, source_hash
from nnbench.loading.plugins import PLUGIN_FAULTS, PluginLoadWarning, describe_fault, user_interrupted, watch_interrupts

if TYPE_CHECKING:
    import pluggy

    from nnbench.contract.specs import (
        Activation,
        Architecture,
        Device,
        ExecutorSpec,
        ExporterSpec,
        Loss,
        Optimizer,
        Schedule,
        Task,
    )

S = TypeVar("S")


def lookup_key(name: str) -> str:
    """How names are compared: case, underscores and dashes do not count (``ReLU`` is ``relu``,
    ``LeakyReLU`` is ``leaky_relu``)."""
    return re.sub(r"[_\-\s]", "", name.lower())


NOT_COMPONENTS = {
    ("activation", "softmax"): "softmax is an output layer, not a hidden activation: the loss cross_entropy applies it "
                               "(softmax cross entropy), and nll trains behind a log-softmax head",
    ("activation", "logsoftmax"): "log_softmax is an output layer, not a hidden activation: the loss nll trains "
                                  "behind a log-softmax head, and cross_entropy includes it",
    ("activation", "softmin"): "softmin is an output layer, not a hidden activation: use a loss that includes its "
                               "output layer, such as cross_entropy",
}
"""Names people try that are not components of the kind, and what to use instead (keys by lookup_key)."""


@dataclass(frozen=True)
class Entry(Generic[S]):
    """A registered spec, the plugin that registered it, and which code it comes from (``None`` for a
    built-in; see :mod:`nnbench.loading.identity`)."""

    spec: S
    plugin: str
    code: str | None = None


class Registry(Generic[S]):
    """Name -> spec for one kind of component, remembering the providing plugin.

    Names are found whatever their case and underscores (``MSELoss`` finds ``mse``: a trailing
    kind name is ignored too), so two names that differ only in those ways cannot both be registered.
    """

    def __init__(self, record: KindRecord) -> None:
        self.record = record
        self.kind = record.name
        self._entries: dict[str, Entry[S]] = {}
        self._keys: dict[str, str] = {}

    def add(self, spec: S, plugin: str, code: str | None = None, *, replace: bool = False) -> None:
        """Register ``spec``; with ``replace``, in place of a component of the same name (a name the user gives
        to a component of their own is theirs in their session, even where another plugin has it)."""
        expected = self.record.spec_type
        if not isinstance(spec, expected) or (isinstance(spec, Component) and spec.kind != self.kind):
            raise InvalidComponentError(
                f"plugin {plugin!r} registered a {type(spec).__name__} as a {self.kind}, "
                f"but a {self.kind} must be a nnbench.{expected.__name__}"
                + (f" of kind {self.kind!r}" if expected is Component else "")
            )
        name = spec.name  # type: ignore[attr-defined]
        key = lookup_key(name)
        if replace and key in self._keys:
            del self._entries[self._keys.pop(key)]
        if key in self._keys:
            first = self._keys[key]
            same = "" if first == name else f" (as {first!r}: names that differ only in case or underscores are one)"
            raise DuplicateComponentError(
                f"{self.kind} {name!r} is registered twice{same}: by plugin {self._entries[first].plugin!r} and by "
                f"plugin {plugin!r}; rename one of them or disable a plugin with NNBENCH_PLUGINS"
            )
        self._entries[name] = Entry(spec, plugin, code)
        self._keys[key] = name

    def resolve(self, name: str) -> str:
        """The registered name that ``name`` means (``ReLU`` -> ``relu``), or raise naming the closest."""
        if name in self._entries:
            return name
        key = lookup_key(name)
        found = self._keys.get(key)
        if found is None and key.endswith(lookup_key(self.kind)):
            found = self._keys.get(key[: -len(lookup_key(self.kind))])
        if found is None:
            raise UnknownComponentError(self.unknown_message(name))
        return found

    def taken(self, name: str) -> str | None:
        """The registered name that ``name`` would be one with (the same but for case and underscores), if any."""
        return self._keys.get(lookup_key(name))

    def get(self, name: str) -> S:
        return self._entries[self.resolve(name)].spec

    def unknown_message(self, name: str) -> str:
        explained = NOT_COMPONENTS.get((self.kind, lookup_key(name)))
        if explained:
            return f"{self.kind} {name!r} is not one: {explained}"
        names = sorted(self._entries)
        close = difflib.get_close_matches(name, names, n=1) or difflib.get_close_matches(name.lower(), names, n=1)
        hint = f"; did you mean {close[0]!r}?" if close else ""
        return f"unknown {self.kind} {name!r}{hint} available: {', '.join(names) or 'none'}"

    def plugin_of(self, name: str) -> str:
        return self._entries[self.resolve(name)].plugin

    def code_of(self, name: str) -> str | None:
        """Which code the component comes from (``None``: a built-in)."""
        return self._entries[self.resolve(name)].code

    def names(self, pattern: str = "*") -> list[str]:
        """Registered names matching the shell-style ``pattern`` (ignoring case)."""
        return [n for n in self._entries if fnmatch.fnmatch(n.lower(), pattern.lower())]

    def entries(self) -> list[Entry[S]]:
        return list(self._entries.values())

    def __contains__(self, name: object) -> bool:
        if not isinstance(name, str):
            return False
        try:
            self.resolve(name)
        except UnknownComponentError:
            return False
        return True

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)


class Catalogue:
    """One registry per kind of ``domain``, each filled from ``pm``'s plugins when first asked for.

    Without ``pm`` the registries start empty (tests fill them by hand).
    """

    def __init__(self, domain: Domain, pm: pluggy.PluginManager | None = None) -> None:
        self.domain = domain
        self._pm = pm
        self._registries: dict[str, Registry[Any]] = {}

    def registry(self, kind: str) -> Registry[Any]:
        """The registry of ``kind`` (its name, plural or an alias)."""
        record = self.domain.kind(kind)
        if record.name not in self._registries:
            self._registries[record.name] = Registry(record)
            if self._pm is not None:
                if record.hook == "register_components":
                    self._collect_components()
                else:
                    self._collect(record)
        return self._registries[record.name]

    def registries(self) -> list[Registry[Any]]:
        return [self.registry(record.name) for record in self.domain.kinds]

    def _collect(self, record: KindRecord) -> None:
        registry = self._registries[record.name]
        for plugin, source, staged in _call_each(self._pm, record.hook, f"its {record.name} components were skipped"):
            for spec in staged:
                try:
                    registry.add(spec, plugin, self._code(record.name, spec, plugin, source),
                                 replace=_replaces(source, record.name, spec))
                except InvalidComponentError as exc:
                    warnings.warn(f"{exc}; skipped", PluginLoadWarning, stacklevel=3)

    def _code(self, kind: str, spec: Any, plugin: str, source: Any) -> str | None:
        """What identifies a registered component's code (see :mod:`nnbench.loading.identity`)."""
        origin = getattr(self._pm, "origins", {}).get(plugin)
        if origin is not None and origin[0] == "builtin":
            return None
        if origin is not None and origin[0] == "entry point":
            files = source_hash(origin[1], getattr(source, "__name__", ""))  # installed editable or from a path
            return f"{origin[1]}=={origin[2]}" + (f" files:{files}" if files else "")
        known = getattr(source, "identities", {}).get((kind, getattr(spec, "name", None)))
        if known is not None:  # components given as objects know their code already
            return str(known)
        return code_identity(spec)

    def _collect_components(self) -> None:
        """Every kind a plugin declared is filled by one hook: route each component to its kind."""
        for record in self.domain.plugin_kinds:
            self._registries.setdefault(record.name, Registry(record))
        for plugin, source, staged in _call_each(self._pm, "register_components", "its components were skipped"):
            for spec in staged:
                registry = self._registries.get(spec.kind) if isinstance(spec, Component) else None
                try:
                    if registry is None:
                        raise InvalidComponentError(
                            f"plugin {plugin!r} registered {spec!r} through register_components, which takes "
                            "nnbench.Component specs of the kinds declared through register_kinds ("
                            + (", ".join(r.name for r in self.domain.plugin_kinds) or "none declared") + ")")
                    registry.add(spec, plugin, self._code(spec.kind, spec, plugin, source),
                                 replace=_replaces(source, spec.kind, spec))
                except InvalidComponentError as exc:
                    warnings.warn(f"{exc}; skipped", PluginLoadWarning, stacklevel=3)

    def default_loss(self, task: Task) -> str:
        """The loss ``--loss default`` means for ``task``: its own, else the loss declared the default for its
        kind."""
        if task.default_loss:
            return task.default_loss
        for entry in self.losses.entries():
            if task.kind in entry.spec.default_for:
                return entry.spec.name
        raise UnknownComponentError(f"no loss is the default for {task.kind} tasks such as {task.name!r}: name one "
                                    "with --loss")

    # the core kinds, by name
    @property
    def activations(self) -> Registry[Activation]:
        return self.registry("activation")

    @property
    def losses(self) -> Registry[Loss]:
        return self.registry("loss")

    @property
    def optimizers(self) -> Registry[Optimizer]:
        return self.registry("optimizer")

    @property
    def architectures(self) -> Registry[Architecture]:
        return self.registry("architecture")

    @property
    def tasks(self) -> Registry[Task]:
        return self.registry("task")

    @property
    def schedules(self) -> Registry[Schedule]:
        return self.registry("schedule")

    @property
    def devices(self) -> Registry[Device]:
        return self.registry("device")

    @property
    def executors(self) -> Registry[ExecutorSpec]:
        return self.registry("executor")

    @property
    def exporters(self) -> Registry[ExporterSpec]:
        return self.registry("exporter")


def _replaces(source: Any, kind: str, spec: Any) -> bool:
    """Whether plugin ``source`` registers ``spec`` in place of another plugin's component of its name: the
    session's own components do, for the names the user gave them (see :mod:`nnbench.planning.objects`)."""
    return (kind, getattr(spec, "name", None)) in getattr(source, "replaces", ())


def _call_each(pm: Any, hook_name: str, skipped: str, pairs: bool = False) -> Iterator[tuple[str, Any, list[Any]]]:
    """Call ``hook_name`` plugin by plugin (built-ins first) with a ``register`` that collects what it is
    given (``pairs``: its arguments, as tuples); a plugin that raises is named in a warning and what it
    registered is dropped."""
    # get_hookimpls() lists implementations in registration order: built-ins first.
    for impl in getattr(pm.hook, hook_name).get_hookimpls():
        plugin_name = pm.get_name(impl.plugin) or repr(impl.plugin)
        staged: list[Any] = []
        register: Callable[..., None] = (lambda *args, into=staged: into.append(args)) if pairs else staged.append
        try:
            with watch_interrupts():
                impl.function(register=register)
        except PLUGIN_FAULTS as exc:
            if user_interrupted(exc):
                raise
            warnings.warn(f"plugin {plugin_name!r} raised in {hook_name} and {skipped}: {describe_fault(exc)}",
                          PluginLoadWarning, stacklevel=4)
            continue
        yield plugin_name, impl.plugin, staged


def collect_kinds(pm: pluggy.PluginManager) -> list[tuple[Any, str]]:
    """The kinds the plugins declare through ``register_kinds``, with the plugin of each."""
    return [(kind, plugin) for plugin, _, staged in _call_each(pm, "register_kinds", "its kinds were skipped")
            for kind in staged]


def collect_defaults(pm: pluggy.PluginManager) -> dict[str, list[Any]]:
    """The default grid's values the plugins register through ``register_defaults`` (later plugins win)."""
    defaults: dict[str, list[Any]] = {}
    component_axes = {ax.name for ax in TRIAL_AXES if ax.kind is not None and not ax.count}
    for plugin, _, staged in _call_each(pm, "register_defaults", "its default grid was skipped", pairs=True):
        for axis, values in staged:
            names = [values] if isinstance(values, str) else list(values)
            if axis not in component_axes or not names or not all(isinstance(n, str) and n for n in names):
                warnings.warn(f"plugin {plugin!r} registered the default grid value {values!r} for {axis!r}, but a "
                              f"default is a list of names on one of {', '.join(sorted(component_axes))}; skipped",
                              PluginLoadWarning, stacklevel=2)
                continue
            defaults[axis] = names
    return defaults


def collect_catalogue(pm: pluggy.PluginManager) -> Catalogue:
    """The domain of ``pm``'s plugins and a catalogue of their components (filled as it is used)."""
    return Catalogue(build_domain(collect_kinds(pm), collect_defaults(pm)), pm)
