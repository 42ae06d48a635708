"""What each worker trains, in which order, and how many workers a grid gets.

A grid's trials come as seed groups (the seeds of one configuration). A group that will train one
by one is split into its trials, so its seeds go to different workers and each gets the time limit
of one trial; a group that will train stacked stays one work item (or, while there are fewer items
than workers, is split into smaller stacks). Items go out longest first, by an estimate of their
training time (:class:`CostModel`: stored timings of similar trials where there are some, else the
task's size and the model's arithmetic), so a grid does not end waiting on one long item.
"""

from __future__ import annotations

import json
import math
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any

from nnbench.contract.trial import Trial
from nnbench.machine import usable_cores
from nnbench.training.calibration import StackingChoice, StackingChoices, calibration_key

if TYPE_CHECKING:
    from nnbench.loading.catalogue import Catalogue

DEFAULT_TRAIN_ROWS = 1000  # a task never seen in the store: about the size of the built-in ones
PARALLEL_SECONDS = 2.0
"""Below this much estimated training, starting worker processes costs more than it saves."""


def is_accelerator(device: str) -> bool:
    return device != "cpu"


# -- estimates -------------------------------------------------------------------------------------


class CostModel:
    """Estimated seconds a trial trains: ``epochs`` times the mean epoch time of stored trials of the
    same task, architecture, architecture hyper-parameters, batch size and device when the store has
    some, else an estimate from the training rows, the batch size and the model's multiply-adds per
    sample (counted from the architecture's hyper-parameters for the built-in ones)."""

    SECONDS_PER_OP = {"cpu": 1e-4, "accelerator": 2e-5}  # the fixed cost of one layer's kernels in a step
    MACS_PER_SECOND = {"cpu": 4e9, "accelerator": 1e12}

    def __init__(self, catalogue: Catalogue, stored: Iterable[Sequence[Any]] = ()) -> None:
        self.catalogue = catalogue
        self.epoch_seconds: dict[tuple[Any, ...], float] = {}
        self.rows: dict[str, float] = {}
        for task, arch, params, batch_size, device, seconds, rows in stored:
            self.epoch_seconds[(task, arch, _canonical(params), batch_size, device)] = float(seconds)
            if rows:
                self.rows[task] = float(rows)

    def seconds(self, trial: Trial) -> float:
        key = (trial.task, trial.arch, _canonical(trial.params.get("arch", {})), trial.batch_size, trial.device)
        if key in self.epoch_seconds:
            return trial.epochs * self.epoch_seconds[key]
        rows = self.rows.get(trial.task, DEFAULT_TRAIN_ROWS)
        macs, ops = self._work(trial)
        kind = "accelerator" if is_accelerator(trial.device) else "cpu"
        step = ops * self.SECONDS_PER_OP[kind] + 3 * trial.batch_size * macs / self.MACS_PER_SECOND[kind]
        return trial.epochs * math.ceil(rows / trial.batch_size) * step

    def _work(self, trial: Trial) -> tuple[float, float]:
        """Multiply-adds per sample of one forward pass, and kernels per step, roughly."""
        task = self.catalogue.tasks.get(trial.task)
        outputs = self.catalogue.losses.get(trial.loss).outputs(task)
        arch = self.catalogue.architectures.get(trial.arch)
        params = {**dict(arch.params), **dict(trial.params.get("arch", {}))}
        shape = list(task.input_shape)
        size = math.prod(shape)
        try:
            return _builtin_work(trial.arch, params, shape, size, outputs)
        except (KeyError, TypeError, ValueError):  # a plugin's architecture: a one-hidden-layer guess
            return float(size * 64 + 64 * outputs), 6.0


