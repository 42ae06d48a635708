"""Stacked or one by one: measured on the trial's own device before a group of seeds trains.

Whether training ``K`` seeds as one stacked model beats training them one after another depends
on the model, ``K`` and the device: on a CPU a stacked MLP or Elman RNN wins several times over
while a stacked LSTM may lose; on a GPU, where one small model leaves the device mostly idle,
stacking wins far more often. So before a group trains, :func:`measure_stacking` times a few
training steps each way (the stack of ``K`` against one member, counted ``K`` times) and the group
trains stacked when that is faster. :class:`StackingChoices` keeps each measured choice for the
rest of the run, per architecture, shape, device and seed count (:func:`calibration_key`), so a
grid calibrates each kind of group once.
"""

from __future__ import annotations

import json
import math
import statistics
import time
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import TYPE_CHECKING, Any, Literal

from nnbench.contract.trial import Trial

if TYPE_CHECKING:
    from nnbench.loading.catalogue import Catalogue

Policy = Literal["measure", "always"]
WARM_UP_STEPS = 2
TIMED_STEPS = 5
TIMED_SECONDS = 0.2  # a tenth of a second or so for each way, whatever a step costs
MAX_STEPS = 50


@dataclass(frozen=True)
class StackingChoice:
    """How a group of seeds trains: ``stacked`` or one by one.

    ``ratio`` is the measured speed of the stack against one by one (one-by-one time over stacked
    time; above 1 the stack is faster), ``None`` when not measured; ``reason`` says why a group
    trains one by one without measuring (a component that cannot be stacked, ``--no-vectorize``).
    """

    stacked: bool
    ratio: float | None = None
    reason: str | None = None

    def record(self, members: int) -> dict[str, Any]:
        """What a trial's result keeps of the choice (its ``training`` field): the mode, how many trials
        trained together and the ratio or reason behind the choice."""
        out: dict[str, Any] = {"mode": "stacked" if self.stacked else "one_by_one", "members": members}
        if self.ratio is not None:
            out["ratio"] = round(self.ratio, 4)
        if self.reason:
            out["reason"] = self.reason
        return out

    def describe(self, trial: Trial, members: int) -> str:
        """One line for the user: what was measured and what was chosen."""
        speed = f"{self.ratio:.2f}x as fast" if self.ratio is not None else "not measured"
        shape = f"{members} trials of {trial.arch} on {trial.task} ({trial.device}, batch {trial.batch_size})"
        if self.stacked:
            return f"stacked training chosen for {shape}: {speed} as one by one, measured"
        return f"one-by-one training chosen for {shape}: stacked was {speed}, measured"


def calibration_key(trials: Sequence[Trial], catalogue: Catalogue) -> str:
    """What a measured choice holds for: the architecture and its hyper-parameters, the components
    it is built with, the task's input shape and head width, batch size, device and seed count."""
    first = trials[0]
    task = catalogue.tasks.get(first.task)
    loss = catalogue.losses.get(first.loss)
    build = {record.name: first.components.get(record.name) for record in catalogue.domain.stage_kinds("build")}
    return json.dumps([first.arch, dict(first.params.get("arch", {})), build, list(task.input_shape),
                       loss.outputs(task), first.batch_size, first.device, len(trials)], sort_keys=True, default=str)


class StackingChoices:
    """The choices of one run (or one worker process), keyed by :func:`calibration_key`.

    ``policy`` ``measure`` (the default) calibrates each new key; ``always`` stacks wherever stacking
    is possible without measuring (tests and benchmarks that compare stacked with one-by-one training).
    """

    def __init__(self, policy: Policy = "measure") -> None:
        self.policy = policy
        self.known: dict[str, StackingChoice] = {}

    def get(self, key: str) -> StackingChoice | None:
        if self.policy == "always":
            return StackingChoice(True)
        return self.known.get(key)

    def put(self, key: str, choice: StackingChoice) -> bool:
        """Keep a measured choice; ``True`` when it is news to say to the user."""
        new = key not in self.known
        self.known[key] = choice
        return new


