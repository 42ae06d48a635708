"""A small Transformer encoder for sequences: embed each step, add a learned position, attend,
average over the steps, then a linear head.

The activation under test is the one inside every feed-forward block.
"""

from __future__ import annotations

from collections.abc import Callable

import torch
from torch import nn

from nnbench import InputSpec


class TransformerEncoderClassifier(nn.Module):
    """Pre-norm Transformer encoder over ``(steps, features)`` inputs, mean-pooled."""

    def __init__(self, spec: InputSpec, outputs: int, activation: Callable[[], nn.Module], d_model: int,
                 heads: int, layers: int, feedforward: int) -> None:
        super().__init__()
        if d_model % heads:
            raise ValueError(f"transformer d_model ({d_model}) must be a multiple of heads ({heads})")
        steps, features = spec.shape
        self.embed = nn.Linear(features, d_model)
        self.position = nn.Parameter(0.02 * torch.randn(1, steps, d_model))
        block = nn.TransformerEncoderLayer(d_model, heads, feedforward, dropout=0.0, activation=activation(),
                                           batch_first=True, norm_first=True)
        # Nested tensors only pay off for padded batches, and pre-norm blocks cannot use them.
        self.encoder = nn.TransformerEncoder(block, layers, enable_nested_tensor=False)
        self.norm = nn.LayerNorm(d_model)
        self.head = nn.Linear(d_model, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        hidden = self.encoder(self.embed(x) + self.position)
        return self.head(self.norm(hidden).mean(dim=1))


def build_transformer(spec: InputSpec, outputs: int, activation: Callable[[], nn.Module], d_model: int = 32,
                      heads: int = 4, layers: int = 2, feedforward: int = 64) -> nn.Module:
    """The ``build`` of the ``transformer`` architecture; every argument after ``activation`` is a
    hyper-parameter the grid can set (``--set arch.transformer.layers=1``)."""
    return TransformerEncoderClassifier(spec, outputs, activation, d_model, heads, layers, feedforward)
