"""End-to-end proofs of the headline promises: chosen on validation, measured on test; early
stopping keeps its best epoch; clipping and schedules do what they say; every field of a trial is
part of its id; a non-finite held-out loss is divergence; the report prints the analysis's numbers;
the seeds of one configuration share k times the time limit."""

from __future__ import annotations

import dataclasses
import math
from functools import cache
from html.parser import HTMLParser
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

import nnbench
from nnbench import Architecture, Optimizer, Task, TaskData, hookimpl
from nnbench.analysis import frames as analysis
from nnbench.contract.trial import TRIAL_AXES, Trial
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.reporting import build_report
from nnbench.reporting.sections import interval, metric, p_value
from nnbench.training.trainer import train_trial

pytestmark = pytest.mark.usefixtures("one_thread")

# -- a task whose test split disagrees with its validation split, by construction --------------------


@cache
def _anti_data(kind: str) -> TaskData:
    rng = np.random.default_rng(7)
    w = rng.normal(size=(4, 1))
    parts = []
    for n, sign in ((192, 1.0), (96, 1.0), (96, -1.0)):  # train, validation agree; test is the opposite
        x = rng.normal(size=(n, 4))
        signal = sign * (x @ w)
        y = torch.as_tensor(signal, dtype=torch.float32) if kind == "regression" else \
            torch.as_tensor((signal[:, 0] > 0).astype(np.int64))
        parts += [torch.as_tensor(x, dtype=torch.float32), y]
    return TaskData(*parts)


class AntiTasks:
    """``anti_reg`` and ``anti_bin``: what fits validation best does worst on test."""

    @hookimpl
    def register_tasks(self, register: Any) -> None:
        register(Task("anti_reg", "regression", "vector", (4,), lambda: _anti_data("regression"), output_dim=1))
        register(Task("anti_bin", "binary", "vector", (4,), lambda: _anti_data("binary"), num_classes=2))


@pytest.mark.parametrize("task", ["anti_reg", "anti_bin"])
def test_tuning_selects_on_validation_never_on_test(nnbench_plugin: Any, tmp_path: Any, task: str) -> None:
    nnbench_plugin(AntiTasks())
    frame = nnbench.run(task=task, arch="fnn", activation="relu", optimizer="sgd", tune="lr", budget=4, seeds=2,
                        epochs=4, store=tmp_path / "t.db")
    lower = task == "anti_reg"  # RMSE: lower is better
    search = frame[(frame["protocol"] == "tuning") & (frame["status"] == "ok")]
    val_best = search.sort_values("val_metric", ascending=lower).iloc[0]
    test_best = search.sort_values("metric", ascending=lower).iloc[0]
    assert val_best["lr"] != test_best["lr"], "the construction must make validation and test disagree"
    tuned = frame[frame["protocol"] == "tuned"]
    assert len(tuned) == 2 and set(tuned["lr"]) == {val_best["lr"]}
    assert set(tuned["seed"]) == {0, 1}


# -- what the trainer does with the optimizer: a recording SGD --------------------------------------

STEPS: list[tuple[float, float]] = []  # (gradient norm, learning rate) at every optimizer step


class RecordingSGD(torch.optim.SGD):
    def step(self, closure: Any = None) -> Any:  # type: ignore[override]
        grads = [p.grad for group in self.param_groups for p in group["params"] if p.grad is not None]
        norm = torch.linalg.vector_norm(torch.stack([torch.linalg.vector_norm(g) for g in grads]))
        STEPS.append((float(norm), float(self.param_groups[0]["lr"])))
        return super().step(closure)


class Recording:
    @hookimpl
    def register_optimizers(self, register: Any) -> None:
        register(Optimizer("recording_sgd", RecordingSGD, 0.2, "SGD that records every step"))


@pytest.fixture(scope="module")
def recording() -> Any:
    return collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[Recording()]))


def one_trial(catalogue: Any, **axes: Any) -> Trial:
    base = {"task": "moons", "arch": "fnn", "activation": "relu", "optimizer": "recording_sgd", "seeds": 1,
            "epochs": 2, "batch_size": 32}
    return expand_grid(build_grid(None, **{**base, **axes}), catalogue)[0][0]


