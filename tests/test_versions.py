"""Versions of a component's code: combined runs keep every axis's verdicts and compare the versions."""

from __future__ import annotations

import re
from collections.abc import Callable
from pathlib import Path
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nnbench
from nnbench.analysis import frames as analysis
from nnbench.analysis import verdicts, versions
from nnbench.contract.trial import Trial, TrialResult
from nnbench.reporting import build_report

OLD, NEW, GRU, MLP = "source:6a7520992127f635", "source:0b1c2d3e4f5a6b7c", "source:9999aaaa0000bbbb", "source:1234"
QUALITY = {("cnn", OLD): 0.90, ("cnn", NEW): 0.95, ("gru", GRU): 0.80, ("mlp", MLP): 0.70}


def coded(trial_result: Callable[..., Any], arch: str, code: str, seed: int, task: str, noise: float) -> TrialResult:
    """A hand-made result of ``arch`` whose trial records ``code`` as its architecture's code."""
    made = trial_result(task, seed=seed, metric=QUALITY[(arch, code)] + noise)
    trial = made.trial
    made.trial = Trial(trial.task, arch, trial.activation, trial.loss, trial.optimizer, trial.lr, trial.batch_size,
                       trial.epochs, trial.seed, trial.device, {**trial.params, "code": {"arch": code}})
    return made


@pytest.fixture
def combined(tmp_path: Path, trial_result: Callable[..., Any], store_writer: Callable[..., Any]) -> Path:
    """Run 1: cnn, gru and mlp; run 2, after cnn's code changed: the new cnn (gru and mlp stored already)."""
    rng = np.random.default_rng(3)
    noise = {(task, seed): rng.normal(0, 0.01) for task in ("spirals", "moons") for seed in range(6)}

    def results(archs: list[tuple[str, str]]) -> list[TrialResult]:
        return [coded(trial_result, arch, code, seed, task, noise[task, seed] + rng.normal(0, 0.003))
                for arch, code in archs for task in ("spirals", "moons") for seed in range(6)]

    path = tmp_path / "versions.db"
    store_writer(path, results([("cnn", OLD), ("gru", GRU), ("mlp", MLP)]), run_id="run-1").close()
    store_writer(path, results([("cnn", NEW)]), run_id="run-2").close()
    return path


def test_combined_runs_compare_the_architectures_and_the_changed_ones_versions(combined: Path) -> None:
    from nnbench.storage.store import ResultStore

    with ResultStore(combined, readonly=True) as store:
        trials = store.trials(["run-1", "run-2"])
    found = {v.key: v for v in verdicts.findings(trials)}
    assert set(found) == {"arch", "version-arch-cnn"}
    # The architectures: cnn at its latest version, against the others.
    arch = found["arch"].text
    assert arch.startswith("arch: ") and "cnn v2" in arch and "gru" in arch and "mlp" in arch
    assert "cnn v1" not in arch and "source:" not in arch
    # cnn's versions: v2 (0.95) credibly better than v1 (0.90) on both tasks, on 6 paired seeds.
    assert found["version-arch-cnn"].text.startswith("cnn versions: cnn v2 is better than cnn v1 on 2 of 2 tasks")
    assert "6 paired seeds" in found["version-arch-cnn"].text
    table = versions.version_table(analysis.with_variants(trials))
    assert table[["label", "short", "runs"]].values.tolist() == [["cnn v1", "source:6a75209", "run-1"],
                                                                  ["cnn v2", "source:0b1c2d3", "run-2"]]


