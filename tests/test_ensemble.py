"""Seeds trained together: every seed's curve equals training it alone, for every built-in architecture; the
planned choice between stacked and one by one, made from declarations; fallbacks say why."""

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
from nnbench.execution.stacks import group_by_seed, stack_groups, stacking
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.training.ensemble import culprits, proof_signature, train_item
from nnbench.training.trainer import train_trial

STACKED_OPTIMIZERS = ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax",
                      "nadam", "radam"]


pytestmark = pytest.mark.usefixtures("one_thread")


def seeds_of(catalogue: Any, seeds: int = 3, sets: tuple[str, ...] = ("arch.fnn.hidden=[16]",),
             **axes: Any) -> list[Trial]:
    base = {"task": "moons", "arch": "fnn", "activation": "relu", "loss": "default", "optimizer": "adam",
            "lr": "default", "seeds": seeds, "epochs": 3, "batch_size": 32}
    trials, _ = expand_grid(build_grid(None, list(sets), domain=catalogue.domain, **{**base, **axes}), catalogue)
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
        chosen = next(e for e in mine.curve if e.epoch == mine.best_epoch)
        assert (mine.metric, mine.val_metric) == (chosen.metric, chosen.val_metric)


def train_alone(trials: list[Trial], catalogue: Any, test_each_epoch: bool = True) -> list[TrialResult]:
    return [train_trial(t, catalogue, test_each_epoch=test_each_epoch) for t in trials]


def train_together(trials: list[Trial], catalogue: Any, **kwargs: Any) -> list[TrialResult]:
    """``trials`` planned as one stack: stacked once it proves exact, else one by one with the reason."""
    return train_item(trials, catalogue, stacked=True, **kwargs)


def reasons(results: list[TrialResult]) -> list[str]:
    """Why trials planned as one stack trained one by one (none: they trained stacked)."""
    return list(dict.fromkeys(r.training["reason"] for r in results if r.training and "reason" in r.training))


def stacked(trials: list[Trial], catalogue: Any, messages: list[str] | None = None, **kwargs: Any) -> list[TrialResult]:
    """``trials`` trained as one stack, scoring the test split every epoch so whole curves can be compared;
    ``messages`` receives the reasons of a fallback."""
    results = train_together(trials, catalogue, test_each_epoch=kwargs.pop("test_each_epoch", True), **kwargs)
    (messages if messages is not None else []).extend(reasons(results))
    for result in results:
        assert result.training is not None and result.training["mode"] == "stacked", result.training
    return results


def test_every_stacking_optimizer_is_tested(catalogue: Any) -> None:
    claims = [o.name for o in (e.spec for e in catalogue.optimizers.entries()) if o.vectorizable]
    assert sorted(claims) == sorted(STACKED_OPTIMIZERS)


@pytest.mark.parametrize("optimizer", STACKED_OPTIMIZERS)
def test_each_seed_trained_together_equals_training_it_alone(catalogue: Any, optimizer: str) -> None:
    trials = seeds_of(catalogue, optimizer=optimizer)
    messages: list[str] = []
    together = stacked(trials, catalogue, messages)
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
    together = stacked(trials, catalogue, messages)
    assert messages == []
    assert_same_curves(together, train_alone(trials, catalogue))


@pytest.mark.parametrize(("task", "arch", "activation", "sets"), [
    ("digits", "cnn", "relu", ("arch.cnn.channels=[4,8]", "arch.cnn.hidden=16")),
    ("digits", "cnn", "prelu", ("arch.cnn.channels=[4]", "arch.cnn.hidden=8")),
    ("sine", "cnn", "tanh", ("arch.cnn.channels=[4]", "arch.cnn.kernel_size=5")),
    ("parity", "rnn", "tanh", ("arch.rnn.hidden=16", "arch.rnn.layers=2")),
    ("adding", "rnn", "prelu", ("arch.rnn.hidden=8",)),
    ("digits", "lstm", "relu", ("arch.lstm.hidden=12", "arch.lstm.layers=2")),
    ("sine", "gru", "gelu", ("arch.gru.hidden=12",)),
    ("parity", "gru", "relu", ("arch.gru.hidden=8", "arch.gru.layers=2")),
], ids=lambda v: v if isinstance(v, str) else "")
def test_every_builtin_architecture_stacks_exactly(catalogue: Any, task: str, arch: str, activation: str,
                                                   sets: tuple[str, ...]) -> None:
    trials = seeds_of(catalogue, seeds=3, task=task, arch=arch, activation=activation, sets=sets, epochs=3,
                      batch_size=64)
    together = stacked(trials, catalogue)
    assert_same_curves(together, train_alone(trials, catalogue), rel=1e-4)
    assert len({r.curve[-1].train_loss for r in together}) == 3


