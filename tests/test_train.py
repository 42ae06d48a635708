"""The trainer: learning, determinism, divergence, failures and every loss/head contract."""

from __future__ import annotations

import dataclasses
import math
from typing import Any

import pytest
import torch
from torch import nn

from nnbench import Architecture, hookimpl
from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.training.trainer import to_view, train_trial

# One torch thread, as the executors train: on this project's 2-core machine four times faster than two.
pytestmark = pytest.mark.usefixtures("one_thread")


def make_trial(catalogue: Any, **axes: Any) -> Trial:
    base = {"task": "moons", "arch": "fnn", "activation": "relu", "loss": "default", "optimizer": "adam",
            "lr": "default", "seeds": 1, "epochs": 5, "batch_size": 32}
    trials, _ = expand_grid(build_grid(None, **{**base, **axes}), catalogue)
    return trials[0]


def test_a_small_task_is_learned(catalogue: Any) -> None:
    result = train_trial(make_trial(catalogue, task="moons", lr="0.01", epochs=15), catalogue)
    assert result.status == "ok", result.error
    assert result.metric_name == "accuracy"
    assert result.metric > 0.85
    assert result.curve[-1].train_loss < result.curve[0].train_loss
    assert len(result.curve) == 15
    assert result.n_params == 2 * 64 + 64 + 64 * 64 + 64 + 64 * 2 + 2
    assert result.throughput > 0 and result.train_time > 0


def test_regression_reports_rmse_and_r2(catalogue: Any) -> None:
    result = train_trial(make_trial(catalogue, task="toy", lr="0.01", epochs=20), catalogue)
    assert result.status == "ok", result.error
    assert result.metric_name == "rmse" and result.metric == result.rmse
    assert result.rmse < 0.3  # targets are standardized: predicting the mean scores 1
    assert result.r2 > 0.9
    assert math.isclose(result.test_loss, result.rmse**2, rel_tol=1e-4)  # MSE loss on the same data


def test_the_same_trial_gives_identical_numbers(catalogue: Any) -> None:
    trial = make_trial(catalogue, task="digits", arch="cnn", epochs=2)
    first, second = train_trial(trial, catalogue), train_trial(trial, catalogue)
    assert [(e.train_loss, e.test_loss, e.metric) for e in first.curve] == [
        (e.train_loss, e.test_loss, e.metric) for e in second.curve
    ]
    other_seed = train_trial(Trial.from_config({**trial.config(), "seed": 1}), catalogue)
    assert other_seed.curve[0].train_loss != first.curve[0].train_loss


def test_a_non_finite_loss_stops_the_trial_as_diverged(catalogue: Any) -> None:
    result = train_trial(make_trial(catalogue, task="toy", optimizer="sgd", lr="1e6", epochs=10), catalogue)
    assert result.status == "diverged"
    assert "non-finite loss at epoch" in result.error
    assert len(result.curve) < 10


class ExplodingArchitecture:
    @hookimpl
    def register_architectures(self, register: Any) -> None:
        def build(spec: Any, outputs: int, activation: Any) -> nn.Module:
            raise RuntimeError("cannot build this model")

        register(Architecture("exploding", build, ("vector",), "always fails"))


def test_an_exception_fails_the_trial_with_its_traceback() -> None:
    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[ExplodingArchitecture()]))
    result = train_trial(make_trial(catalogue, arch="exploding"), catalogue)
    assert result.status == "failed"
    assert "Traceback" in result.error and "cannot build this model" in result.error


@pytest.mark.parametrize("loss", ["cross_entropy", "label_smoothing", "nll", "multi_margin", "bce_with_logits",
                                  "bce", "mse", "l1", "huber"])
def test_every_loss_trains_a_binary_task(catalogue: Any, loss: str) -> None:
    result = train_trial(make_trial(catalogue, task="moons", loss=loss, lr="0.01", epochs=8), catalogue)
    assert result.status == "ok", result.error
    assert result.metric > 0.8, f"{loss} reached only {result.metric}"


@pytest.mark.parametrize("loss", ["cross_entropy", "nll", "multi_margin", "mse", "huber"])
def test_multiclass_losses(catalogue: Any, loss: str) -> None:
    result = train_trial(make_trial(catalogue, task="iris", loss=loss, lr="0.01", epochs=30, batch_size=16),
                         catalogue)
    assert result.status == "ok", result.error
    assert result.metric > 0.8


@pytest.mark.parametrize("optimizer", ["sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad",
                                       "adadelta", "adamax", "nadam", "radam", "lbfgs"])
