"""Every component honoured or refused: stacks proven in training mode, the batch and training stages, the
validation and shuffling protocols. Trials train for real on a small task, inline, so stored numbers compare."""

from __future__ import annotations

import copy
import json
from pathlib import Path
from typing import Any

import numpy as np
import pandas as pd
import pytest
import torch
from torch import nn

import nnbench
from nnbench.contract.errors import NNBenchError
from nnbench.contract.specs import Component, Kind, Task
from nnbench.planning.grid import expand_grid
from nnbench.planning.task_data import make_task_data
from nnbench.session import Session
from nnbench.testing.conformance import ConformanceError, check_component
from nnbench.training.ensemble import SeedEnsemble
from nnbench.training.proof import MemberStep, prove_stack
from nnbench.training.stacked_networks import STACKED_FORMS
from nnbench.training.stacking import NotStackable

SMALL = {"task": "spirals", "arch": "fnn", "activation": "relu", "optimizer": "adam", "epochs": 3, "seeds": 3,
         "workers": 1, "quiet": True}
NUMBERS = ["val_loss", "val_metric", "test_loss", "accuracy", "train_loss"]


def hooked_dropout(model: nn.Module, p: float = 0.6) -> nn.Module:
    """Dropout on every linear layer's output through forward hooks (what the stack cannot run)."""
    for layer in model.modules():
        if isinstance(layer, nn.Linear):
            layer.register_forward_hook(lambda module, args, out: nn.functional.dropout(out, p, module.training))
    return model


class Dropouts:
    """A plugin kind at the model stage whose component works through hooks and claims to stack."""

    @nnbench.hookimpl
    def register_kinds(self, register: Any) -> None:
        register(Kind("dropout_scheme", "dropout_schemes", "model", "none", "dropout through hooks"))

    @nnbench.hookimpl
    def register_components(self, register: Any) -> None:
        register(Component("dropout_scheme", "none", lambda model: model))
        register(Component("dropout_scheme", "heavy", hooked_dropout, vectorizable=True))


def run(store: Path, **values: Any) -> pd.DataFrame:
    return nnbench.run(store=str(store), **{**SMALL, **values}).set_index("trial_id").sort_index()


def test_a_hooked_model_stage_component_gives_the_same_numbers_stacked_or_not(
        tmp_path: Path, nnbench_plugin: Any, capsys: pytest.CaptureFixture[str]) -> None:
    nnbench_plugin(Dropouts(), name="dropouts")
    stacked = run(tmp_path / "a.db", dropout_scheme=["none", "heavy"], quiet=False)
    said = capsys.readouterr()
    alone = run(tmp_path / "b.db", dropout_scheme=["none", "heavy"], vectorize=False)
    pd.testing.assert_frame_equal(stacked[NUMBERS], alone[NUMBERS], rtol=0, atol=1e-6)
    heavy, plain = (stacked[stacked["dropout_scheme"] == name]["test_loss"] for name in ("heavy", "none"))
    assert heavy.mean() > plain.mean() + 0.05  # the dropout was applied, not silently dropped
    assert "dropout_scheme 'heavy'" in said.out + said.err and "hooks layer" in said.out + said.err


def test_conformance_refuses_a_hooked_component_declared_vectorizable() -> None:
    kind = Kind("dropout_scheme", "dropout_schemes", "model", "none")
    with pytest.raises(ConformanceError, match="dropout_scheme 'heavy' is declared vectorizable but its seeds do not "
                                               "compute alike stacked: hooks on layer"):
        check_component(Component("dropout_scheme", "heavy", hooked_dropout, vectorizable=True), kind)


def members(seeds: int = 3) -> list[nn.Module]:
    built = []
    for seed in range(seeds):
        torch.manual_seed(seed)
        built.append(nn.Sequential(nn.Linear(4, 8), nn.Tanh(), nn.Linear(8, 2)))
    return built


def sgd(params: list[torch.Tensor], lr: float, options: Any) -> torch.optim.Optimizer:
    return torch.optim.SGD(params, lr=lr, **options)


