"""Components given as Python objects (a class or function defined in a notebook cell, a torch class,
a spec), turned into specs that an in-process plugin of the session registers.

Each axis of ``nnbench.run`` takes names, objects or a mapping ``{name: object}``, mixed freely. An
object is named by its ``__name__`` unless a mapping names it. What each kind accepts:

- architecture: an ``nn.Module`` subclass whose constructor takes no arguments (used as it is, with
  its own nonlinearities), or one (or a function) that takes the build arguments
  ``(input_spec, outputs, activation, **params)``; an :class:`Architecture` spec;
- activation: an ``nn.Module`` subclass or instance, or a plain tensor function (``torch.tanh``,
  ``lambda x: x * torch.sigmoid(x)``); an :class:`Activation` spec;
- optimizer: a ``torch.optim.Optimizer`` subclass (its default learning rate is the one in its
  signature, overridable by ``lr``); an :class:`Optimizer` spec;
- loss: a loss module class or instance (called as ``criterion(outputs, targets)`` with the targets
  MSE takes: floats, one-hot for classes); a :class:`Loss` spec;
- every other kind: its spec (a :class:`Task`, a :class:`Schedule`, a :class:`Component`), and for a
  kind a plugin declares, a plain function (the component's factory).

Torch's own classes and functions of the built-ins (``nn.ReLU``, ``torch.tanh``, ``nn.MSELoss``,
``torch.optim.Adam``) resolve to the built-in components, so their stored trials are shared.

A component's code is part of its trials' identity (:func:`code_identity`), so editing it and running
again trains the edited trials while unchanged components reuse what is stored.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

from nnbench.contract.domain import Domain, KindRecord
from nnbench.contract.errors import NNBenchError
from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import (
    MODALITIES,
    Activation,
    Architecture,
    Component,
    InputSpec,
    Loss,
    Optimizer,
)
from nnbench.loading.identity import code_identity, has_source
from nnbench.planning.targets import ALL_KINDS, natural_outputs, one_hot_or_value

PLUGIN_NAME = "session"
BUILD_ARGUMENTS = ("input_spec", "outputs", "activation")


class ObjectError(NNBenchError):
    """An object given on an axis that cannot become a component of the axis's kind."""


class FunctionActivation:
    """An activation made from a plain tensor function: ``FunctionActivation(fn)()`` is a module
    applying ``fn``. (A class rather than a closure, so the factory travels to worker processes.)"""

    def __init__(self, function: Callable[..., Any]) -> None:
        self.function = function

    def __call__(self) -> Any:
        from torch import nn

        function = self.function

        class Function(nn.Module):
            def forward(self, x: Any) -> Any:
                return function(x)

        Function.__name__ = getattr(function, "__name__", "function")
        return Function()


def _copy_of(instance: Any) -> Callable[[], Any]:
    """A factory of fresh copies of a configured module (``nn.LeakyReLU(0.2)``, ``nn.MSELoss()``)."""
    return functools.partial(copy.deepcopy, instance)


@dataclass
class SessionComponents:
    """The in-process plugin that registers the components a session was given as objects. It is
    sent to worker processes by value, with everything it holds."""

    specs: dict[str, list[Any]] = field(default_factory=dict)
    identities: dict[tuple[str, str], str] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)

    def add(self, kind: str, spec: Any, identity: str) -> None:
        self.specs.setdefault(kind, []).append(spec)
        self.identities[(kind, spec.name)] = identity

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


CORE_SPEC_KINDS = ("activation", "loss", "optimizer", "architecture", "task", "schedule")


# -- objects into specs ------------------------------------------------------------------------------


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
    name = getattr(obj, "name", None) if _is_spec(obj) else getattr(obj, "__name__", None)
    return str(name) if name else type(obj).__name__


def _is_spec(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type) and hasattr(obj, "name")


