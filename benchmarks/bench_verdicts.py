"""Calibration of nnbench's verdicts, by simulation and on real training (published in docs/statistics.md).

    python benchmarks/bench_verdicts.py                  # the simulation tables (a few minutes on 2 cores)
    python benchmarks/bench_verdicts.py --reps 400       # quicker, coarser
    python benchmarks/bench_verdicts.py --real           # also the end-to-end null check on real training
    python benchmarks/bench_verdicts.py --real --no-simulation   # that check alone (about a minute)
    python benchmarks/bench_verdicts.py --markdown       # the tables as Markdown

The simulation runs the verdict machinery (:func:`nnbench.analysis.pairwise.decide_scores`: the same
tests, Holm correction and decision rules the report, the findings and ``nnbench compare`` use) on
simulated results of one axis:

- **no true difference**: every level drawn from the same distribution, with six noise shapes (normal,
  heavy-tailed, skewed, a bad seed now and then, and a metric rounded to the steps of a finite test set,
  fine and coarse), at 3, 5, 10 and 30 paired seeds, 1, 3 and 10 tasks, 2, 4 and 8 levels; a *false
  verdict* is any "better" or "worse", per task or across tasks. The table gives the family-wise rate
  (the share of simulated axes with at least one false verdict) with its 95% Clopper-Pearson interval,
  and a row where the levels share a mean but not a shape (the t test's assumption at its weakest);
- **known differences**: one level better than the others by 0.5 to 4 times the ROPE, for the power
  (the share of its comparisons called "better"), and how often a difference as large as the ROPE is
  wrongly called equivalent;
- **coverage** of the 95% intervals: the advantage's t-interval and the probability of improvement's
  Clopper-Pearson interval.

``--real`` trains twins of relu, each drawing a different number of extra random numbers when built
(their only difference is the random draws), on six small tasks, and counts false verdicts between
them: over disjoint pairs of twins (each one simulated report of one axis) and over all twins at once.
"""

from __future__ import annotations

import argparse
import itertools
import os
import tempfile
import time
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
from scipy import stats

from nnbench.analysis.pairwise import decide_scores

SIGMA = 0.01
"""A level's seed-to-seed standard deviation (accuracy units): typical of small tasks."""
ROPE = 0.005
"""The default ROPE of accuracy."""
ALPHA = 0.05
SEEDS = (3, 5, 10, 30)
TASKS = (1, 3, 10)
LEVELS = (2, 4, 8)
EFFECTS = (0.0025, 0.005, 0.01, 0.02, 0.04)
"""True advantages of the better level, in accuracy: half the ROPE to eight times it."""