def test_clipping_bounds_every_gradient_norm_the_optimizer_sees(recording: Any) -> None:
    STEPS.clear()
    assert train_trial(one_trial(recording), recording).status == "ok"
    unclipped = max(norm for norm, _ in STEPS)
    limit = unclipped / 10
    STEPS.clear()
    assert train_trial(one_trial(recording, clip=str(limit)), recording).status == "ok"
    assert max(norm for norm, _ in STEPS) <= limit * (1 + 1e-5)
    assert unclipped > 2 * limit  # without clipping the norms do exceed the limit


def _expected_rates(schedule: str, total: int, base: float) -> list[float]:
    """Each built-in schedule's documented rate at optimizer step k (0-based), stated independently."""
    ramp = max(1, int(total * 0.1))
    every = max(1, total // 3)
    rates = []
    for k in range(total):
        if schedule == "constant":
            factor = 1.0
        elif schedule == "step":
            factor = 0.1 ** min(2, k // every)
        elif schedule == "cosine":
            factor = 0.5 * (1 + math.cos(math.pi * k / total))
        else:
            factor = (k + 1) / ramp if k < ramp else 0.5 * (1 + math.cos(math.pi * min(1.0, (k - ramp) /
                                                                                   (total - ramp))))
        rates.append(base * factor)
    return rates


@pytest.mark.parametrize("schedule", ["constant", "step", "cosine", "warmup"])
def test_each_schedule_gives_its_learning_rate_trace(recording: Any, schedule: str) -> None:
    trial = one_trial(recording, schedule=schedule, epochs=3)
    STEPS.clear()
    assert train_trial(trial, recording).status == "ok"
    data = recording.tasks.get("moons").load()
    total = 3 * math.ceil(len(data.x_train) / 32)
    assert len(STEPS) == total
    assert [rate for _, rate in STEPS] == pytest.approx(_expected_rates(schedule, total, 0.2), rel=1e-6, abs=1e-12)


def test_early_stopping_keeps_the_best_validation_epoch(catalogue: Any) -> None:
    trial = expand_grid(build_grid(None, task="moons", arch="fnn", activation="relu", optimizer="adam", lr="0.01",
                                   seeds=1, epochs=60, patience="3"), catalogue)[0][0]
    result = train_trial(trial, catalogue)
    assert result.status == "ok" and len(result.curve) < 60, "the plateau should stop training early"
    values = [record.val_metric for record in result.curve]
    best = values.index(max(values)) + 1
    assert result.best_epoch == best == len(result.curve) - 3  # patience epochs without a better one
    chosen = result.curve[best - 1]
    assert (result.metric, result.val_metric, result.test_loss) == (chosen.metric, chosen.val_metric,
                                                                   chosen.test_loss)


# -- identity -------------------------------------------------------------------------------------

BASE = Trial("moons", "fnn", "relu", "cross_entropy", "adam", 1e-3, 32, 5, 0, "cpu", {"arch": {}}, "constant",
             None, None)
CHANGES = {"task": "circles", "arch": "cnn", "activation": "tanh", "loss": "mse", "optimizer": "sgd", "lr": 2e-3,
           "batch_size": 16, "epochs": 6, "seed": 1, "device": "cuda:0", "schedule": "cosine", "clip": 1.0,
           "patience": 3, "params": {"arch": {"hidden": [4]}}, "components": {"initializer": "xavier_uniform"},
           "validation": "none", "shuffle": "false"}


def test_every_field_of_a_trial_changes_its_id() -> None:
    fields = {f.name for f in dataclasses.fields(Trial)}
    assert set(CHANGES) == fields and {ax.name for ax in TRIAL_AXES} <= fields
    ids = {name: dataclasses.replace(BASE, **{name: value}).trial_id for name, value in CHANGES.items()}
    assert BASE.trial_id not in ids.values()
    assert len(set(ids.values())) == len(ids)
    assert Trial.from_config(BASE.config()).trial_id == BASE.trial_id
    tuned = dataclasses.replace(BASE, params={"arch": {}, "tuning": {"role": "tune", "index": 0}})
    assert tuned.trial_id != BASE.trial_id


# -- divergence -----------------------------------------------------------------------------------


class InfiniteOnHeldOut(nn.Module):
    """Trains normally; its outputs on held-out data (in eval mode) are infinite."""

    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.layer = nn.Linear(inputs, outputs)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        out = self.layer(x)
        return out if self.training else out + math.inf


class HeldOutInfinity:
    @hookimpl
    def register_architectures(self, register: Any) -> None:
        register(Architecture("heldout_inf", lambda spec, outputs, activation: InfiniteOnHeldOut(spec.shape[0],
                                                                                                  outputs),
                              ("vector",), "infinite outputs on held-out data"))


def test_a_non_finite_held_out_loss_is_divergence() -> None:
    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[HeldOutInfinity()]))
    trial = expand_grid(build_grid(None, task="toy", arch="heldout_inf", activation="relu", optimizer="adam",
                                   seeds=1, epochs=4), catalogue)[0][0]
    result = train_trial(trial, catalogue)
    assert result.status == "diverged" and len(result.curve) == 1
    assert math.isfinite(result.curve[0].train_loss) and not math.isfinite(result.curve[0].test_loss)
    assert "non-finite loss at epoch 1" in result.error


