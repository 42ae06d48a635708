"""The default grid: what ``nnbench run`` trains when no grid names the axis (three tasks of three modalities, three
networks that read them, three activations, two optimizers)."""

from __future__ import annotations

from collections.abc import Callable, Sequence
from typing import Any

from nnbench.contract.hookspecs import hookimpl

DEFAULT_GRID: dict[str, tuple[str, ...]] = {
    "task": ("spirals", "digits", "sine"),
    "arch": ("fnn", "cnn", "lstm"),
    "activation": ("relu", "tanh", "gelu"),
    "optimizer": ("sgd", "adam"),
}


@hookimpl
def register_defaults(register: Callable[[str, Sequence[Any]], None]) -> None:
    for axis, values in DEFAULT_GRID.items():
        register(axis, values)
