"""Built-in activation functions."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Activation


def _elementwise(name: str, module: Any, description: str) -> Activation:
    """A parameter-free, element-wise torch activation: it stacks, and seeds with different ones share a stack."""
    return Activation(name, module, description, vectorizable=True, elementwise=True)


def activations() -> tuple[Activation, ...]:
    """The built-in activations (torch is imported when they are registered)."""
    from torch import nn

    return (
        _elementwise("relu", nn.ReLU, "rectified linear unit, max(0, x)"),
        _elementwise("leaky_relu", nn.LeakyReLU, "ReLU with slope 0.01 for x < 0"),
        _elementwise("elu", nn.ELU, "exponential linear unit (alpha 1)"),
        _elementwise("selu", nn.SELU, "scaled ELU, self-normalizing"),
        _elementwise("gelu", nn.GELU, "Gaussian error linear unit, x * Phi(x)"),
        _elementwise("silu", nn.SiLU, "sigmoid linear unit (swish), x * sigmoid(x)"),
        _elementwise("mish", nn.Mish, "x * tanh(softplus(x))"),
        _elementwise("softplus", nn.Softplus, "smooth ReLU, log(1 + exp(x))"),
        _elementwise("tanh", nn.Tanh, "hyperbolic tangent"),
        _elementwise("sigmoid", nn.Sigmoid, "logistic function, 1 / (1 + exp(-x))"),
        _elementwise("hardswish", nn.Hardswish, "piecewise-linear swish (MobileNetV3)"),
        _elementwise("hardtanh", nn.Hardtanh, "tanh clipped to a straight line in [-1, 1]"),
        Activation("prelu", nn.PReLU, "leaky ReLU with a learned slope", vectorizable=True),
        _elementwise("identity", nn.Identity, "no nonlinearity (a linear model baseline)"),
    )


@hookimpl
def register_activations(register: Callable[[Activation], None]) -> None:
    for activation in activations():
        register(activation)
