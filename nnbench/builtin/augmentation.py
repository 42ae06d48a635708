"""The ``augmentation`` kind: what happens to each training batch before the model sees it.

Declared through ``register_kinds`` like a plugin's kind, at the ``batch`` stage: the factory receives the trial's
context (its seeded generator among it) and returns the batch transform. ``none`` leaves batches as they are and is
never applied. Both built-in augmentations draw only from the context's generator, so a trial's batches are the same
wherever it trains, alone or as a member of a stack.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Component, Kind

if TYPE_CHECKING:
    import torch

    from nnbench.contract.specs import TrialContext

KIND = "augmentation"
Criterion = Callable[["torch.Tensor", "torch.Tensor"], "torch.Tensor"]


def none(context: TrialContext) -> Callable[..., Any]:
    """Batches as they are (never applied)."""
    return lambda x, y: (x, y)


def gaussian_noise(context: TrialContext, sigma: float = 0.1) -> Callable[..., Any]:
    """Each input entry plus noise of standard deviation ``sigma`` (the inputs are standardized)."""
    import torch

    if not sigma > 0:
        raise ValueError(f"gaussian_noise sigma must be > 0, not {sigma!r}")

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(x.shape, generator=context.generator, dtype=x.dtype).to(x.device)
        return x + sigma * noise, y

    return transform


def mixup(context: TrialContext, alpha: float = 0.2) -> Callable[..., Any]:
    """mixup (Zhang et al., ICLR 2018): each batch mixed with a shuffled copy of itself, ``lam`` drawn from
    Beta(alpha, alpha) per batch; the loss mixes the two targets' losses alike. The training loss is then one of
    mixed targets, not comparable with an unmixed one."""
    import numpy as np
    import torch

    if not alpha > 0:
        raise ValueError(f"mixup alpha must be > 0, not {alpha!r}")
    # torch draws Beta samples from its global generator only: numpy's, seeded from the trial's own
    draws = np.random.default_rng(int(torch.randint(2**62, (1,), generator=context.generator)))

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, Callable[..., torch.Tensor]]:
        lam = float(draws.beta(alpha, alpha))
        order = torch.randperm(len(x), generator=context.generator).to(x.device)
        mixed = lam * x + (1 - lam) * x[order]

        def loss(outputs: torch.Tensor, criterion: Criterion) -> torch.Tensor:
            return lam * criterion(outputs, y) + (1 - lam) * criterion(outputs, y[order])

        return mixed, loss

    return transform


@hookimpl
def register_kinds(register: Callable[[Kind], None]) -> None:
    register(Kind(KIND, "augmentations", "batch", "none", "what happens to each training batch",
                  aliases=("aug", "augs")))


@hookimpl
def register_components(register: Callable[[Component], None]) -> None:
    register(Component(KIND, "none", none, "batches as they are"))
    register(Component(KIND, "gaussian_noise", gaussian_noise, "inputs plus Gaussian noise", {"sigma": 0.1},
                       vectorizable=True))
    register(Component(KIND, "mixup", mixup, "batches mixed with a shuffled copy, targets' losses alike",
                       {"alpha": 0.2}, vectorizable=True))
