"""The Lion optimizer (Chen et al., 2023, "Symbolic Discovery of Optimization Algorithms").

Each step moves every weight by exactly ``lr`` in the direction of the sign of an interpolation
between the gradient and its running average, with decoupled weight decay. The update of each
entry depends only on that entry's own gradient history: the optimizer is element-wise.
"""

from __future__ import annotations

from collections.abc import Callable, Iterable, Sequence

import torch


class Lion(torch.optim.Optimizer):
    """Lion: ``w -= lr * (sign(b1 m + (1 - b1) g) + wd w)``, then ``m = b2 m + (1 - b2) g``."""

    def __init__(
        self,
        params: Iterable[torch.Tensor] | Iterable[dict],
        lr: float = 1e-4,
        betas: Sequence[float] = (0.9, 0.99),
        weight_decay: float = 0.0,
    ) -> None:
        if not lr > 0:
            raise ValueError(f"Lion learning rate must be > 0, not {lr!r}")
        if len(betas) != 2 or not all(0 <= b < 1 for b in betas):
            raise ValueError(f"Lion betas must be two numbers in [0, 1), not {betas!r}")
        if weight_decay < 0:
            raise ValueError(f"Lion weight_decay must be >= 0, not {weight_decay!r}")
        super().__init__(params, {"lr": lr, "betas": tuple(betas), "weight_decay": weight_decay})

    @torch.no_grad()
    def step(self, closure: Callable[[], torch.Tensor] | None = None) -> torch.Tensor | None:  # type: ignore[override]
        loss = None
        if closure is not None:
            with torch.enable_grad():
                loss = closure()
        for group in self.param_groups:
            beta1, beta2 = group["betas"]
            for weight in group["params"]:
                if weight.grad is None:
                    continue
                state = self.state[weight]
                if not state:
                    state["momentum"] = torch.zeros_like(weight)
                momentum = state["momentum"]
                weight.mul_(1 - group["lr"] * group["weight_decay"])
                direction = momentum.mul(beta1).add_(weight.grad, alpha=1 - beta1).sign_()
                weight.add_(direction, alpha=-group["lr"])
                momentum.mul_(beta2).add_(weight.grad, alpha=1 - beta2)
        return loss