# -- the time limit of seeds trained together -------------------------------------------------------


class _Process:
    """A worker process that is alive until killed."""

    def __init__(self) -> None:
        self.alive = True

    def is_alive(self) -> bool:
        return self.alive

    def kill(self) -> None:
        self.alive = False

    def join(self, timeout: float | None = None) -> None:
        pass


class _Conn:
    closed = False

    def poll(self) -> bool:
        return False

    def close(self) -> None:
        self.closed = True


class _Sink:
    def __init__(self) -> None:
        self.results: list[Any] = []

    def result(self, result: Any) -> None:
        self.results.append(result)

    def log(self, message: str) -> None:
        pass


@pytest.mark.parametrize(("covers", "past", "stopped"), [(3, -0.1, False), (3, 0.1, True), (1, 0.1, True)])
def test_the_seeds_of_one_stack_share_k_times_the_time_limit(covers: int, past: float, stopped: bool) -> None:
    import time

    from nnbench.contract.executor import TIMEOUT_GRACE, WorkItem, WorkPlan
    from nnbench.execution.local import LocalExecutor, _Worker
    from nnbench.execution.planner import WorkQueue

    unit = tuple(dataclasses.replace(BASE, seed=seed) for seed in range(covers))
    item = WorkItem(unit, covers > 1, 1.0)
    plan = WorkPlan("processes", WorkQueue([], None), lambda item: [], workers=1, timeout=1.0)  # type: ignore
    deadline = plan.deadline(item)
    assert deadline == pytest.approx(covers * 1.0 * TIMEOUT_GRACE + 2.0)  # k times the limit, with the grace
    executor = LocalExecutor()
    sink = _Sink()
    executor.begin(plan, sink)  # type: ignore[arg-type]
    worker = _Worker("cpu", _Process(), _Conn(), ready=True, item=item,  # type: ignore[arg-type]
                     remaining={t.trial_id: t for t in unit}, clock=time.monotonic() - deadline - past)
    assert executor._ended(worker) is stopped
    assert [r.status for r in sink.results] == (["timeout"] * covers if stopped else [])


@pytest.mark.parametrize("covers", [1, 3])
def test_the_trainer_stops_a_stack_at_k_times_the_time_limit(covers: int, catalogue: Any) -> None:
    import time

    from nnbench.training.ensemble import train_item

    unit = [dataclasses.replace(BASE, task="digits", epochs=10_000, seed=seed) for seed in range(covers)]
    start = time.perf_counter()
    results = train_item(unit, catalogue, stacked=covers > 1, timeout=0.4)
    took = time.perf_counter() - start
    assert [r.status for r in results] == ["timeout"] * covers
    assert 0.4 * covers <= took < 0.4 * covers + 15  # the stack had k times the limit, one by one each its own
    if covers > 1:
        assert f"({covers} trials stacked: {0.4 * covers:g} s)" in results[0].error


