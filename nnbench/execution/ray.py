"""The Ray executor: the run's work items trained by a pool of Ray actors, one per slot of a cluster (or a local Ray).

Each actor (:class:`Trainer`) holds one slot: ``--threads`` CPUs for CPU items, a GPU (or ``1/--per-device`` of one)
for CUDA items. It loads the run's plugins once, says where it runs, and trains the items it is sent, one at a
time, with :class:`~nnbench.execution.job.ItemTraining`, which records each trial's node and device; results come
back to the driver, which alone writes the store. An item is taken from the plan's queue (longest first) only when
an actor is ready and idle for it, so it starts the moment it is sent: its deadline counts from there, and an item
waiting for a slot never times out. As many actors start as the cluster's resources hold for the work waiting
(nodes that join later add slots); actors left without work of their kind are stopped.

An actor whose process dies (a crash, the kernel's OOM killer, its node lost) costs the item it held: its trials
are stored ``failed`` with what Ray says of the death, and a new actor takes its slot; an actor that cannot start
(a plugin missing on a node) stops the run with the cause. Nothing is retried, so no trial trains twice. An actor
still busy past its item's deadline (stuck inside a component) is killed and its trials stored ``timeout``. A head
that stops answering ends the run within seconds (:class:`~nnbench.contract.executor.ExecutorLost`): the run is
marked ``interrupted`` and the next one resumes.

The driver's work per finished item does not grow with the items in flight: answers arrive through callbacks on a
queue, deadlines wait in a heap, and the cluster is asked for its resources every few seconds, not per item.
"""

from __future__ import annotations

import heapq
import os
import platform
import queue
import threading
import time
from collections import Counter
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any

import ray

from nnbench.contract.errors import NNBenchError
from nnbench.contract.executor import (
    ExecutorLost,
    ResultSink,
    TrainJob,
    WorkerStartError,
    WorkItem,
    WorkPlan,
    device_kind,
    failed_result,
)
from nnbench.contract.specs import Device
from nnbench.contract.trial import Trial, TrialResult
from nnbench.execution.local import with_company
from nnbench.execution.ray_cluster import (
    Cluster,
    address_of,
    alive_nodes,
    cluster_devices,
    connect,
    describe,
    first_line,
)

POLL_SECONDS = 0.2
RESOURCES_SECONDS = 2.0  # how often the cluster is asked how many slots it has
RESOURCE = {"cpu": "CPU", "cuda": "GPU"}  # the Ray resource each device kind asks for


class Trainer:
    """A Ray actor: one slot of the cluster, training the items it is sent (see the module docstring)."""

    def __init__(self, job: TrainJob, environment: dict[str, str]) -> None:
        os.environ.update(environment)  # the driver's NNBENCH_* settings (which plugins load, where data are)
        self.job = job
        prepare = getattr(job, "prepare", None)
        if prepare is not None:
            prepare()  # the plugins load now, before the actor says it is ready
        self.node_id = ray.get_runtime_context().get_node_id()

    def where(self) -> dict[str, Any]:
        """The node (its name and Ray's id), this process and the GPUs Ray gave it."""
        return {"node": platform.node(), "node_id": self.node_id, "pid": os.getpid(),
                "gpus": [str(gpu) for gpu in ray.get_gpu_ids()]}

    def train(self, item: WorkItem) -> list[TrialResult]:
        results = self.job(item)
        gpus = ray.get_gpu_ids()
        for result in results:
            training = {**(result.training or {}), "ray_node": self.node_id}
            if gpus and str(training.get("device", "")).startswith("cuda"):
                training["device"] = f"cuda:{gpus[0]}"  # the node's own index of the GPU, not the one Ray made visible
            result.training = training
        return results


