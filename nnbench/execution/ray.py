"""The Ray executor: each work unit becomes one Ray task on a cluster (or a local Ray instance).

Configurations go out and metrics come back as plain dicts; the driver alone writes the store. A
task that raises or whose worker crashes becomes a failed trial: tasks are never retried, so no
trial is trained twice. Tasks on CUDA ask for one GPU and keep their worker between tasks
(``max_calls=0``); CPU tasks ask for one CPU each. Work is planned as for local workers (see
:mod:`nnbench.execution.scheduling`): groups that train one by one go out as one task per trial,
longest first; a group whose stacking choice is not known measures it in its task, and the choice
its results record decides the groups like it that have not gone out yet.
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
from nnbench.training.calibration import StackingChoice

# per Ray worker process: plugins load once per plugin set, not once per task; stacking choices are kept
_WORKER_CATALOGUES: dict[int, Any] = {}


def _train_remote(configs: list[dict[str, Any]], plugins: list[bytes], vectorize: bool,
                  threads: int, choice: dict[str, Any] | None = None) -> list[dict[str, Any]]:
    import torch

    from nnbench.execution.worker import load_catalogue, train_unit
    from nnbench.training.calibration import StackingChoices

    torch.set_num_threads(threads)
    key = hash(tuple(plugins))
    if key not in _WORKER_CATALOGUES:
        _WORKER_CATALOGUES[key] = (*load_catalogue(plugins), StackingChoices())
    hooks, catalogue, choices = _WORKER_CATALOGUES[key]
    return train_unit(configs, hooks, catalogue, vectorize, choices=choices, choice=choice)


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
        from dataclasses import asdict

        from nnbench.execution.scheduling import CostModel, items_of, plan_items
        from nnbench.training.calibration import StackingChoices

        if self.options.catalogue is None:
            raise ValueError("the ray executor needs the catalogue of the running session to plan its work")
        self._connect()
        remote = self.ray.remote(max_retries=0)(_train_remote)
        # Keep about as many tasks in flight as the cluster has slots, so a task's clock (for
        # --timeout) starts when it can actually run rather than while it waits in Ray's queue.
        resources = self.ray.cluster_resources()
        window = max(1, int(resources.get("CPU", 1)) + int(resources.get("GPU", 0)))
        choices = self.options.choices if self.options.choices is not None else StackingChoices()
        cost = self.options.cost or CostModel(self.options.catalogue)
        queue = plan_items(units, self.options.catalogue, choices, self.options.vectorize, cost)
        pending: dict[Any, tuple[list[Trial], float, str | None]] = {}
        try:
            while queue or pending:
                while queue and len(pending) < window:
                    item = queue.pop(0)
                    known = choices.get(item.key) if item.undecided and item.key else None
                    if known is not None:  # decided by a group like it meanwhile
                        queue[:0] = items_of(item.trials, known, cost, item.key)
                        continue
                    unit = sink.claim(item.trials)
                    if not unit:
                        continue
                    gpu = unit[0].device.startswith("cuda")
                    options = ({"num_gpus": 1, "num_cpus": 0, "max_calls": 0} if gpu
                               else {"num_cpus": self.options.threads})
                    choice = asdict(item.choice) if item.choice is not None else None
                    ref = remote.options(**options).remote([t.config() for t in unit], self.plugins,
                                                           self.options.vectorize, self.options.threads, choice)
                    pending[ref] = (unit, time.monotonic(), item.key if item.undecided else None)
                ready, _ = self.ray.wait(list(pending), num_returns=1, timeout=self.POLL_SECONDS)
                for ref in ready:
                    unit, _started, key = pending.pop(ref)
                    self._collect(ref, unit, sink, choices, key)
                self._enforce_timeout(pending, sink)
        finally:
            for ref in pending:
                self.ray.cancel(ref, force=True)

    def _collect(self, ref: Any, unit: list[Trial], sink: ResultSink, choices: Any, key: str | None) -> None:
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
            result = result_from_dict(data)
            training = result.training or {}
            measured = StackingChoice(training.get("mode") == "stacked", training.get("ratio"))
            # the task measured its group's choice: keep it for the groups like it
            if key is not None and measured.ratio is not None and choices.put(key, measured):
                sink.log(measured.describe(unit[0], len(unit)))
            sink.result(result)

    def _enforce_timeout(self, pending: dict[Any, tuple[list[Trial], float, str | None]], sink: ResultSink) -> None:
        if not self.options.timeout:
            return
        now = time.monotonic()
        for ref, (unit, started, _key) in list(pending.items()):
            # in-flight tasks are bounded by the cluster's slots, so submission is close to start
            if now - started > self.options.timeout * len(unit):
                self.ray.cancel(ref, force=True)
                pending.pop(ref)
                for trial in unit:
                    sink.result(failed_result(
                        trial, "timeout", f"ran past --timeout {self.options.timeout:g} s per trial and was stopped"))