# -- the report prints the analysis's numbers -------------------------------------------------------


class Tables(HTMLParser):
    """The cells of every table in the section with id ``section``."""

    def __init__(self, section: str) -> None:
        super().__init__()
        self.section, self.inside, self.depth = section, False, 0
        self.tables: list[list[list[str]]] = []
        self.cell: list[str] | None = None

    def handle_starttag(self, tag: str, attrs: list[tuple[str, str | None]]) -> None:
        if tag == "section":
            self.inside = dict(attrs).get("id") == self.section
        if not self.inside:
            return
        if tag == "table":
            self.tables.append([])
        elif tag == "tr":
            self.tables[-1].append([])
        elif tag in ("td", "th"):
            self.cell = []

    def handle_endtag(self, tag: str) -> None:
        if self.inside and tag in ("td", "th") and self.cell is not None:
            self.tables[-1][-1].append("".join(self.cell).strip())
            self.cell = None

    def handle_data(self, data: str) -> None:
        if self.cell is not None:
            self.cell.append(data)


def section_tables(html: str, section: str) -> list[list[dict[str, str]]]:
    parser = Tables(section)
    parser.feed(html)
    return [[dict(zip(rows[0], row, strict=True)) for row in rows[1:]] for rows in parser.tables if rows]


def test_the_report_prints_the_analysis_numbers(tmp_path: Any, store_writer: Any, trial_result: Any) -> None:
    from nnbench.analysis import verdicts

    rng = np.random.default_rng(3)
    quality = {"relu": 0.8, "tanh": 0.7, "gelu": 0.75, "adam": 0.05, "sgd": 0.0}
    tasks = ("spirals", "moons", "circles", "xor", "iris", "wine")  # six: enough for the tests over tasks
    results = [trial_result(task=task, activation=activation, optimizer=optimizer, seed=seed, lr=0.01,
                            metric=float(np.clip(quality[activation] + quality[optimizer] + rng.normal(0, 0.05), 0, 1)))
               for task in tasks for activation in ("relu", "tanh", "gelu")
               for optimizer in ("adam", "sgd") for seed in range(6)]
    with store_writer(tmp_path / "r.db", results) as store:
        html = build_report(store, ["run-1"]).html
        trials = store.trials(["run-1"])
    evidence = {c.axis: c for c in verdicts.axis_comparisons(trials)}
    assert {"activation", "optimizer"} <= set(evidence)
    # The statistics across tasks: each pair's p and Holm-adjusted p, as the evidence has them.
    printed = {(row["first"], row["second"]): row for table in section_tables(html, "statistics")
               for row in table if "Holm-adjusted p" in row}
    across = [row for c in evidence.values() for _, row in c.across().iterrows()]
    assert across and len(printed) == len(across)
    for row in across:
        shown = printed[(row["first"], row["second"])]
        assert shown["p"] == p_value(row["p_value"]) and shown["Holm-adjusted p"] == p_value(row["p_adjusted"])
        assert shown["signed-rank sum"] == f"{row['statistic']:.4g}"
    assert any(row["p_adjusted"] != row["p_value"] for row in across)  # the columns cannot be mixed up
    # The comparisons: each pair and task's adjusted p and equivalence p.
    compared = {(row["first"], row["second"], row["task"]): row for table in section_tables(html, "comparisons")
                for row in table}
    for comparison in evidence.values():
        for _, row in comparison.table().iterrows():
            shown = compared[(row["first"], row["second"], row["task"])]
            assert shown["p (Holm)"] == p_value(row["p_adjusted"])
            assert shown["equivalence p (Holm)"] == p_value(row["p_equivalence_adjusted"])
    board = analysis.leaderboard(trials)
    printed = [row for table in section_tables(html, "leaderboard") for row in table]
    assert len(printed) == len(board)
    for row, (_, expected) in zip(printed, board.iterrows(), strict=True):
        assert row["mean accuracy"] == metric(expected["mean"])
        assert row["std"] == metric(expected["std"])
        assert row["95% CI"] == interval(expected["ci_low"], expected["ci_high"])