@dataclass
class _Slot:
    """An actor of the pool, and what it is doing."""

    actor: Any
    kind: str
    ready: bool = False
    where: dict[str, Any] = field(default_factory=dict)
    item: WorkItem | None = None
    serial: int = 0  # counts the items it was sent: an answer about an earlier one is ignored

    @property
    def device(self) -> tuple[str, str]:
        """Its node and the device it trains on there (a GPU by the node's index)."""
        gpus = self.where.get("gpus") or []
        return self.where.get("node_id", ""), f"cuda:{gpus[0]}" if self.kind == "cuda" and gpus else "cpu"

    def describe(self) -> str:
        return f"pid {self.where.get('pid', '?')} on {self.where.get('node', 'its node')}"

    def lost(self, trial: Trial, status: str, cause: str) -> TrialResult:
        """The result of a trial this actor held and did not answer for (it died, or was stopped), with where it
        was training, as a trial that finished records it."""
        result = failed_result(trial, status, cause)
        node_id, device = self.device
        result.training = {"node": self.where.get("node"), "ray_node": node_id, "device": device}
        return result


class RayExecutor:
    """Trains a plan's items on a Ray cluster; see the module docstring."""

    def run(self, plan: WorkPlan, sink: ResultSink) -> None:
        cluster = connect(plan.options, sink.log)
        pool = _Pool(plan, sink, cluster)
        try:
            pool.run()
        finally:
            pool.stop()


