"""How a criterion that knows nothing of nnbench reads a task: one output per class or target, and targets as
floats (one-hot for classes). Built-in losses such as MSE use it, and so does a torch loss given to ``nnbench.run``
as an object."""

from __future__ import annotations

from typing import TYPE_CHECKING

from nnbench.contract.specs import Task, TaskKind

if TYPE_CHECKING:
    import torch

ALL_KINDS: frozenset[TaskKind] = frozenset({"binary", "multiclass", "regression"})


def natural_outputs(task: Task) -> int:
    """One output per class for classification, one per target for regression."""
    return task.num_classes if task.kind != "regression" else task.output_dim


def one_hot_or_value(y: torch.Tensor, task: Task) -> torch.Tensor:
    """One-hot float targets for classes; regression targets unchanged."""
    from torch.nn import functional as F

    if task.kind == "regression":
        return y.float()
    return F.one_hot(y.long(), task.num_classes).float()