@pytest.mark.parametrize(("task", "arch", "norm"), [
    ("digits", "cnn", "batch"), ("digits", "cnn", "layer"), ("digits", "cnn", "group"), ("moons", "fnn", "batch"),
    ("moons", "fnn", "layer"), ("moons", "fnn", "group"),
])
def test_normalisation_layers_stack_exactly(catalogue: Any, task: str, arch: str, norm: str) -> None:
    sets = ("arch.cnn.channels=[4,8]", "arch.cnn.hidden=16") if arch == "cnn" else ("arch.fnn.hidden=[16]",)
    # groups of 8 features: normalising groups of two would turn rounding into large differences
    sets += ("norm.group.groups=2",) if norm == "group" else ()
    # SGD: a layer's bias before a normalisation has no true gradient, only rounding noise, which Adam
    # would blow up into full steps (alone as much as stacked), so curves would agree only loosely.
    trials = seeds_of(catalogue, seeds=2, task=task, arch=arch, norm=norm, sets=sets, epochs=2, batch_size=64,
                      optimizer="sgd")
    assert_same_curves(stacked(trials, catalogue), train_alone(trials, catalogue), rel=1e-4)


@pytest.mark.parametrize(("schedule", "clip"), [("step", None), ("cosine", 0.5), ("warmup", None), ("constant", 0.1)])
def test_schedules_and_clipping_apply_to_each_member_as_alone(catalogue: Any, schedule: str,
                                                              clip: float | None) -> None:
    trials = [dataclasses.replace(t, schedule=schedule, clip=clip)
              for t in seeds_of(catalogue, seeds=3, optimizer="momentum", epochs=4)]
    assert_same_curves(stacked(trials, catalogue), train_alone(trials, catalogue))


def test_a_member_whose_patience_runs_out_leaves_the_stack_as_alone(catalogue: Any) -> None:
    trials = [dataclasses.replace(t, patience=2, schedule="cosine")
              for t in seeds_of(catalogue, seeds=4, task="spirals", optimizer="sgd", lr="0.5", epochs=12)]
    alone = train_alone(trials, catalogue)
    assert len({len(r.curve) for r in alone}) > 1  # the seeds stop at different epochs
    together = stacked(trials, catalogue)
    assert_same_curves(together, alone)
    for mine, theirs in zip(together, alone, strict=True):
        assert (mine.best_epoch, mine.metric) == (theirs.best_epoch, theirs.metric)


def test_members_that_stay_keep_their_optimizer_state_and_settings_when_another_leaves(catalogue: Any) -> None:
    # momentum: each member's velocity must carry over when the stack shrinks, and the trial's own
    # optimizer settings must reach the smaller stack's optimizer
    sets = ("arch.fnn.hidden=[16]", "optimizer.sgd.momentum=0.9")
    trials = [dataclasses.replace(t, patience=2)
              for t in seeds_of(catalogue, seeds=4, task="spirals", optimizer="sgd", lr="0.1", epochs=12, sets=sets)]
    alone = train_alone(trials, catalogue)
    assert len({len(r.curve) for r in alone}) > 1  # the seeds stop at different epochs
    assert_same_curves(stacked(trials, catalogue), alone)


@pytest.mark.parametrize(("task", "arch", "sets"), [
    ("moons", "fnn", ("arch.fnn.hidden=[16]",)),
    ("digits", "cnn", ("arch.cnn.channels=[4]", "arch.cnn.hidden=8")),
    ("parity", "rnn", ("arch.rnn.hidden=8",)),
    ("sine", "gru", ("arch.gru.hidden=8",)),
], ids=lambda v: v if isinstance(v, str) else "")
def test_trials_that_differ_by_activation_stack_exactly(catalogue: Any, task: str, arch: str,
                                                        sets: tuple[str, ...]) -> None:
    trials = seeds_of(catalogue, seeds=2, task=task, arch=arch, activation="relu,tanh,gelu", sets=sets, epochs=3,
                      batch_size=64)
    groups = stack_groups(trials, catalogue)
    assert len(groups) == 1
    assert [t.activation for t in groups[0]] == ["relu", "relu", "tanh", "tanh", "gelu", "gelu"]
    assert_same_curves(stacked(groups[0], catalogue), train_alone(groups[0], catalogue), rel=1e-4)


