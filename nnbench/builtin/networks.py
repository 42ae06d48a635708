"""The built-in architectures' networks: fnn, cnn, rnn, lstm, gru (registered by :mod:`nnbench.builtin.architectures`).

Each takes the activation under test wherever it has a nonlinearity of its own choosing: between
the FNN's layers, after each convolution, in the Elman RNN's recurrence, and in the head of the
LSTM and GRU (whose gates are sigmoid and tanh by definition). Beside each network are its cost
estimate (what the planner orders work by) and, where it is a module class of its own, its stacked
form (several seeds computed as one model, built from :mod:`nnbench.training.stacked_networks`).
"""

from __future__ import annotations

import math
from collections.abc import Callable, Mapping, Sequence
from typing import Any

import torch
from torch import nn

from nnbench.contract.specs import Architecture, InputSpec
from nnbench.training.stacked_networks import (
    from_grouped,
    grouped_layer,
    recurrent_layers,
    stacked_activation,
    to_grouped,
)
from nnbench.training.stacking import Layer, NotStackable, StackedModel, linear

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


def fnn_cost(spec: InputSpec, outputs: int, params: Mapping[str, Any]) -> tuple[float, float]:
    """Multiply-adds per sample and kernels per step of :func:`build_fnn`."""
    hidden = params["hidden"]
    widths = [math.prod(spec.shape), *([hidden] if isinstance(hidden, int) else (hidden or [])), outputs]
    return float(sum(a * b for a, b in zip(widths, widths[1:], strict=False))), 2.0 * len(widths)


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


