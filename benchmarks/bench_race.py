"""Racing (``nnbench run --race``) measured: how often it prunes a configuration it should not, and what it saves.

    python benchmarks/bench_race.py                        # (a) the simulation: 2,000 synthetic grids per scenario
    python benchmarks/bench_race.py --grids 200            # quicker, coarser
    python benchmarks/bench_race.py --real                 # also (b): real grids, exhaustive against --race
    python benchmarks/bench_race.py --real --no-simulation # (b) alone
    python benchmarks/bench_race.py --real --scale 0.5     # (b) with fewer activations/optimizers (a reduced grid)
    python benchmarks/bench_race.py --real --no-simulation --repeats 3  # (b), wall times the median of 3 runs each

(a) **Simulation.** Synthetic grids of learning curves, each configuration's validation score by seed and epoch:
a final level, a learning speed, a per-seed offset shared by every configuration (the data split a seed draws,
which pairing removes), a per-configuration-and-seed offset, noise per epoch, and scores rounded to the steps of
a validation set of 400 examples. The race runs the same schedule (:func:`nnbench.analysis.racing.rungs`) and the
same decisions (:func:`nnbench.analysis.racing.decide`) as a real one. Scenarios: ``spread`` (levels spread
out), ``ties`` (a third of the configurations share the best level), ``crossings`` (slow learners that end best
or near it, fast ones that lead early and fall behind), ``noisy`` (a quarter of the configurations, the best among
them, five times noisier), ``erratic`` (an eighth, all poor, learn on some seeds and not on others), ``null``
(every configuration the same). A grid is
*wrongly pruned* when the race pruned a configuration whose true final level is within the ROPE of the true best;
the table gives that share of grids with its 95% Clopper-Pearson interval, the share of epochs the race trained
against the exhaustive grid, and whether the race's best is within the ROPE of the true best.

(b) **Real grids**, each trained exhaustively and with ``--race`` into separate stores, timed: a large grid on a
small task (10 activations x 5 optimizers x 4 learning rates x 5 seeds) and a grid over architectures and tasks.
For each: epochs and wall time of the race against the exhaustive run, and whether the race's best configuration
on each task is one the exhaustive run cannot tell apart from its own best (its paired seeds' difference is not
significant at the verdicts' level, or it is the same configuration). Every run writes its report, and its wall
time counts it. The same run measures the ceilings of what a race can save: in epochs, the share a race would train
if it pruned at its first rung every configuration that the exhaustive run's own seeds show worse (and nothing
else); in wall time, the same grid trained over only the first rung's two seeds (no race over seeds ends sooner),
and over two seeds and one epoch (no race that judges an epoch of two seeds ends sooner).
"""

from __future__ import annotations

import argparse
import json
import os
import sqlite3
import subprocess
import sys
import tempfile
import time
from dataclasses import dataclass
from pathlib import Path

import numpy as np
from scipy import stats

from nnbench.analysis.racing import ALPHA, decide, look_alpha, seed_rungs
from nnbench.analysis.rope import Rope
from nnbench.contract.metrics import metric

ROPE = 0.005
STEP = 1 / 400
SCENARIOS = ("spread", "ties", "crossings", "noisy", "erratic", "null")


@dataclass(frozen=True)
class Grid:
    """A synthetic grid: ``scores[c, s, e]`` the validation score of configuration ``c``, seed ``s``, after epoch
    ``e + 1``; ``final[c]`` its true final level (the mean over seeds it tends to)."""

    scores: np.ndarray
    final: np.ndarray


