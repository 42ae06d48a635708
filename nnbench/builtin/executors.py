"""Built-in executors: this machine (inline and processes, one path) and Ray."""

from __future__ import annotations

import os
from collections.abc import Callable, Mapping, Sequence
from typing import Any

from nnbench.contract.errors import NNBenchError
from nnbench.contract.hookspecs import hookimpl
from nnbench.contract.specs import Device, ExecutorOption, ExecutorSpec

RAY_EXTRA = "pip install 'nnbench-arena[ray]'"


def _local() -> Any:
    from nnbench.execution.local import LocalExecutor  # imports torch: loading the plugins must not

    return LocalExecutor()


def _ray_module() -> Any:
    from nnbench.execution import ray  # imports Ray, an optional dependency, only when asked for

    return ray


def _ray() -> Any:
    return _ray_module().RayExecutor()


def _check_ray(options: Mapping[str, Any]) -> None:
    """Ray is installed (and the Ray Client for a ``ray://`` address), and ``--nodes`` is a count with an address."""
    try:
        import ray  # noqa: F401  (an optional dependency: imported where it is checked)
    except ImportError:
        raise NNBenchError(f"--executor ray needs Ray, which is not installed: {RAY_EXTRA}") from None
    address = options.get("address") or os.environ.get("RAY_ADDRESS") or ""
    if address.startswith("ray://"):
        try:
            import grpc  # noqa: F401  (what the Ray Client needs besides Ray)
        except ImportError:
            raise NNBenchError(f"--address {address} needs the Ray Client, which is not installed: {RAY_EXTRA} "
                               "(it installs ray[client])") from None
    nodes = options.get("nodes")
    if nodes is not None:
        if not str(nodes).isdigit() or int(nodes) < 1:
            raise NNBenchError(f"--nodes must be a whole number >= 1, not {nodes!r}")
        if not address:
            raise NNBenchError("--nodes waits for the nodes of a Ray cluster: give its --address (or RAY_ADDRESS)")


def _ray_devices(options: Mapping[str, Any], log: Callable[[str], None]) -> Sequence[Device] | None:
    """The kinds of device the Ray cluster's nodes have, asked of it; a local Ray runs on this machine."""
    devices: Sequence[Device] | None = _ray_module().cluster_devices_of(options, log)
    return devices


EXECUTORS = (
    ExecutorSpec("inline", _local, "trains in this process, one work item after another", scope="this_process"),
    ExecutorSpec("processes", _local, "local worker processes (--workers N), one pool per device",
                 scope="local_workers"),
    ExecutorSpec("ray", _ray, "Ray actors on a Ray cluster (--address or RAY_ADDRESS) or a local Ray, one per slot",
                 options=(ExecutorOption("address", "Ray cluster address for --executor ray: HOST:PORT of the head, "
                                                    "or ray://HOST:10001 for the Ray Client (default: $RAY_ADDRESS, "
                                                    "else a local Ray)."),
                          ExecutorOption("nodes", "Wait until the Ray cluster has this many nodes (up to 10 minutes) "
                                                  "before planning: for nodes still starting, as in a SLURM job.")),
                 check=_check_ray, devices=_ray_devices),
)


@hookimpl
def register_executors(register: Callable[[ExecutorSpec], None]) -> None:
    for executor in EXECUTORS:
        register(executor)