def _normal(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_normal(shape)


def _heavy(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    return rng.standard_t(3, shape) / np.sqrt(3.0)  # t with 3 degrees of freedom, unit variance


def _skewed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    s = 0.75  # lognormal, skewness about 3
    mean, var = np.exp(s**2 / 2), (np.exp(s**2) - 1) * np.exp(s**2)
    return (rng.lognormal(0.0, s, shape) - mean) / np.sqrt(var)


def _bad_seed(rng: np.random.Generator, shape: tuple[int, ...]) -> np.ndarray:
    # One run in ten loses five standard deviations (a seed that trains badly), plus half the usual noise.
    drop = np.where(rng.random(shape) < 0.1, -5.0, 0.0)
    values = drop + 0.5 * rng.standard_normal(shape)
    return (values - (-0.5)) / np.sqrt(0.09 * 25 + 0.25)


SHAPES: dict[str, tuple[Callable[[np.random.Generator, tuple[int, ...]], np.ndarray], float]] = {
    "normal": (_normal, 0.0),
    "heavy-tailed (t, 3 df)": (_heavy, 0.0),
    "skewed (lognormal)": (_skewed, 0.0),
    "a bad seed in ten": (_bad_seed, 0.0),
    "rounded to 1/400": (_normal, 1 / 400),
    "rounded to 1/50": (_normal, 1 / 50),
}
"""Noise shapes, each with unit variance, and the step the metric is rounded to (0: not rounded): a
test set of 400 examples moves accuracy in steps of 0.0025 (a quarter of the spread), one of 50 in steps
of 0.02 (twice the spread, so most seeds tie)."""


def simulate(rng: np.random.Generator, reps: int, tasks: int, seeds: int, levels: int, shape: str,
             effect: float = 0.0, unequal: bool = False) -> np.ndarray:
    """Scores ``[rep, task, seed, level]``: a task's level and a seed's luck shared by every level (they
    cancel in the paired differences), each level's own noise of the given ``shape`` (``unequal``: the
    first level normal, the others skewed, all with the same mean and spread), and ``effect`` added to
    the first level."""
    draw, step = SHAPES[shape]
    base = 0.85 + 0.05 * rng.standard_normal((reps, tasks, 1, 1)) + 0.02 * rng.standard_normal((reps, tasks, seeds, 1))
    noise = draw(rng, (reps, tasks, seeds, levels))
    if unequal:
        noise[..., 0] = _normal(rng, (reps, tasks, seeds))
    scores = base + SIGMA * noise
    scores[..., 0] += effect
    return np.round(scores / step) * step if step else scores


def false_verdicts(result: dict[str, np.ndarray], effect_levels: set[int] = frozenset()) -> tuple[np.ndarray, int]:
    """Per repetition, whether any comparison between two levels with no true difference came out
    "better" or "worse" (per task or across tasks), and how many such comparisons there were."""
    null = np.array([not ({int(a), int(b)} & set(effect_levels)) for a, b in result["pairs"]])
    decisions = result["decisions"][..., null, :]
    across = result["across"][..., null]
    decided = np.isin(decisions, ["first", "second"]).any(axis=(-1, -2)) | np.isin(across, ["first", "second"]).any(
        axis=-1)
    return decided, int(null.sum()) * (decisions.shape[-1] + 1)


def rate_text(hits: int, total: int) -> str:
    low, high = stats.binomtest(hits, total).proportion_ci(0.95) if total else (np.nan, np.nan)
    return f"{100 * hits / total:.1f} [{100 * low:.1f}, {100 * high:.1f}]"


def null_table(reps: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """The family-wise false-verdict rate of every cell of the grid of shapes, seeds, tasks and levels."""
    rows = []
    for shape, seeds, tasks, levels in itertools.product(SHAPES, SEEDS, TASKS, LEVELS):
        result = decide_scores(simulate(rng, reps, tasks, seeds, levels, shape), ROPE, ALPHA)
        decided, _ = false_verdicts(result)
        rows.append({"shape": shape, "seeds": seeds, "tasks": tasks, "levels": levels,
                     "false": int(decided.sum()), "reps": reps})
    for seeds, tasks, levels in itertools.product(SEEDS, (1, 10), (2, 4)):
        result = decide_scores(simulate(rng, reps, tasks, seeds, levels, "skewed (lognormal)", unequal=True), ROPE,
                               ALPHA)
        decided, _ = false_verdicts(result)
        rows.append({"shape": "same mean, unequal shapes", "seeds": seeds, "tasks": tasks, "levels": levels,
                     "false": int(decided.sum()), "reps": reps})
    return rows


def power_table(reps: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """Per effect, seeds and design: how often the better level is called better (per task), how often it
    is wrongly called worse or equivalent, and the family-wise false-verdict rate among the other levels."""
    rows = []
    for (tasks, levels), seeds, effect in itertools.product(((1, 2), (3, 4), (10, 4)), SEEDS, EFFECTS):
        result = decide_scores(simulate(rng, reps, tasks, seeds, levels, "normal", effect), ROPE, ALPHA)
        shifted = result["pairs"][:, 0] == 0  # the pairs of the better level (it is always first)
        decisions = result["decisions"][..., shifted, :]
        decided, _ = false_verdicts(result, {0})
        rows.append({"tasks": tasks, "levels": levels, "seeds": seeds, "effect": effect,
                     "better": float(np.mean(decisions == "first")), "worse": float(np.mean(decisions == "second")),
                     "equivalent": float(np.mean(decisions == "equivalent")),
                     "false_others": float(decided.mean()) if levels > 2 else np.nan})
    return rows


def coverage_table(reps: int, rng: np.random.Generator) -> list[dict[str, Any]]:
    """How often the 95% intervals hold the truth: the advantage's t-interval (the true difference) and
    the probability of improvement's Clopper-Pearson interval (0.5 under no difference)."""
    rows = []
    for shape, seeds in itertools.product(SHAPES, SEEDS):
        result = decide_scores(simulate(rng, reps, 1, seeds, 2, shape, 0.01), ROPE, ALPHA)
        covered = (result["low"] <= 0.01) & (result["high"] >= 0.01)
        null = decide_scores(simulate(rng, reps, 1, seeds, 2, shape), ROPE, ALPHA)
        poi = (null["poi_low"] <= 0.5) & (null["poi_high"] >= 0.5)
        rows.append({"shape": shape, "seeds": seeds, "advantage": float(covered.mean()), "poi": float(poi.mean())})
    return rows


# -- the end-to-end null check on real training ----------------------------------------------------

REAL_TASKS = ("moons", "circles", "xor", "spirals", "iris", "breast_cancer")


def train_twins(twins: int, seeds: int, epochs: int, folder: Path) -> Any:
    """Train ``twins`` copies of relu that differ only in their random draws on :data:`REAL_TASKS`."""
    import torch
    from torch import nn

    import nnbench

    class Twin(nn.Module):
        """relu, after drawing ``draws`` random numbers when built: its network starts from other weights."""

        draws = 0

        def __init__(self) -> None:
            super().__init__()
            torch.rand(self.draws)

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x)

    activations = {f"relu_{k}": type(f"Relu{k}", (Twin,), {"draws": k}) for k in range(1, twins + 1)}
    os.environ["NNBENCH_PLUGINS"] = "none"  # the built-ins alone: an installed tracker would log every twin
    return nnbench.run(task=list(REAL_TASKS), arch="fnn", activation=activations, optimizer="adam", seeds=seeds,
                       epochs=epochs, store=folder / "twins.db", quiet=True)


def real_null(twins: int, seeds: int, epochs: int) -> dict[str, Any]:
    """False verdicts among twins: over disjoint pairs (each one report's axis), and all twins at once."""
    from nnbench.analysis import verdicts

    with tempfile.TemporaryDirectory() as folder:
        started = time.perf_counter()
        frame = train_twins(twins, seeds, epochs, Path(folder))
        seconds = time.perf_counter() - started
    names = sorted(set(frame["activation"]), key=lambda n: int(n.split("_")[1]))
    false_pairs, claims = 0, []
    for first, second in zip(names[0::2], names[1::2], strict=False):
        found = verdicts.findings(frame[frame["activation"].isin([first, second])])
        text = " ".join(v.text for v in found)
        if " better than " in text or " worse than " in text or " ranks above " in text:
            false_pairs += 1
            claims.append(text)
    together = verdicts.axis_comparisons(frame)
    table = together[0].table()
    across = together[0].across()
    false_all = int(table["decision"].isin(["first", "second"]).sum() + across["decision"].isin(
        ["first", "second"]).sum())
    return {"trials": len(frame), "seconds": seconds, "pairs": len(names) // 2, "false_pairs": false_pairs,
            "claims": claims, "comparisons": len(table) + int(across["p_value"].notna().sum()), "false_all": false_all,
            "equivalent_all": int(table["decision"].eq("equivalent").sum()), "levels": len(names)}


# -- output ----------------------------------------------------------------------------------------


def print_null(rows: list[dict[str, Any]], markdown: bool) -> None:
    print("\nNo true difference: family-wise false-verdict rate, % [95% CI], per noise shape and design")
    designs = list(dict.fromkeys((r["tasks"], r["levels"]) for r in rows if r["shape"] != "same mean, unequal shapes"))
    header = ["shape", "seeds", *[f"{t} task{'s' if t > 1 else ''}, {lv} levels" for t, lv in designs]]
    body = []
    for shape in dict.fromkeys(r["shape"] for r in rows):
        for seeds in SEEDS:
            cells = {(r["tasks"], r["levels"]): rate_text(r["false"], r["reps"]) for r in rows
                     if r["shape"] == shape and r["seeds"] == seeds}
            if cells:
                body.append([shape, str(seeds), *[cells.get(d, "") for d in designs]])
    _table(header, body, markdown)
    main = [r for r in rows if r["shape"] != "same mean, unequal shapes"]
    worst = max(main, key=lambda r: r["false"] / r["reps"])
    total = sum(r["false"] for r in main), sum(r["reps"] for r in main)
    by_seeds = "; ".join(f"{seeds} seeds: " + rate_text(sum(r["false"] for r in main if r["seeds"] == seeds),
                                                         sum(r["reps"] for r in main if r["seeds"] == seeds))
                         for seeds in SEEDS)
    above = [r for r in main if stats.binomtest(r["false"], r["reps"]).proportion_ci(0.95).low > ALPHA]
    print(f"\nevery exchangeable cell pooled, by seed count: {by_seeds}")
    tasks = f"{worst['tasks']} task{'s' if worst['tasks'] > 1 else ''}"
    print(f"all exchangeable cells: {rate_text(*total)}; worst cell: {worst['shape']}, {worst['seeds']} seeds, "
          f"{tasks}, {worst['levels']} levels: {rate_text(worst['false'], worst['reps'])}; cells whose "
          f"95% interval lies wholly above {100 * ALPHA:g}%: {len(above)}")


def print_power(rows: list[dict[str, Any]], markdown: bool) -> None:
    print(f"\nKnown differences (normal noise, seed-to-seed spread {SIGMA} per level, ROPE {ROPE}): share of the "
          "better level's comparisons called better / equivalent")
    designs = list(dict.fromkeys((r["tasks"], r["levels"]) for r in rows))
    for tasks, levels in designs:
        print(f"\n{tasks} task{'s' if tasks > 1 else ''}, {levels} levels"
              + ("" if levels == 2 else " (one better level; false-verdict rate among the others in the last column)"))
        header = ["seeds", *[f"+{e:g}" for e in EFFECTS], *([] if levels == 2 else ["others: false"])]
        body = []
        for seeds in SEEDS:
            part = [r for r in rows if (r["tasks"], r["levels"], r["seeds"]) == (tasks, levels, seeds)]
            cells = [f"{100 * r['better']:.0f}% / {100 * r['equivalent']:.0f}%" for r in part]
            extra = [] if levels == 2 else [f"{100 * max(r['false_others'] for r in part):.1f}%"]
            body.append([str(seeds), *cells, *extra])
        _table(header, body, markdown)
    wrong = max(r["worse"] for r in rows)
    print(f"\nthe better level called worse: at most {100 * wrong:.2f}% of its comparisons in any cell")


def print_coverage(rows: list[dict[str, Any]], markdown: bool) -> None:
    print("\nCoverage of the 95% intervals (one task, two levels): advantage (t) / probability of improvement (exact)")
    header = ["shape", *[f"{s} seeds" for s in SEEDS]]
    body = [[shape, *[f"{100 * r['advantage']:.1f}% / {100 * r['poi']:.1f}%" for r in rows if r["shape"] == shape]]
            for shape in SHAPES]
    _table(header, body, markdown)


def _table(header: list[str], body: list[list[str]], markdown: bool) -> None:
    if markdown:
        print("| " + " | ".join(header) + " |")
        print("|" + "|".join(" --- " for _ in header) + "|")
        for row in body:
            print("| " + " | ".join(row) + " |")
        return
    widths = [max(len(str(x)) for x in column) for column in zip(header, *body, strict=True)]
    for row in (header, *body):
        print("  ".join(str(cell).ljust(width) for cell, width in zip(row, widths, strict=True)))


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.split("\n\n")[0])
    parser.add_argument("--reps", type=int, default=2000, help="simulated axes per cell (default 2000)")
    parser.add_argument("--seed", type=int, default=20260105, help="random seed of the simulation")
    parser.add_argument("--real", action="store_true", help="also train twins for the end-to-end null check")
    parser.add_argument("--no-simulation", action="store_true", help="skip the simulation (with --real)")
    parser.add_argument("--twins", type=int, default=40, help="twins of relu to train (--real)")
    parser.add_argument("--real-seeds", type=int, default=10, help="seeds per twin and task (--real)")
    parser.add_argument("--epochs", type=int, default=10, help="epochs per trial (--real)")
    parser.add_argument("--markdown", action="store_true", help="print the tables as Markdown")
    args = parser.parse_args()
    rng = np.random.default_rng(args.seed)
    started = time.perf_counter()
    if not args.no_simulation:
        print_null(null_table(args.reps, rng), args.markdown)
        print_power(power_table(args.reps, rng), args.markdown)
        print_coverage(coverage_table(args.reps, rng), args.markdown)
        print(f"\nsimulation: {time.perf_counter() - started:.0f} s, {args.reps} simulated axes per cell, "
              f"seed {args.seed}")
    if args.real:
        real = real_null(args.twins, args.real_seeds, args.epochs)
        print(f"\nReal training: {real['levels']} twins of relu x {len(REAL_TASKS)} tasks x {args.real_seeds} seeds "
              f"x {args.epochs} epochs ({real['trials']} trials, {real['seconds']:.0f} s)")
        print(f"  disjoint pairs of twins (one axis each): {real['false_pairs']} of {real['pairs']} "
              "with a false verdict")
        for claim in real["claims"]:
            print(f"    {claim}")
        print(f"  all {real['levels']} twins as one axis: {real['false_all']} false verdicts in {real['comparisons']} "
              f"comparisons ({real['equivalent_all']} shown practically equivalent)")


if __name__ == "__main__":
    main()