def test_the_leaderboard_keeps_versions_apart_and_names_them_by_run(combined: Path) -> None:
    from nnbench.storage.store import ResultStore

    with ResultStore(combined, readonly=True) as store:
        trials = store.trials(["run-1", "run-2"])
        named = verdicts.findings(trials, version_names={"run-2": "edited", "6a75": "original"})
        html = build_report(store, ["run-1", "run-2"], version_names={"run-2": "edited"}).html
    board = analysis.leaderboard(trials)
    assert sorted(set(board["version"])) == ["", "cnn v1", "cnn v2"] and len(board) == 8  # 4 per task
    texts = " ".join(v.text for v in named)
    assert "cnn edited is better than cnn original" in texts
    # In the page: the names, with each version's code and runs on hover.
    assert "cnn edited" in html and "cnn v1" in html
    titles = set(re.findall(r'title="([^"]*source:[^"]*)"', html))
    assert f"{NEW} (runs: run-2)" in titles and f"{OLD} (runs: run-1)" in titles
    # The leaderboard's version column shows the name, with the code and runs on hover.
    assert re.search(rf'<td title="cnn edited: {NEW} \(runs: run-2\)">cnn edited</td>', html)
    overview = html[html.index('<section id="overview">'):]
    assert "<th scope=\"col\">version</th>" in overview and "cnn v1" in overview


def test_every_other_axis_holds_the_version_fixed(tmp_path: Path, trial_result: Callable[..., Any],
                                                 store_writer: Callable[..., Any]) -> None:
    # Two activations on cnn, whose code changed between the runs: each activation pair meets within a version.
    results = []
    for code, base in ((OLD, 0.9), (NEW, 0.8)):
        for activation, bonus in (("relu", 0.02), ("tanh", 0.0)):
            for seed in range(5):
                made = trial_result("spirals", activation, seed=seed, metric=base + bonus + seed / 1000)
                trial = made.trial
                made.trial = Trial(trial.task, "cnn", activation, trial.loss, trial.optimizer, trial.lr,
                                   trial.batch_size, trial.epochs, seed, trial.device,
                                   {**trial.params, "code": {"arch": code}})
                results.append(made)
    with store_writer(tmp_path / "held.db", results) as store:
        trials = store.trials()
    comparison = next(c for c in verdicts.axis_comparisons(trials) if c.axis == "activation")
    row = comparison.table().iloc[0]
    # 5 seeds, each over the two versions (strata): the versions' gap of 0.1 never enters the difference.
    assert (row["seeds"], row["strata"]) == (5, 2) and row["advantage"] == pytest.approx(0.02)


class Net(nn.Module):
    """A small network over the build arguments."""

    def __init__(self, input_spec: Any, outputs: int, activation: Any) -> None:
        super().__init__()
        features = int(torch.tensor(input_spec.shape).prod())
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(features, 4), activation(), nn.Linear(4, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class NetEdited(nn.Module):
    """The same network, edited: wider."""

    def __init__(self, input_spec: Any, outputs: int, activation: Any) -> None:
        super().__init__()
        features = int(torch.tensor(input_spec.shape).prod())
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(features, 16), activation(), nn.Linear(16, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class Linear(nn.Module):
    """A linear model on the activated inputs (it takes the activation, so it meets the others in blocks)."""

    def __init__(self, input_spec: Any, outputs: int, activation: Any) -> None:
        super().__init__()
        features = int(torch.tensor(input_spec.shape).prod())
        self.net = nn.Sequential(nn.Flatten(), activation(), nn.Linear(features, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def test_a_rerun_after_editing_an_architecture_keeps_its_verdicts(tmp_path: Path) -> None:
    store = tmp_path / "edit.db"
    common = {"task": "moons", "activation": "relu", "optimizer": "adam", "seeds": 3, "epochs": 2, "store": store,
              "quiet": True}
    first = nnbench.run(arch={"net": Net, "linear": Linear}, **common)
    second = nnbench.run(arch={"net": NetEdited, "linear": Linear}, **common)
    assert len(first) == len(second) == 6
    runs = sorted(set(first["run_id"]) | set(second["run_id"]))
    found = {v.key: v.text for v in nnbench.findings(*runs, store=store)}
    assert set(found) == {"arch", "version-arch-net"}
    assert "net v2" in found["arch"] and "linear" in found["arch"] and "No axis" not in found["arch"]
    assert found["version-arch-net"].startswith("net versions: ") and "3 paired seeds" in found["version-arch-net"]
