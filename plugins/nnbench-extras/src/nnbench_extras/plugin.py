"""The hook implementations nnbench finds through this distribution's ``nnbench`` entry point."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nnbench import Activation, Architecture, Component, ExecutorSpec, Kind, Optimizer, Task, hookimpl
from nnbench_extras import csv_log, recall, regularizer
from nnbench_extras.lion import Lion
from nnbench_extras.pool import PoolExecutor
from nnbench_extras.snake import Snake
from nnbench_extras.transformer import build_transformer

if TYPE_CHECKING:
    from nnbench import EpochRecord, Trial


@hookimpl
def register_activations(register: Callable[[Activation], None]) -> None:
    # Element-wise and parameter-free: several seeds train as one stacked model, even beside other activations.
    register(Activation("snake", Snake, "x + sin^2(x): identity with a periodic ripple (Ziyin et al. 2020)",
                        vectorizable=True, elementwise=True))


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
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    register(ExecutorSpec("pool", PoolExecutor, "a concurrent.futures process pool of --workers processes"))


@hookimpl
def register_kinds(register: Callable[[Kind], None]) -> None:
    register(Kind(regularizer.KIND, "regularizers", "loss", "none", "a weight penalty added to the training loss",
                  aliases=("penalty", "penalties")))


@hookimpl
def register_components(register: Callable[[Component], None]) -> None:
    for name, factory, description, params in (
        ("none", regularizer.none, "no penalty", {}),
        ("l1", regularizer.l1, "weight x sum |w| over weight matrices and kernels", {"weight": 1e-5}),
        ("l2", regularizer.l2, "weight x sum w^2 / 2 over weight matrices and kernels", {"weight": 1e-4}),
        ("orthogonal", regularizer.orthogonal, "weight x sum ||W W^T - I||^2 (soft orthogonality)", {"weight": 1e-4}),
    ):
        register(Component(regularizer.KIND, name, factory, description, params))


@hookimpl
def after_epoch(trial: Trial, record: EpochRecord) -> None:
    folder = csv_log.log_folder()
    if folder is not None:
        csv_log.write_epoch(folder, trial, record)
