"""Built-in activation functions."""

from __future__ import annotations

from collections.abc import Callable

from torch import nn

from nnbench import hookimpl
from nnbench.components import Activation

ACTIVATIONS = (
    Activation("relu", nn.ReLU, "rectified linear unit, max(0, x)"),
    Activation("leaky_relu", lambda: nn.LeakyReLU(0.01), "ReLU with slope 0.01 for x < 0"),
    Activation("elu", nn.ELU, "exponential linear unit (alpha 1)"),
    Activation("selu", nn.SELU, "scaled ELU, self-normalizing"),
    Activation("gelu", nn.GELU, "Gaussian error linear unit, x * Phi(x)"),
    Activation("silu", nn.SiLU, "sigmoid linear unit (swish), x * sigmoid(x)"),
    Activation("mish", nn.Mish, "x * tanh(softplus(x))"),
    Activation("softplus", nn.Softplus, "smooth ReLU, log(1 + exp(x))"),
    Activation("tanh", nn.Tanh, "hyperbolic tangent"),
    Activation("sigmoid", nn.Sigmoid, "logistic function, 1 / (1 + exp(-x))"),
    Activation("hardswish", nn.Hardswish, "piecewise-linear swish (MobileNetV3)"),
    Activation("hardtanh", nn.Hardtanh, "tanh clipped to a straight line in [-1, 1]"),
    Activation("prelu", nn.PReLU, "leaky ReLU with a learned slope"),
    Activation("identity", nn.Identity, "no nonlinearity (a linear model baseline)"),
)


@hookimpl
def register_activations(register: Callable[[Activation], None]) -> None:
    for activation in ACTIVATIONS:
        register(activation)
