"""Built-in learning-rate schedules, stepped once per optimizer step."""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Schedule

if TYPE_CHECKING:
    from torch.optim import Optimizer
    from torch.optim.lr_scheduler import LRScheduler


def constant(optimizer: Optimizer, total_steps: int) -> None:
    """No scheduler at all: the rate stays as it is, and no step pays for one."""
    return None


def step_decay(optimizer: Optimizer, total_steps: int, drops: int = 2, gamma: float = 0.1) -> LRScheduler:
    """Multiply the rate by ``gamma`` ``drops`` times, evenly over training."""
    from torch.optim.lr_scheduler import LambdaLR

    every = max(1, total_steps // (drops + 1))
    return LambdaLR(optimizer, lambda step: gamma ** min(drops, step // every))


def cosine(optimizer: Optimizer, total_steps: int, floor: float = 0.0) -> LRScheduler:
    """Cosine annealing from the full rate down to ``floor`` times it at the last step."""

    from torch.optim.lr_scheduler import LambdaLR

    def factor(step: int) -> float:
        progress = min(step, total_steps) / max(1, total_steps)
        return floor + (1 - floor) * 0.5 * (1 + math.cos(math.pi * progress))

    return LambdaLR(optimizer, factor)


def warmup_cosine(optimizer: Optimizer, total_steps: int, warmup: float = 0.1) -> LRScheduler:
    """Linear warm-up over the first ``warmup`` fraction of steps, then cosine annealing to zero."""
    from torch.optim.lr_scheduler import LambdaLR

    ramp = max(1, int(total_steps * warmup))

    def factor(step: int) -> float:
        if step < ramp:
            return (step + 1) / ramp
        progress = (step - ramp) / max(1, total_steps - ramp)
        return 0.5 * (1 + math.cos(math.pi * min(1.0, progress)))

    return LambdaLR(optimizer, factor)


SCHEDULES = (
    Schedule("constant", constant, "the optimizer's rate throughout"),
    Schedule("step", step_decay, "rate x0.1 after each third of training", {"drops": 2, "gamma": 0.1}),
    Schedule("cosine", cosine, "cosine annealing to zero over training", {"floor": 0.0}),
    Schedule("warmup", warmup_cosine, "linear warm-up over 10% of steps, then cosine to zero", {"warmup": 0.1}),
)


@hookimpl
def register_schedules(register: Callable[[Schedule], None]) -> None:
    for schedule in SCHEDULES:
        register(schedule)