def test_members_with_different_activations_leave_the_stack_as_alone(catalogue: Any) -> None:
    trials = [dataclasses.replace(t, patience=2)
              for t in seeds_of(catalogue, seeds=2, task="spirals", activation="relu,tanh,elu", optimizer="sgd",
                                lr="0.5", epochs=12)]
    (group,) = stack_groups(trials, catalogue)
    alone = train_alone(group, catalogue)
    assert len({len(r.curve) for r in alone}) > 1
    assert_same_curves(stacked(group, catalogue), alone)


def test_activations_declared_element_wise_share_a_stack_whoever_registers_them(plugged: Any) -> None:
    trials = seeds_of(plugged, seeds=2, activation="relu,prelu,plain_relu,tanh,plugin_tanh")
    groups = stack_groups(trials, plugged)
    assert sorted(tuple(dict.fromkeys(t.activation for t in g)) for g in groups) == [
        ("plain_relu",), ("prelu",), ("relu", "tanh", "plugin_tanh")]
    assert sorted(len(g) for g in groups) == [2, 2, 6]
    mixed = next(g for g in groups if len(g) == 6)
    assert_same_curves(stacked(mixed, plugged), train_alone(mixed, plugged), rel=1e-4)


@pytest.mark.parametrize("augmentation", ["gaussian_noise", "mixup"])
def test_batch_stage_components_train_stacked_as_alone(catalogue: Any, augmentation: str) -> None:
    # mixup adapts each member's loss to its own mixed targets; noise changes the inputs only
    trials = seeds_of(catalogue, seeds=2, augmentation=augmentation, epochs=2)
    assert_same_curves(stacked(trials, catalogue), train_alone(trials, catalogue))


def test_the_test_split_is_scored_only_where_the_final_numbers_come_from(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=2, epochs=4)
    lean = train_together(trials, catalogue)
    full = stacked(trials, catalogue)
    for mine, theirs in zip(lean, full, strict=True):
        assert [math.isnan(e.test_loss) for e in mine.curve] == [True, True, True, False]
        assert all(e.val_metric == f.val_metric for e, f in zip(mine.curve, theirs.curve, strict=True))
        assert (mine.metric, mine.test_loss, mine.accuracy) == (theirs.metric, theirs.test_loss, theirs.accuracy)
    alone = train_alone(trials, catalogue, test_each_epoch=False)
    assert [math.isnan(e.test_loss) for e in alone[0].curve] == [True, True, True, False]
    assert_same_curves(lean, alone)


def test_a_stack_is_recorded_with_its_members_and_trains_the_same_whatever_the_load(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=3, epochs=2)
    first = train_together(trials, catalogue)
    assert [r.training for r in first] == [{"mode": "stacked", "members": 3}] * 3
    busy = [torch.randn(256, 256) for _ in range(4)]  # the choice involves no timing: nothing here can change it
    again = train_together(trials, catalogue)
    del busy
    assert [(r.metric, r.train_loss, [e.train_loss for e in r.curve]) for r in first] == [
        (r.metric, r.train_loss, [e.train_loss for e in r.curve]) for r in again]


def test_time_is_shared_among_the_seeds_trained_together(catalogue: Any) -> None:
    seen: list[tuple[int, int]] = []
    results = stacked(seeds_of(catalogue), catalogue, on_epoch=lambda t, r: seen.append((t.seed, r.epoch)))
    assert sorted(seen) == [(s, e) for s in range(3) for e in range(1, 4)]
    for epoch in range(3):
        times = {r.curve[epoch].epoch_time for r in results}
        assert len(times) == 1 and times.pop() > 0  # each seed's share of the same epoch
    n_train = 640
    for result in results:
        assert math.isclose(result.train_time, sum(e.epoch_time for e in result.curve))
        assert math.isclose(result.throughput, n_train * 3 / result.train_time)
        assert result.status == "ok" and result.error is None


@pytest.mark.parametrize(("axes", "reason", "planned"), [
    ({"optimizer": "lbfgs"}, "optimizer 'lbfgs' re-evaluates the loss", True),
    ({"sets": ("arch.fnn.hidden=[16]", "arch.fnn.dropout=0.2")}, "dropout", False),
])
def test_groups_that_cannot_stack_exactly_train_one_by_one_and_say_why(catalogue: Any, axes: dict[str, Any],
                                                                       reason: str, planned: bool) -> None:
    trials = seeds_of(catalogue, seeds=2, epochs=1, **axes)
    decision = stacking(trials, catalogue)
    if planned:  # known from the declarations: planned one by one, with the reason
        assert not decision.stacked and reason in str(decision.reason)
    else:  # found as the stack is proven
        assert decision.stacked
    together = train_together(trials, catalogue) if decision.stacked else train_item(
        trials, catalogue, stacked=False, reason=decision.reason)
    assert len(reasons(together)) == 1 and reason in reasons(together)[0]
    assert together[0].training["mode"] == "one_by_one" and reason in together[0].training["reason"]
    alone = train_alone(trials, catalogue)
    for mine, theirs in zip(together, alone, strict=True):
        assert [e.train_loss for e in mine.curve] == [e.train_loss for e in theirs.curve]


