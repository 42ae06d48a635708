"""The Ray executor's dispatch cost: what the driver spends per trial, at 1,000 and 10,000 queued trials.

    python benchmarks/bench_dispatch.py [--trials 1000,10000] [--slots 1,4] [--repeats 1]

Each trial is a stub that trains nothing (its result comes back at once), so what is measured is the dispatch path
of ``--executor ray`` alone: the plan's queue, one Ray actor per slot, an item sent to an idle actor, its answer
through a callback, the result handed to the run's sink. The driver's CPU time (all its threads, Ray's own
included) and the wall time are taken over a whole plan; the cost per trial is the difference between the largest
and the smallest plan over the difference in trials, so that starting the actors, the same for both, drops out.
The figure holds when it does not grow with the trials queued (1,000 against 10,000) nor with the trials in flight
(``--slots``: the CPUs the local Ray offers, one actor per CPU). The script starts a local Ray of its own for each
slot count, on 127.0.0.1, and stops it; nothing else is reached.

Target: under 2 ms of driver CPU per trial, on 2 cores shared with the actors.
"""

from __future__ import annotations

import argparse
import os
import statistics
import sys
import time
from collections.abc import Sequence
from pathlib import Path

import ray

sys.path.insert(0, str(Path(__file__).parents[1]))  # this checkout's nnbench, when run from anywhere

from nnbench.contract.executor import WorkItem, WorkPlan  # noqa: E402
from nnbench.contract.trial import Trial, TrialResult  # noqa: E402
from nnbench.execution.planner import WorkQueue  # noqa: E402
from nnbench.execution.ray import RayExecutor  # noqa: E402

TARGET_MS = 2.0


class StubTraining:
    """A train job that trains nothing: one ``ok`` result per trial, at once."""

    def __call__(self, item: WorkItem) -> list[TrialResult]:
        return [TrialResult(trial, "ok", metric_name="accuracy", metric=0.5) for trial in item.trials]


class CountingSink:
    """The run's side of the executor: grants every claim, counts the results."""

    def __init__(self) -> None:
        self.results = 0

    def claim(self, trials: Sequence[Trial], *, here: bool = False) -> list[Trial]:
        return list(trials)

    def result(self, result: TrialResult) -> None:
        self.results += 1

    def log(self, message: str) -> None:
        pass


def plan_of(trials: int) -> WorkPlan:
    """``trials`` one-trial items on the CPU, as a grid of seeds that train one by one is planned."""
    items = [WorkItem((Trial("moons", "fnn", "relu", "default", "adam", 0.01, 32, 1, seed),), seconds=1.0)
             for seed in range(trials)]
    return WorkPlan("ray", WorkQueue(items, cost=None), StubTraining(), threads=1)  # type: ignore[arg-type]


def dispatch(trials: int) -> tuple[float, float]:
    """Driver CPU seconds and wall seconds to run a plan of ``trials`` stub trials through the Ray executor."""
    sink = CountingSink()
    cpu, wall = time.process_time(), time.perf_counter()
    RayExecutor().run(plan_of(trials), sink)
    cpu, wall = time.process_time() - cpu, time.perf_counter() - wall
    assert sink.results == trials, f"{sink.results} results for {trials} trials"
    return cpu, wall


def main() -> int:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--trials", default="1000,10000", help="plan sizes, comma-separated (default 1000,10000)")
    parser.add_argument("--slots", default="1,4", help="CPUs of the local Ray, one actor each (default 1,4)")
    parser.add_argument("--repeats", type=int, default=1, help="plans of each size per slot count (median)")
    args = parser.parse_args()
    if __name__ != "__main__":  # loaded under another name (as the docs test does): the stub travels by value
        ray.cloudpickle.register_pickle_by_value(sys.modules[__name__])
    sizes = sorted(int(n) for n in args.trials.split(","))
    slot_counts = [int(n) for n in args.slots.split(",")]
    print(f"Ray {ray.__version__}, {os.cpu_count()} cores, load {os.getloadavg()[0]:.2f}", flush=True)
    marginals = []
    for slots in slot_counts:
        ray.init(address="local", num_cpus=slots, num_gpus=0, include_dashboard=False, log_to_driver=False,
                 _node_ip_address="127.0.0.1", configure_logging=False)
        try:
            dispatch(min(sizes))  # the first plan also pays for Ray's workers' first start
            measured = {}
            for size in sizes:
                runs = [dispatch(size) for _ in range(args.repeats)]
                cpu, wall = statistics.median(r[0] for r in runs), statistics.median(r[1] for r in runs)
                measured[size] = cpu, wall
                print(f"  {slots} slot(s), {size:>6,} trials: driver CPU {cpu:6.2f} s ({cpu / size * 1e3:.2f} ms a "
                      f"trial, start-up included), wall {wall:6.2f} s ({size / wall:,.0f} trials/s)", flush=True)
        finally:
            ray.shutdown()
        if len(sizes) > 1:
            (cpu_a, wall_a), (cpu_b, wall_b) = measured[sizes[0]], measured[sizes[-1]]
            per_trial = (cpu_b - cpu_a) / (sizes[-1] - sizes[0]) * 1e3
            per_wall = (wall_b - wall_a) / (sizes[-1] - sizes[0]) * 1e3
            marginals.append(per_trial)
            print(f"{slots} slot(s): {per_trial:.2f} ms of driver CPU a trial, {per_wall:.2f} ms of wall time a trial "
                  f"(from {sizes[0]:,} to {sizes[-1]:,} trials queued)", flush=True)
    if not marginals:
        return 0
    worst = max(marginals)
    print(f"dispatch: at most {worst:.2f} ms of driver CPU a trial (target < {TARGET_MS:g} ms "
          f"{'ok' if worst < TARGET_MS else 'MISSED'})")
    return 0 if worst < TARGET_MS else 1


if __name__ == "__main__":
    sys.exit(main())
