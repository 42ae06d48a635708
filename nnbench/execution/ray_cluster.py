"""Reaching a Ray cluster: its address, connecting (and waiting for its nodes), what it has, whether its head answers.

One connection per process, made by :func:`connect` and kept for the runs that follow; asked for another address,
or after the head was lost, it connects again. The head is probed with a plain TCP connection, which fails at once
when it is gone, rather than through Ray, whose calls wait about a minute for a head that may come back.
"""

from __future__ import annotations

import itertools
import os
import socket
import time
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field
from typing import Any

import ray

from nnbench.contract.errors import NNBenchError
from nnbench.contract.executor import ExecutorLost
from nnbench.contract.specs import Device

CONNECT_SECONDS = 10.0
"""How long a head that does not answer is tried before it is reported unreachable (without ``--nodes``)."""
WAIT_SECONDS = 600.0
"""How long ``--nodes N`` waits for the head to answer and for N nodes to join."""
PROBE_SECONDS = 1.0
"""How often a run asks whether the head still answers; a head that refuses twice in a row ends the run."""
REPORT_SECONDS = 15.0  # how often a wait for nodes says where it stands


def address_of(options: Mapping[str, Any]) -> str | None:
    """The address a run connects to: ``--address``, else ``$RAY_ADDRESS``, else ``None`` (a local Ray)."""
    return options.get("address") or os.environ.get("RAY_ADDRESS") or None


def endpoint_of(address: str) -> tuple[str, int] | None:
    """The host and port that answer for ``address`` (``ray://host:port`` or ``host:port``), or ``None`` where the
    address names no port (``auto``, a local Ray)."""
    bare = address.removeprefix("ray://")
    host, _, port = bare.rpartition(":")
    if not host or not port.isdigit():
        return None
    return host.strip("[]"), int(port)


def answers(endpoint: tuple[str, int], seconds: float = 1.0) -> str | None:
    """``None`` when something listens at ``endpoint``, else why not, in words."""
    try:
        socket.create_connection(endpoint, timeout=seconds).close()
    except OSError as exc:
        return exc.strerror or type(exc).__name__
    return None


@dataclass
class Cluster:
    """The cluster this process is connected to: the address asked for and the head's endpoint probed."""

    address: str | None
    endpoint: tuple[str, int] | None
    connection: str | None = None  # another after a ray.shutdown() and ray.init() of the user's
    lost: bool = False
    probed: float = field(default_factory=time.monotonic)

    @property
    def name(self) -> str:
        return f"the Ray cluster at {self.address}" if self.address else "the local Ray instance"

    def check(self, now: bool = False) -> None:
        """Raise :class:`ExecutorLost` once the head does not answer twice in a row (asked every
        :data:`PROBE_SECONDS`; ``now``: at once, as when a worker's answer did not come)."""
        if self.endpoint is None or not now and time.monotonic() - self.probed < PROBE_SECONDS:
            return
        self.probed = time.monotonic()
        why = answers(self.endpoint)
        if why:  # once more, a moment later: a refusal that lasts is no hiccup
            time.sleep(0.2)
            why = answers(self.endpoint)
        if why:
            self.lost = True
            raise ExecutorLost(f"lost the head of {self.name} ({why}): the run stops here; its finished trials are "
                               "stored, and the same command resumes the rest once the cluster is back")

    def release(self) -> None:
        """After the head was lost, let go of the connection, so that Ray does not end this process later, and the
        next run connects afresh."""
        if self.lost and ray.is_initialized():
            ray.shutdown()


_CONNECTED: Cluster | None = None