def test_a_model_with_dropout_trains_one_by_one_and_each_result_says_why_in_one_sentence(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=2, epochs=1, sets=("arch.fnn.hidden=[16]", "arch.fnn.dropout=0.2"))
    why = "the model uses dropout, whose random masks cannot match those drawn alone"
    assert [r.training for r in train_together(trials, catalogue)] == [
        {"mode": "one_by_one", "members": 1, "reason": why}] * 2


def test_a_configuration_is_proven_once_whichever_seeds_and_in_whichever_order_its_activations_come(
        catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=4, activation="relu,tanh")
    relu, tanh = trials[:4], trials[4:]
    assert proof_signature(relu[:2]) == proof_signature(relu[2:]) != proof_signature(tanh[:2])
    assert proof_signature(relu[:1] + tanh[:1]) == proof_signature(tanh[1:2] + relu[3:])
    assert proof_signature(relu[:1] + tanh[:1]) not in (proof_signature(relu), proof_signature(tanh))


def test_a_stack_that_fails_part_way_trains_every_seed_again_alone_and_says_why(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=2, epochs=3)
    heard: list[tuple[int, int]] = []
    failed: list[int] = []

    def out_of_memory_once(trial: Trial, record: Any) -> None:  # as a GPU may run out with many seeds
        heard.append((trial.seed, record.epoch))
        if record.epoch == 2 and not failed:
            failed.append(record.epoch)
            raise RuntimeError("out of memory")

    together = train_together(trials, catalogue, on_epoch=out_of_memory_once, test_each_epoch=True)
    why = "stacked training failed (RuntimeError: out of memory); every seed was trained again"
    assert [r.training for r in together] == [{"mode": "one_by_one", "members": 1, "reason": why}] * 2
    assert heard == [(0, 1), (1, 1), (0, 2)] + [
        (seed, epoch) for seed in (0, 1) for epoch in (1, 2, 3)]  # the epochs already reported, heard again
    assert_same_curves(together, train_alone(trials, catalogue))


def test_a_stack_past_its_time_limit_stops_and_every_member_says_it_shared_the_limit(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=2, epochs=200)
    together = train_together(trials, catalogue, timeout=0.05)
    assert [(r.trial, r.status, r.error) for r in together] == [
        (t, "timeout", "ran past --timeout 0.05 s per trial (2 trials stacked: 0.1 s) and was stopped") for t in trials]


def test_a_single_seed_or_no_vectorize_trains_alone_without_a_message(catalogue: Any) -> None:
    one = seeds_of(catalogue, seeds=1, epochs=2)
    alone = train_together(one, catalogue, test_each_epoch=True)[0]
    assert [(e.train_loss, e.test_loss) for e in alone.curve] == [
        (e.train_loss, e.test_loss) for e in train_trial(one[0], catalogue, test_each_epoch=True).curve]
    assert not math.isnan(alone.curve[0].test_loss)  # scored every epoch, as asked
    assert alone.training == {"mode": "one_by_one", "members": 1}
    two = seeds_of(catalogue, seeds=2, epochs=1)
    off = train_item(two, catalogue, stacked=False, reason=stacking(two, catalogue, vectorize=False).reason)
    assert off[1].training == {"mode": "one_by_one", "members": 1, "reason": "stacking was turned off"}


def test_seeds_are_grouped_by_everything_but_the_seed(catalogue: Any) -> None:
    trials = seeds_of(catalogue, seeds=2, optimizer="sgd,adam", epochs=1)
    groups = group_by_seed(trials)
    assert [[(t.optimizer, t.seed) for t in g] for g in groups] == [[("sgd", 0), ("sgd", 1)],
                                                                    [("adam", 0), ("adam", 1)]]
    with pytest.raises(ValueError, match=r"^one stack holds trials that differ only by seed \(and element-wise "
                       r"activations\); group them with nnbench\.execution\.stacks\.stack_groups$"):
        train_together(trials, catalogue)


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
        register(Activation("plugin_tanh", nn.Tanh, "tanh, declared element-wise", vectorizable=True,
                            elementwise=True))

    @hookimpl
    def register_losses(self, register: Any) -> None:
        from nnbench.builtin.losses import losses

        mse = next(loss for loss in losses() if loss.name == "mse")
        register(dataclasses.replace(mse, name="plain_mse", default_for=frozenset(), vectorizable=False))