def cnn_cost(spec: InputSpec, outputs: int, params: Mapping[str, Any]) -> tuple[float, float]:
    """Multiply-adds per sample and kernels per step of :class:`ConvNet` (pooling halves each block's size)."""
    channels = params["channels"]
    channels = [channels] if isinstance(channels, int) else list(channels)
    kernel = params["kernel_size"]
    signal = spec.modality == "sequence"
    spatial = [spec.shape[0]] if signal else list(spec.shape[1:])
    inputs = spec.shape[1] if signal else spec.shape[0]
    macs = 0.0
    for out in channels:
        macs += inputs * out * kernel ** len(spatial) * math.prod(spatial)
        spatial = [s // 2 for s in spatial] if min(spatial) >= 2 else spatial
        inputs = out
    flat = inputs * math.prod(spatial)
    return macs + flat * params["hidden"] + params["hidden"] * outputs, 4.0 * len(channels) + 4


def stacked_convnet(stack: StackedModel, module: nn.Module, prefix: str) -> Layer:
    """:class:`ConvNet`: its convolution blocks grouped, its head stacked."""
    assert isinstance(module, ConvNet)
    features = [grouped_layer(stack, child, f"{prefix}features.{name}.")
                for name, child in module.features.named_children()]
    head = stack.plan(module.head, f"{prefix}head.")
    signal = module.signal

    def layer(x: torch.Tensor) -> torch.Tensor:
        members = x.shape[0]
        if signal:  # a member reads (batch, steps, features) as (batch, channels, steps)
            x = x.transpose(2, 3)
        grouped = to_grouped(x)
        for feature in features:
            grouped = feature(grouped)
        out = from_grouped(grouped, members)
        for part in head:
            out = part(out)
        return out

    return layer


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


def stacked_elman(stack: StackedModel, module: nn.Module, prefix: str) -> Layer:
    """:class:`ElmanRNN`: ``h_t = act(W x_t + U h_{t-1} + b)`` for every member
    at once, one batched matrix product per step."""
    assert isinstance(module, ElmanRNN)
    layers = len(module.inputs)
    for i in range(layers):
        stack.transposed.update({f"{prefix}inputs.{i}.weight", f"{prefix}recurrent.{i}.weight"})
    act = stacked_activation(stack, module.act, f"{prefix}act.")
    head = stack.plan(module.head, f"{prefix}head.")
    hidden = module.hidden

    def layer(x: torch.Tensor) -> torch.Tensor:
        members, batch, steps = x.shape[:3]
        for i in range(layers):
            pre = linear(x, stack.params[f"{prefix}inputs.{i}.weight"], stack.params.get(f"{prefix}inputs.{i}.bias"))
            recurrent = stack.params[f"{prefix}recurrent.{i}.weight"]
            h = x.new_zeros(members, batch, hidden)
            states = []
            for t in range(steps):
                h = act(pre[:, :, t] + torch.bmm(h, recurrent))
                states.append(h)
            x = torch.stack(states, dim=2)
        out = x[:, :, -1]
        for part in head:
            out = part(out)
        return out

    return layer


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


def stacked_gated(stack: StackedModel, module: nn.Module, prefix: str) -> Layer:
    """:class:`GatedRNN`: batched LSTM or GRU cells, then the stacked head on the
    last step."""
    assert isinstance(module, GatedRNN)
    if type(module.rnn) not in (nn.LSTM, nn.GRU):
        raise NotStackable(f"the recurrent layer {type(module.rnn).__name__} has no stacked form")
    run = recurrent_layers(stack, module.rnn, f"{prefix}rnn.")
    head = stack.plan(module.head, f"{prefix}head.")

    def layer(x: torch.Tensor) -> torch.Tensor:
        out = run(x)[:, :, -1]
        for part in head:
            out = part(out)
        return out

    return layer


def recurrent_cost(gates: int, fused: bool) -> Callable[[InputSpec, int, Mapping[str, Any]], tuple[float, float]]:
    """The cost of a recurrent network with ``gates`` gate blocks per step; torch runs a ``fused`` LSTM or GRU
    layer as a few kernels, the Elman RNN's recurrence as a few per step."""

    def cost(spec: InputSpec, outputs: int, params: Mapping[str, Any]) -> tuple[float, float]:
        steps, features = spec.shape
        hidden, layers = params["hidden"], params["layers"]
        recurrence = steps * (features * hidden + (layers - 1) * hidden * hidden + layers * hidden * hidden)
        head = hidden * hidden + hidden * outputs if fused else hidden * outputs
        kernels = 4.0 * layers + 5 if fused else 3.0 * steps * layers + 3
        return float(gates * recurrence + head), kernels

    return cost


ARCHITECTURES = (
    Architecture("fnn", build_fnn, ("vector", "image", "sequence"),
                 "feed-forward network on the flattened input", {"hidden": [64, 64], "dropout": 0.0},
                 vectorizable=True, cost=fnn_cost),
    Architecture("cnn", build_cnn, ("image", "sequence"),
                 "conv + pool blocks (2-D on images, 1-D on signals), dense head",
                 {"channels": [16, 32], "kernel_size": 3, "hidden": 64}, vectorizable=True, cost=cnn_cost,
                 stacked_forms={ConvNet: stacked_convnet}),
    Architecture("rnn", build_rnn, ("sequence",),
                 "Elman RNN whose recurrence uses the activation under test", {"hidden": 64, "layers": 1},
                 vectorizable=True, cost=recurrent_cost(1, fused=False), stacked_forms={ElmanRNN: stacked_elman}),
    # A stack of LSTMs runs batched cells step by step where one LSTM runs torch's fused kernel: on a CPU it
    # pays only from about eight seeds (3 seeds stacked: 0.8x; 16 seeds: 1.13x, benchmarks/bench_stacking.py).
    Architecture("lstm", build_lstm, ("sequence",), "LSTM, dense head on the last step",
                 {"hidden": 64, "layers": 1}, vectorizable=True, cost=recurrent_cost(4, fused=True),
                 stacked_forms={GatedRNN: stacked_gated}, stacks_from={"cpu": 8}),
    Architecture("gru", build_gru, ("sequence",), "GRU, dense head on the last step",
                 {"hidden": 64, "layers": 1}, vectorizable=True, cost=recurrent_cost(3, fused=True),
                 stacked_forms={GatedRNN: stacked_gated}),
)