def connect(options: Mapping[str, Any], log: Callable[[str], None]) -> Cluster:
    """The cluster of ``options`` (``address``; ``nodes``: wait until that many nodes joined), connected once per
    process; raises :class:`NNBenchError` in one line where it cannot be reached."""
    global _CONNECTED
    address = address_of(options)
    ours = _CONNECTED is not None and ray.is_initialized() and _CONNECTED.connection == _connection()
    if ours and _CONNECTED is not None and not _CONNECTED.lost and _CONNECTED.address == address:
        return _CONNECTED
    if ray.is_initialized() and not ours and address is None:  # the user's own connection: use it
        _CONNECTED = Cluster(None, _gcs_endpoint(), _connection())
        return _CONNECTED
    if ray.is_initialized():
        ray.shutdown()
    nodes = int(options.get("nodes") or 0)
    deadline = time.monotonic() + (WAIT_SECONDS if nodes else CONNECT_SECONDS)
    endpoint = endpoint_of(address) if address else None
    cluster = Cluster(address, endpoint)
    if endpoint is not None:
        _wait(lambda: answers(endpoint) is None, deadline, log, f"{cluster.name} to answer",
              lambda: f"cannot reach {cluster.name} ({answers(endpoint)}): start it with `ray start --head`, or "
                      "give the head's address with --address")
    for attempt in itertools.count(1):
        try:
            # no address: a Ray of this run's own, never one a stale file of an ended cluster points to (``auto`` joins
            # the cluster running on this machine)
            ray.init(address=address or "local", log_to_driver=True, configure_logging=False)
            break
        except ConnectionAbortedError:  # a Ray Client server just started may fail its first client: once more
            if attempt >= 2 and time.monotonic() > deadline:
                raise NNBenchError(f"cannot connect to {cluster.name}: its Ray Client server started no server for "
                                   "this client; see ray_client_server*.err in the head's Ray logs") from None
            time.sleep(1.0)
        except Exception as exc:  # an authentication error, a version mismatch: one line, in Ray's words
            raise NNBenchError(f"cannot connect to {cluster.name}: {first_line(exc)}") from None
    if cluster.endpoint is None and not (address or "").startswith("ray://"):
        cluster.endpoint = _gcs_endpoint()
    cluster.connection = _connection()
    _CONNECTED = cluster
    if nodes:
        _wait(lambda: len(alive_nodes()) >= nodes, deadline, log, f"{nodes} nodes of {cluster.name} to join",
              lambda: f"{cluster.name} has {len(alive_nodes())} of the {nodes} nodes asked for (--nodes) after "
                      f"{WAIT_SECONDS:g} s; nothing was trained")
    return cluster


def _connection() -> str | None:
    """What tells this process's Ray connection from another: its job on its cluster's GCS (``None`` when not
    connected)."""
    try:
        context = ray.get_runtime_context()
        job = context.get_job_id()
    except Exception:  # not connected
        return None
    try:
        return f"{job}@{context.gcs_address}"
    except Exception:  # a Ray Client connection knows no GCS address
        return job


def _gcs_endpoint() -> tuple[str, int] | None:
    try:
        return endpoint_of(ray.get_runtime_context().gcs_address)
    except Exception:  # a Ray Client connection knows no GCS address
        return None


def _wait(done: Callable[[], bool], deadline: float, log: Callable[[str], None], what: str,
          failure: Callable[[], str]) -> None:
    said = time.monotonic()
    while not done():
        if time.monotonic() > deadline:
            raise NNBenchError(failure())
        if time.monotonic() - said > REPORT_SECONDS:
            log(f"waiting for {what}")
            said = time.monotonic()
        time.sleep(0.5)


def alive_nodes() -> list[dict[str, Any]]:
    """The nodes of the connected cluster that are alive, as ``ray.nodes()`` describes them."""
    return [node for node in ray.nodes() if node.get("Alive")]


def describe(nodes: list[dict[str, Any]]) -> str:
    """``2 nodes, 3 CPUs, 1 GPU``."""
    cpus = sum(node["Resources"].get("CPU", 0) for node in nodes)
    gpus = sum(node["Resources"].get("GPU", 0) for node in nodes)
    return f"{_count(len(nodes), 'node')}, {_count(cpus, 'CPU')}, {_count(gpus, 'GPU')}"


def cluster_devices(nodes: list[dict[str, Any]]) -> list[Device]:
    """The kinds of device the nodes have (``cpu``, ``cuda``), each described by how many there are, where."""
    devices = []
    for kind, resource in (("cpu", "CPU"), ("cuda", "GPU")):
        holding = [node["Resources"][resource] for node in nodes if node["Resources"].get(resource, 0) > 0]
        if holding:
            devices.append(Device(kind, f"{_count(sum(holding), resource)} on {_count(len(holding), 'node')}"))
    return devices


def first_line(exc: BaseException) -> str:
    """An exception in one line: its first line that says something."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    return lines[0] if lines else type(exc).__name__


def _count(number: float, noun: str) -> str:
    return f"{number:g} {noun}{'' if number == 1 else 's'}"