def synthetic_grid(rng: np.random.Generator, scenario: str, configs: int = 40, seeds: int = 5,
                   epochs: int = 9) -> Grid:
    """One synthetic grid of ``scenario`` (see the module docstring)."""
    level = 0.92 - np.abs(rng.normal(0, 0.06, configs))
    speed = rng.uniform(0.4, 1.5, configs)
    if scenario == "ties":
        tied = rng.choice(configs, configs // 3, replace=False)
        level[tied] = level.max()
    elif scenario == "crossings":
        slow = rng.choice(configs, configs // 4, replace=False)
        level[slow] = level.max() + rng.uniform(-ROPE, 0.01, len(slow))
        speed[slow] = rng.uniform(0.15, 0.3, len(slow))  # behind at the epoch rung, best or near it at the end
        fast = np.setdiff1d(np.arange(configs), slow)
        speed[fast] = rng.uniform(1.5, 3.0, len(fast))
    elif scenario == "null":
        level[:] = 0.9
        speed[:] = 0.8
    start = 0.5
    e = np.arange(1, epochs + 1)
    mean = level[:, None] - (level[:, None] - start) * np.exp(-speed[:, None] * e[None, :])  # (configs, epochs)
    common = rng.normal(0, 0.01, seeds)  # the split a seed draws: every configuration shares it
    spread = np.full(configs, 0.006)
    if scenario == "noisy":  # some configurations, the best among them, vary far more from seed to seed
        spread[rng.choice(configs, configs // 4, replace=False)] = 0.03
        spread[np.argmax(level)] = 0.03
    own = rng.normal(0, 1, (configs, seeds)) * spread[:, None]
    noise = rng.normal(0, 0.004, (configs, seeds, epochs))
    scores = mean[:, None, :] + common[None, :, None] + own[:, :, None] + noise
    final = mean[:, -1]
    if scenario == "erratic":  # some poor configurations learn on some seeds and not on others, as a too-high
        # learning rate or too few epochs make them: far below the best, and far noisier than the rest
        poor = rng.choice(configs, configs // 8, replace=False)
        poor = poor[final[poor] < final.max() - 0.05]
        scores[poor] = 0.6 + rng.normal(0, 0.15, (len(poor), seeds, 1)) + np.zeros((1, 1, epochs))
        final[poor] = 0.6
    scores = np.clip(np.round(scores / STEP) * STEP, 0, 1)
    return Grid(scores, final)


@dataclass
class Raced:
    """What one race over a synthetic grid did."""

    pruned: np.ndarray  # bool per configuration
    trained_epochs: int
    planned_epochs: int
    best: int


def race(grid: Grid, alpha: float = ALPHA) -> Raced:
    """Race ``grid`` as :class:`nnbench.execution.racing.Race` does: the same rungs, scores and decisions."""
    configs, seeds, epochs = grid.scores.shape
    counts = seed_rungs(seeds)
    alive = np.ones(configs, dtype=bool)
    trained = 0
    for index, count in enumerate(counts):
        trained += int(alive.sum()) * (count - (counts[index - 1] if index else 0)) * epochs
        if index == len(counts) - 1:
            break
        scores = {str(c): grid.scores[c, :count, -1] for c in np.flatnonzero(alive)}
        for pruning in decide(scores, True, ROPE, look_alpha(seeds, alpha), STEP):
            alive[int(pruning.configuration)] = False
    means = np.where(alive, grid.scores[:, :, -1].mean(axis=1), -np.inf)
    return Raced(~alive, trained, configs * seeds * epochs, int(np.argmax(means)))


def clopper_pearson(k: int, n: int, confidence: float = 0.95) -> tuple[float, float]:
    tail = (1 - confidence) / 2
    low = stats.beta.ppf(tail, k, n - k + 1) if k > 0 else 0.0
    high = stats.beta.ppf(1 - tail, k + 1, n - k) if k < n else 1.0
    return float(low), float(high)


def simulate(grids: int, seed: int = 0, scenarios: tuple[str, ...] = SCENARIOS, configs: int = 40,
             seeds: int = 5, epochs: int = 9) -> list[dict[str, float | str | int]]:
    """One row per scenario: grids, share of grids wrongly pruned (with its interval), mean share of epochs
    trained, mean share of configurations pruned, share of grids whose race best is within the ROPE of the best."""
    rows: list[dict[str, float | str | int]] = []
    for scenario in scenarios:
        rng = np.random.default_rng([seed, SCENARIOS.index(scenario)])
        wrong = 0
        share = pruned = good_best = 0.0
        for _ in range(grids):
            grid = synthetic_grid(rng, scenario, configs, seeds, epochs)
            outcome = race(grid)
            near = grid.final >= grid.final.max() - ROPE
            wrong += bool((outcome.pruned & near).any())
            share += outcome.trained_epochs / outcome.planned_epochs
            pruned += outcome.pruned.mean()
            good_best += grid.final[outcome.best] >= grid.final.max() - ROPE
        low, high = clopper_pearson(wrong, grids)
        rows.append({"scenario": scenario, "grids": grids, "wrongly_pruned": wrong / grids, "low": low, "high": high,
                     "epochs_trained": share / grids, "configurations_pruned": pruned / grids,
                     "best_within_rope": good_best / grids})
    return rows


def markdown(rows: list[dict[str, float | str | int]]) -> str:
    lines = ["| scenario | grids | grids wrongly pruned [95% CI] | epochs trained | configurations pruned | "
             "race's best within the ROPE of the best |", "| --- | ---: | ---: | ---: | ---: | ---: |"]
    for r in rows:
        lines.append(f"| {r['scenario']} | {r['grids']:,} | {float(r['wrongly_pruned']):.1%} "
                     f"[{float(r['low']):.1%}, {float(r['high']):.1%}] | {float(r['epochs_trained']):.0%} | "
                     f"{float(r['configurations_pruned']):.0%} | {float(r['best_within_rope']):.0%} |")
    return "\n".join(lines)


# -- (b) real grids ---------------------------------------------------------------------------------


ACTIVATIONS = ["relu", "tanh", "sigmoid", "gelu", "elu", "selu", "silu", "leaky_relu", "softplus", "mish"]
OPTIMIZERS = ["sgd", "adam", "adamw", "rmsprop", "adagrad"]
REAL_GRIDS = {
    "large": ["--task", "moons", "--arch", "fnn", "--activation", ",".join(ACTIVATIONS), "--optimizer",
              ",".join(OPTIMIZERS), "--lr", "0.001,0.01,0.1,0.3", "--seeds", "5", "--epochs", "3"],
    "architectures_and_tasks": ["--task", "moons,iris,sine", "--arch", "fnn,gru", "--activation", "relu,tanh,gelu",
                                "--optimizer", "adam,sgd", "--lr", "0.001,0.01", "--seeds", "5", "--epochs", "5"],
}
"""The real grids' command-line arguments."""


def real_grids(scale: float) -> dict[str, list[str]]:
    """The real grids, the large one with a share ``scale`` of its activations and optimizers (a reduced grid)."""
    grids = {name: list(arguments) for name, arguments in REAL_GRIDS.items()}
    if scale < 1 and "large" in grids:
        large = grids["large"]
        for option, names in (("--activation", ACTIVATIONS), ("--optimizer", OPTIMIZERS)):
            large[large.index(option) + 1] = ",".join(names[:max(2, round(len(names) * scale))])
    return grids


def run_grid(arguments: list[str], store: Path, raced: bool) -> float:
    """Train a grid into ``store`` and write its report beside it; the wall time in seconds, report included."""
    command = [sys.executable, "-m", "nnbench", "run", *arguments, "--store", str(store), "--report-dir",
               str(store.with_suffix(".report")), *(["--race"] if raced else [])]
    start = time.perf_counter()
    subprocess.run(command, check=True, stdout=subprocess.DEVNULL, env={**os.environ, "NNBENCH_PLUGINS": "none"})
    return time.perf_counter() - start


def store_epochs(store: Path) -> tuple[float, float]:
    """(epochs trained, epochs planned) of the one run in ``store``."""
    with sqlite3.connect(store) as db:
        trained = db.execute("SELECT COALESCE(SUM(epochs_run), 0), SUM(epochs) FROM trials").fetchone()
    return float(trained[0]), float(trained[1])


def metric_names(store: Path) -> dict[str, str]:
    """Each task's metric, from the metric names the store holds."""
    with sqlite3.connect(store) as db:
        return dict(db.execute("SELECT DISTINCT task, metric_name FROM trials WHERE metric_name IS NOT NULL"))


def metric_directions(store: Path) -> dict[str, bool]:
    """Whether each task's metric is higher-is-better."""
    return {task: metric(name).higher_is_better for task, name in metric_names(store).items()}


def best_configurations(store: Path) -> dict[str, dict[str, list[float]]]:
    """Per task, each finished configuration's validation scores by seed (configurations with a pruned trial left
    out), read from the store."""
    with sqlite3.connect(store) as db:
        rows = db.execute("SELECT task, arch, activation, optimizer, lr, seed, status, val_metric, metric_name "
                          "FROM trials ORDER BY seed").fetchall()
    pruned = {(r[0], r[1], r[2], r[3], r[4]) for r in rows if r[6] == "pruned"}
    out: dict[str, dict[str, list[float]]] = {}
    for task, arch, act, opt, lr, _seed, status, val, _metric in rows:
        key = (task, arch, act, opt, lr)
        if key in pruned:
            continue
        out.setdefault(task, {}).setdefault(f"{arch}/{act}/{opt}@{lr:g}", []).append(
            float(val) if status == "ok" and val is not None else float("nan"))
    return out


def same_as_best(exhaustive: dict[str, list[float]], chosen: str, higher: bool) -> bool:
    """Whether the exhaustive run cannot tell ``chosen`` apart from its own best (paired t test, two-sided, at the
    verdicts' level), or ``chosen`` is its best."""
    means = {k: np.nanmean(v) * (1 if higher else -1) for k, v in exhaustive.items()}
    best = max(means, key=lambda k: means[k])
    if chosen == best:
        return True
    d = np.array(exhaustive[best]) - np.array(exhaustive[chosen])
    d = d[np.isfinite(d)]
    if len(d) < 2 or np.std(d, ddof=1) == 0:
        return bool(np.all(d == 0))
    return bool(stats.ttest_1samp(d, 0.0).pvalue >= ALPHA)


def chosen_workers(store: Path) -> int:
    """How many processes the one run in ``store`` trained in (1: this process)."""
    with sqlite3.connect(store) as db:
        workers = json.loads(db.execute("SELECT grid FROM runs").fetchone()[0])["workers"]
    return int(workers["cpu"]) if isinstance(workers, dict) else 1


def with_values(arguments: list[str], **values: str) -> list[str]:
    """``arguments`` with the values of some options replaced (``seeds="2"`` for ``--seeds 2``)."""
    out = list(arguments)
    for option, value in values.items():
        out[out.index(f"--{option}") + 1] = value
    return out


def evidence_ceiling(store: Path, seeds: int, epochs: int) -> tuple[float, float, int, int]:
    """The least share of the exhaustive grid's epochs a race that prunes only what evidence shows can train.

    A calibrated race prunes at its first rung no more than its test shows with every seed's last epoch, so: every
    configuration trains its first rung, and only those that the exhaustive run's own seeds (all of them, last
    epochs, the race's test at the verdicts' level) show worse than the best stop there. Returns that share for
    rungs over seeds (the first rung: two seeds, every epoch) and for rungs over epochs too (the first: two seeds,
    one epoch), the configurations shown worse, and the configurations."""
    names = metric_names(store)
    first = seed_rungs(seeds)[0] / seeds
    over_seeds = over_epochs = 0.0
    shown = total = 0
    for task, configurations in best_configurations(store).items():
        values = np.array([v for row in configurations.values() for v in row], dtype=float)
        width = Rope().width(task, names[task], values)  # the race's default ROPE for the task's metric
        worse = {p.configuration for p in decide(configurations, metric(names[task]).higher_is_better, width, ALPHA)}
        shown += len(worse)
        total += len(configurations)
        over_seeds += sum(first if key in worse else 1.0 for key in configurations)
        over_epochs += sum(first / epochs if key in worse else 1.0 for key in configurations)
    return over_seeds / max(total, 1), over_epochs / max(total, 1), shown, total


def real(scale: float, repeats: int = 1) -> list[dict[str, object]]:
    """Each real grid exhaustive, raced, and its two wall-time ceilings (see the module docstring), one after the
    other, ``repeats`` times; wall times are the medians of the repeats, the rest is read from the first."""
    rows: list[dict[str, object]] = []
    with tempfile.TemporaryDirectory() as folder:
        for name, arguments in real_grids(scale).items():
            seeds = int(arguments[arguments.index("--seeds") + 1])
            epochs = int(arguments[arguments.index("--epochs") + 1])
            first = str(seed_rungs(seeds)[0])
            walls: dict[str, list[float]] = {"full": [], "race": [], "first_rung": [], "one_epoch": []}
            for repeat in range(repeats):
                stores = {kind: Path(folder) / f"{name}-{kind}-{repeat}.db" for kind in walls}
                walls["full"].append(run_grid(arguments, stores["full"], raced=False))
                walls["race"].append(run_grid(arguments, stores["race"], raced=True))
                # The ceilings: no race can end before it has trained every configuration's first rung of seeds
                # (over all epochs, for rungs over seeds; over one epoch, for any race that judges an epoch of two
                # seeds), and written its report. They train on the workers the exhaustive run chose (a grid that
                # small alone would train in this process).
                alike = [*arguments, "--workers", str(chosen_workers(stores["full"]))]
                walls["first_rung"].append(run_grid(with_values(alike, seeds=first), stores["first_rung"], False))
                walls["one_epoch"].append(run_grid(with_values(alike, seeds=first, epochs="1"), stores["one_epoch"],
                                                   False))
            full, fast = Path(folder) / f"{name}-full-0.db", Path(folder) / f"{name}-race-0.db"
            wall = {kind: float(np.median(times)) for kind, times in walls.items()}
            ceiling, ceiling_epochs, shown, compared = evidence_ceiling(full, seeds, epochs)
            trained_full, planned = store_epochs(full)
            trained_race, _ = store_epochs(fast)
            exhaustive, raced_scores = best_configurations(full), best_configurations(fast)
            agree = {}
            directions = metric_directions(full)
            for task, configurations in raced_scores.items():
                higher = directions[task]
                means = {k: np.nanmean(v) * (1 if higher else -1) for k, v in configurations.items()}
                chosen = max(means, key=lambda k: means[k])
                agree[task] = same_as_best(exhaustive[task], chosen, higher)
            rows.append({"grid": name, "trials": int(planned // epochs), "epochs_share": trained_race / trained_full,
                         "repeats": repeats, "wall_full": wall["full"], "wall_race": wall["race"],
                         "wall_share": wall["race"] / wall["full"], "best_agrees": agree,
                         "evidence_ceiling_epochs": ceiling, "evidence_ceiling_with_epoch_rungs": ceiling_epochs,
                         "shown_worse": f"{shown} of {compared}",
                         "wall_first_rung_share": wall["first_rung"] / wall["full"],
                         "wall_one_epoch_two_seeds_share": wall["one_epoch"] / wall["full"],
                         "walls": walls, "command": "nnbench run " + " ".join(arguments)})
    return rows


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__, formatter_class=argparse.RawDescriptionHelpFormatter)
    parser.add_argument("--grids", type=int, default=2000)
    parser.add_argument("--real", action="store_true")
    parser.add_argument("--no-simulation", action="store_true")
    parser.add_argument("--scale", type=float, default=1.0)
    parser.add_argument("--repeats", type=int, default=1, help="real grids: runs of each, wall times their median")
    args = parser.parse_args()
    if not args.no_simulation:
        print(markdown(simulate(args.grids)))
    if args.real:
        for row in real(args.scale, args.repeats):
            print(json.dumps(row))


if __name__ == "__main__":
    main()
