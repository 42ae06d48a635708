"""Run against run, end to end: stored baselines, a candidate run that adds an activation, `nnbench compare`,
its exit codes and JSON, the findings `nnbench run` prints, and the same from Python."""

from __future__ import annotations

import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
from click.testing import CliRunner
from torch import nn

import nnbench
from nnbench import hookimpl
from nnbench.analysis.comparison import compare_trials
from nnbench.analysis.rope import Rope
from nnbench.cli import cli
from nnbench.storage.store import ResultStore

GRID = ["--task", "moons", "--arch", "fnn", "--optimizer", "adam", "--seeds", "4", "--epochs", "3", "--no-report"]


class Flat(nn.Module):
    """An activation that throws its input away: a component made worse than relu by a wide margin."""

    def forward(self, x: Any) -> Any:
        return x * 0.0


class Candidates:
    """relu under a second name (the same function), and one that cannot learn."""

    @hookimpl
    def register_activations(self, register: Any) -> None:
        register(nnbench.Activation("relu_twin", nn.ReLU, "relu, registered again under another name"))
        register(nnbench.Activation("flat", Flat, "x * 0: the network sees nothing"))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


@pytest.fixture
def runs(nnbench_plugin: Any, tmp_path: Path) -> tuple[Path, str, str]:
    """A baseline run of relu and a candidate run of relu, relu_twin and flat (relu reused)."""
    nnbench_plugin(Candidates(), name="candidates")
    store = tmp_path / "runs.db"
    first = invoke("run", *GRID, "--activation", "relu", "--store", str(store))
    assert first.exit_code == 0, first.output
    second = invoke("run", *GRID, "--activation", "relu,relu_twin,flat", "--store", str(store))
    assert second.exit_code == 0, second.output
    assert "findings:" in second.output and "activation: " in second.output  # printed at the end of the run
    with ResultStore(store, readonly=True) as results:
        baseline, candidate = results.run_ids()
    return store, baseline, candidate


def test_the_same_function_under_another_name_is_not_worse(runs: tuple[Path, str, str]) -> None:
    store, baseline, candidate = runs
    result = invoke("compare", baseline, candidate, "--store", str(store), "--candidate", "activation=relu_twin",
                    "--fail-if-worse")
    assert result.exit_code == 0, result.output
    assert "verdict: relu_twin and relu are practically equivalent on moons" in result.output
    assert "better" not in result.output.split("verdict:")[1]


def test_a_credibly_worse_candidate_fails_with_fail_if_worse(runs: tuple[Path, str, str]) -> None:
    store, baseline, candidate = runs
    args = ["compare", baseline, candidate, "--store", str(store), "--candidate", "activation=flat"]
    shown = invoke(*args)
    assert shown.exit_code == 0 and "relu is better than flat on moons" in shown.output
    failed = invoke(*args, "--fail-if-worse")
    assert failed.exit_code == 1
    assert "is credibly worse than the baseline" in failed.output and "relu on moons (Holm-adjusted p" in failed.output
    assert "activation=flat" in failed.output  # the candidate, named
    data = json.loads(invoke(*args, "--json").output)
    assert data["worse"] is True and data["axes"] == ["activation"] and data["alpha"] == 0.05
    assert data["candidate"].endswith("activation=flat") and data["baseline"] == baseline
    assert data["worse_on"] == [{"task": "moons", "candidate": "flat", "baseline": "relu"}]
    (row,) = data["comparisons"]
    assert (row["candidate"], row["baseline"], row["task"], row["seeds"]) == ("flat", "relu", "moons", 4)
    assert row["advantage"] < 0 and row["p_adjusted"] < 0.05 and row["decision"] == "baseline better"


def test_two_runs_compare_the_candidates_new_trials(runs: tuple[Path, str, str]) -> None:
    store, baseline, candidate = runs
    result = invoke("compare", baseline, candidate, "--store", str(store))
    assert result.exit_code == 0, result.output
    assert "compared: activation" in result.output
    assert "relu_twin vs relu" in result.output and "flat vs relu" in result.output
    comparison = nnbench.compare(baseline, candidate, store=store)  # the same from Python
    assert comparison.worse and set(comparison.table()["candidate"]) == {"relu_twin", "flat"}
    verdicts = nnbench.findings(candidate, store=store)
    assert [v.axis for v in verdicts] == ["activation"] and "flat" in verdicts[0].text


