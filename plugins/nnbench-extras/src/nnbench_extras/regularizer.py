"""The ``regularizer`` kind: a penalty on the weights added to the training loss.

A new kind of component, declared through nnbench's public hooks only: ``register_kinds`` declares
it at the ``loss`` stage, so each component receives the task's criterion and the built model and
returns the criterion training minimizes. The held-out losses nnbench reports stay the plain
criterion's, so regularized and plain trials are compared on the same numbers.
"""

from __future__ import annotations

from collections.abc import Callable, Iterator

import torch
from torch import nn

KIND = "regularizer"
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]


def weights(model: nn.Module) -> Iterator[torch.Tensor]:
    """The model's weight matrices and kernels (parameters with two or more dimensions): biases and
    normalisation scales are not penalized."""
    return (p for p in model.parameters() if p.dim() >= 2)


def none(criterion: Criterion, model: nn.Module) -> Criterion:
    """No penalty (the default; never applied)."""
    return criterion


def _penalized(criterion: Criterion, penalty: Callable[[], torch.Tensor], weight: float) -> Criterion:
    def regularized(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        return criterion(outputs, targets) + weight * penalty()

    return regularized


def _total(terms: Iterator[torch.Tensor]) -> torch.Tensor:
    total = torch.zeros(())
    for term in terms:
        total = total + term
    return total


def l1(criterion: Criterion, model: nn.Module, weight: float = 1e-5) -> Criterion:
    """Lasso: ``weight`` times the sum of absolute weights."""
    return _penalized(criterion, lambda: _total(w.abs().sum() for w in weights(model)), weight)


def l2(criterion: Criterion, model: nn.Module, weight: float = 1e-4) -> Criterion:
    """Ridge: ``weight`` times half the sum of squared weights."""
    return _penalized(criterion, lambda: 0.5 * _total(w.pow(2).sum() for w in weights(model)), weight)


def orthogonal(criterion: Criterion, model: nn.Module, weight: float = 1e-4) -> Criterion:
    """Soft orthogonality: ``weight`` times the sum over weight matrices of ``||W Wᵀ - I||²`` (on the
    smaller side; a kernel is read as a matrix of its output channels)."""

    def deviation(w: torch.Tensor) -> torch.Tensor:
        matrix = w.reshape(w.shape[0], -1)
        if matrix.shape[0] > matrix.shape[1]:
            matrix = matrix.t()
        gram = matrix @ matrix.t()
        return (gram - torch.eye(gram.shape[0], device=gram.device)).pow(2).sum()

    def penalty() -> torch.Tensor:
        return _total(deviation(w) for w in weights(model))

    return _penalized(criterion, penalty, weight)
