"""One Python object given on an axis of ``nnbench.run`` into the spec of a component of the axis's kind.

What each kind accepts:

- architecture: an ``nn.Module`` subclass whose constructor takes no arguments (used as it is, with
  its own nonlinearities), or one (or a function) that takes the build arguments
  ``(input_spec, outputs, activation, **params)``; an :class:`Architecture` spec;
- activation: an ``nn.Module`` subclass or instance, or a plain tensor function (``torch.tanh``,
  ``lambda x: x * torch.sigmoid(x)``); an :class:`Activation` spec;
- optimizer: a ``torch.optim.Optimizer`` subclass (its default learning rate is the one in its
  signature, overridable by ``lr``), or ``functools.partial(cls, lr=..., beta=...)`` giving arguments that it
  requires or that differ from its defaults (they are hyper-parameters of the component, part of its
  trials' ids); an :class:`Optimizer` spec;
- loss: a loss module class or instance (called as ``criterion(outputs, targets)`` with the targets
  MSE takes: floats, one-hot for classes); a :class:`Loss` spec;
- every other kind: its spec (a :class:`Task`, a :class:`Schedule`, a :class:`Component`), and for a
  kind a plugin declares, a plain function (the component's factory).

A module class may also come as ``functools.partial(cls, ...)`` with its arguments. An object that is evidently
of another kind (a loss module given as an activation) is refused with the axis it belongs on, and an activation
or loss is called once on a small tensor, so that one that cannot be is refused before anything is stored.
"""

from __future__ import annotations

import copy
import dataclasses
import functools
import inspect
from collections.abc import Callable, Sequence
from dataclasses import dataclass, field
from typing import Any

from nnbench.contract.domain import Domain, KindRecord
from nnbench.contract.errors import NNBenchError
from nnbench.contract.specs import (
    MODALITIES,
    Activation,
    Architecture,
    Component,
    InputSpec,
    Loss,
    Optimizer,
)
from nnbench.planning.targets import ALL_KINDS, natural_outputs, one_hot_or_value

# torch is imported inside the functions that use it: planning a grid from the command line must not import it.

BUILD_ARGUMENTS = ("input_spec", "outputs", "activation")


class ObjectError(NNBenchError):
    """An object given on an axis that cannot become a component of the axis's kind."""


@dataclass
class Conversion:
    """What converting an object may need besides the object: the session's domain (to name the axis an object
    belongs on), the learning rates the call gives (for an optimizer without a default), and the notes for the
    user that converting gathers."""

    domain: Domain
    learning_rates: Sequence[Any] = ()
    notes: list[str] = field(default_factory=list)


ACCEPTED = {
    "architecture": "an nn.Module subclass (no constructor arguments, or the build arguments input_spec, outputs, "
                    "activation), a build function, or an nnbench.Architecture",
    "activation": "an nn.Module subclass or instance, a tensor function, or an nnbench.Activation",
    "optimizer": "a torch.optim.Optimizer subclass (not an instance: nnbench builds one per trial), "
                 "functools.partial(OptimizerClass, ...) or an nnbench.Optimizer",
    "loss": "a loss module class or instance, or an nnbench.Loss",
    "task": "an nnbench.Task",
    "schedule": "an nnbench.Schedule",
}


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


def is_spec(obj: Any) -> bool:
    return dataclasses.is_dataclass(obj) and not isinstance(obj, type) and hasattr(obj, "name")


def describe(item: Any) -> str:
    """An object as errors name it: ``class __main__.CNN``, ``function squareplus``, ``a LeakyReLU``."""
    if isinstance(item, functools.partial):
        return f"functools.partial of {describe(item.func)}"
    if isinstance(item, type):
        return f"class {item.__module__}.{item.__qualname__}"
    if inspect.isroutine(item):
        module = getattr(item, "__module__", None)
        return f"function {module + '.' if module else ''}{getattr(item, '__qualname__', item)}"
    if is_spec(item):
        return f"the {type(item).__name__} {getattr(item, 'name', '')!r}"
    return f"a {type(item).__name__}"


def python_name(item: Any) -> str:
    """How the user's code most likely names ``item``: its ``__name__`` (an instance: its class's, called)."""
    if isinstance(item, functools.partial):
        return f"functools.partial({python_name(item.func)}, ...)"
    name = getattr(item, "__name__", None)
    if isinstance(name, str) and name.isidentifier():
        return name
    return f"{type(item).__name__}(...)"


