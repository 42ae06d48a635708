"""How long a trial trains, estimated, so that the longest work starts first and a grid does not end waiting on it.

Three sources, best first: the mean epoch time of stored trials of the same task, architecture, architecture
hyper-parameters, batch size and device; the architecture's own cost estimate (``Architecture.cost``: multiply-adds
per sample and kernels per step, turned into seconds with a rough rate per device type); and, for an architecture
that declares none, the epoch times this run has measured so far for it (:meth:`CostModel.learn`), scaled by the
task's training rows. Estimates only ever order work; no number a trial stores depends on them.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from typing import Any

from nnbench.contract.specs import InputSpec
from nnbench.contract.trial import Trial, TrialResult
from nnbench.loading.catalogue import Catalogue

DEFAULT_TRAIN_ROWS = 1000  # a task never seen in the store: about the size of the built-in ones
SECONDS_PER_OP = {"cpu": 1e-4, "accelerator": 2e-5}  # the fixed cost of one layer's kernels in a step
MACS_PER_SECOND = {"cpu": 4e9, "accelerator": 1e12}
UNKNOWN_WORK = (64.0 * 64.0, 6.0)  # an architecture with no estimate and nothing measured: a one-hidden-layer guess


def is_accelerator(device: str) -> bool:
    return device != "cpu"


class CostModel:
    """Estimated training seconds of trials (see the module docstring); ``stored`` rows are ``(task, arch, arch
    params as JSON, batch size, device, seconds per epoch, training rows)``, as
    :meth:`~nnbench.storage.store.ResultStore.epoch_times` reads them."""

    def __init__(self, catalogue: Catalogue, stored: Iterable[Sequence[Any]] = ()) -> None:
        self.catalogue = catalogue
        self.epoch_seconds: dict[tuple[Any, ...], float] = {}
        self.rows: dict[str, float] = {}
        self.row_seconds: dict[tuple[str, str], list[float]] = {}  # (arch, device) -> measured seconds per row
        for task, arch, params, batch_size, device, seconds, rows in stored:
            self.epoch_seconds[(task, arch, _canonical(params), batch_size, device)] = float(seconds)
            if rows:
                self.rows[task] = float(rows)

    def seconds(self, trial: Trial) -> float:
        """Estimated seconds ``trial`` trains, alone."""
        key = _key(trial)
        if key in self.epoch_seconds:
            return trial.epochs * self.epoch_seconds[key]
        rows = self.rows.get(trial.task, DEFAULT_TRAIN_ROWS)
        measured = self.row_seconds.get((trial.arch, trial.device))
        arch = self.catalogue.architectures.get(trial.arch)
        if arch.cost is None and measured:
            return trial.epochs * rows * sum(measured) / len(measured)
        macs, kernels = self._work(trial) if arch.cost is not None else UNKNOWN_WORK
        kind = "accelerator" if is_accelerator(trial.device) else "cpu"
        step = kernels * SECONDS_PER_OP[kind] + 3 * trial.batch_size * macs / MACS_PER_SECOND[kind]
        return trial.epochs * math.ceil(rows / trial.batch_size) * step

    def _work(self, trial: Trial) -> tuple[float, float]:
        task = self.catalogue.tasks.get(trial.task)
        arch = self.catalogue.architectures.get(trial.arch)
        outputs = self.catalogue.losses.get(trial.loss).outputs(task)
        params = {**dict(arch.params), **dict(trial.params.get("arch", {}))}
        view = task.view_for(arch.modalities)
        try:
            assert arch.cost is not None
            return arch.cost(InputSpec(view, task.shape_as(view)), outputs, params)
        except Exception:  # an estimate that fails is no estimate: the plan must not
            return UNKNOWN_WORK

    def learn(self, result: TrialResult) -> None:
        """Take a finished trial's measured epoch time into the estimates of the trials still waiting."""
        trial, epochs = result.trial, len(result.curve)
        if result.status != "ok" or epochs == 0 or result.train_time <= 0:
            return
        per_epoch = result.train_time / epochs
        self.epoch_seconds[_key(trial)] = per_epoch
        rows = (result.throughput or 0) * result.train_time / epochs
        if rows > 0:
            self.rows.setdefault(trial.task, rows)
            self.row_seconds.setdefault((trial.arch, trial.device), []).append(per_epoch / rows)


def _key(trial: Trial) -> tuple[Any, ...]:
    return trial.task, trial.arch, _canonical(trial.params.get("arch", {})), trial.batch_size, trial.device


def _canonical(params: Any) -> str:
    if isinstance(params, str):
        params = json.loads(params)
    return json.dumps(params, sort_keys=True, default=str)