def measure_stacking(stacked_step: Callable[[], object], single_step: Callable[[], object], members: int,
                     synchronize: Callable[[], None]) -> float:
    """The stack's speed against one by one: ``members`` times the fastest ``single_step`` (one member's
    training step) over the fastest ``stacked_step`` (one step of the whole stack), after a warm-up of
    each. The two alternate, at least :data:`TIMED_STEPS` times and for at least
    :data:`TIMED_SECONDS`, and the fastest step of each counts: on a busy machine the other work
    only ever adds time, so the fastest is the closest to each step's own cost."""
    for _ in range(WARM_UP_STEPS):
        stacked_step()
        single_step()
    synchronize()
    stacked: list[float] = []
    single: list[float] = []
    began = time.perf_counter()
    while len(stacked) < TIMED_STEPS or (time.perf_counter() - began < TIMED_SECONDS and len(stacked) < MAX_STEPS):
        for step, times in ((stacked_step, stacked), (single_step, single)):
            start = time.perf_counter()
            step()
            synchronize()
            times.append(time.perf_counter() - start)
    together = min(stacked)
    return math.inf if together <= 0 else members * min(single) / together


CAPACITY_STEPS = (2, 4, 8)
"""The company sizes :func:`device_capacity` tries."""


def device_capacity(trial: Trial, catalogue: Catalogue, cap: int = 8) -> tuple[int, str]:
    """How many trials like ``trial`` its accelerator can train at once, measured: a training step on a
    batch ``n`` times the trial's stands for ``n`` trials sharing the device. Company size ``n`` is
    taken while such a step costs at most 1.6 times the step of half that size (each doubling still
    buys at least a quarter more throughput), up to ``cap``, the CPU cores there are to drive the
    workers, and what the device's free memory holds. Returns the size and the timings behind it."""
    import torch

    from nnbench.training.trainer import build_model, make_optimizer, set_up, synchronize

    setup = set_up(trial, catalogue)
    model = build_model(trial, catalogue, setup.task, setup.view).to(setup.device)
    optimizer = make_optimizer(setup.optimizer, model.parameters(), trial.lr, trial.params.get("optimizer", {}))
    generator = torch.Generator().manual_seed(trial.seed)

    def step_time(rows: int) -> float:
        idx = torch.randint(len(setup.x), (rows,), generator=generator).to(setup.device)

        def loss() -> torch.Tensor:
            optimizer.zero_grad(set_to_none=True)
            value = setup.criterion(model(setup.x[idx]), setup.y[idx])
            value.backward()
            return value

        def step() -> None:
            if setup.optimizer.needs_closure:
                optimizer.step(loss)  # type: ignore[arg-type]
            else:
                loss()
                optimizer.step()

        return _median_step(step, lambda: synchronize(setup.device))

    cuda = setup.device.type == "cuda"
    if cuda:
        torch.cuda.reset_peak_memory_stats(setup.device)
    times = {1: step_time(trial.batch_size)}
    need = max(1, torch.cuda.max_memory_allocated(setup.device)) if cuda else 0
    chosen = 1
    for size in CAPACITY_STEPS:
        if size > cap:
            break
        times[size] = step_time(trial.batch_size * size)
        if times[size] > 1.6 * times[size // 2]:
            break
        chosen = size
    if cuda:
        free, _total = torch.cuda.mem_get_info(setup.device)
        chosen = max(1, min(chosen, int(0.8 * (free + need) // need)))
    detail = ", ".join(f"a batch {size}x as large: {seconds * 1e3:.2f} ms" for size, seconds in times.items())
    return chosen, detail


def _median_step(step: Callable[[], None], synchronize: Callable[[], None]) -> float:
    """The median time of ``step`` over a few calls, after a warm-up (a device measured alone by one
    process; the median is its typical step)."""
    for _ in range(WARM_UP_STEPS):
        step()
    synchronize()
    times = []
    for _ in range(TIMED_STEPS):
        start = time.perf_counter()
        step()
        synchronize()
        times.append(time.perf_counter() - start)
    return statistics.median(times)
