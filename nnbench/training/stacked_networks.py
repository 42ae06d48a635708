"""Stacked forms of convolutional and recurrent networks: many seeds of one model computed as one.

Each form reads the stacked parameters of a :class:`~nnbench.training.stacking.StackedModel` and
computes, for inputs of shape ``(members, batch, ...)``, what every member computes alone:

- **Convolutions** run as one grouped convolution: the members' channels side by side, ``groups``
  times the number of members, so member ``k``'s filters see only member ``k``'s channels. Pooling,
  element-wise activations, batch and group normalisation are per channel, so they apply to the
  grouped channels as they are (a member's batch statistics are its own channels' statistics).
- **Recurrent layers** (the Elman RNN, ``nn.LSTM``, ``nn.GRU``) run as batched cells: the input
  projection of every step at once, then one batched matrix product per step for all members. The
  Elman RNN keeps the activation under test in its recurrence.

torch's ``nn.Conv1d``/``nn.Conv2d``, normalisation layers, ``nn.LSTM`` and ``nn.GRU`` have a form here, and the
pieces here (:func:`grouped_layer`, :func:`recurrent_layers`, :func:`stacked_activation`) are what an
architecture's own forms are made of (``Architecture.stacked_forms``: the built-in networks declare theirs beside
their definitions). Each equals its members to float rounding (grouped and batched kernels sum in another order).
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

import torch
from torch import nn
from torch.nn import functional as F

from nnbench.training.stacking import ELEMENTWISE, Layer, NotStackable, StackedForm, linear, parameter_free, prelu

if TYPE_CHECKING:
    from nnbench.training.stacking import StackedModel

CHANNELWISE: tuple[type[nn.Module], ...] = (
    nn.MaxPool1d, nn.MaxPool2d, nn.AvgPool1d, nn.AvgPool2d, nn.AdaptiveAvgPool1d, nn.AdaptiveAvgPool2d,
    nn.AdaptiveMaxPool1d, nn.AdaptiveMaxPool2d,
)
"""Parameter-free modules that treat each channel on its own: they apply to grouped channels as they are."""


# -- grouped channels: (batch, members * channels, *positions) -------------------------------------


def to_grouped(x: torch.Tensor) -> torch.Tensor:
    """``(members, batch, channels, *positions)`` -> ``(batch, members * channels, *positions)``."""
    members, batch = x.shape[:2]
    return x.transpose(0, 1).reshape(batch, members * x.shape[2], *x.shape[3:])


def from_grouped(x: torch.Tensor, members: int) -> torch.Tensor:
    """``(batch, members * channels, *positions)`` -> ``(members, batch, channels * prod(positions))``,
    each member's features in the order ``nn.Flatten`` gives them."""
    return x.reshape(x.shape[0], members, -1).transpose(0, 1)


def _grouped_conv(stack: StackedModel, conv: nn.Conv1d | nn.Conv2d, prefix: str) -> Layer:
    if conv.padding_mode != "zeros" or isinstance(conv.padding, str) and conv.padding != "valid":
        raise NotStackable(f"the convolution {prefix.rstrip('.')} pads in a way the stacked form does not")
    function = F.conv1d if isinstance(conv, nn.Conv1d) else F.conv2d
    stride, padding, dilation, groups = conv.stride, conv.padding, conv.dilation, conv.groups

    def layer(x: torch.Tensor) -> torch.Tensor:
        weight = stack.params[f"{prefix}weight"]
        members = weight.shape[0]
        bias = stack.params.get(f"{prefix}bias")
        return function(x, weight.flatten(0, 1), None if bias is None else bias.flatten(), stride, padding,
                        dilation, groups * members)

    return layer