def test_every_optimizer_lowers_the_loss(catalogue: Any, optimizer: str) -> None:
    result = train_trial(make_trial(catalogue, task="moons", optimizer=optimizer, epochs=3), catalogue)
    assert result.status == "ok", result.error
    losses = [record.train_loss for record in result.curve]
    assert len(losses) == 3 and losses[2] < losses[0], losses  # the same seed gives the same curve on CPU


@pytest.mark.parametrize("arch", ["fnn", "cnn", "rnn", "lstm", "gru"])
def test_every_architecture_trains_on_digits(catalogue: Any, arch: str) -> None:
    result = train_trial(make_trial(catalogue, task="digits", arch=arch, epochs=2), catalogue)
    assert result.status == "ok", result.error
    assert result.metric > 0.3  # ten classes: chance is 0.1


@pytest.mark.parametrize("activation", ["relu", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "softplus",
                                        "tanh", "sigmoid", "hardswish", "hardtanh", "prelu", "identity"])
def test_every_activation_trains(catalogue: Any, activation: str) -> None:
    trial = make_trial(catalogue, task="spirals", activation=activation, epochs=3)
    result = train_trial(trial, catalogue)
    assert result.status == "ok", result.error
    losses = [record.train_loss for record in result.curve]
    assert len(losses) == 3 and losses[-1] < losses[0], losses  # it learns
    assert 0.0 <= result.metric <= 1.0 and result.metric_name == "accuracy"
    trained_with = type(catalogue.activations.get(activation).factory())
    from nnbench.training.trainer import build_model, choose_view

    task = catalogue.tasks.get("spirals")
    model = build_model(trial, catalogue, task, choose_view(task, catalogue.architectures.get("fnn").modalities))
    assert any(type(module) is trained_with for module in model.modules())  # the activation is the one asked for


def test_sequence_tasks_train_on_recurrent_and_convolutional_models(catalogue: Any) -> None:
    for task, arch, metric in (("adding", "lstm", "rmse"), ("sine", "cnn", "rmse"), ("parity", "gru", "accuracy")):
        result = train_trial(make_trial(catalogue, task=task, arch=arch, epochs=3), catalogue)
        assert result.status == "ok", (task, arch, result.error)
        losses = [record.train_loss for record in result.curve]
        assert len(losses) == 3 and losses[-1] < losses[0], (task, arch, losses)  # it learns from the sequences
        assert result.metric_name == metric and math.isfinite(result.metric)


def test_an_image_reads_as_a_sequence_of_rows() -> None:
    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    rows = to_view(images, "image", "sequence")
    assert rows.shape == (2, 4, 15)
    assert torch.equal(rows[1, 2], torch.cat([images[1, c, 2] for c in range(3)]))


def test_architecture_size_is_settable(catalogue: Any) -> None:
    small = train_trial(make_trial(catalogue, task="digits", arch="lstm", epochs=1), catalogue)
    trials, _ = expand_grid(build_grid(None, ["arch.lstm.hidden=16", "arch.lstm.layers=2"], task="digits",
                                       arch="lstm", activation="relu", optimizer="adam", seeds=1, epochs=1),
                            catalogue)
    big = train_trial(trials[0], catalogue)
    assert big.status == "ok" and big.n_params != small.n_params


def test_after_epoch_callback_sees_every_epoch(catalogue: Any) -> None:
    seen: list[int] = []
    train_trial(make_trial(catalogue, epochs=3), catalogue, lambda trial, record: seen.append(record.epoch))
    assert seen == [1, 2, 3]


class WrongShapeArchitecture:
    @hookimpl
    def register_architectures(self, register: Any) -> None:
        register(Architecture("wrong_shape", lambda spec, outputs, activation: nn.Linear(spec.shape[0], outputs + 3),
                              ("vector",), "one output too many, three times over"))


def test_a_component_with_the_wrong_output_shape_fails_naming_itself_and_its_plugin() -> None:
    pm_extra = WrongShapeArchitecture()
    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[pm_extra]))
    result = train_trial(make_trial(catalogue, arch="wrong_shape"), catalogue)
    assert result.status == "failed"
    plugin = catalogue.architectures.plugin_of("wrong_shape")
    assert f"architecture 'wrong_shape' (plugin '{plugin}') must return a floating tensor of shape (2, 2)" in (
        result.error)
    assert "shape (2, 5)" in result.error


class ReturnsATuple(nn.Module):
    def __init__(self, inputs: int, outputs: int) -> None:
        super().__init__()
        self.linear = nn.Linear(inputs, outputs)

    def forward(self, x: Any) -> Any:
        return self.linear(x), x  # (logits, features): not what a loss can read


