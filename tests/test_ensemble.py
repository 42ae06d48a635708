"""Seeds trained together: every seed's curve equals training it alone; fallbacks say why."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn

from nnbench import Activation, Architecture, hookimpl
from nnbench.builtin.networks import build_fnn
from nnbench.contract.trial import Trial, TrialResult
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.training.ensemble import group_by_seed, train_group
from nnbench.training.trainer import train_trial

STACKED_OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax",
                      "nadam", "radam"]


pytestmark = pytest.mark.usefixtures("one_thread")


def seeds_of(catalogue: Any, seeds: int = 3, sets: tuple[str, ...] = ("arch.fnn.hidden=[16]",),
             **axes: Any) -> list[Trial]:
    base = {"task": "moons", "arch": "fnn", "activation": "relu", "loss": "default", "optimizer": "adam",
            "lr": "default", "seeds": seeds, "epochs": 3, "batch_size": 32}
    trials, _ = expand_grid(build_grid(None, list(sets), **{**base, **axes}), catalogue)
    return trials


def assert_same_curves(together: list[TrialResult], alone: list[TrialResult], rel: float = 2e-5) -> None:
    """Per seed and per epoch: equal status and epochs, losses equal to float tolerance, and
    metrics equal up to a prediction that rounding may flip."""
    assert len(together) == len(alone)
    for mine, theirs in zip(together, alone, strict=True):
        assert mine.trial == theirs.trial
        assert (mine.status, len(mine.curve)) == (theirs.status, len(theirs.curve)), (mine.error, theirs.error)
        assert mine.n_params == theirs.n_params
        for a, b in zip(mine.curve, theirs.curve, strict=True):
            assert a.epoch == b.epoch
            for name in ("train_loss", "test_loss", "val_loss", "rmse", "r2"):
                x, y = getattr(a, name), getattr(b, name)
                if y is None or math.isnan(y):
                    assert x is None or math.isnan(x), (name, a, b)
                else:
                    assert math.isclose(x, y, rel_tol=rel, abs_tol=1e-7), (mine.trial.seed, name, a, b)
            for name in ("metric", "val_metric", "accuracy"):
                x, y = getattr(a, name), getattr(b, name)
                if y is None or math.isnan(y):
                    assert x is None or math.isnan(x), (name, a, b)
                else:
                    assert abs(x - y) <= 0.005, (mine.trial.seed, name, a, b)  # one prediction of 200
        assert (mine.metric, mine.val_metric) == (mine.curve[-1].metric, mine.curve[-1].val_metric)


def train_alone(trials: list[Trial], catalogue: Any) -> list[TrialResult]:
    return [train_trial(t, catalogue) for t in trials]


def test_every_stacking_optimizer_is_tested(catalogue: Any) -> None:
    claims = [o.name for o in (e.spec for e in catalogue.optimizers.entries()) if o.vectorizable]
    assert sorted(claims) == sorted(STACKED_OPTIMIZERS)


@pytest.mark.parametrize("optimizer", STACKED_OPTIMIZERS)
def test_each_seed_trained_together_equals_training_it_alone(catalogue: Any, optimizer: str) -> None:
    trials = seeds_of(catalogue, optimizer=optimizer)
    messages: list[str] = []
    together = train_group(trials, catalogue, log=messages.append)
    assert messages == []  # stacked, not a silent fallback
    assert_same_curves(together, train_alone(trials, catalogue))
    assert len({r.curve[-1].train_loss for r in together}) == 3  # three different seeds


@pytest.mark.parametrize(("task", "loss", "activation"), [
    ("toy", "mse", "tanh"), ("toy", "huber", "gelu"), ("moons", "bce", "silu"), ("moons", "bce_with_logits", "elu"),
    ("iris", "nll", "prelu"), ("iris", "multi_margin", "leaky_relu"), ("iris", "label_smoothing", "mish"),
    ("moons", "l1", "selu"),
])
def test_losses_heads_and_activations_stack_exactly(catalogue: Any, task: str, loss: str, activation: str) -> None:
    trials = seeds_of(catalogue, seeds=2, task=task, loss=loss, activation=activation, epochs=2, batch_size=16)
    messages: list[str] = []
    together = train_group(trials, catalogue, log=messages.append)
    assert messages == []
    assert_same_curves(together, train_alone(trials, catalogue))


def test_time_is_shared_among_the_seeds_trained_together(catalogue: Any) -> None:
    seen: list[tuple[int, int]] = []
    results = train_group(seeds_of(catalogue), catalogue, on_epoch=lambda t, r: seen.append((t.seed, r.epoch)))
    assert sorted(seen) == [(s, e) for s in range(3) for e in range(1, 4)]
    for epoch in range(3):
        times = {r.curve[epoch].epoch_time for r in results}
        assert len(times) == 1 and times.pop() > 0  # each seed's share of the same epoch
    n_train = 640
    for result in results:
        assert math.isclose(result.train_time, sum(e.epoch_time for e in result.curve))
        assert math.isclose(result.throughput, n_train * 3 / result.train_time)
        assert result.status == "ok" and result.error is None


@pytest.mark.parametrize(("axes", "reason"), [
    ({"optimizer": "lbfgs"}, "optimizer 'lbfgs' re-evaluates the loss"),
    ({"task": "digits", "arch": "cnn", "sets": ()}, "architecture 'cnn' (plugin 'nnbench.builtin.architectures') "
                                                    "does not declare vectorizable=True"),
    ({"sets": ("arch.fnn.hidden=[16]", "arch.fnn.dropout=0.2")}, "dropout"),
])
def test_groups_that_cannot_stack_exactly_train_one_by_one_and_say_why(catalogue: Any, axes: dict[str, Any],
                                                                       reason: str) -> None:
    trials = seeds_of(catalogue, seeds=2, epochs=1, **axes)
    messages: list[str] = []
    together = train_group(trials, catalogue, log=messages.append)
    assert len(messages) == 1 and reason in messages[0] and "one-by-one" in messages[0]
    alone = train_alone(trials, catalogue)
    for mine, theirs in zip(together, alone, strict=True):
        assert [e.train_loss for e in mine.curve] == [e.train_loss for e in theirs.curve]


def test_schedules_clipping_and_early_stopping_train_one_by_one(catalogue: Any) -> None:
    trials = [dataclasses.replace(t, clip=1.0) for t in seeds_of(catalogue, seeds=2, epochs=1)]
    messages: list[str] = []
    train_group(trials, catalogue, log=messages.append)
    assert len(messages) == 1 and "clipping" in messages[0]


def test_a_single_seed_or_no_vectorize_trains_alone_without_a_message(catalogue: Any) -> None:
    messages: list[str] = []
    one = seeds_of(catalogue, seeds=1, epochs=1)
    assert [e.train_loss for e in train_group(one, catalogue, log=messages.append)[0].curve] == [
        e.train_loss for e in train_trial(one[0], catalogue).curve]
    train_group(seeds_of(catalogue, seeds=2, epochs=1), catalogue, vectorize=False, log=messages.append)
    assert messages == []


def test_seeds_are_grouped_by_everything_but_the_seed(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=2, optimizer="sgd,adam", epochs=1)
    groups = group_by_seed(trials)
    assert [[(t.optimizer, t.seed) for t in g] for g in groups] == [[("sgd", 0), ("sgd", 1)],
                                                                    [("adam", 0), ("adam", 1)]]
    with pytest.raises(ValueError, match="differ only by seed"):
        train_group(trials, catalogue)


# -- plugins ---------------------------------------------------------------------------------------

TRIPWIRE = {"armed": False}


class Tripwire(nn.Module):
    """Turns the outputs of the model built from seed 1 into NaN once the tripwire is armed: an
    ordinary learned layer for every other seed (and for ``torch.func.vmap``)."""

    def __init__(self) -> None:
        super().__init__()
        self.seed = nn.Parameter(torch.tensor(float(torch.initial_seed())), requires_grad=False)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not TRIPWIRE["armed"]:
            return x
        return x * torch.where(self.seed == 1, torch.tensor(math.nan), torch.tensor(1.0))


class Branch(nn.Module):
    """Chooses its path from a value read back from the tensor: impossible under ``vmap``."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x if float(x.detach().abs().max()) > 0 else -x