def to_spec(record: KindRecord, item: Any, name: str, conversion: Conversion) -> Any:
    """The spec of ``item`` as a ``record.name`` named ``name``."""
    kind = record.name
    if is_spec(item):
        if not isinstance(item, record.spec_type) or (isinstance(item, Component) and item.kind != kind):
            raise ObjectError(f"the {record.axis or kind} axis takes {kind}s; {describe(item)} is not one")
        return dataclasses.replace(item, name=name)  # type: ignore[type-var]
    evident = evident_kind(item)
    if evident is not None and evident != kind:
        axis = conversion.domain.kind(evident).axis or evident
        raise ObjectError(f"{describe(item)} is a{'n' if evident[0] in 'aeiou' else ''} {evident}, not a"
                          f"{'n' if kind[0] in 'aeiou' else ''} {kind}: give it as {axis}={python_name(item)}")
    convert = CONVERTERS.get(kind) if record.stage == "core" else _component
    if convert is None:
        raise ObjectError(f"the {record.axis or kind} axis takes names or {ACCEPTED.get(kind, 'specs')}, not "
                          f"{describe(item)}")
    return convert(record, item, name, conversion)


def evident_kind(item: Any) -> str | None:
    """The kind torch's own class hierarchy says ``item`` is (an optimizer, a loss, one of torch's activations),
    whatever axis it was given on; ``None`` when it does not say."""
    import torch
    from torch import nn

    target = item.func if isinstance(item, functools.partial) else item
    if isinstance(target, type):
        cls = target
    elif isinstance(target, nn.Module | torch.optim.Optimizer):
        cls = type(target)
    else:
        return None
        return None
    if issubclass(cls, torch.optim.Optimizer):
        return "optimizer"
    if issubclass(cls, nn.modules.loss._Loss):
        return "loss"
    if cls.__module__ == "torch.nn.modules.activation":
        return "activation"
    return None


def copy_of(instance: Any) -> Callable[[], Any]:
    """A factory of fresh copies of a configured module (``nn.LeakyReLU(0.2)``, ``nn.MSELoss()``)."""
    return functools.partial(copy.deepcopy, instance)


def _module_factory(item: Any) -> tuple[Callable[[], Any], type | None]:
    """A factory of fresh modules from a module class, a partial of one or a configured instance, and the
    class (``None``: ``item`` is none of those)."""
    from torch import nn

    if isinstance(item, functools.partial) and isinstance(item.func, type) and issubclass(item.func, nn.Module):
        return item, item.func
    if isinstance(item, type) and issubclass(item, nn.Module):
        return item, item
    if isinstance(item, nn.Module):
        return copy_of(item), type(item)
    return item, None


