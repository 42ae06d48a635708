"""The trainer's fast path: multi-tensor optimizer steps give the numbers of torch's plain loop."""

from __future__ import annotations

import math
from typing import Any

import pytest
import torch

from nnbench import Optimizer
from nnbench.contract.trial import Trial
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.training.trainer import build_model, make_optimizer, set_up, train_trial

# On CPU, torch's fused and foreach kernels compute these updates bit for bit like its
# one-tensor-at-a-time loop ...
BIT_IDENTICAL = ["sgd", "rmsprop", "adadelta", "adamax"]
# ... and these with the same formula rounded differently (last bits of float32).
ROUNDED_DIFFERENTLY = ["momentum", "nesterov", "adam", "adamw", "adagrad", "nadam", "radam"]


pytestmark = pytest.mark.usefixtures("one_thread")


def make_trial(catalogue: Any, **axes: Any) -> Trial:
    base = {"task": "moons", "arch": "fnn", "activation": "tanh", "loss": "default", "optimizer": "adam",
            "lr": "default", "seeds": 1, "epochs": 3, "batch_size": 32}
    trials, _ = expand_grid(build_grid(None, ["arch.fnn.hidden=[32,32]"], **{**base, **axes}), catalogue)
    return trials[0]


def plain_loop_curve(trial: Trial, catalogue: Any) -> list[tuple[float, float, float, float]]:
    """The trainer's loop before this change: torch's default (one tensor at a time) optimizer step."""
    setup = set_up(trial, catalogue)
    model = build_model(trial, catalogue, setup.task, setup.view)
    optimizer = setup.optimizer.factory(model.parameters(), lr=trial.lr, foreach=False,
                                        **dict(trial.params["optimizer"]))
    x, y, n = setup.x, setup.y, len(setup.x)
    shuffle = torch.Generator().manual_seed(trial.seed)
    curve = []
    for _ in range(trial.epochs):
        order = torch.randperm(n, generator=shuffle)
        total = torch.zeros(())
        for i in range(0, n, trial.batch_size):
            idx = order[i : i + trial.batch_size]
            loss = setup.criterion(model(x[idx]), y[idx])
            optimizer.zero_grad(set_to_none=True)
            loss.backward()
            optimizer.step()
            total += loss.detach() * len(idx)
        test, val = setup.evaluate(model), setup.validate(model)
        curve.append((float(total) / n, test["test_loss"], test["metric"], val["test_loss"]))
    return curve


def trainer_curve(trial: Trial, catalogue: Any) -> list[tuple[float, float, float, float]]:
    result = train_trial(trial, catalogue, test_each_epoch=True)
    assert result.status == "ok", result.error
    return [(e.train_loss, e.test_loss, e.metric, e.val_loss) for e in result.curve]


def test_every_builtin_optimizer_but_lbfgs_is_covered(catalogue: Any) -> None:
    assert sorted(BIT_IDENTICAL + ROUNDED_DIFFERENTLY + ["lbfgs"]) == sorted(catalogue.optimizers.names())


@pytest.mark.parametrize("optimizer", BIT_IDENTICAL)
def test_multi_tensor_steps_give_identical_curves(catalogue: Any, optimizer: str) -> None:
    trial = make_trial(catalogue, optimizer=optimizer)
    assert trainer_curve(trial, catalogue) == plain_loop_curve(trial, catalogue)


@pytest.mark.parametrize("optimizer", ROUNDED_DIFFERENTLY)
def test_fused_steps_differ_only_by_rounding(catalogue: Any, optimizer: str) -> None:
    trial = make_trial(catalogue, optimizer=optimizer)
    fast, plain = trainer_curve(trial, catalogue), plain_loop_curve(trial, catalogue)
    for mine, theirs in zip(fast, plain, strict=True):
        for a, b in zip(mine, theirs, strict=True):
            assert math.isclose(a, b, rel_tol=1e-5), (optimizer, fast, plain)


def test_the_fastest_path_the_optimizer_offers_is_chosen(catalogue: Any) -> None:
    params = [torch.zeros(3, requires_grad=True)]
    adam = make_optimizer(catalogue.optimizers.get("adam"), params, 1e-3, {})
    assert adam.defaults["fused"] is True
    rmsprop = make_optimizer(catalogue.optimizers.get("rmsprop"), params, 1e-3, {})
    assert rmsprop.defaults["foreach"] is True
    lbfgs = make_optimizer(catalogue.optimizers.get("lbfgs"), params, 1.0, {"max_iter": 2})
    assert "fused" not in lbfgs.defaults and "foreach" not in lbfgs.defaults


def test_a_grid_that_chooses_the_path_is_obeyed(catalogue: Any) -> None:
    adam = make_optimizer(catalogue.optimizers.get("adam"), [torch.zeros(3, requires_grad=True)], 1e-3,
                          {"foreach": False})
    assert adam.defaults["foreach"] is False and not adam.defaults["fused"]


def test_plugin_factories_without_the_keywords_or_kernels_still_work() -> None:
    params = [torch.zeros(3, requires_grad=True)]
    bare = Optimizer("bare", lambda p, lr: torch.optim.SGD(p, lr=lr), 0.1)
    assert isinstance(make_optimizer(bare, params, 0.1, {}), torch.optim.SGD)

    def no_fused_kernel(p: Any, lr: float, fused: bool | None = None, foreach: bool | None = None) -> Any:
        if fused:
            raise RuntimeError("no fused kernel for this device")
        return torch.optim.SGD(p, lr=lr, foreach=foreach)

    fallback = make_optimizer(Optimizer("partial", no_fused_kernel, 0.1), params, 0.1, {})
    assert fallback.defaults["foreach"] is True