class _Pool:
    """The actors of one plan and the loop that keeps them busy."""

    def __init__(self, plan: WorkPlan, sink: ResultSink, cluster: Cluster) -> None:
        self.plan, self.sink, self.cluster = plan, sink, cluster
        self.trainer = ray.remote(Trainer)
        self.job = ray.put(plan.train)
        self.environment = {k: v for k, v in os.environ.items() if k.startswith("NNBENCH_")}
        self.events: queue.SimpleQueue[tuple[str, int, int, Any]] = queue.SimpleQueue()
        self.slots: dict[int, _Slot] = {}
        self.ids = iter(range(1, 1 << 62))
        self.started: Counter[str] = Counter()  # actors alive, per kind
        self.idle: dict[str, set[int]] = {kind: set() for kind in RESOURCE}  # ready or starting, holding no item
        self.busy = 0
        self.training: Counter[tuple[str, str]] = Counter()  # items in training per node and device
        self.deadlines: list[tuple[float, int, int]] = []  # (when, slot, serial), soonest first
        self.capacity: dict[str, int] = {}
        self.node_resources: dict[str, dict[str, float]] = {}
        self.nodes = _Nodes()
        self.nodes.start()
        self.told: set[str] = set()

    # -- the loop ------------------------------------------------------------------------------

    def run(self) -> None:
        while self.plan.items.waiting() or self.busy:
            self.cluster.check()
            self._resources()
            self._grow()
            try:
                self._handle(*self.events.get(timeout=POLL_SECONDS))
                while True:
                    self._handle(*self.events.get_nowait())
            except queue.Empty:
                pass
            self._expire()

    def stop(self) -> None:
        """End every actor of the plan (none is left holding a slot); after a lost head, ask Ray nothing but to let
        go of the connection."""
        self.nodes.stopped.set()
        if not self.cluster.lost:
            for slot in self.slots.values():
                ray.kill(slot.actor, no_restart=True)
        self.slots.clear()
        self.cluster.release()

    # -- slots ---------------------------------------------------------------------------------

    def _resources(self) -> None:
        """How many actors of each kind the cluster holds, as last asked (:class:`_Nodes`)."""
        if self.nodes.resources is self.node_resources:
            return
        self.node_resources = self.nodes.resources
        per_gpu = self.plan.per_device or 1
        cpus = sum(int(r.get("CPU", 0) // self.plan.threads) for r in self.node_resources.values())
        self.capacity = {"cpu": min(cpus, self.plan.workers) if self.plan.workers else cpus,
                         "cuda": sum(int(r.get("GPU", 0)) for r in self.node_resources.values()) * per_gpu}

    def _grow(self) -> None:
        """Start the actors the waiting items of each kind ask for, up to what the cluster holds."""
        for kind in dict.fromkeys(device_kind(d) for d in self.plan.items.devices()):
            waiting = self.plan.items.waiting(kind)
            wanted = min(self.capacity.get(kind, 0) - self.started[kind], waiting - len(self.idle.get(kind, ())))
            for _ in range(max(0, wanted)):
                self._start(kind)
            if not self.started[kind] and not self.capacity.get(kind):
                most = max((r.get("CPU", 0) for r in self.node_resources.values()), default=0)
                if kind == "cpu" and most:
                    raise NNBenchError(f"no node of {self.cluster.name} has the {self.plan.threads} CPUs a CPU work "
                                       f"item asks for (--threads {self.plan.threads}; the most a node has: {most:g})")
                raise ExecutorLost(f"{self.cluster.name} has no {RESOURCE.get(kind, kind)} left for the {waiting} "
                                   f"work items that train on {kind}: the run stops here, and the same command "
                                   "resumes them once the cluster has one")

    def _start(self, kind: str) -> None:
        resources = ({"num_cpus": self.plan.threads} if kind == "cpu"
                     else {"num_cpus": 0, "num_gpus": 1 / (self.plan.per_device or 1)})
        actor: Any = self.trainer.options(**resources, max_restarts=0, max_task_retries=0,
                                     scheduling_strategy="SPREAD").remote(self.job, self.environment)
        slot_id = next(self.ids)
        self.slots[slot_id] = _Slot(actor, kind)
        self.started[kind] += 1
        self.idle[kind].add(slot_id)
        self._when_done(actor.where.remote(), "ready", slot_id, 0)
        if kind == "cuda" and not self.plan.per_device and "per_device" not in self.told:
            self.told.add("per_device")
            self.sink.log("ray: one trial at a time on each GPU (--per-device N to train N at once)")

    def _when_done(self, ref: Any, event: str, slot_id: int, serial: int) -> None:
        future = ref.future()
        future.add_done_callback(lambda done: self.events.put((event, slot_id, serial, done)))

    def _end(self, slot_id: int, kill: bool = False) -> _Slot:
        slot = self.slots.pop(slot_id)
        self.started[slot.kind] -= 1
        self.idle[slot.kind].discard(slot_id)
        if slot.item is not None:
            self.busy -= 1
            self.training[slot.device] -= 1
        if kill:
            ray.kill(slot.actor, no_restart=True)
        return slot

    # -- events --------------------------------------------------------------------------------

    def _handle(self, event: str, slot_id: int, serial: int, done: Any) -> None:
        slot = self.slots.get(slot_id)
        if slot is None or serial != slot.serial:
            return  # an actor already ended (killed past its deadline), or an answer it no longer owes
        try:
            answer = done.result()
        except Exception as exc:
            self._died(slot_id, exc)
            return
        if event == "ready":
            slot.ready, slot.where = True, answer
        else:
            self._finished(slot, answer)
        self._assign(slot_id)

    def _assign(self, slot_id: int) -> None:
        """Send the idle actor its next item, or stop it when none waits for its kind."""
        slot = self.slots[slot_id]
        while (item := self.plan.items.take(slot.kind)) is not None:
            granted = self.sink.claim(item.trials)
            if not granted:
                continue
            item = item.only(granted)
            slot.item, slot.serial = item, slot.serial + 1
            self.idle[slot.kind].discard(slot_id)
            self.busy += 1
            self.training[slot.device] += 1
            self._when_done(slot.actor.train.remote(item), "done", slot_id, slot.serial)
            deadline = self.plan.deadline(item)
            if deadline is not None:
                heapq.heappush(self.deadlines, (time.monotonic() + deadline, slot_id, slot.serial))
            return
        self._end(slot_id, kill=True)

    def _finished(self, slot: _Slot, results: list[TrialResult]) -> None:
        concurrent, slots = self.training[slot.device], self._slots(slot)
        item, slot.item = slot.item, None
        self.busy -= 1
        self.training[slot.device] -= 1
        assert item is not None
        for result in results:
            self.sink.result(with_company(result, max(1, concurrent), slots))

    def _slots(self, slot: _Slot) -> int:
        """How many items its device trains at once without sharing it: one per GPU, the node's CPUs per thread
        count for the CPU."""
        if slot.kind != "cpu":
            return 1
        cpus = self.node_resources.get(slot.where.get("node_id", ""), {}).get("CPU", self.plan.threads)
        return max(1, int(cpus // self.plan.threads))

    def _died(self, slot_id: int, exc: BaseException) -> None:
        """An actor's process died, or its call raised: the trials it held fail with the cause (unless the head
        went away, which ends the run)."""
        self.cluster.check(now=True)
        slot = self._end(slot_id)
        if getattr(exc, "actor_init_failed", False):
            raise WorkerStartError(f"a Ray worker could not start on {slot.describe()}: {_cause(exc)}; install "
                                   "nnbench and the same plugins on every node")
        if slot.item is None:
            return  # it died before it held anything (its node went away): another takes its place
        if isinstance(exc, ray.exceptions.RayTaskError):
            cause = f"its Ray worker ({slot.describe()}) raised: {exc}"
        else:
            cause = f"its Ray worker ({slot.describe()}) died while training it: {_cause(exc)}"
        for trial in slot.item.trials:
            self.sink.result(slot.lost(trial, "failed", cause))

    def _expire(self) -> None:
        """Kill the actors still busy past their item's deadline; their trials are stored ``timeout``."""
        while self.deadlines and self.deadlines[0][0] < time.monotonic():
            _, slot_id, serial = heapq.heappop(self.deadlines)
            slot = self.slots.get(slot_id)
            if slot is None or slot.serial != serial or slot.item is None:
                continue
            slot = self._end(slot_id, kill=True)
            assert slot.item is not None
            for trial in slot.item.trials:
                self.sink.result(slot.lost(
                    trial, "timeout", f"ran past --timeout {self.plan.timeout:g} s per trial inside a component "
                                      "that did not return, and its Ray worker was stopped"))


def cluster_devices_of(options: Mapping[str, Any], log: Callable[[str], None]) -> Sequence[Device] | None:
    """The kinds of device the nodes of the Ray cluster of ``options`` have, asked of it (and said in ``log``);
    ``None`` for a local Ray, which runs on this machine."""
    if address_of(options) is None:
        return None
    cluster = connect(options, log)
    nodes = alive_nodes()
    log(f"trials train on {cluster.name}: {describe(nodes)}")
    return cluster_devices(nodes)


class _Nodes(threading.Thread):
    """The cluster's alive nodes and their resources, asked every :data:`RESOURCES_SECONDS` in a thread of its own:
    Ray's answer waits for a head that stopped answering, and the run must not wait with it."""

    def __init__(self) -> None:
        super().__init__(name="nnbench-ray-nodes", daemon=True)
        self.resources = self._ask()
        self.stopped = threading.Event()

    @staticmethod
    def _ask() -> dict[str, dict[str, float]]:
        return {node["NodeID"]: node["Resources"] for node in alive_nodes()}

    def run(self) -> None:
        while not self.stopped.wait(RESOURCES_SECONDS):
            try:
                self.resources = self._ask()
            except Exception:  # the head is being lost: the run finds out by its own probe
                continue


def _cause(exc: BaseException) -> str:
    """What Ray says of an actor's death, in one paragraph: why it is dead, without the ids that follow."""
    lines = [line.strip() for line in str(exc).splitlines() if line.strip()]
    reasons = [line for line in lines if "because" in line or "exit" in line.lower()]
    return " ".join(reasons or lines[-1:]) or first_line(exc)