def _grouped_batch_norm(stack: StackedModel, norm: nn.BatchNorm1d | nn.BatchNorm2d, prefix: str) -> Layer:
    """``nn.BatchNorm*d`` over grouped channels: running statistics are views of the stacked buffers,
    updated in place as each member's would be."""

    def layer(x: torch.Tensor) -> torch.Tensor:
        mean, var = stack.buffers.get(f"{prefix}running_mean"), stack.buffers.get(f"{prefix}running_var")
        weight, bias = stack.params.get(f"{prefix}weight"), stack.params.get(f"{prefix}bias")
        batch_stats = norm.training or mean is None
        momentum = norm.momentum
        if norm.training and norm.track_running_stats:
            tracked = stack.buffers[f"{prefix}num_batches_tracked"]
            tracked.add_(1)
            if momentum is None:  # a cumulative average; every member has seen as many batches
                momentum = 1.0 / float(tracked[0])
        return F.batch_norm(
            x, None if mean is None else mean.view(-1), None if var is None else var.view(-1),
            None if weight is None else weight.flatten(), None if bias is None else bias.flatten(),
            batch_stats, momentum or 0.0, norm.eps)

    return layer


def _grouped_group_norm(stack: StackedModel, norm: nn.GroupNorm, prefix: str) -> Layer:
    groups, eps = norm.num_groups, norm.eps

    def layer(x: torch.Tensor) -> torch.Tensor:
        weight, bias = stack.params.get(f"{prefix}weight"), stack.params.get(f"{prefix}bias")
        members = x.shape[1] // norm.num_channels
        return F.group_norm(x, groups * members, None if weight is None else weight.flatten(),
                            None if bias is None else bias.flatten(), eps)

    return layer


