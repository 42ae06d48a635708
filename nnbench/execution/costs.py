"""How long a trial trains, estimated, so that the longest work starts first and a grid does not end waiting on it.

Three sources, best first: the mean epoch time of stored trials of the same task, architecture, architecture
hyper-parameters, batch size and device; the architecture's own cost estimate (``Architecture.cost``: multiply-adds
per sample and kernels per step, turned into seconds with a rough rate per device type, and scaled by how the
trials this run has measured compare with what the same estimate said of them, so that estimates from either
source are in the same seconds); and, for an architecture that declares none, the epoch times this run has
measured so far for it (:meth:`CostModel.learn`), scaled by the task's training rows. Estimates order work and
tell the user how long a run will take; no number a trial stores depends on them.
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
# The fixed cost of one layer's kernels in a step, and the rate of multiply-adds: the CPU's set so that the built-in
# networks' trials, stacked and alone, took 0.6 to 1.5 times their estimates on a small 2-core machine.
SECONDS_PER_OP = {"cpu": 5e-5, "accelerator": 2e-5}
MACS_PER_SECOND = {"cpu": 8e9, "accelerator": 1e12}
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
        self.measured: dict[tuple[Any, ...], list[float]] = {}  # key -> seconds per epoch measured in this run
        # (device kind, architecture) -> measured seconds / the architecture's own estimate, per measured trial
        self.ratios: dict[tuple[str, str], list[float]] = {}
        for task, arch, params, batch_size, device, seconds, rows in stored:
            self.epoch_seconds[(task, arch, _canonical(params), batch_size, device)] = float(seconds)
            if rows:
                self.rows[task] = float(rows)

    def seconds(self, trial: Trial) -> float:
        """Estimated seconds ``trial`` trains, alone."""
        return self.item_seconds([trial], stacked=False)

    def item_seconds(self, trials: Sequence[Trial], stacked: bool) -> float:
        """Estimated seconds ``trials`` (one configuration's seeds) train, as one stack or one after another. A
        stack pays each step's fixed cost (its kernels) once for all its members."""
        trial = trials[0]
        key = _key(trial)
        if key in self.epoch_seconds:  # measured: a stacked trial's share of its stack, else its own time
            return len(trials) * trial.epochs * self.epoch_seconds[key]
        measured = self.row_seconds.get((trial.arch, trial.device))
        arch = self.catalogue.architectures.get(trial.arch)
        if arch.cost is None and measured:
            rows = self.rows.get(trial.task, DEFAULT_TRAIN_ROWS)
            return len(trials) * trial.epochs * rows * sum(measured) / len(measured)
        members = len(trials) if stacked else 1
        return self._declared(trial, members) * len(trials) / members * self.calibration(trial)

    def calibration(self, trial: Trial) -> float:
        """How much longer measured trials took than the architectures' own estimates said of them (a geometric
        mean): those of ``trial``'s architecture on its kind of device, else all on that kind of device; 1 before
        any was measured."""
        kind = _device_kind(trial.device)
        ratios = self.ratios.get((kind, trial.arch)) or [r for (k, _), rs in self.ratios.items() if k == kind
                                                         for r in rs]
        return math.exp(sum(map(math.log, ratios)) / len(ratios)) if ratios else 1.0

    def _declared(self, trial: Trial, members: int = 1) -> float:
        """The seconds the architecture's own cost estimate (or a rough guess) gives a stack of ``members`` such
        trials, uncalibrated."""
        rows = self.rows.get(trial.task, DEFAULT_TRAIN_ROWS)
        arch = self.catalogue.architectures.get(trial.arch)
        macs, kernels = self._work(trial) if arch.cost is not None else UNKNOWN_WORK
        kind = _device_kind(trial.device)
        step = kernels * SECONDS_PER_OP[kind] + 3 * members * trial.batch_size * macs / MACS_PER_SECOND[kind]
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
        per_epoch = steady_seconds(result) / epochs
        measured = self.measured.setdefault(_key(trial), [])
        measured.append(per_epoch)
        self.epoch_seconds[_key(trial)] = sorted(measured)[len(measured) // 2]  # this run's, over the stored
        rows = (result.throughput or 0) * result.train_time / epochs
        if rows > 0:
            self.rows.setdefault(trial.task, rows)
            self.row_seconds.setdefault((trial.arch, trial.device), []).append(per_epoch / rows)
        if self.catalogue.architectures.get(trial.arch).cost is not None:
            members = int((result.training or {}).get("members") or 1)  # its share of a stack of that many
            declared = self._declared(trial, members) / members * epochs / trial.epochs  # early stopping
            if declared > 0:
                self.ratios.setdefault((_device_kind(trial.device), trial.arch), []).append(
                    per_epoch * epochs / declared)


def steady_seconds(result: TrialResult) -> float:
    """A trial's training seconds as its median epoch took them, every epoch: what a trial like it takes, without
    the one-time warm-up that may slow the first epochs a process trains."""
    times = sorted(record.epoch_time for record in result.curve if record.epoch_time > 0)
    return times[len(times) // 2] * len(result.curve) if times else max(0.0, result.train_time or 0.0)


def _device_kind(device: str) -> str:
    return "accelerator" if is_accelerator(device) else "cpu"


def _key(trial: Trial) -> tuple[Any, ...]:
    return trial.task, trial.arch, _canonical(trial.params.get("arch", {})), trial.batch_size, trial.device


def _canonical(params: Any) -> str:
    if isinstance(params, str):
        params = json.loads(params)
    return json.dumps(params, sort_keys=True, default=str)
