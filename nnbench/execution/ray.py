"""The Ray executor: each work unit becomes one Ray task on a cluster (or a local Ray instance).

Configurations go out and metrics come back as plain dicts; the driver alone writes the store. A
task that raises or whose worker crashes becomes a failed trial: tasks are never retried, so no
trial is trained twice. Tasks on CUDA ask for one GPU and keep their worker between tasks
(``max_calls=0``); CPU tasks ask for one CPU each.
"""

from __future__ import annotations

import os
import time
from collections.abc import Sequence
from typing import Any

from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import Trial
from nnbench.execution.executors import ExecutorOptions, ResultSink
from nnbench.execution.messages import failed_result, result_from_dict

# per Ray worker process: plugins load once per plugin set, not once per task
_WORKER_CATALOGUES: dict[int, Any] = {}


def _train_remote(configs: list[dict[str, Any]], plugins: list[bytes], vectorize: bool,
                  threads: int) -> list[dict[str, Any]]:
    import torch

    from nnbench.execution.worker import load_catalogue, train_unit

    torch.set_num_threads(threads)
    key = hash(tuple(plugins))
    if key not in _WORKER_CATALOGUES:
        _WORKER_CATALOGUES[key] = load_catalogue(plugins)
    hooks, catalogue = _WORKER_CATALOGUES[key]
    return train_unit(configs, hooks, catalogue, vectorize)


class RayExecutor:
    """Sends every unit to Ray as one task; see the module docstring."""

    POLL_SECONDS = 0.5

    def __init__(self, options: ExecutorOptions) -> None:
        try:
            import ray
        except ImportError:
            raise NNBenchError(
                "--executor ray needs Ray: pip install 'nnbench-arena[ray]' (or pip install ray)"
            ) from None
        self.ray = ray
        self.options = options
        self.plugins = options.plugin_blobs()

    def _connect(self) -> None:
        address = self.options.extra.get("address") or os.environ.get("RAY_ADDRESS")
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

    def run(self, units: Sequence[Sequence[Trial]], sink: ResultSink) -> None:
        self._connect()
        remote = self.ray.remote(max_retries=0)(_train_remote)
        # Keep about as many tasks in flight as the cluster has slots, so a task's clock (for
        # --timeout) starts when it can actually run rather than while it waits in Ray's queue.
        resources = self.ray.cluster_resources()
        window = max(1, int(resources.get("CPU", 1)) + int(resources.get("GPU", 0)))
        queue = [list(unit) for unit in units]
        pending: dict[Any, tuple[list[Trial], float]] = {}
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    unit = sink.claim(queue.pop(0))
                    if not unit:
                        continue
                    gpu = unit[0].device.startswith("cuda")
                    options = ({"num_gpus": 1, "num_cpus": 0, "max_calls": 0} if gpu
                               else {"num_cpus": self.options.threads})
                    ref = remote.options(**options).remote([t.config() for t in unit], self.plugins,
                                                           self.options.vectorize, self.options.threads)
                    pending[ref] = (unit, time.monotonic())
                ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=self.POLL_SECONDS)
                for ref in ready:
                    unit, _started = pending.pop(ref)
                    self._collect(ref, unit, sink)
                self._enforce_timeout(pending, sink)
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
        for data in results:
            sink.result(result_from_dict(data))

    def _enforce_timeout(self, pending: dict[Any, tuple[list[Trial], float]], sink: ResultSink) -> None:
        if not self.options.timeout:
            return
        now = time.monotonic()
        for ref, (unit, started) in list(pending.items()):
            # in-flight tasks are bounded by the cluster's slots, so submission is close to start
            if now - started > self.options.timeout * len(unit):
                self.ray.cancel(ref, force=True)
                pending.pop(ref)
                for trial in unit:
                    sink.result(failed_result(
                        trial, "timeout", f"ran past --timeout {self.options.timeout:g} s per trial and was stopped"))