def test_the_proof_refuses_members_whose_learning_rates_differ() -> None:
    x, y = torch.randn(16, 4), torch.randn(16, 2)
    steps = [MemberStep(sgd, lr, {}, None) for lr in (0.1, 0.1, 0.5)]
    with pytest.raises(NotStackable, match="after one optimizer step the stacked weights '0.weight' differ"):
        prove_stack(members(), STACKED_FORMS, x, y, nn.MSELoss(), steps)
    prove_stack(members(), STACKED_FORMS, x, y, nn.MSELoss(), [MemberStep(sgd, 0.1, {}, None)] * 3)
    # The refusal names the components that may be the cause, as it is told them.
    with pytest.raises(NotStackable, match=r"settings\?\); activation 'odd' declares vectorizable=True"):
        prove_stack(members(), STACKED_FORMS, x, y, nn.MSELoss(), steps,
                    culprits="activation 'odd' declares vectorizable=True but does not compute alike stacked")


def test_the_proof_names_the_mode_in_which_a_wrong_stacked_form_differs() -> None:
    def normed() -> list[nn.Module]:
        torch.manual_seed(0)
        return [nn.Sequential(nn.Linear(4, 8), nn.LayerNorm(8), nn.Linear(8, 2)) for _ in range(3)]

    skips_the_norm = {**STACKED_FORMS, nn.LayerNorm: lambda stack, module, prefix: lambda x: x}
    with pytest.raises(NotStackable, match="^in evaluation mode the stacked outputs differ from each seed's own$"):
        prove_stack(normed(), skips_the_norm, torch.randn(16, 4), torch.randn(16, 2), nn.MSELoss(),
                    [MemberStep(sgd, 0.1, {}, None)] * 3)
    prove_stack(normed(), STACKED_FORMS, torch.randn(16, 4), torch.randn(16, 2), nn.MSELoss(),
                [MemberStep(sgd, 0.1, {}, None)] * 3)


def test_the_proof_refuses_members_whose_clipping_differs() -> None:
    x, y = torch.randn(16, 4) * 50, torch.randn(16, 2)
    steps = [MemberStep(sgd, 0.1, {}, clip) for clip in (None, None, 0.01)]
    with pytest.raises(NotStackable, match="differ from each seed's own"):
        prove_stack(members(), STACKED_FORMS, x, y, nn.MSELoss(), steps)


def test_the_proof_sees_dropout_that_only_training_mode_draws() -> None:
    dropped = [nn.Sequential(m, nn.Dropout(0.5)) for m in members()]
    with pytest.raises(NotStackable, match="draws random numbers in training mode .*, which a stack cannot draw as "
                                           "each seed draws them alone"):
        prove_stack(dropped, STACKED_FORMS, torch.randn(16, 4), torch.randn(16, 2), nn.MSELoss(),
                    [MemberStep(sgd, 0.1, {}, None)] * 3)


def test_a_stack_of_trials_with_different_learning_rates_is_refused_by_its_proof() -> None:
    # the planner never groups these; built by hand, the proof alone must refuse them
    session = Session()
    grid = session.grid(None, (), task="spirals", arch="fnn", activation="relu", optimizer="sgd", lr=[0.01, 0.5],
                        epochs=1, seeds=1)
    trials, _ = expand_grid(grid, session.catalogue)
    assert len(trials) == 2
    with pytest.raises(NotStackable, match="do the seeds differ in learning rate"):
        SeedEnsemble(trials, session.catalogue)


def test_a_stack_of_trials_with_different_optimizer_settings_is_refused_by_its_proof() -> None:
    session = Session()
    trials = [expand_grid(session.grid(None, (f"optimizer.sgd.weight_decay={decay}",), task="spirals", arch="fnn",
                                       activation="relu", optimizer="sgd", epochs=1, seeds=1), session.catalogue)[0][0]
              for decay in (0.01, 0.3)]
    with pytest.raises(NotStackable, match="do the seeds differ in learning rate, clipping or optimizer settings"):
        SeedEnsemble(trials, session.catalogue)


