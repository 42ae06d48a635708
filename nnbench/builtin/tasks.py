"""Built-in tasks (the data are made in :mod:`nnbench.builtin.datasets`, imported on registration)."""

from __future__ import annotations

from collections.abc import Callable

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Task


@hookimpl
def register_tasks(register: Callable[[Task], None]) -> None:
    from nnbench.builtin.datasets import TASKS  # torch: loading the plugins imports none

    for task in TASKS:
        register(task)