@pytest.fixture(scope="module")
def plugged() -> Any:
    return collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[TestPlugins()]))


def test_a_diverging_seed_is_recorded_like_alone_and_the_others_go_on(plugged: Any) -> None:
    trials = seeds_of(plugged, arch="fragile", task="toy", epochs=5, sets=())

    def arm_after_epoch_2(trial: Trial, record: Any) -> None:
        TRIPWIRE["armed"] = record.epoch >= 2

    def alone(trial: Trial) -> TrialResult:
        TRIPWIRE["armed"] = False
        return train_trial(trial, plugged, arm_after_epoch_2, test_each_epoch=True)

    try:
        alone_results = [alone(t) for t in trials]
        TRIPWIRE["armed"] = False
        messages: list[str] = []
        together = stacked(trials, plugged, messages, on_epoch=arm_after_epoch_2)
    finally:
        TRIPWIRE["armed"] = False
    assert messages == []
    assert [(r.status, len(r.curve)) for r in alone_results] == [("ok", 5), ("diverged", 3), ("ok", 5)]
    assert_same_curves(together, alone_results)
    assert "non-finite loss at epoch 3" in together[1].error


def test_an_undeclared_plugin_component_trains_one_by_one(plugged: Any) -> None:
    decision = stacking(seeds_of(plugged, seeds=2, epochs=1, activation="plain_relu"), plugged)
    assert not decision.stacked
    assert "activation 'plain_relu'" in str(decision.reason) and "vectorizable" in str(decision.reason)
    loss = stacking(seeds_of(plugged, seeds=2, epochs=1, task="sine", loss="plain_mse"), plugged)
    plugin = plugged.losses.plugin_of("plain_mse")
    assert (loss.stacked, loss.reason) == (False, f"loss 'plain_mse' (plugin {plugin!r}) does not declare "
                                                  "vectorizable=True")


def test_a_model_that_cannot_run_stacked_falls_back_with_the_reason(plugged: Any) -> None:
    trials = seeds_of(plugged, seeds=2, epochs=1, arch="branching", sets=())
    together = train_together(trials, plugged)
    assert len(reasons(together)) == 1 and "cannot run stacked" in reasons(together)[0]
    assert [r.status for r in together] == ["ok", "ok"]
    assert [e.train_loss for e in together[1].curve] == [e.train_loss for e in train_trial(trials[1], plugged).curve]


def test_a_schedule_carries_over_numbers_and_tuples_of_numbers_but_not_flags() -> None:
    from nnbench.training.ensemble import _is_setting

    assert _is_setting(0.01) and _is_setting(3) and _is_setting((0.9, 0.999))
    assert not _is_setting(True) and not _is_setting((0.9, False)) and not _is_setting(None)
    assert not _is_setting("adam") and not _is_setting([0.9, 0.999])


def test_a_failed_proof_blames_the_plugins_components_first_else_every_component_that_shapes_the_model(
        plugged: Any) -> None:
    plugin = plugged.registry("architecture").plugin_of("branching")
    branching = seeds_of(plugged, seeds=1, arch="branching", sets=())[0]
    assert culprits(branching, plugged, {"relu"}) == (
        f"architecture 'branching' (plugin {plugin!r}) declares vectorizable=True but does not compute alike stacked")
    assert culprits(seeds_of(plugged, seeds=1)[0], plugged, {"relu", "plugin_tanh"}) == (
        f"activation 'plugin_tanh' (plugin {plugin!r}) declares vectorizable=True but does not compute alike stacked")
    # built-ins only: every component of the build, model and batch stages, the activations, the architecture
    # (not the training stage's, which never stacks)
    builtin = seeds_of(plugged, seeds=1, norm="batch", augmentation="mixup", initializer="orthogonal",
                       averaging="ema")[0]
    assert culprits(builtin, plugged, {"tanh", "relu"}) == (
        "one of these declares vectorizable=True but does not compute alike stacked: "
        "augmentation 'mixup' (plugin 'nnbench.builtin.augmentation'), "
        "initializer 'orthogonal' (plugin 'nnbench.builtin.initializers'), "
        "norm 'batch' (plugin 'nnbench.builtin.norms'), "
        "activation 'relu' (plugin 'nnbench.builtin.activations'), "
        "activation 'tanh' (plugin 'nnbench.builtin.activations'), "
        "architecture 'fnn' (plugin 'nnbench.builtin.architectures')")