def adopt(values: Mapping[str, Any], domain: Domain, catalogue: Any) -> tuple[dict[str, Any], SessionComponents]:
    """``values`` (axis -> what the user gave) with every object replaced by the name of its component,
    and the plugin that registers the new components. Torch's classes of built-ins resolve to them."""
    plugin = SessionComponents()
    out: dict[str, Any] = {}
    for key, value in values.items():
        ax = next((a for a in domain.axes if a.grid_key == key), None)
        record = domain.kind_of(ax.name) if ax is not None else None
        pairs = items_of(value) if record is not None else []
        if record is None or all(is_plain(item) and name is None for name, item in pairs):
            out[key] = value
            continue
        names: list[Any] = []
        for given, item in pairs:
            if isinstance(item, str) and given is not None and given != item:
                raise ObjectError(f"{key}={{{given!r}: {item!r}}}: a mapping names objects, and {item!r} is a name "
                                  f"already; list it as it is ({key}=[{item!r}, ...]) or map a name to an object")
            if is_plain(item):
                names.append(item)
                continue
            spec, identity = to_spec(record, item, given, catalogue, plugin.notes)
            if identity is None:  # a built-in
                names.append(spec)
                continue
            taken = _clash(catalogue, record, spec.name)
            if taken:
                raise ObjectError(f"{record.name} {spec.name!r} ({_describe(item)}) has the name of the {taken}; name "
                                  f"yours in a mapping, e.g. {key}={{'my_{spec.name.lower()}': {spec.name}}}")
            if (record.name, spec.name) not in plugin.identities:
                plugin.add(record.name, spec, identity)
            names.append(spec.name)
        out[key] = names
    return out, plugin


def _clash(catalogue: Any, record: KindRecord, name: str) -> str:
    registry = catalogue.registry(record.name)
    if name in registry:
        found = registry.resolve(name)
        return f"{record.name} {found!r} of plugin {registry.plugin_of(found)!r}"
    return ""


def _describe(item: Any) -> str:
    if isinstance(item, type):
        return f"class {item.__module__}.{item.__qualname__}"
    if inspect.isroutine(item):
        return f"function {getattr(item, '__qualname__', item)}"
    return f"a {type(item).__name__}"


ACCEPTED = {
    "architecture": "an nn.Module subclass (no constructor arguments, or the build arguments input_spec, outputs, "
                    "activation), a build function, or an nnbench.Architecture",
    "activation": "an nn.Module subclass or instance, a tensor function, or an nnbench.Activation",
    "optimizer": "a torch.optim.Optimizer subclass (not an instance: nnbench builds one per trial) or an "
                 "nnbench.Optimizer",
    "loss": "a loss module class or instance, or an nnbench.Loss",
    "task": "an nnbench.Task",
    "schedule": "an nnbench.Schedule",
}


def to_spec(record: KindRecord, item: Any, given: str | None, catalogue: Any,
            notes: list[str]) -> tuple[Any, str | None]:
    """The spec of ``item`` as a ``record.name`` named ``given`` (or its own name), and its code identity;
    ``(name, None)`` when it is one of the built-ins."""
    kind = record.name
    builtin = _builtin_name(kind, item, catalogue)
    if builtin is not None and given is None:
        return builtin, None
    name = given or name_of(item)
    if not isinstance(name, str) or not name.isidentifier():
        raise ObjectError(f"{kind} {_describe(item)} has no usable name ({name!r}); give it one in a mapping, "
                          f"e.g. {{'my_{kind}': ...}}")
    if _is_spec(item):
        if not isinstance(item, record.spec_type) or (isinstance(item, Component) and item.kind != kind):
            raise ObjectError(f"the {record.axis or kind} axis takes {kind}s; {_describe(item)} {item.name!r} is "
                              "not one")
        spec = dataclasses.replace(item, name=name)  # type: ignore[type-var]
    else:
        convert = CONVERTERS.get(kind) if record.stage == "core" else _component
        if convert is None:
            raise ObjectError(f"the {record.axis or kind} axis takes names or {ACCEPTED.get(kind, 'specs')}, not "
                              f"{_describe(item)}")
        spec = convert(record, item, name, notes)
    _note_transport(kind, name, item, notes)
    return spec, code_identity(item)