def test_an_architecture_that_returns_no_tensor_is_told_what_it_returned() -> None:
    class Plugin:
        @hookimpl
        def register_architectures(self, register: Any) -> None:
            register(Architecture("pair", lambda spec, outputs, activation: ReturnsATuple(spec.shape[0], outputs),
                                  ("vector",), "logits and features"))

    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[Plugin()]))
    result = train_trial(make_trial(catalogue, arch="pair"), catalogue)
    assert result.status == "failed" and result.error.rstrip().endswith("for this batch, but returned a tuple")


def test_every_epoch_is_measured_on_validation_data_and_the_last_on_test_data(catalogue: Any) -> None:
    trial = make_trial(catalogue, task="moons", epochs=3)
    result = train_trial(trial, catalogue)
    for record in result.curve:
        assert 0 <= record.val_metric <= 1 and record.val_loss > 0
    assert [math.isnan(r.test_loss) for r in result.curve] == [True, True, False]
    assert result.val_metric == result.curve[-1].val_metric
    every = train_trial(trial, catalogue, test_each_epoch=True)
    assert all(0 <= r.metric <= 1 and r.test_loss > 0 for r in every.curve)
    assert (every.metric, every.test_loss, every.val_metric) == (result.metric, result.test_loss, result.val_metric)


def test_early_stopping_measures_test_data_where_the_final_numbers_come_from(catalogue: Any) -> None:
    trial = dataclasses.replace(make_trial(catalogue, task="spirals", lr="0.5", optimizer="sgd", epochs=12),
                                patience=2)
    lean, every = train_trial(trial, catalogue), train_trial(trial, catalogue, test_each_epoch=True)
    assert len(lean.curve) == len(every.curve)
    assert (lean.best_epoch, lean.metric, lean.test_loss) == (every.best_epoch, every.metric, every.test_loss)
    assert not math.isnan(lean.curve[lean.best_epoch - 1].test_loss)


# -- the trainer's parts, each by hand -------------------------------------------------------------


def test_inputs_flatten_for_a_vector_reader_and_other_readings_are_refused_by_name() -> None:
    from nnbench.training.trainer import choose_view

    images = torch.arange(2 * 3 * 4 * 5, dtype=torch.float32).reshape(2, 3, 4, 5)
    assert torch.equal(to_view(images, "image", "vector"), images.reshape(2, 60))
    rows = torch.arange(2 * 4 * 5, dtype=torch.float32).reshape(2, 4, 5)
    assert torch.equal(to_view(rows, "sequence", "vector"), rows.reshape(2, 20))
    with pytest.raises(ValueError, match="^cannot read vector inputs as sequence$"):
        to_view(torch.zeros(2, 6), "vector", "sequence")
    moons = collect_catalogue(make_plugin_manager(load_entry_points=False)).tasks.get("moons")
    with pytest.raises(ValueError, match=r"^task moons offers \('vector',\); the architecture reads \('image',\)$"):
        choose_view(moons, ("image",))


class Summed(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(-1)


def test_an_activation_that_changes_the_shape_fails_naming_itself_what_it_returned_and_its_plugin() -> None:
    from nnbench import Activation

    class Plugin:
        @hookimpl
        def register_activations(self, register: Any) -> None:
            register(Activation("summed", Summed, "sums its input's last dimension"))

    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[Plugin()]))
    result = train_trial(make_trial(catalogue, activation="summed"), catalogue)
    plugin = catalogue.activations.plugin_of("summed")
    assert result.status == "failed" and result.error.rstrip().endswith(
        f"activation 'summed' (plugin '{plugin}') must return a floating tensor of its input's shape (3, 4), but "
        "returned a torch.float32 tensor of shape (3,)")


def test_an_architecture_without_an_activation_is_built_without_one(catalogue: Any) -> None:
    from nnbench.training.trainer import build_model

    given: list[Any] = []

    class Plugin:
        @hookimpl
        def register_architectures(self, register: Any) -> None:
            register(Architecture("plain", lambda spec, outputs, activation: given.append(activation) or nn.Linear(
                spec.shape[0], outputs), ("vector",), "a linear map", takes_activation=False))

    own = collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[Plugin()]))
    trial = make_trial(own, arch="plain")
    build_model(trial, own, own.tasks.get("moons"), "vector")
    build_model(dataclasses.replace(trial, params={}), own, own.tasks.get("moons"), "vector")  # no arch table
    assert given == [None, None]


def test_a_log_softmax_head_normalises_each_row_without_a_warning(catalogue: Any) -> None:
    import warnings

    from nnbench.training.trainer import build_model

    trial = make_trial(catalogue, task="digits", loss="nll")
    model = build_model(trial, catalogue, catalogue.tasks.get("digits"), "vector")
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # an implicit softmax dimension warns
        out = model(torch.randn(3, 64))
    assert out.shape == (3, 10) and torch.allclose(out.exp().sum(dim=1), torch.ones(3))


