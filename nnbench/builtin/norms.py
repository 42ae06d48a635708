"""The ``norm`` kind: normalisation layers, passed to the architectures that take them.

Declared through ``register_kinds`` like a plugin's kind, at the ``build`` stage: an architecture
takes norms when its build has a ``norm`` parameter (the built-in fnn and cnn do), and calls
``norm(features, layout)`` for a layer after each hidden layer or convolution, before its activation.
``layout`` is ``vector`` (inputs of shape (batch, features)), ``signal`` ((batch, channels, steps))
or ``image`` ((batch, channels, height, width)). Recurrent architectures take none: a trial that
pairs one with a norm other than ``none`` is skipped, saying so.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Component, Kind

if TYPE_CHECKING:
    from torch import nn

KIND = "norm"
LAYOUTS = ("vector", "signal", "image")


def _check(layout: str) -> None:
    if layout not in LAYOUTS:
        raise ValueError(f"norm layout must be one of {', '.join(LAYOUTS)}, not {layout!r}")


def no_norm(features: int, layout: str) -> nn.Module:
    """Nothing (the default: never applied, listed so that ``--norm none`` can be asked for)."""
    from torch import nn

    return nn.Identity()


def batch_norm(features: int, layout: str, momentum: float = 0.1, eps: float = 1e-5) -> nn.Module:
    """Batch normalisation over the batch (and positions), per feature or channel."""
    from torch import nn

    _check(layout)
    cls = nn.BatchNorm2d if layout == "image" else nn.BatchNorm1d
    return cls(features, momentum=momentum, eps=eps)


def layer_norm(features: int, layout: str, eps: float = 1e-5) -> nn.Module:
    """Layer normalisation per sample: over the features, or over channels and positions of a
    convolution's output (``GroupNorm`` with one group)."""
    from torch import nn

    _check(layout)
    return nn.LayerNorm(features, eps=eps) if layout == "vector" else nn.GroupNorm(1, features, eps=eps)


def group_norm(features: int, layout: str, groups: int = 8, eps: float = 1e-5) -> nn.Module:
    """Group normalisation per sample over groups of channels (the largest divisor of ``features`` up to
    ``groups`` groups)."""
    from torch import nn

    _check(layout)
    count = max(g for g in range(1, max(1, groups) + 1) if features % g == 0)
    return nn.GroupNorm(count, features, eps=eps)


def benchmark(component: Component, device: str, shape: tuple[int, ...]) -> Callable[[], None]:
    """Forward and backward of the layer on an input of ``shape`` (rows, features)."""
    import torch

    from nnbench.training.trainer import synchronize  # torch: loading the plugins imports none

    target = torch.device(device)
    module = component.factory(shape[-1], "vector", **component.params).to(target)
    x = torch.randn(*shape, generator=torch.Generator().manual_seed(0)).to(target).requires_grad_()
    inputs = [x, *module.parameters()]
    upstream = torch.ones_like(x)

    def call() -> None:
        torch.autograd.grad(module(x), inputs, upstream)
        synchronize(target)

    return call


@hookimpl
def register_kinds(register: Callable[[Kind], None]) -> None:
    register(Kind(KIND, "norms", "build", "none", "normalisation layers after each hidden layer or convolution",
                  aliases=("normalization", "normalisation"), benchmark=benchmark))


@hookimpl
def register_components(register: Callable[[Component], None]) -> None:
    register(Component(KIND, "none", no_norm, "no normalisation layer (the architecture as it is)"))
    register(Component(KIND, "batch", batch_norm, "batch normalisation (BatchNorm1d/2d)",
                       {"momentum": 0.1, "eps": 1e-5}, vectorizable=True))
    register(Component(KIND, "layer", layer_norm, "layer normalisation (LayerNorm; GroupNorm(1) after convolutions)",
                       {"eps": 1e-5}, vectorizable=True))
    register(Component(KIND, "group", group_norm, "group normalisation over up to 8 groups of channels",
                       {"groups": 8, "eps": 1e-5}, vectorizable=True))
