"""Built-in executors: this machine (inline and processes, one path) and Ray."""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import ExecutorOption, ExecutorSpec


def _local() -> Any:
    from nnbench.execution.local import LocalExecutor  # imports torch: loading the plugins must not

    return LocalExecutor()


def _ray() -> Any:
    from nnbench.execution.ray import RayExecutor  # imports Ray, an optional dependency, only when asked for

    return RayExecutor()


EXECUTORS = (
    ExecutorSpec("inline", _local, "trains in this process, one work item after another", scope="this_process"),
    ExecutorSpec("processes", _local, "local worker processes (--workers N), one pool per device",
                 scope="local_workers"),
    ExecutorSpec("ray", _ray, "one Ray task per work item on a Ray cluster (--address or RAY_ADDRESS) or a local Ray",
                 options=(ExecutorOption("address", "Ray cluster address for --executor ray (default: $RAY_ADDRESS, "
                                                    "else a local Ray)."),)),
)


@hookimpl
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    for executor in EXECUTORS:
        register(executor)