def test_an_epoch_record_holds_what_was_measured_and_nan_for_what_was_not() -> None:
    from nnbench.contract.trial import TrialResult
    from nnbench.training.trainer import add_epoch

    result = TrialResult(make_trial(collect_catalogue(make_plugin_manager(load_entry_points=False))), "ok",
                         metric_name="accuracy")
    first = add_epoch(result, 1, 0.5, 0.2, {}, {"test_loss": 0.4, "metric": 0.8})
    assert math.isnan(first.test_loss) and math.isnan(first.metric) and first.accuracy is None
    assert (first.val_loss, first.val_metric) == (0.4, 0.8)
    second = add_epoch(result, 2, 0.3, 0.3, {"test_loss": 0.2, "metric": 0.9, "accuracy": 0.9}, {})
    assert math.isnan(second.val_loss) and math.isnan(second.val_metric)
    assert (second.test_loss, second.metric, second.accuracy, second.rmse) == (0.2, 0.9, 0.9, None)
    assert result.train_time == pytest.approx(0.5) and result.status == "ok"
    # Where the test split was measured, its loss is the held-out one that must be finite.
    add_epoch(result, 3, 0.3, 0.1, {"test_loss": math.inf, "metric": 0.1}, {"test_loss": 0.2, "metric": 0.9})
    assert result.status == "diverged" and result.error == "non-finite loss at epoch 3 (train 0.3, test inf)"
    # Where it was not, the validation loss is.
    unmeasured = TrialResult(result.trial, "ok", metric_name="accuracy")
    add_epoch(unmeasured, 1, 0.3, 0.1, {}, {"test_loss": math.inf, "metric": 0.1})
    assert unmeasured.status == "diverged"
    assert unmeasured.error == "non-finite loss at epoch 1 (train 0.3, validation inf)"


def test_finish_computes_throughput_from_the_training_time_and_no_memory_on_a_cpu() -> None:
    from nnbench.contract.trial import TrialResult
    from nnbench.training.trainer import add_epoch, finish

    trial = make_trial(collect_catalogue(make_plugin_manager(load_entry_points=False)))
    result = TrialResult(trial, "ok", metric_name="accuracy")
    for epoch in (1, 2, 3):
        add_epoch(result, epoch, 0.5, 0.5, {"test_loss": 0.4, "metric": 0.8}, {"test_loss": 0.4, "metric": 0.8})
    finish(result, 100, torch.device("cpu"))
    assert result.throughput == pytest.approx(200.0) and result.peak_memory is None  # 100 rows x 3 epochs / 1.5 s
    instant = TrialResult(trial, "ok", metric_name="accuracy")
    add_epoch(instant, 1, 0.5, 0.0, {"test_loss": 0.4, "metric": 0.8}, {"test_loss": 0.4, "metric": 0.8})
    assert finish(instant, 100, torch.device("cpu")).throughput is None  # no time measured: no rate


def test_early_stopping_counts_epochs_without_improvement_in_either_direction() -> None:
    from nnbench.contract.trial import EpochRecord
    from nnbench.training.trainer import EarlyStopping

    def epoch(value: float) -> EpochRecord:
        return EpochRecord(1, 0.5, math.nan, math.nan, 0.1, 0.5, value)

    never = EarlyStopping(2, higher_is_better=True)
    assert [never.update(epoch(math.nan)) for _ in range(2)] == [False, True] and never.chosen() is None
    lower = EarlyStopping(2, higher_is_better=False)
    assert lower.improves(1.0) and not lower.improves(math.inf)
    assert [lower.update(epoch(v)) for v in (1.0, 0.5, 0.7, 0.6)] == [False, False, False, True]
    assert lower.chosen() is not None and lower.chosen().val_metric == 0.5


def test_a_schedule_takes_the_trial_s_overrides(catalogue: Any) -> None:
    from nnbench.training.trainer import make_schedule

    trial = make_trial(catalogue, schedule="step")
    trial = dataclasses.replace(trial, params={**trial.params, "schedule": {"drops": 1, "gamma": 0.5}})
    optimizer = torch.optim.SGD([nn.Parameter(torch.zeros(1))], lr=1.0)
    schedule = make_schedule(trial, catalogue, optimizer, 10)
    for _ in range(10):
        optimizer.step()
        schedule.step()
    assert optimizer.param_groups[0]["lr"] == pytest.approx(0.5)  # one drop of 0.5, not two of 0.1
    bare = dataclasses.replace(trial, params={"optimizer": {}})  # no schedule table: the schedule's defaults
    make_schedule(bare, catalogue, optimizer, 10)