@pytest.mark.parametrize(("component", "refusal"), [
    ({"averaging": "ema"}, "a training-stage component follows each model's own steps, which a stack does not do"),
    ({"rec_loss": "on"}, "a loss-stage component wraps each model's own criterion, which a stack does not do"),
])
def test_a_stack_of_trials_with_a_loss_or_training_stage_component_is_refused_before_it_trains(
        nnbench_plugin: Any, component: dict[str, str], refusal: str) -> None:
    # the planner never stacks these (they follow one model's own steps or criterion); by hand, the stack itself
    # refuses them
    nnbench_plugin(Recorder(), name="recorder")
    session = Session()
    trials, _ = expand_grid(session.grid(None, (), task="spirals", arch="fnn", activation="relu", optimizer="sgd",
                                         epochs=1, seeds=2, **component), session.catalogue)
    with pytest.raises(NotStackable, match=f"^{refusal}$"):
        SeedEnsemble(trials, session.catalogue)


def noise_then_check(context: Any, sigma: float = 0.5) -> Any:
    """Gaussian input noise drawn from the context's generator (stackable)."""

    def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
        noise = torch.randn(x.shape, generator=context.generator).to(x.device)
        return x + sigma * noise, y

    return transform


class Augments:
    @nnbench.hookimpl
    def register_kinds(self, register: Any) -> None:
        register(Kind("augment", "augments", "batch", "none", "input noise"))

    @nnbench.hookimpl
    def register_components(self, register: Any) -> None:
        register(Component("augment", "none", lambda context: lambda x, y: (x, y)))
        register(Component("augment", "noise", noise_then_check, vectorizable=True))
        register(Component("augment", "wide", lambda context: lambda x, y: (torch.cat([x, x], 1), y)))
        register(Component("augment", "nan", lambda context: lambda x, y: (x * float("nan"), y)))
        register(Component("augment", "boom", lambda context: (_ for _ in ()).throw(RuntimeError("no data"))))


def test_a_batch_stage_component_gives_the_same_numbers_stacked_or_one_by_one(
        tmp_path: Path, nnbench_plugin: Any) -> None:
    nnbench_plugin(Augments(), name="augments")
    stacked = run(tmp_path / "a.db", augment=["none", "noise"])
    alone = run(tmp_path / "b.db", augment=["none", "noise"], vectorize=False)
    pd.testing.assert_frame_equal(stacked[NUMBERS], alone[NUMBERS], rtol=0, atol=1e-6)
    noisy, plain = (stacked[stacked["augment"] == name]["train_loss"].to_numpy() for name in ("noise", "none"))
    assert not (noisy == plain).any()


@pytest.mark.parametrize(("name", "said"), [
    ("wide", "augment 'wide' (plugin 'augments', batch stage) changed the batch's inputs from"),
    ("nan", "augment 'nan' (plugin 'augments', batch stage) returned inputs that are not finite numbers"),
    ("boom", "augment 'boom' (plugin 'augments', batch stage) raised RuntimeError: no data"),
])
def test_a_failing_batch_stage_component_fails_its_trials_only_and_is_named(
        tmp_path: Path, nnbench_plugin: Any, name: str, said: str) -> None:
    nnbench_plugin(Augments(), name="augments")
    trials = run(tmp_path / "a.db", augment=["none", name], seeds=2)
    bad = trials[trials["augment"] == name]
    assert set(bad["status"]) == {"failed"} and set(trials[trials["augment"] == "none"]["status"]) == {"ok"}
    # the store keeps the traceback; its last line, the one a user is shown, names the component and its stage
    assert all(said in error.strip().splitlines()[-1] for error in bad["error"])


class Averages:
    @nnbench.hookimpl
    def register_kinds(self, register: Any) -> None:
        register(Kind("weights_kept", "weights_kept_kinds", "training", "none", "weights scored"))

    @nnbench.hookimpl
    def register_components(self, register: Any) -> None:
        register(Component("weights_kept", "none", lambda context: None))
        register(Component("weights_kept", "zeroed", zeroed))
        register(Component("weights_kept", "calls", counting))


class Zeroed:
    """Scores a copy of the model with every weight zero: every prediction the same."""

    def scored(self, model: nn.Module) -> nn.Module:
        frozen = copy.deepcopy(model)
        with torch.no_grad():
            for p in frozen.parameters():
                p.zero_()
        return frozen


def zeroed(context: Any) -> Zeroed:
    return Zeroed()


CALLS: list[tuple[str, int]] = []


class Counting:
    def __init__(self, context: Any) -> None:
        CALLS.append(("made", context.steps_per_epoch * context.epochs))

    def after_step(self, model: nn.Module, optimizer: Any) -> None:
        CALLS.append(("step", 0))

    def after_epoch(self, model: nn.Module, optimizer: Any, epoch: int) -> None:
        CALLS.append(("epoch", epoch))


