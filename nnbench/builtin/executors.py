"""Built-in executors: inline, local worker processes, Ray."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnbench import hookimpl
from nnbench.contract.specs import ExecutorOption, ExecutorSpec


def _inline(options: Any) -> Any:
    from nnbench.execution.executors import InlineExecutor

    return InlineExecutor(options)


def _processes(options: Any) -> Any:
    from nnbench.execution.processes import ProcessExecutor

    return ProcessExecutor(options)


def _ray(options: Any) -> Any:
    from nnbench.execution.ray import RayExecutor

    return RayExecutor(options)


EXECUTORS = (
    ExecutorSpec("inline", _inline, "trains in this process, one unit after another"),
    ExecutorSpec("processes", _processes, "local worker processes (--workers N), one pool per device"),
    ExecutorSpec("ray", _ray, "one Ray task per unit on a Ray cluster (--address or RAY_ADDRESS) or a local Ray",
                 options=(ExecutorOption("address", "Ray cluster address for --executor ray (default: $RAY_ADDRESS, "
                                                    "else a local Ray)."),)),
)


@hookimpl
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    for executor in EXECUTORS:
        register(executor)
