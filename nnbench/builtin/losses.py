"""Built-in losses, each with its target encoding and head width."""

from __future__ import annotations

import dataclasses
from collections.abc import Callable
from typing import TYPE_CHECKING

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Loss, Task, TaskKind
from nnbench.planning.targets import ALL_KINDS, natural_outputs, one_hot_or_value

if TYPE_CHECKING:
    import torch

CLASSES: frozenset[TaskKind] = frozenset({"binary", "multiclass"})
BINARY: frozenset[TaskKind] = frozenset({"binary"})


def class_outputs(task: Task) -> int:
    """One output per class."""
    return task.num_classes


def single_logit(task: Task) -> int:
    """A single output: the logit (or probability) of the positive class."""
    return 1


def class_indices(y: torch.Tensor, task: Task) -> torch.Tensor:
    return y.long()


def float_column(y: torch.Tensor, task: Task) -> torch.Tensor:
    return y.float().reshape(-1, 1)


def losses() -> tuple[Loss, ...]:
    """The built-in losses (torch is imported when they are registered)."""
    from torch import nn

    return (
        Loss("cross_entropy", nn.CrossEntropyLoss, CLASSES, class_outputs, class_indices,
             "softmax cross entropy on class indices", default_for=CLASSES),
        Loss("label_smoothing", lambda: nn.CrossEntropyLoss(label_smoothing=0.1), CLASSES, class_outputs,
             class_indices, "cross entropy with label smoothing 0.1"),
        Loss("nll", nn.NLLLoss, CLASSES, class_outputs, class_indices,
             "negative log-likelihood behind a log-softmax head", head="log_softmax"),
        Loss("multi_margin", nn.MultiMarginLoss, CLASSES, class_outputs, class_indices,
             "multi-class hinge loss (margin 1)"),
        Loss("bce_with_logits", nn.BCEWithLogitsLoss, BINARY, single_logit, float_column,
             "binary cross entropy on one logit"),
        Loss("bce", nn.BCELoss, BINARY, single_logit, float_column,
             "binary cross entropy behind a sigmoid head", head="sigmoid"),
        Loss("mse", nn.MSELoss, ALL_KINDS, natural_outputs, one_hot_or_value,
             "mean squared error (one-hot targets on classification)", default_for=frozenset({"regression"})),
        Loss("l1", nn.L1Loss, ALL_KINDS, natural_outputs, one_hot_or_value,
             "mean absolute error (one-hot targets on classification)"),
        Loss("huber", nn.HuberLoss, ALL_KINDS, natural_outputs, one_hot_or_value,
             "Huber loss, delta 1 (one-hot targets on classification)"),
    )


@hookimpl
def register_losses(register: Callable[[Loss], None]) -> None:
    for loss in losses():
        # Every built-in loss is a mean over the batch of per-sample terms: safe to vectorize.
        register(dataclasses.replace(loss, vectorizable=True))
