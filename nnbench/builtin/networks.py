"""The built-in architectures' networks: fnn, cnn, rnn, lstm, gru (registered by :mod:`nnbench.builtin.architectures`).

Each takes the activation under test wherever it has a nonlinearity of its own choosing: between
the FNN's layers, after each convolution, in the Elman RNN's recurrence, and in the head of the
LSTM and GRU (whose gates are sigmoid and tanh by definition). Each can train several seeds as one
stacked model (:mod:`nnbench.training.stacked_networks` holds the stacked forms of the CNN and the
recurrent networks); whether that is faster is measured per run.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence

import torch
from torch import nn

from nnbench.contract.specs import Architecture, InputSpec

ActivationFactory = Callable[[], nn.Module]
NormFactory = Callable[[int, str], nn.Module]
"""A normalisation layer for ``features`` channels of a ``layout``: ``vector`` (batch, features),
``signal`` (batch, channels, steps) or ``image`` (batch, channels, height, width); see
:mod:`nnbench.builtin.norms`."""


def _sizes(value: int | Sequence[int], name: str) -> list[int]:
    sizes = [value] if isinstance(value, int) else list(value)
    if any(not isinstance(s, int) or s < 1 for s in sizes):
        raise ValueError(f"{name} must be a positive integer or a list of them, not {value!r}")
    return sizes


def build_fnn(
    spec: InputSpec,
    outputs: int,
    activation: ActivationFactory,
    hidden: int | Sequence[int] = (64, 64),
    dropout: float = 0.0,
    norm: NormFactory | None = None,
) -> nn.Module:
    """A multilayer perceptron on the flattened input; ``norm`` (when given) follows each hidden layer,
    before its activation."""
    layers: list[nn.Module] = [nn.Flatten()]
    width = math.prod(spec.shape)
    for size in _sizes(hidden, "fnn hidden") if hidden else []:
        layers.append(nn.Linear(width, size))
        if norm is not None:
            layers.append(norm(size, "vector"))
        layers.append(activation())
        if dropout:
            layers.append(nn.Dropout(dropout))
        width = size
    layers.append(nn.Linear(width, outputs))
    return nn.Sequential(*layers)


class ConvNet(nn.Module):
    """Convolution + activation + max-pooling blocks, then a small dense head.

    Images ``(C, H, W)`` use 2-D convolutions; sequences ``(T, F)`` are read as 1-D signals with
    ``F`` channels over ``T`` steps.
    """

    def __init__(
        self,
        spec: InputSpec,
        outputs: int,
        activation: ActivationFactory,
        channels: Sequence[int],
        kernel_size: int,
        hidden: int,
        norm: NormFactory | None = None,
    ) -> None:
        super().__init__()
        self.signal = spec.modality == "sequence"
        conv, pool = (nn.Conv1d, nn.MaxPool1d) if self.signal else (nn.Conv2d, nn.MaxPool2d)
        in_channels = spec.shape[1] if self.signal else spec.shape[0]
        spatial = [spec.shape[0]] if self.signal else list(spec.shape[1:])
        blocks: list[nn.Module] = []
        for out_channels in channels:
            blocks.append(conv(in_channels, out_channels, kernel_size, padding=kernel_size // 2))
            if norm is not None:
                blocks.append(norm(out_channels, "signal" if self.signal else "image"))
            blocks.append(activation())
            if min(spatial) >= 2:  # pool while there is something left to pool
                blocks.append(pool(2))
                spatial = [s // 2 for s in spatial]
            in_channels = out_channels
        self.features = nn.Sequential(*blocks)
        if not self.signal:
            # channels-last convolutions and pooling ran a digits CNN step about 1.2x faster on CPU
            self.features.to(memory_format=torch.channels_last)  # type: ignore[call-overload]  # supported, not in the stubs
        flat = in_channels * math.prod(spatial)
        self.head = nn.Sequential(nn.Flatten(), nn.Linear(flat, hidden), activation(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        x = x.transpose(1, 2) if self.signal else x.contiguous(memory_format=torch.channels_last)
        return self.head(self.features(x))


def build_cnn(
    spec: InputSpec,
    outputs: int,
    activation: ActivationFactory,
    channels: int | Sequence[int] = (16, 32),
    kernel_size: int = 3,
    hidden: int = 64,
    norm: NormFactory | None = None,
) -> nn.Module:
    """Convolution blocks and a dense head (see :class:`ConvNet`); ``norm`` (when given) follows each
    convolution, before its activation."""
    if kernel_size < 1 or kernel_size % 2 == 0:
        raise ValueError(f"cnn kernel_size must be a positive odd integer, not {kernel_size!r}")
    return ConvNet(spec, outputs, activation, _sizes(channels, "cnn channels"), kernel_size, hidden, norm)


class ElmanRNN(nn.Module):
    """A simple recurrent network whose recurrence uses the activation under test.

    ``h_t = act(W x_t + U h_{t-1} + b)``; the input projection of all steps is computed at once
    and only the recurrence loops over time.
    """

    def __init__(
        self, spec: InputSpec, outputs: int, activation: ActivationFactory, hidden: int, layers: int
    ) -> None:
        super().__init__()
        features = spec.shape[1]
        self.inputs = nn.ModuleList(nn.Linear(features if i == 0 else hidden, hidden) for i in range(layers))
        recurrent = [nn.Linear(hidden, hidden, bias=False) for _ in range(layers)]
        for layer in recurrent:
            nn.init.orthogonal_(layer.weight)  # keeps the recurrence from exploding or vanishing at start
        self.recurrent = nn.ModuleList(recurrent)
        self.act = activation()
        self.head = nn.Linear(hidden, outputs)
        self.hidden = hidden

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        for proj, rec in zip(self.inputs, self.recurrent, strict=True):
            pre = proj(x)
            h = x.new_zeros(x.shape[0], self.hidden)
            states = []
            for t in range(pre.shape[1]):
                h = self.act(pre[:, t] + rec(h))
                states.append(h)
            x = torch.stack(states, dim=1)
        return self.head(x[:, -1])


def build_rnn(
    spec: InputSpec, outputs: int, activation: ActivationFactory, hidden: int = 64, layers: int = 1
) -> nn.Module:
    return ElmanRNN(spec, outputs, activation, hidden, layers)


class GatedRNN(nn.Module):
    """``nn.LSTM`` or ``nn.GRU`` over the sequence, then a dense head on the last step."""

    def __init__(
        self,
        cell: type[nn.LSTM] | type[nn.GRU],
        spec: InputSpec,
        outputs: int,
        activation: ActivationFactory,
        hidden: int,
        layers: int,
    ) -> None:
        super().__init__()
        self.rnn = cell(spec.shape[1], hidden, num_layers=layers, batch_first=True)
        self.head = nn.Sequential(nn.Linear(hidden, hidden), activation(), nn.Linear(hidden, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out, _ = self.rnn(x)
        return self.head(out[:, -1])


def build_lstm(
    spec: InputSpec, outputs: int, activation: ActivationFactory, hidden: int = 64, layers: int = 1
) -> nn.Module:
    return GatedRNN(nn.LSTM, spec, outputs, activation, hidden, layers)


def build_gru(
    spec: InputSpec, outputs: int, activation: ActivationFactory, hidden: int = 64, layers: int = 1
) -> nn.Module:
    return GatedRNN(nn.GRU, spec, outputs, activation, hidden, layers)


ARCHITECTURES = (
    Architecture("fnn", build_fnn, ("vector", "image", "sequence"),
                 "feed-forward network on the flattened input", {"hidden": [64, 64], "dropout": 0.0},
                 vectorizable=True),
    Architecture("cnn", build_cnn, ("image", "sequence"),
                 "conv + pool blocks (2-D on images, 1-D on signals), dense head",
                 {"channels": [16, 32], "kernel_size": 3, "hidden": 64}, vectorizable=True),
    Architecture("rnn", build_rnn, ("sequence",),
                 "Elman RNN whose recurrence uses the activation under test", {"hidden": 64, "layers": 1},
                 vectorizable=True),
    Architecture("lstm", build_lstm, ("sequence",), "LSTM, dense head on the last step",
                 {"hidden": 64, "layers": 1}, vectorizable=True),
    Architecture("gru", build_gru, ("sequence",), "GRU, dense head on the last step",
                 {"hidden": 64, "layers": 1}, vectorizable=True),
)