def no_required_arguments(cls: Any) -> bool:
    try:
        parameters = inspect.signature(cls).parameters.values()
    except (TypeError, ValueError):
        return True
    return not [p for p in parameters if p.default is p.empty and p.kind in (p.POSITIONAL_ONLY,
                                                                              p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]


def first_line(obj: Any) -> str:
    doc = inspect.getdoc(obj.func if isinstance(obj, functools.partial) else obj)
    return doc.strip().splitlines()[0] if doc and doc.strip() else ""


# -- architectures ---------------------------------------------------------------------------------------


class _OwnModel:
    """The build of an architecture class whose constructor takes no build arguments: the class as it is."""

    def __init__(self, cls: type) -> None:
        self.cls = cls

    def __call__(self, input_spec: Any, outputs: int, activation: Any, **params: Any) -> Any:
        return self.cls(**params)


class _OwnActivation:
    """The build of an architecture that takes an activation but never calls it: given a placeholder."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build

    def __call__(self, input_spec: Any, outputs: int, activation: Any, **params: Any) -> Any:
        from torch import nn

        return self.build(input_spec, outputs, nn.Identity, **params)


class _without_activation:  # noqa: N801 - used like a function
    """A build that takes ``(input_spec, outputs, **params)``, called with the standard arguments."""

    def __init__(self, build: Callable[..., Any]) -> None:
        self.build = build

    def __call__(self, input_spec: Any, outputs: int, activation: Any, **params: Any) -> Any:
        return self.build(input_spec, outputs, **params)


def _architecture(record: KindRecord, item: Any, name: str, conversion: Conversion) -> Architecture:
    from torch import nn

    given: dict[str, Any] = {}
    if isinstance(item, functools.partial) and not item.args:  # partial(Net, width=64): its hyper-parameters
        item, given = item.func, dict(item.keywords)
    is_module_class = isinstance(item, type) and issubclass(item, nn.Module)
    if not (is_module_class or inspect.isroutine(item)):
        raise ObjectError(f"the arch axis takes names or {ACCEPTED['architecture']}, not {describe(item)}")
    try:
        parameters = list(inspect.signature(item).parameters.values())
    except (TypeError, ValueError):
        parameters = []
    named = [p.name for p in parameters]
    defaults = {p.name: p.default for p in parameters if p.default is not p.empty
                and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY) and p.name not in BUILD_ARGUMENTS}
    defaults.update(given)
    modalities = tuple(getattr(item, "modalities", MODALITIES))
    if named[:3] == list(BUILD_ARGUMENTS[:3]) or named[:2] == list(BUILD_ARGUMENTS[:2]):
        takes_activation = "activation" in named
        build: Callable[..., Any] = item if takes_activation else _without_activation(item)
    elif is_module_class and not [p for p in parameters if p.default is p.empty and p.name not in given and p.kind in
                                  (p.POSITIONAL_ONLY, p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]:
        build, takes_activation = _OwnModel(item), False
    else:
        raise ObjectError(
            f"architecture {name!r} ({describe(item)}) takes ({', '.join(named)}); an architecture class takes no "
            f"constructor arguments (it is used as it is) or the build arguments ({', '.join(BUILD_ARGUMENTS)}, "
            "**params), and calls activation() for each nonlinearity")
    if takes_activation and not _calls_activation(build, modalities, defaults, f"architecture {name!r} "
                                                                               f"({describe(item)})"):
        takes_activation = False
        build = _OwnActivation(build)
        conversion.notes.append(f"architecture {name!r} never calls the activation it is given: the activation axis "
                                "does not apply to it, so it is trained once per configuration, not once per "
                                "activation")
    elif not takes_activation:
        conversion.notes.append(f"architecture {name!r} builds its own nonlinearities: the activation axis does not "
                                "apply to it, so it is trained once per configuration, not once per activation")
    # Seeds train as one stacked ensemble only where a probe finds the stack computing exactly what its members do.
    return Architecture(name, build, modalities, first_line(item), defaults, vectorizable=True,
                        takes_activation=takes_activation)


class _ProbeActivation:
    """The activation factory an architecture is built with to learn whether it calls it."""

    def __init__(self) -> None:
        self.calls = 0

    def __call__(self) -> Any:
        from torch import nn

        self.calls += 1
        return nn.ReLU()


def _calls_activation(build: Callable[..., Any], modalities: tuple[str, ...], params: dict[str, Any],
                      what: str) -> bool:
    """Whether ``build`` calls the activation factory it is given (tried on a small input of each of its
    modalities; when it cannot be built on any, it is taken at its word). One that puts the factory itself
    where a module goes is refused, saying how to use it."""
    shapes = {"vector": (6,), "image": (3, 8, 8), "sequence": (5, 3)}
    for modality in modalities:
        probe = _ProbeActivation()
        try:
            build(InputSpec(modality, shapes[modality]), 2, probe, **params)  # type: ignore[arg-type]
        except Exception as exc:
            if _ProbeActivation.__name__ in str(exc):  # torch: "..._ProbeActivation is not a Module subclass"
                raise ObjectError(f"{what} uses the activation it is given as a module, but it is a factory of "
                                  "modules: call activation() for each nonlinearity, as in nn.Sequential(nn.Linear("
                                  "..), activation(), ...)") from None
            continue  # the model may not read this modality; the next one is tried
        return probe.calls > 0
    return True


# -- activations, optimizers, losses, plugin kinds ---------------------------------------------------------


def _activation(record: KindRecord, item: Any, name: str, conversion: Conversion) -> Activation:
    import torch

    factory, cls = _module_factory(item)
    if cls is not None and isinstance(item, type) and not no_required_arguments(cls):
        raise ObjectError(f"activation {name!r} ({describe(item)}) needs constructor arguments; pass an instance "
                          f"(activation={cls.__name__}(...)) or a mapping to one")
    if cls is None:
        if not callable(item) or isinstance(item, type):
            raise ObjectError(f"the activation axis takes names or {ACCEPTED['activation']}, not {describe(item)}")
        factory = FunctionActivation(item)
    try:  # on a batch of 4 samples of 6 features, as a hidden layer would call it
        out = factory()(torch.randn(4, 6))
        if not isinstance(out, torch.Tensor):
            raise TypeError(f"it returned {type(out).__name__}, not a tensor")
    except (Exception, SystemExit) as exc:  # sys.exit in the user's code is its fault, not a reason to end
        raise ObjectError(f"activation {name!r} ({describe(item)}) cannot be applied to a tensor of hidden "
                          f"features: {type(exc).__name__}: {exc}; an activation maps a tensor to a tensor") from None
    configured = cls is not None and not isinstance(item, type) and not isinstance(item, functools.partial)
    description = f"{type(item).__name__} as configured" if configured else first_line(item) or f"the function {name}"
    # vectorizable: a probe checks that the stacked seeds compute what each computes alone, else one by one
    return Activation(name, factory, description, vectorizable=True)


def _optimizer(record: KindRecord, item: Any, name: str, conversion: Conversion) -> Optimizer:
    import torch

    if isinstance(item, torch.optim.Optimizer):
        raise ObjectError(f"optimizer {name!r} is an optimizer already built over some parameters; pass its class "
                          f"(optimizer=torch.optim.{type(item).__name__}, lr=...): nnbench builds one per trial")
    cls, given = (item.func, dict(item.keywords)) if isinstance(item, functools.partial) else (item, {})
    if not (isinstance(cls, type) and issubclass(cls, torch.optim.Optimizer)):
        raise ObjectError(f"the optimizer axis takes names or {ACCEPTED['optimizer']}, not {describe(item)}")
    if isinstance(item, functools.partial) and item.args:
        raise ObjectError(f"optimizer {name!r} ({describe(item)}) binds positional arguments; give its arguments by "
                          f"name: functools.partial({cls.__name__}, lr=..., ...)")
    try:
        parameters = list(inspect.signature(cls).parameters.values())[1:]  # after the parameters to optimize
    except (TypeError, ValueError):
        parameters = []
    lr = given.pop("lr", next((p.default for p in parameters if p.name == "lr"), inspect.Parameter.empty))
    missing = [p.name for p in parameters if p.default is p.empty and p.name not in given and p.name != "lr"
               and p.kind in (p.POSITIONAL_OR_KEYWORD, p.KEYWORD_ONLY)]
    if missing:
        example = ", ".join(f"{m}=..." for m in missing)
        raise ObjectError(f"optimizer {name!r} ({describe(item)}) requires {', '.join(missing)}, which "
                          f"{'has' if len(missing) == 1 else 'have'} no default; give "
                          f"{'it' if len(missing) == 1 else 'them'} as functools.partial({cls.__name__}, {example}) "
                          "(part of the trials' ids, like every hyper-parameter)")
    if lr is inspect.Parameter.empty or isinstance(lr, bool) or not isinstance(lr, int | float) or not lr > 0:
        numbers = [v for v in conversion.learning_rates if not isinstance(v, bool) and isinstance(v, int | float)]
        if not numbers or len(numbers) < len(conversion.learning_rates):
            raise ObjectError(f"optimizer {name!r} ({describe(item)}) has no default learning rate: give the rates to "
                              f"try with lr=... (lr=0.01, or lr=[0.01, 0.1]), or one of its own with "
                              f"functools.partial({cls.__name__}, lr=0.01)")
        lr = numbers[0]  # never used as a rate: every trial of it takes one of the call's rates
    return Optimizer(name, cls, float(lr), first_line(cls), params=given)


def _loss(record: KindRecord, item: Any, name: str, conversion: Conversion) -> Loss:
    import torch

    factory, cls = _module_factory(item)
    if cls is None:
        raise ObjectError(f"the loss axis takes names or {ACCEPTED['loss']}, not {describe(item)}")
    if isinstance(item, type) and not no_required_arguments(cls):
        raise ObjectError(f"loss {name!r} ({describe(item)}) needs constructor arguments; pass an instance")
    try:  # the contract of a loss given as an object: outputs and float targets of one shape, a scalar back
        value = factory()(torch.rand(4, 3), torch.rand(4, 3))
        if not (isinstance(value, torch.Tensor) and value.numel() == 1):
            raise TypeError(f"it returned {value!r}, not a scalar tensor")
    except (Exception, SystemExit) as exc:  # sys.exit in the user's code is its fault, not a reason to end
        raise ObjectError(f"loss {name!r} ({describe(item)}) cannot be called as criterion(outputs, targets) with "
                          f"float targets: {type(exc).__name__}: {exc}; pass an nnbench.Loss to say how it takes "
                          "its targets") from None
    conversion.notes.append(f"loss {name!r} is called as criterion(outputs, targets) with MSE's targets (floats; "
                            "one-hot for classes) and one output per class or target; pass an nnbench.Loss to say "
                            "otherwise")
    return Loss(name, factory, ALL_KINDS, natural_outputs, one_hot_or_value, first_line(item), vectorizable=True)


def _component(record: KindRecord, item: Any, name: str, conversion: Conversion) -> Component:
    if not callable(item):
        raise ObjectError(f"the {record.name} axis takes names, a function (the component's factory, called as the "
                          f"{record.stage} stage says) or an nnbench.Component, not {describe(item)}")
    return Component(record.name, name, item, first_line(item))


CONVERTERS: dict[str, Callable[[KindRecord, Any, str, Conversion], Any]] = {
    "architecture": _architecture, "activation": _activation, "optimizer": _optimizer, "loss": _loss,
}
