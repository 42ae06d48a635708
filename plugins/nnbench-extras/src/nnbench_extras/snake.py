"""The snake activation (Ziyin, Hartwig and Ueda, 2020): ``x + sin^2(a x) / a``.

Monotone like ReLU, but periodic on top of the identity, which lets a network extrapolate
periodic signals instead of flattening them.
"""

from __future__ import annotations

import torch
from torch import nn


class Snake(nn.Module):
    """``x + sin(a x)^2 / a`` element-wise, with a fixed frequency ``a``."""

    def __init__(self, frequency: float = 1.0) -> None:
        super().__init__()
        if not frequency > 0:
            raise ValueError(f"snake frequency must be > 0, not {frequency!r}")
        self.frequency = frequency

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x + torch.sin(self.frequency * x).pow(2) / self.frequency