def test_compare_explains_bad_input(runs: tuple[Path, str, str]) -> None:
    store, baseline, candidate = runs
    cases = {
        ("compare", baseline, "--store", str(store)): "say what the candidate is",
        ("compare", baseline, candidate, "--store", str(store), "--candidate", "activation"): "is not AXIS=VALUE",
        ("compare", baseline, candidate, "--store", str(store), "--candidate", "colour=red"): "'colour' is not an axis",
        ("compare", baseline, candidate, "--store", str(store), "--rope", "wide"): "--rope 'wide' is not a half-width",
        ("compare", baseline, baseline, "--store", str(store)): "has no trials of its own",
    }
    for args, message in cases.items():
        result = invoke(*args)
        assert result.exit_code == 1 and message in result.output, (args, result.output)


def test_rope_widens_equivalence_in_the_report(runs: tuple[Path, str, str], tmp_path: Path) -> None:
    from report_outline import outline

    store, _, candidate = runs
    output = tmp_path / "wide.html"
    result = invoke("report", candidate, "--store", str(store), "--rope", "accuracy=0.9", "-o", str(output))
    assert result.exit_code == 0, result.output
    finding, *_ = outline(output.read_text()).findings
    assert "practically equivalent on moons (ROPE ±0.9 accuracy" in finding and "better" not in finding
    bad = invoke("run", *GRID, "--activation", "relu", "--store", str(store), "--rope", "accuracy=-1")
    assert bad.exit_code == 1 and "--rope 'accuracy=-1' is not a half-width" in bad.output


# -- the CI gate on several tasks ------------------------------------------------------------------


def gate_store(path: Path, trial_result: Any, store_writer: Any, shifts: dict[str, float]) -> Path:
    """One run of relu and a candidate on every task of ``shifts`` (the candidate's true advantage there),
    6 seeds each with seed-to-seed noise of 0.01 that both share half of."""
    rng = np.random.default_rng(11)
    results = []
    for task, shift in shifts.items():
        for seed in range(6):
            common = rng.normal(0.85, 0.01)
            results.append(trial_result(task, "relu", seed=seed, metric=common + rng.normal(0, 0.004)))
            results.append(trial_result(task, "mish", seed=seed, metric=common + shift + rng.normal(0, 0.004)))
    store_writer(path, results).close()
    return path


@pytest.mark.parametrize(("shifts", "worse"), [
    ({"spirals": 0.02, "moons": 0.0, "circles": -0.03}, True),  # better on one, worse on another: it fails
    ({"spirals": 0.02, "moons": 0.0, "circles": 0.0}, False),
    ({"spirals": -0.03, "moons": -0.03, "circles": -0.03}, True),
], ids=["worse-on-one-task", "never-worse", "worse-on-every-task"])
def test_fail_if_worse_fires_when_the_candidate_is_worse_on_any_task(
        tmp_path: Path, trial_result: Any, store_writer: Any, shifts: dict[str, float], worse: bool) -> None:
    store = gate_store(tmp_path / "gate.db", trial_result, store_writer, shifts)
    args = ["compare", "run-1", "--store", str(store), "--candidate", "activation=mish"]
    result = invoke(*args, "--fail-if-worse")
    assert result.exit_code == (1 if worse else 0), result.output
    data = json.loads(invoke(*args, "--json").output)
    worse_on = {row["task"] for row in data["worse_on"]}
    assert worse_on == {task for task, shift in shifts.items() if shift < 0}
    assert data["error_control"].startswith("family-wise error rate 0.05 (Holm) over 3 comparisons")
    decisions = {row["task"]: row["decision"] for row in data["comparisons"]}
    assert all(decisions[task] == "baseline better" for task in worse_on)
    if worse:
        assert "circles (Holm-adjusted p" in result.output


def test_the_gate_holds_its_false_alarm_rate_over_tasks() -> None:
    """Simulated candidates no different from their baseline on 1 to 10 tasks: the gate fires on no more
    than 5% of them, at 3 seeds as at 30."""
    rng = np.random.default_rng(21)
    for tasks, seeds in ((1, 3), (4, 5), (10, 3)):
        fired = 0
        for _ in range(60):
            rows = [{"task": f"t{t}", "arch": "fnn", "activation": level, "loss": "cross_entropy", "optimizer": "adam",
                     "lr": 1e-3, "seed": s, "status": "ok", "metric_name": "accuracy",
                     "metric": base + rng.normal(0, 0.01), "trial_id": f"{t}-{s}-{level}"}
                    for t in range(tasks) for s in range(seeds) for base in [rng.normal(0.8, 0.02)]
                    for level in ("relu", "mish")]
            frame = pd.DataFrame(rows)
            result = compare_trials(frame[frame["activation"] == "relu"], frame[frame["activation"] == "mish"],
                                    Rope())
            fired += result.worse
        assert fired <= 6, (tasks, seeds, fired)  # 60 candidates: at most 10% (5% expected) by chance
