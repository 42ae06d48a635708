"""The conformance checks of nnbench.testing: every built-in passes, broken components are named."""

from __future__ import annotations

import importlib
from typing import Any

import numpy as np
import pytest
import torch
from torch import nn

from nnbench import Activation, Architecture, Component, Kind, Loss, Optimizer, Schedule, Task, TaskData, hookimpl
from nnbench.builtin.losses import class_indices, class_outputs
from nnbench.loading.plugins import BUILTIN_PLUGINS
from nnbench.testing import (
    ConformanceError,
    check_activation,
    check_architecture,
    check_component,
    check_loss,
    check_optimizer,
    check_schedule,
    check_task,
    components_of,
)
from nnbench.testing.conformance import UNCHECKED_KINDS, core_checks

CHECKED_KINDS = (Activation, Loss, Optimizer, Architecture, Task, Schedule, Component)

BUILTIN_COMPONENTS = [
    spec
    for module in BUILTIN_PLUGINS
    for spec in components_of(importlib.import_module(module))
    # Tasks whose data must be downloaded are checked on small files in test_vision.py.
    if isinstance(spec, CHECKED_KINDS) and getattr(spec, "prepare", None) is None
]


@pytest.mark.parametrize("spec", BUILTIN_COMPONENTS, ids=lambda s: f"{type(s).__name__.lower()}-{s.name}")
def test_every_builtin_component_conforms(spec: Any) -> None:
    check_component(spec)


def test_components_of_lists_what_a_plugin_registers() -> None:
    class Plugin:
        @hookimpl
        def register_activations(self, register: Any) -> None:
            register(Activation("a1", nn.ReLU))

        @hookimpl
        def register_optimizers(self, register: Any) -> None:
            register(Optimizer("o1", torch.optim.SGD, 0.1))

    assert [s.name for s in components_of(Plugin())] == ["a1", "o1"]


# -- broken components are caught and named --------------------------------------------------------


