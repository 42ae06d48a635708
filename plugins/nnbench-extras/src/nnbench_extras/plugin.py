"""The hook implementations nnbench finds through this distribution's ``nnbench`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nnbench import Activation, Architecture, Optimizer, Task, hookimpl
from nnbench_extras import csv_log, recall
from nnbench_extras.lion import Lion
from nnbench_extras.snake import Snake
from nnbench_extras.transformer import build_transformer

if TYPE_CHECKING:
    from nnbench.grid import Trial
    from nnbench.train import EpochRecord


@hookimpl
def register_activations(register: Callable[[Activation], None]) -> None:
    # Element-wise and parameter-free: safe to train several seeds as one stacked model.
    register(Activation("snake", Snake, "x + sin^2(x): identity with a periodic ripple (Ziyin et al. 2020)",
                        vectorizable=True))


@hookimpl
def register_optimizers(register: Callable[[Optimizer], None]) -> None:
    # Lion wants a learning rate 3-10x below Adam's; its update is element-wise.
    register(Optimizer("lion", Lion, 3e-4, "Lion: steps of size lr along the sign of a momentum (Chen et al. 2023)",
                       params={"betas": [0.9, 0.99], "weight_decay": 0.0}, vectorizable=True))


@hookimpl
def register_architectures(register: Callable[[Architecture], None]) -> None:
    register(Architecture("transformer", build_transformer, ("sequence",),
                          "pre-norm Transformer encoder, mean-pooled; activation in the feed-forward blocks",
                          {"d_model": 32, "heads": 4, "layers": 2, "feedforward": 64}))


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    register(Task("recall", "multiclass", "sequence", (recall.STEPS, 2), recall.load_recall,
                  f"which of {recall.STEPS} digits carries the marker? (attention finds it directly)",
                  num_classes=10))


@hookimpl
def after_epoch(trial: Trial, record: EpochRecord) -> None:
    folder = csv_log.log_folder()
    if folder is not None:
        csv_log.write_epoch(folder, trial, record)