def counting(context: Any) -> Counting:
    return Counting(context)


def test_the_training_stage_sees_every_step_and_epoch_and_chooses_the_scored_weights(
        tmp_path: Path, nnbench_plugin: Any, capsys: pytest.CaptureFixture[str]) -> None:
    nnbench_plugin(Averages(), name="averages")
    CALLS.clear()
    trials = run(tmp_path / "a.db", weights_kept=["none", "zeroed", "calls"], seeds=1)
    assert set(trials["status"]) == {"ok"}
    made = [n for what, n in CALLS if what == "made"]
    assert made and CALLS.count(("step", 0)) == made[0]  # the context's steps are the steps taken
    assert [n for what, n in CALLS if what == "epoch"] == [1, 2, 3]
    zero = trials[trials["weights_kept"] == "zeroed"].iloc[0]
    plain = trials[trials["weights_kept"] == "none"].iloc[0]
    assert zero["accuracy"] == pytest.approx(0.5, abs=0.1) and plain["accuracy"] > 0.6
    assert zero["train_loss"] == pytest.approx(plain["train_loss"])  # trained alike: only the scored weights differ


def test_a_training_stage_component_is_never_stacked(tmp_path: Path, nnbench_plugin: Any,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    nnbench_plugin(Averages(), name="averages")
    nnbench.run(store=str(tmp_path / "a.db"), **{**SMALL, "quiet": False, "weights_kept": ["zeroed"], "seeds": 2})
    said = capsys.readouterr()
    assert "weights_kept 'zeroed' acts on each seed's own training loop" in said.out + said.err


def test_validation_none_trains_on_the_whole_training_split_and_reports_the_last_epoch(tmp_path: Path) -> None:
    trials = run(tmp_path / "a.db", validation=["none", "split"], epochs=2, seeds=2)
    none, split = (trials[trials["validation"] == v] for v in ("none", "split"))
    assert set(none["status"]) == set(split["status"]) == {"ok"}
    assert none["val_loss"].isna().all() and split["val_loss"].notna().all()
    assert (none["best_epoch"] == 2).all()
    assert not (none["test_loss"].to_numpy() == split["test_loss"].to_numpy()).any()


class OwnSplit:
    @nnbench.hookimpl
    def register_tasks(self, register: Any) -> None:
        def load() -> Any:
            rng = np.random.default_rng(0)
            x = rng.normal(size=(300, 4))
            y = (x[:, 0] + x[:, 1] > 0).astype(np.int64)
            return make_task_data(x[:250], y[:250], classification=True, validation=(x[250:], y[250:]))

        register(Task("halves", "binary", "vector", (4,), load, num_classes=2, own_validation=True))


def test_validation_task_uses_the_tasks_own_split(tmp_path: Path, nnbench_plugin: Any) -> None:
    nnbench_plugin(OwnSplit(), name="own-split")
    trials = run(tmp_path / "a.db", task="halves", validation=["task", "split"], seeds=1)
    assert set(trials["status"]) == {"ok"}
    task, split = (trials[trials["validation"] == v].iloc[0] for v in ("task", "split"))
    assert task["val_loss"] != split["val_loss"] and task["train_loss"] != split["train_loss"]


@pytest.mark.parametrize(("values", "said"), [
    ({"validation": "none", "patience": 2}, "--validation none holds no data out, but --patience"),
    ({"validation": "none", "tune": "lr", "budget": 2, "lr": "default"}, "--validation none holds no data out, "
                                                                         "but --tune"),
    ({"validation": "nope"}, "validation must be one of split, task, none, not 'nope'"),
    ({"validation": "task"}, "task 'spirals' has no validation split of its own (--validation task)"),
    ({"shuffle": "maybe"}, "must be one of true, false, not 'maybe'"),
])
def test_protocol_values_that_cannot_work_are_one_line_before_anything_is_stored(
        tmp_path: Path, values: dict[str, Any], said: str) -> None:
    with pytest.raises(NNBenchError, match=None) as raised:
        run(tmp_path / "a.db", **values)
    assert said in str(raised.value)
    assert not (tmp_path / "a.db").exists()


def test_shuffle_false_keeps_the_datas_order_and_changes_the_numbers(tmp_path: Path) -> None:
    trials = run(tmp_path / "a.db", shuffle=["true", "false"], seeds=2)
    shuffled, kept = (trials[trials["shuffle"] == v] for v in ("true", "false"))
    assert not (shuffled["train_loss"].to_numpy() == kept["train_loss"].to_numpy()).any()
    again = run(tmp_path / "b.db", shuffle=["false"], seeds=2)
    assert list(again["train_loss"]) == list(kept["train_loss"])


# -- the trainer's contract, as docs/plugins.md writes it -------------------------------------------

EVENTS: list[str] = []


class Recorded(nn.Module):
    """A small network that notes each forward pass: in training mode with gradients, without, or evaluating."""

    def __init__(self, inputs: int, outputs: int, activation: Any) -> None:
        super().__init__()
        EVENTS.append("build")
        self.layers = nn.Sequential(nn.Linear(inputs, 16), activation(), nn.Linear(16, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if not self.training:
            EVENTS.append(f"eval:{len(x)}")
        else:
            EVENTS.append("forward" if torch.is_grad_enabled() else "check")
        return self.layers(x)


class RecordedSGD(torch.optim.SGD):
    def zero_grad(self, set_to_none: bool = True) -> None:
        EVENTS.append("backward")
        super().zero_grad(set_to_none)

    def step(self, closure: Any = None) -> Any:
        EVENTS.append("step")
        return super().step(closure)


class RecordedSchedule:
    def __init__(self, optimizer: Any, total_steps: int) -> None:
        self.optimizer = optimizer

    def step(self) -> None:
        EVENTS.append("schedule")


class Follower:
    def after_step(self, model: nn.Module, optimizer: Any) -> None:
        EVENTS.append("after_step")

    def after_epoch(self, model: nn.Module, optimizer: Any, epoch: int) -> None:
        EVENTS.append("after_epoch")

    def scored(self, model: nn.Module) -> None:
        EVENTS.append("scored")


def made(what: Any) -> Any:
    EVENTS.append("made")
    return what


def wrapped(criterion: Any, model: nn.Module) -> Any:
    EVENTS.append("wrap")

    def loss(outputs: torch.Tensor, y: torch.Tensor) -> torch.Tensor:
        EVENTS.append("loss")
        return criterion(outputs, y)

    return loss


def transform(x: torch.Tensor, y: torch.Tensor) -> tuple[torch.Tensor, torch.Tensor]:
    EVENTS.append("batch")
    return x, y


class Recorder:
    @nnbench.hookimpl
    def register_kinds(self, register: Any) -> None:
        for stage in ("model", "loss", "batch", "training"):
            register(Kind(f"rec_{stage}", f"rec_{stage}s", stage, "off"))

    @nnbench.hookimpl
    def register_components(self, register: Any) -> None:
        register(Component("rec_model", "off", lambda model: None))
        register(Component("rec_model", "on", lambda model: EVENTS.append("model")))
        register(Component("rec_loss", "off", lambda criterion, model: criterion))
        register(Component("rec_loss", "on", wrapped))
        register(Component("rec_batch", "off", lambda context: lambda x, y: (x, y)))
        register(Component("rec_batch", "on", lambda context: made(transform)))
        register(Component("rec_training", "off", lambda context: None))
        register(Component("rec_training", "on", lambda context: made(Follower())))

    @nnbench.hookimpl
    def register_architectures(self, register: Any) -> None:
        from nnbench.contract.specs import Architecture

        register(Architecture("recorded", lambda spec, outputs, activation: Recorded(spec.shape[0], outputs,
                                                                                      activation), ("vector",)))

    @nnbench.hookimpl
    def register_optimizers(self, register: Any) -> None:
        from nnbench.contract.specs import Optimizer

        register(Optimizer("recorded_sgd", RecordedSGD, 0.05))

    @nnbench.hookimpl
    def register_schedules(self, register: Any) -> None:
        from nnbench.contract.specs import Schedule

        register(Schedule("recorded", RecordedSchedule))


def documented_order() -> list[str]:
    """The event names of docs/plugins.md's trainer contract, in its order."""
    text = (Path(__file__).parents[1] / "docs" / "plugins.md").read_text()
    block = text.split("## The trainer's contract", 1)[1].split("```text\n", 1)[1].split("```", 1)[0]
    labels = []
    for line in block.splitlines():
        indent = len(line) - len(line.lstrip())
        # an event: a name at the start of a line (two spaces in within a loop); other lines explain or loop
        if line.strip() and indent in (0, 2) and not line.startswith("for ") and not line.rstrip().endswith(":"):
            labels.append(line.split()[0])
    return labels


def test_the_trainer_calls_components_in_the_order_its_contract_documents(
        tmp_path: Path, nnbench_plugin: Any) -> None:
    nnbench_plugin(Recorder(), name="recorder")
    EVENTS.clear()
    data = nnbench.load_task("spirals")
    trials = run(tmp_path / "a.db", arch="recorded", optimizer="recorded_sgd", schedule="recorded", epochs=1,
                 seeds=1, rec_model="on", rec_loss="on", rec_batch="on", rec_training="on")
    assert set(trials["status"]) == {"ok"}
    steps = -(-len(data.x_train) // 32)
    named = ["validate" if e == f"eval:{len(data.x_val)}" else "test" if e == f"eval:{len(data.x_test)}" else e
             for e in EVENTS]
    assert all(named.count(e) == steps for e in ("batch", "forward", "loss", "backward", "step", "after_step",
                                                 "schedule"))
    observable = [e for e in documented_order() if e != "finite"]  # a check that leaves no trace when it passes
    assert list(dict.fromkeys(named)) == observable


def test_the_report_says_which_trials_made_no_selection_and_which_losses_were_adapted(tmp_path: Path) -> None:
    run(tmp_path / "a.db", validation=["none", "split"], augmentation=["none", "mixup"], epochs=2, seeds=2)
    page = nnbench.report(store=str(tmp_path / "a.db")).html
    assert "trials with validation none made no selection" in page
    assert "the training loss of 4 trials is the loss a batch-stage component adapted" in page


def test_a_trial_says_which_weights_gave_its_numbers_when_a_training_stage_could_choose(tmp_path: Path) -> None:
    trials = run(tmp_path / "a.db", averaging=["swa", "ema"], epochs=8, seeds=1, patience=1)
    scored = {row["averaging"]: json.loads(row["training"])["scored"] for _, row in trials.iterrows()}
    assert scored["ema"] == "the training stage's"  # averaged from the first step
    stopped_early = trials[trials["averaging"] == "swa"].iloc[0]
    # SWA averages only from epoch 7 of 8: an epoch chosen before it scored the trained weights
    expected = "the training stage's" if stopped_early["best_epoch"] >= 7 else "the trained weights themselves"
    assert scored["swa"] == expected


def test_a_target_change_after_the_loss_was_adapted_is_refused_in_one_line(tmp_path: Path, nnbench_plugin: Any) -> None:
    class Late:
        @nnbench.hookimpl
        def register_kinds(self, register: Any) -> None:
            register(Kind("relabel", "relabels", "batch", "none"))

        @nnbench.hookimpl
        def register_components(self, register: Any) -> None:
            register(Component("relabel", "none", lambda context: lambda x, y: (x, y)))
            register(Component("relabel", "flip", lambda context: lambda x, y: (x, 1 - y)))

    nnbench_plugin(Late(), name="late")
    trials = run(tmp_path / "a.db", augmentation="mixup", relabel="flip", seeds=1)
    error = trials.iloc[0]["error"].strip().splitlines()[-1]
    assert "relabel 'flip' (plugin 'late', batch stage) changed the batch's targets after another" in error


def test_stacked_prelu_is_each_members_prelu_on_features_and_on_channels() -> None:
    from nnbench.training.stacking import prelu

    torch.manual_seed(0)
    members = 2
    for shape, slopes in (((members, 3, 5), 1), ((members, 3, 5), 5), ((members, 3, 4, 6), 4),
                          ((members, 3, 4, 5, 5), 4), ((members, 3, 4, 5, 5), 1)):
        x = torch.randn(shape)
        weight = torch.rand(members, slopes)
        alone = torch.stack([nn.functional.prelu(x[m], weight[m]) for m in range(members)])
        torch.testing.assert_close(prelu(x, weight), alone)
