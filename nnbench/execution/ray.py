"""The Ray executor: each work item becomes one Ray task on a cluster (or a local Ray instance).

The run's job (:class:`~nnbench.execution.job.ItemTraining`) goes to the cluster once and trains each item where
its task runs; results come back to the driver, which alone writes the store. A task that raises or whose worker
crashes becomes a failed trial: tasks are never retried, so no trial is trained twice. Tasks on CUDA ask for one GPU
and keep their worker between tasks (``max_calls=0``); CPU tasks ask for ``--threads`` CPUs each.
"""

from __future__ import annotations

import os
import time
from typing import Any

from nnbench.contract.errors import NNBenchError
from nnbench.contract.executor import ResultSink, WorkItem, WorkPlan, failed_result
from nnbench.contract.trial import Trial, TrialResult


def _train_remote(job: Any, item: WorkItem) -> list[TrialResult]:
    """A Ray task: the run's job on one item (the job loads the run's plugins once per Ray worker process)."""
    return job(item)


class RayExecutor:
    """Sends every work item to Ray as one task; see the module docstring."""

    POLL_SECONDS = 0.5

    def __init__(self) -> None:
        try:
            import ray  # an optional dependency: imported where it is used
        except ImportError:
            raise NNBenchError(
                "--executor ray needs Ray: pip install 'nnbench-arena[ray]' (or pip install ray)"
            ) from None
        self.ray = ray

    def _connect(self, plan: WorkPlan) -> None:
        address = plan.options.get("address") or os.environ.get("RAY_ADDRESS")
        if self.ray.is_initialized():
            return
        try:
            self.ray.init(address=address, include_dashboard=False, log_to_driver=True,
                          configure_logging=False, runtime_env={"env_vars": self._forwarded_env()})
        except ConnectionError as exc:
            raise NNBenchError(f"cannot reach the Ray cluster at {address!r}: {exc}") from None

    @staticmethod
    def _forwarded_env() -> dict[str, str]:
        return {k: v for k, v in os.environ.items() if k.startswith("NNBENCH_")}

    def run(self, plan: WorkPlan, sink: ResultSink) -> None:
        self._connect(plan)
        remote = self.ray.remote(max_retries=0)(_train_remote)
        job = self.ray.put(plan.train)
        # Keep about as many tasks in flight as the cluster has slots, so that work is taken from the plan's
        # queue, longest first, only when it can start.
        resources = self.ray.cluster_resources()
        window = max(1, int(resources.get("CPU", 1)) + int(resources.get("GPU", 0)))
        pending: dict[Any, tuple[list[Trial], float, WorkItem]] = {}
        try:
            while plan.items.waiting() or pending:
                while len(pending) < window and (item := plan.items.take()) is not None:
                    granted = sink.claim(item.trials)
                    if not granted:
                        continue
                    item = item.only(granted)
                    gpu = item.device.startswith("cuda")
                    options = ({"num_gpus": 1, "num_cpus": 0, "max_calls": 0} if gpu
                               else {"num_cpus": plan.threads})
                    ref = remote.options(**options).remote(job, item)
                    pending[ref] = (list(item.trials), time.monotonic(), item)
                ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=self.POLL_SECONDS)
                for ref in ready:
                    unit, _started, _item = pending.pop(ref)
                    self._collect(ref, unit, sink)
                self._enforce_deadline(plan, pending, sink)
        finally:
            for ref in pending:
                self.ray.cancel(ref, force=True)

    def _collect(self, ref: Any, unit: list[Trial], sink: ResultSink) -> None:
        try:
            results = self.ray.get(ref)
        except self.ray.exceptions.RayTaskError as exc:
            for trial in unit:
                sink.result(failed_result(trial, "failed", f"the Ray task raised: {exc}"))
            return
        except self.ray.exceptions.RayError as exc:  # worker crashed, node died, task cancelled
            for trial in unit:
                sink.result(failed_result(trial, "failed", f"the Ray task did not finish: {type(exc).__name__}: {exc}"))
            return
        for result in results:
            sink.result(result)

    def _enforce_deadline(self, plan: WorkPlan, pending: dict[Any, tuple[list[Trial], float, WorkItem]],
                          sink: ResultSink) -> None:
        """Cancel a task stuck inside a component long past its deadline (the job stops a trial at its time limit
        itself; in-flight tasks are bounded by the cluster's slots, so submission is close to start)."""
        now = time.monotonic()
        for ref, (unit, started, item) in list(pending.items()):
            deadline = plan.deadline(item)
            if deadline is not None and now - started > deadline:
                self.ray.cancel(ref, force=True)
                pending.pop(ref)
                for trial in unit:
                    sink.result(failed_result(
                        trial, "timeout", f"ran past --timeout {plan.timeout:g} s per trial and was stopped"))
