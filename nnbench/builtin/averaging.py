"""The ``averaging`` kind: which weights the held-out data score, averaged over the optimization.

Declared through ``register_kinds`` like a plugin's kind, at the ``training`` stage: the factory receives the
trial's context and returns an object the trainer calls after every optimizer step and at each epoch's end, and
asks for the model validation and test data score. ``none`` scores the trained weights themselves and is never
applied. Both built-in averages keep their copy with torch's ``torch.optim.swa_utils.AveragedModel`` (its buffers,
batch-norm statistics among them, averaged alike).
"""

from __future__ import annotations

import math
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Component, Kind

if TYPE_CHECKING:
    from torch import nn

    from nnbench.contract.specs import TrialContext

KIND = "averaging"


class Averaged:
    """Weights averaged by ``torch.optim.swa_utils.AveragedModel``, updated after steps (``every_step``) or at
    epoch ends from epoch ``start`` on; before its first update the trained weights themselves are scored."""

    def __init__(self, every_step: bool, start: int = 1, decay: float | None = None) -> None:
        self.every_step, self.start, self.decay = every_step, start, decay
        self.average: Any = None

    def _update(self, model: nn.Module) -> None:
        from torch.optim import swa_utils

        if self.average is None:
            # one tensor at a time: torch's multi-tensor averages (taken on CUDA) refuse integer buffers, as
            # batch norm's count of batches is
            average = swa_utils.get_swa_avg_fn() if self.decay is None else swa_utils.get_ema_avg_fn(self.decay)
            self.average = swa_utils.AveragedModel(model, avg_fn=average, use_buffers=True)
        self.average.update_parameters(model)

    def after_step(self, model: nn.Module, optimizer: Any) -> None:
        if self.every_step:
            self._update(model)

    def after_epoch(self, model: nn.Module, optimizer: Any, epoch: int) -> None:
        if not self.every_step and epoch >= self.start:
            self._update(model)

    def scored(self, model: nn.Module) -> nn.Module | None:
        return self.average


def none(context: TrialContext) -> None:
    """The trained weights themselves (never applied)."""
    return None


def ema(context: TrialContext, decay: float = 0.99) -> Averaged:
    """An exponential moving average of the weights, updated after every step."""
    if not 0 < decay < 1:
        raise ValueError(f"ema decay must be between 0 and 1, not {decay!r}")
    return Averaged(every_step=True, decay=decay)


def swa(context: TrialContext, start: float = 0.75) -> Averaged:
    """Stochastic weight averaging (Izmailov et al., UAI 2018): the equal average of the weights at the end of every
    epoch from the last ``1 - start`` of the epochs on (``start`` 0.75: the last quarter)."""
    if not 0 <= start < 1:
        raise ValueError(f"swa start must be a fraction of the epochs in [0, 1), not {start!r}")
    return Averaged(every_step=False, start=max(1, math.floor(start * context.epochs) + 1))


@hookimpl
def register_kinds(register: Callable[[Kind], None]) -> None:
    register(Kind(KIND, "averagings", "training", "none", "which weights held-out data score",
                  aliases=("average", "averages")))


@hookimpl
def register_components(register: Callable[[Component], None]) -> None:
    register(Component(KIND, "none", none, "the trained weights themselves"))
    register(Component(KIND, "ema", ema, "an exponential moving average of the weights, after every step",
                       {"decay": 0.99}))
    register(Component(KIND, "swa", swa, "the average of the weights at each epoch's end over the last quarter",
                       {"start": 0.75}))
