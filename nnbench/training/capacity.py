"""How many trials an accelerator can train at once, measured on the device when its first trial starts.

This decides only how many trials share a device, never how a trial trains: numbers do not depend on it.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable

import torch

from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import Catalogue
from nnbench.training.trainer import build_model, make_optimizer, set_up, synchronize

WARM_UP_STEPS = 2
TIMED_STEPS = 5


CAPACITY_STEPS = (2, 4, 8)
"""The company sizes :func:`device_capacity` tries."""


def device_capacity(trial: Trial, catalogue: Catalogue, cap: int = 8) -> tuple[int, str]:
    """How many trials like ``trial`` its accelerator can train at once, measured: a training step on a
    batch ``n`` times the trial's stands for ``n`` trials sharing the device. Company size ``n`` is
    taken while such a step costs at most 1.6 times the step of half that size (each doubling still
    buys at least a quarter more throughput), up to ``cap``, the CPU cores there are to drive the
    workers, and what the device's free memory holds. Returns the size and the timings behind it."""
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