class Summing(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x.sum(dim=-1)


class Detaching(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return torch.relu(x).detach()


class Step(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return (x > 0).float() + 0 * x


class ScaledByMax(nn.Module):
    """Reads a value out of the tensor, which torch.func.vmap cannot do."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * float(x.detach().abs().max())


SHARED = nn.ReLU()


@pytest.mark.parametrize(("spec", "message"), [
    (Activation("summing", Summing), "must keep its input's shape"),
    (Activation("detaching", Detaching), "is not differentiable"),
    (Activation("step", Step), "zero gradient everywhere"),
    (Activation("shared", lambda: SHARED), "fresh module"),
    (Activation("not_a_module", lambda: torch.relu), "must return an nn.Module"),
    (Activation("scaled_by_max", ScaledByMax, vectorizable=True), "declared vectorizable but fails under"),
], ids=lambda v: v.name if isinstance(v, Activation) else "")
def test_broken_activation_is_named(spec: Activation, message: str) -> None:
    with pytest.raises(ConformanceError, match=f"activation '{spec.name}' .*{message}"):
        check_activation(spec)


@pytest.mark.parametrize(("spec", "message"), [
    (Loss("per_sample", lambda: nn.CrossEntropyLoss(reduction="none"), frozenset({"multiclass"}), class_outputs,
          class_indices), "must return a floating scalar on a multiclass task"),
    (Loss("claims_regression", nn.CrossEntropyLoss, frozenset({"regression"}), class_outputs, class_indices),
     "regression task"),
    (Loss("no_kinds", nn.MSELoss, frozenset(), class_outputs, class_indices), "non-empty subset"),
])
def test_broken_loss_is_named(spec: Loss, message: str) -> None:
    with pytest.raises(ConformanceError, match=f"loss '{spec.name}' .*{message}"):
        check_loss(spec)


class NormalizedSGD(torch.optim.Optimizer):
    """Steps along the gradient scaled by its global norm: couples every entry of a parameter."""

    def __init__(self, params: Any, lr: float) -> None:
        super().__init__(params, {"lr": lr})

    @torch.no_grad()
    def step(self, closure: Any = None) -> None:
        for group in self.param_groups:
            for p in group["params"]:
                p -= group["lr"] * p.grad / p.grad.norm()


@pytest.mark.parametrize(("spec", "message"), [
    (Optimizer("ascent", lambda p, lr: torch.optim.SGD(p, lr=lr, maximize=True), 0.05), "did not lower a quadratic"),
    (Optimizer("frozen", lambda p, lr: torch.optim.SGD(p, lr=0.0), 0.05), "did not lower a quadratic"),
    (Optimizer("exploding", torch.optim.SGD, 1e6), "non-finite parameters"),
    (Optimizer("coupled", NormalizedSGD, 0.05, vectorizable=True), "not element-wise"),
    (Optimizer("bad_params", torch.optim.SGD, 0.05, params={"momentun": 0.9}), "when built"),
])
def test_broken_optimizer_is_named(spec: Optimizer, message: str) -> None:
    with pytest.raises(ConformanceError, match=f"optimizer '{spec.name}' .*{message}"):
        check_optimizer(spec)


def squeezing(spec: Any, outputs: int, activation: Any) -> nn.Module:
    return nn.Sequential(nn.Flatten(), nn.Linear(int(np.prod(spec.shape)), outputs), activation(), nn.Flatten(0))


def numpy_seeded(spec: Any, outputs: int, activation: Any) -> nn.Module:
    layer = nn.Linear(int(np.prod(spec.shape)), outputs)
    with torch.no_grad():
        layer.weight.copy_(torch.as_tensor(np.random.normal(size=layer.weight.shape)))
    return nn.Sequential(nn.Flatten(), layer)


def vectors_only(spec: Any, outputs: int, activation: Any) -> nn.Module:
    return nn.Linear(spec.shape[0], outputs)


@pytest.mark.parametrize(("spec", "message"), [
    (Architecture("squeezing", squeezing, ("vector",)), r"must map a batch of 4 to a floating \(4, 1\) tensor"),
    (Architecture("numpy_seeded", numpy_seeded, ("vector",)), "different models from the same seed"),
    (Architecture("claims_images", vectors_only, ("vector", "image")), "raised RuntimeError for image inputs"),
])
def test_broken_architecture_is_named(spec: Architecture, message: str) -> None:
    with pytest.raises(ConformanceError, match=f"architecture '{spec.name}' .*{message}"):
        check_architecture(spec)


def make_data(x: torch.Tensor, y: torch.Tensor, val: slice, test: slice) -> TaskData:
    return TaskData(x[:60], y[:60], x[val], y[val], x[test], y[test])


X = torch.randn(100, 3, generator=torch.Generator().manual_seed(0))
Y = torch.arange(100) % 2


def binary_task(name: str, load: Any) -> Task:
    return Task(name, "binary", "vector", (3,), load, num_classes=2)


@pytest.mark.parametrize(("spec", "message"), [
    (binary_task("good", lambda: make_data(X, Y, slice(60, 80), slice(80, 100))), None),
    (binary_task("leaky", lambda: make_data(X, Y, slice(40, 60), slice(80, 100))), "splits overlap"),
    (binary_task("float64", lambda: make_data(X.double(), Y, slice(60, 80), slice(80, 100))), "float32"),
    (binary_task("labels", lambda: make_data(X, Y + 1, slice(60, 80), slice(80, 100))), r"class indices in \[0, 2\)"),
    (binary_task("empty", lambda: make_data(X, Y, slice(60, 60), slice(80, 100))), "empty val split"),
    (binary_task("random", lambda: make_data(torch.randn(100, 3), Y, slice(60, 80), slice(80, 100))),
     "not deterministic"),
    (Task("rows", "binary", "vector", (3,), lambda: make_data(X, Y, slice(60, 80), slice(80, 100)), num_classes=2,
          views=("sequence",)), "declares the view 'sequence'"),
], ids=lambda v: v.name if isinstance(v, Task) else "")
def test_task_check(spec: Task, message: str | None) -> None:
    if message is None:
        check_task(spec)
        return
    with pytest.raises(ConformanceError, match=f"task '{spec.name}' .*{message}"):
        check_task(spec)


def test_repeated_rows_in_the_data_are_not_a_leak() -> None:
    # Four distinct rows repeated 25 times: every split shares rows with every other, as it must.
    x = torch.arange(4.0).repeat(25).reshape(100, 1).expand(100, 3).contiguous()
    check_task(binary_task("repeats", lambda: make_data(x, Y, slice(60, 80), slice(80, 100))))


# -- the nnbench_plugin fixture, run by pytest itself ----------------------------------------------

INNER_TESTS = """
import torch
import nnbench
from click.testing import CliRunner
from nnbench.cli import cli
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager


class Plugin:
    @nnbench.hookimpl
    def register_activations(self, register):
        register(nnbench.Activation("fixture_act", torch.nn.ReLU, "from the fixture"))


def test_every_plugin_manager_sees_it(nnbench_plugin):
    nnbench_plugin(Plugin(), name="fixture-plugin")
    assert collect_catalogue(make_plugin_manager()).activations.plugin_of("fixture_act") == "fixture-plugin"
    assert "fixture_act" in collect_catalogue(make_plugin_manager(load_entry_points=False)).activations
    listing = CliRunner().invoke(cli, ["list", "activations"]).output
    assert "fixture_act" in listing and "fixture-plugin" in listing


def test_it_is_gone_after_the_test():
    assert "fixture_act" not in collect_catalogue(make_plugin_manager()).activations
"""


def test_fixture_registers_for_one_test_only(pytester: pytest.Pytester) -> None:
    pytester.makepyfile(test_inner=INNER_TESTS)
    pytester.runpytest_inprocess("-p", "no:cacheprovider").assert_outcomes(passed=2)


# -- every kind has a check -------------------------------------------------------------------------


def test_every_core_kind_has_a_check_or_a_reason(catalogue: Any) -> None:
    core = [r.name for r in catalogue.domain.kinds if r.stage == "core"]
    assert sorted(core) == sorted([*core_checks(), *UNCHECKED_KINDS])


def test_the_builtin_plugin_kinds_are_checked(catalogue: Any) -> None:
    checked = {(s.kind, s.name) for s in BUILTIN_COMPONENTS if isinstance(s, Component)}
    for record in catalogue.domain.plugin_kinds:
        assert {(record.name, n) for n in catalogue.registry(record.name)} <= checked


def test_a_schedule_that_goes_negative_is_named() -> None:
    def wild(optimizer: Any, total_steps: int) -> Any:
        return torch.optim.lr_scheduler.LambdaLR(optimizer, lambda step: 1.0 - step / 10)

    with pytest.raises(ConformanceError, match="schedule 'wild' must keep the rate finite and >= 0"):
        check_schedule(Schedule("wild", wild))


KIND_AT = {stage: Kind(f"probe_{stage}", f"probe_{stage}s", stage, "none") for stage in ("model", "build", "loss")}


def test_a_model_stage_component_that_breaks_the_output_is_named() -> None:
    def truncate(model: nn.Module) -> nn.Module:
        return nn.Sequential(model, nn.Linear(3, 2))

    with pytest.raises(ConformanceError, match="probe_model 'truncate' must leave a model that maps a batch of 4 to"):
        check_component(Component("probe_model", "truncate", truncate), KIND_AT["model"])


def test_a_model_stage_component_with_its_own_randomness_is_named() -> None:
    generator = np.random.default_rng()

    def noisy(model: nn.Module) -> None:
        with torch.no_grad():
            for p in model.parameters():
                p.add_(float(generator.normal()))

    with pytest.raises(ConformanceError, match="gives different models for the same seed"):
        check_component(Component("probe_model", "noisy", noisy), KIND_AT["model"])


def test_a_loss_stage_component_without_gradient_is_named() -> None:
    def detached(criterion: Any, model: nn.Module) -> Any:
        return lambda out, y: criterion(out, y).detach() * 0 + torch.tensor(1.0, requires_grad=True)

    with pytest.raises(ConformanceError, match="probe_loss 'detached' gives the model's weights no finite"):
        check_component(Component("probe_loss", "detached", detached), KIND_AT["loss"])


def test_a_component_of_an_unknown_kind_asks_for_its_declaration() -> None:
    with pytest.raises(TypeError, match="no loaded plugin declares the kind 'nowhere'"):
        check_component(Component("nowhere", "x", lambda model: None))