class TestPlugins:
    @hookimpl
    def register_architectures(self, register: Any) -> None:
        def fragile(spec: Any, outputs: int, activation: Any) -> nn.Module:
            return nn.Sequential(build_fnn(spec, outputs, activation, hidden=[16]), Tripwire())

        def branching(spec: Any, outputs: int, activation: Any) -> nn.Module:
            return nn.Sequential(nn.Linear(spec.shape[0], 8), Branch(), activation(), nn.Linear(8, outputs))

        register(Architecture("fragile", fragile, ("vector",), "seed 1 diverges when armed", vectorizable=True))
        register(Architecture("branching", branching, ("vector",), "reads a value to choose its path",
                              vectorizable=True))

    @hookimpl
    def register_activations(self, register: Any) -> None:
        register(Activation("plain_relu", nn.ReLU, "relu that does not declare stacking"))


@pytest.fixture(scope="module")
def plugged() -> Any:
    return collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[TestPlugins()]))


def test_a_diverging_seed_is_recorded_like_alone_and_the_others_go_on(plugged: Any) -> None:
    trials = seeds_of(plugged, arch="fragile", task="toy", epochs=5, sets=())

    def arm_after_epoch_2(trial: Trial, record: Any) -> None:
        TRIPWIRE["armed"] = record.epoch >= 2

    def alone(trial: Trial) -> TrialResult:
        TRIPWIRE["armed"] = False
        return train_trial(trial, plugged, arm_after_epoch_2)

    try:
        alone_results = [alone(t) for t in trials]
        TRIPWIRE["armed"] = False
        messages: list[str] = []
        together = train_group(trials, plugged, on_epoch=arm_after_epoch_2, log=messages.append)
    finally:
        TRIPWIRE["armed"] = False
    assert messages == []
    assert [(r.status, len(r.curve)) for r in alone_results] == [("ok", 5), ("diverged", 3), ("ok", 5)]
    assert_same_curves(together, alone_results)
    assert "non-finite loss at epoch 3" in together[1].error


def test_an_undeclared_plugin_component_trains_one_by_one(plugged: Any) -> None:
    messages: list[str] = []
    train_group(seeds_of(plugged, seeds=2, epochs=1, activation="plain_relu"), plugged, log=messages.append)
    assert len(messages) == 1 and "activation 'plain_relu'" in messages[0] and "vectorizable" in messages[0]


def test_a_model_that_cannot_run_stacked_falls_back_with_the_reason(plugged: Any) -> None:
    trials = seeds_of(plugged, seeds=2, epochs=1, arch="branching", sets=())
    messages: list[str] = []
    together = train_group(trials, plugged, log=messages.append)
    assert len(messages) == 1 and "cannot run stacked" in messages[0]
    assert [r.status for r in together] == ["ok", "ok"]
    assert [e.train_loss for e in together[1].curve] == [e.train_loss for e in train_trial(trials[1], plugged).curve]