def _builtin_work(arch: str, params: dict[str, Any], shape: list[int], size: int,
                  outputs: int) -> tuple[float, float]:
    if arch == "fnn":
        hidden = params["hidden"]
        widths = [size, *([hidden] if isinstance(hidden, int) else hidden), outputs]
        return float(sum(a * b for a, b in zip(widths, widths[1:], strict=False))), 2.0 * len(widths)
    if arch == "cnn":
        channels = params["channels"]
        channels = [channels] if isinstance(channels, int) else list(channels)
        kernel = params["kernel_size"]
        image = len(shape) == 3
        spatial = shape[1:] if image else shape[:1]
        inputs = shape[0] if image else shape[1]
        macs = 0.0
        for out in channels:
            macs += inputs * out * kernel ** len(spatial) * math.prod(spatial)
            spatial = [s // 2 for s in spatial] if min(spatial) >= 2 else spatial
            inputs = out
        flat = inputs * math.prod(spatial)
        return macs + flat * params["hidden"] + params["hidden"] * outputs, 4.0 * len(channels) + 4
    if arch in ("rnn", "lstm", "gru"):
        steps, features = (shape[0], shape[1]) if len(shape) == 2 else (shape[1], shape[0] * shape[2])
        hidden, layers = params["hidden"], params["layers"]
        gates = {"rnn": 1, "lstm": 4, "gru": 3}[arch]
        recurrence = steps * (features * hidden + (layers - 1) * hidden * hidden + layers * hidden * hidden)
        head = hidden * outputs if arch == "rnn" else hidden * hidden + hidden * outputs
        ops = 3.0 * steps * layers + 3 if arch == "rnn" else 4.0 * layers + 5  # torch fuses LSTM and GRU steps
        return float(gates * recurrence + head), ops
    raise KeyError(arch)


def _canonical(params: Any) -> str:
    if isinstance(params, str):
        params = json.loads(params)
    return json.dumps(params, sort_keys=True, default=str)


# -- work items ------------------------------------------------------------------------------------


@dataclass
class WorkItem:
    """Trials one worker trains at once: a seed group (stacked, or to be measured), a part of one, or
    a single trial. ``choice`` is the stacking choice when it is known (``None``: the worker measures
    it, for a group, or there is nothing to choose, for a trial of a group of one); ``seconds`` the
    estimated training time."""

    trials: list[Trial]
    choice: StackingChoice | None
    seconds: float
    key: str | None = None  # the group's calibration key (see calibration_key); None for one trial

    @property
    def undecided(self) -> bool:
        """A group whose stacking choice its worker measures."""
        return self.choice is None and len(self.trials) > 1

    def message(self, measure_capacity: bool = False) -> dict[str, Any]:
        """What the worker receives."""
        from dataclasses import asdict

        return {"configs": [t.config() for t in self.trials],
                "choice": asdict(self.choice) if self.choice is not None else None,
                "measure_capacity": measure_capacity}

    @property
    def device(self) -> str:
        return self.trials[0].device


def plan_items(units: Sequence[Sequence[Trial]], catalogue: Catalogue, choices: StackingChoices, vectorize: bool,
               cost: CostModel) -> list[WorkItem]:
    """Work items for ``units`` (stack groups), longest first: groups known to train one by one become
    one item per trial, groups known to stack or still to measure stay whole."""
    from nnbench.training.ensemble import group_reason

    items: list[WorkItem] = []
    for unit in units:
        trials = list(unit)
        if len(trials) == 1:
            items.append(WorkItem(trials, None, cost.seconds(trials[0])))
            continue
        reason = "stacking was turned off" if not vectorize else group_reason(trials, catalogue)
        key = calibration_key(trials, catalogue)
        choice = StackingChoice(False, reason=reason) if reason else choices.get(key)
        items += items_of(trials, choice, cost, key)
    return longest_first(items)


def items_of(trials: list[Trial], choice: StackingChoice | None, cost: CostModel, key: str | None) -> list[WorkItem]:
    """The items of one group under ``choice``: one per trial when it trains one by one, else one."""
    each = cost.seconds(trials[0])
    if len(trials) == 1:
        return [WorkItem(trials, choice, each)]
    if choice is not None and not choice.stacked:
        return [WorkItem([t], choice, each) for t in trials]
    speed = choice.ratio if choice is not None and choice.ratio else 1.0
    return [WorkItem(trials, choice, each * len(trials) / speed, key)]


def longest_first(items: list[WorkItem]) -> list[WorkItem]:
    return sorted(items, key=lambda item: -item.seconds)


def fill_workers(items: list[WorkItem], workers: int, catalogue: Catalogue, choices: StackingChoices,
                 cost: CostModel) -> list[WorkItem]:
    """While there are fewer items than ``workers``, split the longest group in two smaller groups
    (each measured, or looked up, on its own), so that no worker stays idle."""
    items = list(items)
    while len(items) < workers:
        groups = [item for item in items if len(item.trials) > 1]
        if not groups:
            break
        largest = max(groups, key=lambda item: item.seconds)
        items.remove(largest)
        half = (len(largest.trials) + 1) // 2
        for part in (largest.trials[:half], largest.trials[half:]):
            key = calibration_key(part, catalogue) if len(part) > 1 else None
            items += items_of(part, choices.get(key) if key else None, cost, key)
    return longest_first(items)


# -- how many workers ------------------------------------------------------------------------------


@dataclass(frozen=True)
class Workers:
    """How a grid trains: in this process (``inline``), or in ``cpu`` workers for CPU trials and, per
    accelerator, ``per_device`` workers (``None``: measured when the device's first trial starts).
    ``notes`` say what was decided and why, for the user."""

    inline: bool
    cpu: int
    per_device: int | None
    notes: tuple[str, ...] = ()


def resolve_workers(requested: int | None, per_device: int | None, items: Sequence[WorkItem], threads: int,
                    timeout: float | None, cores: int | None = None) -> Workers:
    """Worker counts for ``items``: ``requested`` CPU workers (``None``: auto, one per core for
    ``threads`` torch threads each), clamped to the CPU items there are; in this process when one
    worker is asked for, or for auto when the grid is too small to pay for workers (one item, or
    under :data:`PARALLEL_SECONDS` of estimated training). Accelerators and a time limit (only a
    worker can be stopped) always take workers."""
    cores = cores or usable_cores()
    cpu_items = [item for item in items if not is_accelerator(item.device)]
    accelerated = len(cpu_items) < len(items)
    notes: list[str] = []
    if per_device is not None and not accelerated and items:
        notes.append(f"--per-device {per_device} applies to accelerators, and this grid trains on the CPU only")
    if requested is None:
        wanted = max(1, cores // threads)
        seconds = sum(item.seconds for item in cpu_items)
        if not accelerated and not timeout and (wanted == 1 or len(cpu_items) < 2 or seconds < PARALLEL_SECONDS):
            if wanted > 1 and cpu_items:
                notes.append(f"training in this process: {len(cpu_items)} work item{'s' if len(cpu_items) != 1 else ''}"
                             f" of about {seconds:.1f} s in all would not pay for starting worker processes "
                             "(--workers N starts them anyway)")
            return Workers(True, 0, per_device, tuple(notes))
        return Workers(False, min(wanted, len(cpu_items)), per_device, tuple(notes))
    if requested == 1 and not timeout and not accelerated:
        return Workers(True, 0, per_device, tuple(notes))
    cpu = min(requested, len(cpu_items))
    if requested > len(cpu_items) and cpu_items:
        notes.append(f"--workers {requested}: only {len(cpu_items)} work item{'s' if len(cpu_items) != 1 else ''} "
                     f"can train at once here, so {'1 worker starts' if cpu == 1 else f'{cpu} workers start'}")
    if cpu == 1 and threads > cores:  # no company: the one worker's own threads outnumber the cores
        notes.append(f"--threads {threads} is more than the {cores} cores here: the worker's threads share cores, "
                     f"which slows its steps (--threads {cores} or fewer would not)")
    elif cpu * threads > cores:  # the workers that start, not those asked for, decide whether cores are shared
        notes.append(f"{cpu} workers with --threads {threads} need more than the {cores} cores here: "
                     "workers share cores, so their timings are measured in company")
    return Workers(False, cpu, per_device, tuple(notes))
