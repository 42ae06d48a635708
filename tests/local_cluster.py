"""A Ray cluster of several nodes on this machine, for the cluster tests: each node is one ``ray start --block``
process started here and stopped by its process id (never ``ray stop``, which would stop every Ray on the machine).

Ray gives a node the machine's own address even when told 127.0.0.1, but every port it is given here is free and
the nodes talk to nobody else.
"""

from __future__ import annotations

import contextlib
import os
import signal
import socket
import subprocess
import sys
import time
from dataclasses import dataclass, field
from pathlib import Path

TESTS = Path(__file__).parent
ROOT = TESTS.parent
START_SECONDS = 90


def free_port() -> int:
    """A TCP port nothing listens on now, outside Ray's default range of worker ports (10002-19999)."""
    while True:
        with socket.socket() as probe:
            probe.bind(("127.0.0.1", 0))
            port = probe.getsockname()[1]
        if not 10002 <= port <= 19999:
            return port


def listening(port: int) -> bool:
    try:
        socket.create_connection(("127.0.0.1", port), timeout=0.5).close()
    except OSError:
        return False
    return True


def cluster_env() -> dict[str, str]:
    """The environment of the nodes (and of a driver started for them): this checkout and the tests' own plugins
    importable, Ray's token authentication off (a loopback cluster of the tests' own)."""
    path = os.pathsep.join(filter(None, [str(ROOT), str(TESTS), os.environ.get("PYTHONPATH")]))
    return {**os.environ, "PYTHONPATH": path, "RAY_AUTH_MODE": "disabled", "RAY_USAGE_STATS_ENABLED": "0"}


@dataclass
class LocalRayCluster:
    """A head and further nodes on this machine (see the module docstring); ``cpus`` per node, in order."""

    folder: Path
    cpus: tuple[int, ...] = (2, 1)
    gpus: tuple[int, ...] = (0, 0)
    port: int = field(default_factory=free_port)
    client_port: int = field(default_factory=free_port)
    nodes: list[subprocess.Popen[bytes]] = field(default_factory=list)

    @property
    def address(self) -> str:
        """The head's address, as ``ray start --address`` and ``ray.init`` take it."""
        return f"127.0.0.1:{self.port}"

    @property
    def client_address(self) -> str:
        """The head's Ray Client address (``ray://``)."""
        return f"ray://127.0.0.1:{self.client_port}"

    def start(self) -> LocalRayCluster:
        """Start the head, then each further node, and return once every node has joined."""
        self.folder.mkdir(parents=True, exist_ok=True)
        self._node(0, ["--head", f"--port={self.port}", f"--ray-client-server-port={self.client_port}",
                       "--include-dashboard=false"])
        self._wait(lambda: listening(self.port) and listening(self.client_port), "the head to listen")
        for index in range(1, len(self.cpus)):
            self._node(index, [f"--address={self.address}"])
        self._wait(lambda: self.alive_nodes() == len(self.cpus), f"{len(self.cpus)} nodes to join")
        return self

    def _node(self, index: int, options: list[str]) -> None:
        log = (self.folder / f"node-{index}.log").open("ab")
        command = ["ray", "start", "--block", "--disable-usage-stats", "--node-ip-address=127.0.0.1",
                   f"--num-cpus={self.cpus[index]}", f"--num-gpus={self.gpus[index]}",
                   f"--dashboard-agent-listen-port={free_port()}", *options]
        # a session of its own: the node's processes are one group, stopped together by its id
        self.nodes.append(subprocess.Popen(command, stdout=log, stderr=subprocess.STDOUT, env=cluster_env(),
                                           start_new_session=True))

    def alive_nodes(self) -> int:
        """How many nodes the head counts as alive (asked in a fresh process, so this one stays unconnected)."""
        script = ("import ray, sys; ray.init(sys.argv[1], logging_level='ERROR'); "
                  "print(sum(n['Alive'] for n in ray.nodes()))")
        done = subprocess.run([sys.executable, "-c", script, self.address], capture_output=True, text=True,
                              env=cluster_env(), timeout=60)
        return int(done.stdout.split()[-1]) if done.returncode == 0 and done.stdout.split() else 0

    def _wait(self, ready: object, what: str) -> None:
        deadline = time.monotonic() + START_SECONDS
        while not ready():  # type: ignore[operator]
            dead = [node.args for node in self.nodes if node.poll() is not None]
            if dead or time.monotonic() > deadline:
                logs = "\n".join(p.read_text()[-2000:] for p in sorted(self.folder.glob("node-*.log")))
                self.stop()
                raise RuntimeError(f"the local Ray cluster did not start (waiting for {what}; ended: {dead}):\n{logs}")
            time.sleep(0.5)

    def restart(self) -> LocalRayCluster:
        """End what is left of the cluster at once and start it again, on other ports (a fresh cluster)."""
        for node in self.nodes:
            self._kill(node, signal.SIGKILL)
        self.nodes.clear()
        self.port, self.client_port = free_port(), free_port()
        return self.start()

    def kill_head(self) -> None:
        """Kill the head node's processes at once, as a crash of its machine would."""
        self._kill(self.nodes[0], signal.SIGKILL)

    def stop(self) -> None:
        """Stop every node (by the id of the process that started it) and wait for them to end: at once, since a
        head outlives a TERM for half a minute and more, and the nodes hold nothing to keep."""
        for node in reversed(self.nodes):
            self._kill(node, signal.SIGKILL)
        self.nodes.clear()

    @staticmethod
    def _kill(node: subprocess.Popen[bytes], sig: signal.Signals) -> None:
        try:
            os.killpg(node.pid, sig)
        except ProcessLookupError:
            return
        try:
            node.wait(timeout=10)
        except subprocess.TimeoutExpired:
            os.killpg(node.pid, signal.SIGKILL)
            node.wait(timeout=30)
        # what the node started in its group and outlived it (a worker still exiting)
        with contextlib.suppress(ProcessLookupError):
            os.killpg(node.pid, signal.SIGKILL)