def _grouped_prelu(stack: StackedModel, module: nn.PReLU, prefix: str) -> Layer:
    def layer(x: torch.Tensor) -> torch.Tensor:
        weight = stack.params[f"{prefix}weight"]  # (members, 1) or (members, channels)
        members = weight.shape[0]
        per_channel = weight.expand(members, x.shape[1] // members).reshape(-1)
        return F.prelu(x, per_channel)

    return layer


def grouped_layer(stack: StackedModel, module: nn.Module, prefix: str) -> Layer:
    """The layer computing ``module`` on grouped channels, or :class:`NotStackable` saying why not."""
    kind = type(module)
    if kind in (nn.Conv1d, nn.Conv2d):
        return _grouped_conv(stack, module, prefix)  # type: ignore[arg-type]
    if kind in ELEMENTWISE or (parameter_free(module) and not stack.alike_at(module, prefix)):
        return stack.elementwise(module, prefix, grouped=True)
    if kind in CHANNELWISE:
        return module
    if kind is nn.PReLU:
        return _grouped_prelu(stack, module, prefix)  # type: ignore[arg-type]
    if kind in (nn.BatchNorm1d, nn.BatchNorm2d):
        return _grouped_batch_norm(stack, module, prefix)  # type: ignore[arg-type]
    if kind is nn.GroupNorm:
        return _grouped_group_norm(stack, module, prefix)  # type: ignore[arg-type]
    if kind is nn.Dropout and module.p == 0:
        return nn.Identity()
    raise NotStackable(f"the layer {prefix.rstrip('.') or 'model'} ({kind.__name__}) has no stacked form "
                       "among convolutions")


def stacked_channelwise(stack: StackedModel, module: nn.Module, prefix: str) -> Layer:
    """A convolution or normalisation layer inside an ``nn.Sequential``, on ``(members, batch, channels,
    ...)``: grouped, then given back its leading members dimension."""
    grouped = grouped_layer(stack, module, prefix)

    def layer(x: torch.Tensor) -> torch.Tensor:
        members, batch = x.shape[:2]
        out = grouped(to_grouped(x))
        return out.reshape(batch, members, -1, *out.shape[2:]).transpose(0, 1)

    return layer


def stacked_layer_norm(stack: StackedModel, module: nn.Module, prefix: str) -> Layer:
    """``nn.LayerNorm`` on ``(members, batch, ...)``: normalised per sample, then each member's own affine."""
    assert isinstance(module, nn.LayerNorm)
    shape, eps, dims = tuple(module.normalized_shape), module.eps, len(module.normalized_shape)

    def layer(x: torch.Tensor) -> torch.Tensor:
        out = F.layer_norm(x, shape, None, None, eps)
        weight, bias = stack.params.get(f"{prefix}weight"), stack.params.get(f"{prefix}bias")
        members = x.shape[0]
        lead = [members, *([1] * (x.dim() - 1 - dims))]
        if weight is not None:
            out = out * weight.reshape(*lead, *shape)
        if bias is not None:
            out = out + bias.reshape(*lead, *shape)
        return out

    return layer


# -- recurrent: (members, batch, steps, features) --------------------------------------------------


def stacked_activation(stack: StackedModel, module: nn.Module, prefix: str) -> Layer:
    """An activation on ``(members, batch, features)``: element-wise as it is, PReLU per member."""
    if type(module) in ELEMENTWISE or parameter_free(module):
        return stack.elementwise(module, prefix)
    if type(module) is nn.PReLU:
        return lambda x: prelu(x, stack.params[f"{prefix}weight"])
    raise NotStackable(f"the activation {type(module).__name__} in the recurrence has no stacked form")


def _check_recurrent(rnn: nn.LSTM | nn.GRU, prefix: str) -> None:
    if rnn.bidirectional or rnn.proj_size or (rnn.dropout and rnn.num_layers > 1) or not rnn.batch_first \
            or not rnn.bias:
        raise NotStackable(f"the recurrent layer {prefix.rstrip('.')} is bidirectional, projected, uses dropout, "
                           "reads time first or has no biases: its stacked form covers none of these")


def recurrent_layers(stack: StackedModel, rnn: nn.LSTM | nn.GRU, prefix: str) -> Callable[[torch.Tensor], torch.Tensor]:
    """``nn.LSTM``/``nn.GRU`` (batch first, from zero states) for every member: ``(members, batch, steps,
    features)`` -> the last layer's outputs ``(members, batch, steps, hidden)``."""
    _check_recurrent(rnn, prefix)
    lstm = isinstance(rnn, nn.LSTM)
    layers, hidden = rnn.num_layers, rnn.hidden_size
    for i in range(layers):
        stack.transposed.update({f"{prefix}weight_ih_l{i}", f"{prefix}weight_hh_l{i}"})

    def run(x: torch.Tensor) -> torch.Tensor:
        members, batch, steps = x.shape[:3]
        for i in range(layers):
            w_ih, w_hh = stack.params[f"{prefix}weight_ih_l{i}"], stack.params[f"{prefix}weight_hh_l{i}"]
            b_ih, b_hh = stack.params[f"{prefix}bias_ih_l{i}"], stack.params[f"{prefix}bias_hh_l{i}"]
            pre = linear(x, w_ih, b_ih)  # every step's input projection at once
            recurrent_bias = b_hh.unsqueeze(1)
            h = x.new_zeros(members, batch, hidden)
            c = x.new_zeros(members, batch, hidden) if lstm else h
            states = []
            for t in range(steps):
                from_state = torch.baddbmm(recurrent_bias, h, w_hh)
                if lstm:
                    i_gate, f_gate, g_gate, o_gate = (pre[:, :, t] + from_state).chunk(4, dim=2)
                    c = torch.sigmoid(f_gate) * c + torch.sigmoid(i_gate) * torch.tanh(g_gate)
                    h = torch.sigmoid(o_gate) * torch.tanh(c)
                else:
                    r_in, z_in, n_in = pre[:, :, t].chunk(3, dim=2)
                    r_h, z_h, n_h = from_state.chunk(3, dim=2)
                    r, z = torch.sigmoid(r_in + r_h), torch.sigmoid(z_in + z_h)
                    n = torch.tanh(n_in + r * n_h)
                    h = (1 - z) * n + z * h
                states.append(h)
            x = torch.stack(states, dim=2)
        return x

    return run


STACKED_FORMS: dict[type[nn.Module], StackedForm] = {
    nn.Conv1d: stacked_channelwise,
    nn.Conv2d: stacked_channelwise,
    nn.BatchNorm1d: stacked_channelwise,
    nn.BatchNorm2d: stacked_channelwise,
    nn.GroupNorm: stacked_channelwise,
    nn.LayerNorm: stacked_layer_norm,
}
"""torch's modules (matched by exact type) with a stacked form of their own; an architecture declares the forms
of its own module classes (``Architecture.stacked_forms``), and the rest are planned by
:meth:`~nnbench.training.stacking.StackedModel.plan`."""