def _note_transport(kind: str, name: str, item: Any, notes: list[str]) -> None:
    qualname = getattr(item, "__qualname__", "")
    if "<locals>" in qualname:
        notes.append(f"{kind} {name!r} is defined inside a function: it travels to worker processes by value, and "
                     "its identity is its source")
    if not has_source(item):
        notes.append(f"{kind} {name!r} has no source to read (typed at a prompt?): its trials are identified by its "
                     "pickled bytes, so redefining it, even unchanged, trains them again")


def _builtin_name(kind: str, item: Any, catalogue: Any) -> str | None:
    """The built-in component ``item`` is (``nn.ReLU``, ``torch.tanh``, ``torch.optim.Adam``), if any."""
    if _is_spec(item) or is_plain(item):
        return None
    registry = catalogue.registry(kind)
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


def _no_required_arguments(cls: type) -> bool:
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return not [p for p in parameters if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                              p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def _first_line(obj: Any) -> str:
    return (inspect.getdoc(obj) or "").strip().splitlines()[0] if inspect.getdoc(obj) else ""


class _OwnModel:
    """The build of an architecture class whose constructor takes no build arguments: the class as it is."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, input_spec: Any, outputs: int, activation: Any, **params: Any) -> Any:
        return self.cls(**params)


def _architecture(record: KindRecord, item: Any, name: str, notes: list[str]) -> Architecture:
    from torch import nn

    is_module_class = isinstance(item, type) and issubclass(item, nn.Module)
    if not (is_module_class or inspect.isroutine(item)):
        raise ObjectError(f"the arch axis takes names or {ACCEPTED['architecture']}, not {_describe(item)}")
    try:
        parameters = list(inspect.signature(item).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    named = [p.name for p in parameters]
    defaults = {p.name: p.default for p in parameters if p.default is not p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in BUILD_ARGUMENTS}
    modalities = tuple(getattr(item, "modalities", MODALITIES))
    if named[:3] == list(BUILD_ARGUMENTS[:3]) or named[:2] == list(BUILD_ARGUMENTS[:2]):
        takes_activation = "activation" in named
        build: Callable[..., Any] = item if takes_activation else _without_activation(item)
    elif is_module_class and _no_required_arguments(item):
        build, takes_activation = _OwnModel(item), False
    else:
        raise ObjectError(
            f"architecture {name!r} ({_describe(item)}) takes ({', '.join(named)}); an architecture class takes no "
            f"constructor arguments (it is used as it is) or the build arguments ({', '.join(BUILD_ARGUMENTS)}, "
            "**params)")
    if takes_activation and not _calls_activation(build, modalities, defaults):
        takes_activation = False
        build = _OwnActivation(build)
        notes.append(f"architecture {name!r} never calls the activation it is given: the activation axis does not "
                     "apply to it, so it is trained once per configuration, not once per activation")
    elif not takes_activation:
        notes.append(f"architecture {name!r} builds its own nonlinearities: the activation axis does not apply to "
                     "it, so it is trained once per configuration, not once per activation")
    # Seeds train as one stacked ensemble only where a probe finds the stack computing exactly what its members do.
    return Architecture(name, build, modalities, _first_line(item), defaults, vectorizable=True,
                        takes_activation=takes_activation)


class _OwnActivation:
    """The build of an architecture that takes an activation but never calls it: given a placeholder."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build

    def __call__(self, input_spec: Any, outputs: int, activation: Any, **params: Any) -> Any:
        from torch import nn

        return self.build(input_spec, outputs, nn.Identity, **params)


def _calls_activation(build: Callable[..., Any], modalities: tuple[str, ...], params: dict[str, Any]) -> bool:
    """Whether ``build`` calls the activation factory it is given (tried on a small input of each of its
    modalities; when it cannot be built on any, it is taken at its word)."""
    from torch import nn


    shapes = {"vector": (6,), "image": (3, 8, 8), "sequence": (5, 3)}
    calls: list[int] = []

    def counting() -> Any:
        calls.append(1)
        return nn.ReLU()

    for modality in modalities:
        try:
            build(InputSpec(modality, shapes[modality]), 2, counting, **params)  # type: ignore[arg-type]
        except Exception:  # noqa: S112 - the model may not read this modality; the next one is tried
            continue
        return bool(calls)
    return True


class _without_activation:  # noqa: N801 - used like a function
    """A build that takes ``(input_spec, outputs, **params)``, called with the standard arguments."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build

    def __call__(self, input_spec: Any, outputs: int, activation: Any, **params: Any) -> Any:
        return self.build(input_spec, outputs, **params)


def _activation(record: KindRecord, item: Any, name: str, notes: list[str]) -> Activation:
    from torch import nn

    # vectorizable: a probe checks that the stacked seeds compute what each computes alone, else one by one
    if isinstance(item, type) and issubclass(item, nn.Module):
        if not _no_required_arguments(item):
            raise ObjectError(f"activation {name!r} ({_describe(item)}) needs constructor arguments; pass an instance "
                              f"(activation={item.__name__}(...)) or a mapping to one")
        return Activation(name, item, _first_line(item), vectorizable=True)
    if isinstance(item, nn.Module):
        return Activation(name, _copy_of(item), f"{type(item).__name__} as configured", vectorizable=True)
    if callable(item) and not isinstance(item, type):
        return Activation(name, FunctionActivation(item), _first_line(item) or f"the function {name}",
                          vectorizable=True)
    raise ObjectError(f"the activation axis takes names or {ACCEPTED['activation']}, not {_describe(item)}")


def _optimizer(record: KindRecord, item: Any, name: str, notes: list[str]) -> Optimizer:
    import torch

    if isinstance(item, torch.optim.Optimizer):
        raise ObjectError(f"optimizer {name!r} is an optimizer already built over some parameters; pass its class "
                          f"(optimizer=torch.optim.{type(item).__name__}, lr=...): nnbench builds one per trial")
    if not (isinstance(item, type) and issubclass(item, torch.optim.Optimizer)):
        raise ObjectError(f"the optimizer axis takes names or {ACCEPTED['optimizer']}, not {_describe(item)}")
    try:
        lr = inspect.signature(item).parameters.get("lr")
    except (TypeError, ValueError):
        lr = None
    default = lr.default if lr is not None else None
    if isinstance(default, bool) or not isinstance(default, int | float) or not default > 0:
        raise ObjectError(f"optimizer {name!r} ({_describe(item)}) declares no default learning rate; give one with "
                          "lr=... or pass an nnbench.Optimizer(name, factory, default_lr)")
    return Optimizer(name, item, float(default), _first_line(item))


def _loss(record: KindRecord, item: Any, name: str, notes: list[str]) -> Loss:
    from torch import nn

    if isinstance(item, type) and issubclass(item, nn.Module):
        if not _no_required_arguments(item):
            raise ObjectError(f"loss {name!r} ({_describe(item)}) needs constructor arguments; pass an instance")
        factory: Callable[[], Any] = item
    elif isinstance(item, nn.Module):
        factory = _copy_of(item)
    else:
        raise ObjectError(f"the loss axis takes names or {ACCEPTED['loss']}, not {_describe(item)}")
    notes.append(f"loss {name!r} is called as criterion(outputs, targets) with MSE's targets (floats; one-hot for "
                 "classes) and one output per class or target; pass an nnbench.Loss to say otherwise")
    return Loss(name, factory, ALL_KINDS, natural_outputs, one_hot_or_value, _first_line(item), vectorizable=True)


def _component(record: KindRecord, item: Any, name: str, notes: list[str]) -> Component:
    if not callable(item):
        raise ObjectError(f"the {record.name} axis takes names, a function (the component's factory, called as the "
                          f"{record.stage} stage says) or an nnbench.Component, not {_describe(item)}")
    return Component(record.name, name, item, _first_line(item))


CONVERTERS: dict[str, Callable[[KindRecord, Any, str, list[str]], Any]] = {
    "architecture": _architecture, "activation": _activation, "optimizer": _optimizer, "loss": _loss,
}
