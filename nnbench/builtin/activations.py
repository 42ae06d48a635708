"""Built-in activation functions."""

from __future__ import annotations

from collections.abc import Callable

from nnbench import hookimpl
from nnbench.contract.specs import Activation


def activations() -> tuple[Activation, ...]:
    """The built-in activations (torch is imported when they are registered)."""
    from torch import nn

    return (
        Activation("relu", nn.ReLU, "rectified linear unit, max(0, x)", vectorizable=True),
        Activation("leaky_relu", nn.LeakyReLU, "ReLU with slope 0.01 for x < 0", vectorizable=True),
        Activation("elu", nn.ELU, "exponential linear unit (alpha 1)", vectorizable=True),
        Activation("selu", nn.SELU, "scaled ELU, self-normalizing", vectorizable=True),
        Activation("gelu", nn.GELU, "Gaussian error linear unit, x * Phi(x)", vectorizable=True),
        Activation("silu", nn.SiLU, "sigmoid linear unit (swish), x * sigmoid(x)", vectorizable=True),
        Activation("mish", nn.Mish, "x * tanh(softplus(x))", vectorizable=True),
        Activation("softplus", nn.Softplus, "smooth ReLU, log(1 + exp(x))", vectorizable=True),
        Activation("tanh", nn.Tanh, "hyperbolic tangent", vectorizable=True),
        Activation("sigmoid", nn.Sigmoid, "logistic function, 1 / (1 + exp(-x))", vectorizable=True),
        Activation("hardswish", nn.Hardswish, "piecewise-linear swish (MobileNetV3)", vectorizable=True),
        Activation("hardtanh", nn.Hardtanh, "tanh clipped to a straight line in [-1, 1]", vectorizable=True),
        Activation("prelu", nn.PReLU, "leaky ReLU with a learned slope", vectorizable=True),
            Activation("identity", nn.Identity, "no nonlinearity (a linear model baseline)", vectorizable=True),
    )


@hookimpl
def register_activations(register: Callable[[Activation], None]) -> None:
    for activation in activations():
        register(activation)
