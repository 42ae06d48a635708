"""The verdicts' error rate, small and fast: the calibration benchmark's simulation in a few cells, the same
decisions from simulated arrays and from stored trials, and an end-to-end null on real training.

``benchmarks/bench_verdicts.py`` runs the full grid (docs/statistics.md has its tables)."""

from __future__ import annotations

import importlib.util
import itertools
import zlib
from pathlib import Path
from types import ModuleType
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from scipy import stats
from torch import nn

import nnbench
from nnbench.analysis import verdicts
from nnbench.analysis.pairwise import compare_axis, decide_scores
from nnbench.analysis.rope import Rope

ROOT = Path(__file__).resolve().parents[1]


def load_benchmark() -> ModuleType:
    spec = importlib.util.spec_from_file_location("bench_verdicts", ROOT / "benchmarks" / "bench_verdicts.py")
    assert spec is not None and spec.loader is not None
    module = importlib.util.module_from_spec(spec)
    spec.loader.exec_module(module)
    return module


bench = load_benchmark()
REPS = 400
"""Simulated axes per cell."""
BOUND = float(stats.binom.isf(0.001, REPS, 0.05)) / REPS
"""A cell whose true rate is 5% exceeds this (9%) by chance once in a thousand: above it, the rate is too high."""


@pytest.mark.parametrize(("shape", "seeds", "tasks", "levels"), [
    ("normal", 3, 1, 2), ("normal", 3, 3, 8), ("normal", 5, 10, 4), ("normal", 10, 6, 2),
    ("skewed (lognormal)", 3, 3, 4), ("heavy-tailed (t, 3 df)", 5, 1, 8), ("rounded to 1/50", 3, 1, 2),
    ("rounded to 1/50", 5, 3, 4), ("a bad seed in ten", 30, 10, 8), ("rounded to 1/400", 30, 3, 4),
])
def test_no_true_difference_gives_at_most_alpha_false_verdicts(shape: str, seeds: int, tasks: int,
                                                              levels: int) -> None:
    rng = np.random.default_rng(zlib.crc32(repr((shape, seeds, tasks, levels)).encode()))
    result = decide_scores(bench.simulate(rng, REPS, tasks, seeds, levels, shape), bench.ROPE)
    decided, _ = bench.false_verdicts(result)
    assert decided.mean() <= BOUND, (shape, seeds, tasks, levels, decided.mean())


def test_known_differences_are_found_and_never_reversed() -> None:
    rng = np.random.default_rng(7)
    for seeds, effect, least in ((5, 0.04, 0.95), (10, 0.02, 0.9), (30, 0.01, 0.85)):
        result = decide_scores(bench.simulate(rng, REPS, 1, seeds, 2, "normal", effect), bench.ROPE)
        decisions = result["decisions"][..., 0, 0]
        assert np.mean(decisions == "first") >= least and np.mean(decisions == "second") == 0
    # A difference as large as the ROPE is never shown equivalent more often than alpha.
    result = decide_scores(bench.simulate(rng, REPS, 1, 30, 2, "normal", bench.ROPE), bench.ROPE)
    assert np.mean(result["decisions"] == "equivalent") <= BOUND


def test_the_intervals_cover_at_three_seeds() -> None:
    rng = np.random.default_rng(9)
    for shape in ("normal", "skewed (lognormal)", "rounded to 1/50"):
        result = decide_scores(bench.simulate(rng, REPS, 1, 3, 2, shape, 0.01), bench.ROPE)
        covered = np.mean((result["low"] <= 0.01) & (result["high"] >= 0.01))
        null = decide_scores(bench.simulate(rng, REPS, 1, 3, 2, shape), bench.ROPE)
        poi = np.mean((null["poi_low"] <= 0.5) & (null["poi_high"] >= 0.5))
        assert covered >= 1 - BOUND and poi >= 0.95, (shape, covered, poi)


def frame_of(scores: np.ndarray) -> pd.DataFrame:
    """Stored-trial rows of one simulated axis: ``scores[task, seed, level]`` as accuracies."""
    tasks, seeds, levels = scores.shape
    return pd.DataFrame([{"task": f"t{t}", "arch": "fnn", "activation": f"a{level}", "loss": "cross_entropy",
                          "optimizer": "adam", "lr": 1e-3, "seed": s, "status": "ok", "metric_name": "accuracy",
                          "metric": scores[t, s, level], "trial_id": f"{t}-{s}-{level}"}
                         for t, s, level in itertools.product(range(tasks), range(seeds), range(levels))])


def test_the_simulation_decides_as_the_report_does() -> None:
    rng = np.random.default_rng(12)
    for shape, tasks, seeds, levels, effect in (("normal", 7, 4, 3, 0.02), ("rounded to 1/400", 2, 6, 4, 0.01),
                                                 ("skewed (lognormal)", 1, 3, 2, 0.03)):
        scores = bench.simulate(rng, 1, tasks, seeds, levels, shape, effect)[0]
        array = decide_scores(scores, bench.ROPE)
        comparison = compare_axis(frame_of(scores), "activation", Rope())
        table = comparison.table().set_index(["first", "second", "task"])
        across = comparison.across().set_index(["first", "second"])
        for (i, j), decisions, against in zip(array["pairs"], array["decisions"], array["across"], strict=True):
            first, second = f"a{i}", f"a{j}"
            flipped = (first, second, "t0") not in table.index  # the report puts the better-ranked level first
            key = (second, first) if flipped else (first, second)
            swap = {"first": "second", "second": "first"} if flipped else {}
            expected = [swap.get(d, d) for d in decisions]
            assert [table.loc[(*key, f"t{t}"), "decision"] for t in range(tasks)] == expected
            if tasks >= 6:
                assert across.loc[key, "decision"] == swap.get(str(against), str(against))


class Twin(nn.Module):
    """relu, after drawing ``draws`` random numbers when built: its network starts from other weights."""

    draws = 0

    def __init__(self) -> None:
        super().__init__()
        torch.rand(self.draws)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x)


class TwinOne(Twin):
    draws = 1


class TwinTwo(Twin):
    draws = 2


def test_twins_that_differ_only_in_their_random_draws_are_never_better_or_worse(tmp_path: Path) -> None:
    twins: dict[str, Any] = {"relu_a": TwinOne, "relu_b": TwinTwo}
    frame = nnbench.run(task=["moons", "circles", "xor"], arch="fnn", activation=twins, optimizer="adam", seeds=4,
                        epochs=4, store=tmp_path / "twins.db", quiet=True)
    assert set(frame["status"]) == {"ok"}
    # The twins really differ: their metrics are not the same numbers.
    wide = frame.pivot_table(index=["task", "seed"], columns="activation", values="metric")
    assert (wide["relu_a"] != wide["relu_b"]).any()
    (comparison,) = verdicts.axis_comparisons(frame)
    assert set(comparison.table()["decision"]) <= {"undecided", "equivalent"}
    assert "better than" not in verdicts.verdict(comparison).text
    assert comparison.seed_counts == [4]
