"""The ``initializer`` kind: how a model's weights start.

Declared through ``register_kinds`` like a plugin's kind, at the ``model`` stage: after the
architecture built the model from the trial's seed, the initializer redraws every weight matrix and
convolution kernel (every parameter with two or more dimensions) from the same seeded generator and
sets every bias to zero. ``default`` keeps the layers' own initialization and is never applied.
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Component, Kind

if TYPE_CHECKING:
    import torch
    from torch import nn

KIND = "initializer"
Init = Callable[..., None]


def _apply(model: nn.Module, draw: Callable[[torch.Tensor], object]) -> None:
    """``draw`` every weight with two or more dimensions; zero every bias."""
    import torch

    with torch.no_grad():
        for name, parameter in model.named_parameters():
            if parameter.dim() >= 2:
                # Drawn into a plain contiguous tensor: a channels-last kernel cannot be viewed as a matrix.
                fresh = torch.empty(parameter.shape, dtype=parameter.dtype, device=parameter.device)
                draw(fresh)
                parameter.copy_(fresh)
            elif name.rsplit(".", 1)[-1].startswith("bias"):
                parameter.zero_()


def default(model: nn.Module) -> None:
    """The layers' own initialization (never applied)."""


def xavier_uniform(model: nn.Module, gain: float = 1.0) -> None:
    from torch.nn import init

    _apply(model, lambda w: init.xavier_uniform_(w, gain=gain))


def xavier_normal(model: nn.Module, gain: float = 1.0) -> None:
    from torch.nn import init

    _apply(model, lambda w: init.xavier_normal_(w, gain=gain))


def kaiming_uniform(model: nn.Module, nonlinearity: Any = "relu", mode: Any = "fan_in") -> None:
    from torch.nn import init

    _apply(model, lambda w: init.kaiming_uniform_(w, mode=mode, nonlinearity=nonlinearity))


def kaiming_normal(model: nn.Module, nonlinearity: Any = "relu", mode: Any = "fan_in") -> None:
    from torch.nn import init

    _apply(model, lambda w: init.kaiming_normal_(w, mode=mode, nonlinearity=nonlinearity))


def orthogonal(model: nn.Module, gain: float = 1.0) -> None:
    from torch.nn import init

    _apply(model, lambda w: init.orthogonal_(w, gain=gain))


def lecun_normal(model: nn.Module) -> None:
    """Normal with standard deviation 1 / sqrt(fan_in) (LeCun; what SELU networks expect)."""

    def draw(weight: torch.Tensor) -> None:
        fan_in = weight.shape[1] * math.prod(weight.shape[2:])
        weight.normal_(0.0, 1.0 / math.sqrt(fan_in))

    _apply(model, draw)


@hookimpl
def register_kinds(register: Callable[[Kind], None]) -> None:
    register(Kind(KIND, "initializers", "model", "default", "weight initialization of the built model",
                  aliases=("init", "inits")))


@hookimpl
def register_components(register: Callable[[Component], None]) -> None:
    for name, factory, description, params in (
        ("default", default, "each layer's own initialization (torch's defaults)", {}),
        ("xavier_uniform", xavier_uniform, "Glorot uniform, biases zero", {"gain": 1.0}),
        ("xavier_normal", xavier_normal, "Glorot normal, biases zero", {"gain": 1.0}),
        ("kaiming_uniform", kaiming_uniform, "He uniform (fan in, ReLU gain), biases zero",
         {"nonlinearity": "relu", "mode": "fan_in"}),
        ("kaiming_normal", kaiming_normal, "He normal (fan in, ReLU gain), biases zero",
         {"nonlinearity": "relu", "mode": "fan_in"}),
        ("orthogonal", orthogonal, "orthogonal matrices (Saxe et al.), biases zero", {"gain": 1.0}),
        ("lecun_normal", lecun_normal, "normal, std 1/sqrt(fan in), biases zero", {}),
    ):
        register(Component(KIND, name, factory, description, params, vectorizable=True))
