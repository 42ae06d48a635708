"""Built-in image data sets: MNIST, Fashion-MNIST and CIFAR-10 (read by :mod:`nnbench.builtin.image_sets`)."""

from __future__ import annotations

from collections.abc import Callable

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Task


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    from nnbench.builtin.image_sets import TASKS  # torch: loading the plugins imports none

    for task in TASKS:
        register(task)
