"""The user's names are the user's: a name given to one's own object is kept even where a built-in has it, kept
apart in the store and shown as ``(yours)``; torch's own classes of the built-ins are the built-ins under any name;
names as mapping values; two objects that would share a name; optimizers with required arguments; objects of the
wrong kind refused before anything is stored."""

from __future__ import annotations

import functools
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from torch import nn

import nnbench
from nnbench.contract.errors import NNBenchError


class CNN(nn.Module):
    """A network of the user's own, named as the built-in cnn is."""

    def __init__(self, input_spec: Any, outputs: int, activation: Any) -> None:
        super().__init__()
        features = int(torch.tensor(input_spec.shape).prod())
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(features, 8), activation(), nn.Linear(8, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


def squareplus(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x + torch.sqrt(x * x + 4))


class Squareplus(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squareplus(x)


class NoDefaultRate(torch.optim.SGD):
    """SGD whose learning rate must be given."""

    def __init__(self, params: Any, lr: float, momentum: float = 0.0) -> None:
        super().__init__(params, lr=lr, momentum=momentum)


GRID = {"task": "digits", "activation": "relu", "optimizer": "adam", "seeds": 2, "epochs": 1}


def planned(tmp_path: Path, **axes: Any) -> Any:
    """The planned trials of a grid (a dry run: nothing is trained or stored)."""
    return nnbench.run(**{**GRID, **axes}, store=tmp_path / "plan.db", dry_run=True, quiet=True)


def test_a_name_given_to_ones_own_class_is_kept_apart_from_the_builtin_and_shown_as_yours(
        tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "yours.db"
    mine = nnbench.run(**{**GRID, "arch": {"cnn": CNN}}, store=store)
    out = capsys.readouterr().out
    assert "architecture 'cnn' is yours (class test_user_names.CNN)" in out
    assert "cnn (yours)/relu/cross_entropy/adam" in out  # the leaderboard
    builtin = nnbench.run(**{**GRID, "arch": "cnn"}, store=store, quiet=True)
    assert set(mine["arch"]) == {"cnn (yours)"} and set(builtin["arch"]) == {"cnn"}
    assert set(mine["status"]) == set(builtin["status"]) == {"ok"}
    assert not set(mine["trial_id"]) & set(builtin["trial_id"])  # the user's trials did not shadow the built-in's
    rows = sqlite3.connect(store).execute(
        "SELECT arch, json_extract(params, '$.code.arch'), n_params FROM trials ORDER BY 2").fetchall()
    assert {(arch, code is None) for arch, code, _ in rows} == {("cnn", True), ("cnn", False)}
    assert all(code.startswith("source:") and code.endswith(" (yours)") for _, code, _ in rows if code)
    assert len({n for _, _, n in rows}) == 2  # two different networks
    first_run = sqlite3.connect(store).execute("SELECT run_id FROM runs ORDER BY started_at").fetchone()[0]
    assert "cnn (yours)" in nnbench.report(first_run, store=store).html
    again = nnbench.run(**{**GRID, "arch": {"cnn": CNN}}, store=store, dry_run=True, quiet=True)
    assert set(again["state"]) == {"stored"} and set(again["arch"]) == {"cnn (yours)"}


def test_the_users_name_cannot_also_mean_the_builtin_in_the_same_call(tmp_path: Path) -> None:
    with pytest.raises(NNBenchError, match=r"arch has 'cnn' and gives your class test_user_names.CNN the name 'cnn'; "
                                           r"in this call that name is yours, so it cannot also mean the architecture "
                                           r"'cnn' of plugin 'nnbench.builtin.architectures': to compare the two, "
                                           r"name yours apart, e.g. arch=\['cnn', \{'my_cnn': CNN\}\]"):
        planned(tmp_path, arch=["cnn", {"cnn": CNN}])
    both = planned(tmp_path, arch=["cnn", {"my_cnn": CNN}])
    assert set(both["arch"]) == {"cnn", "my_cnn"}


@pytest.mark.parametrize("given", [torch.optim.RMSprop, {"rmsprop": torch.optim.RMSprop},
                                   {"rms": torch.optim.RMSprop}, {"RMSProp": "rmsprop"}, "RMSprop"])
def test_torchs_own_class_of_a_builtin_is_the_builtin_under_any_name(tmp_path: Path, given: Any) -> None:
    builtin = planned(tmp_path, arch="fnn", optimizer="rmsprop")
    chosen = planned(tmp_path, arch="fnn", optimizer=given)
    assert list(chosen["trial_id"]) == list(builtin["trial_id"]) and set(chosen["optimizer"]) == {"rmsprop"}


def test_a_mapping_value_may_be_a_name(tmp_path: Path, capsys: pytest.CaptureFixture[str]) -> None:
    relu = planned(tmp_path, arch="fnn", activation="relu")
    assert list(planned(tmp_path, arch="fnn", activation={"relu": "ReLU"})["trial_id"]) == list(relu["trial_id"])
    assert list(planned(tmp_path, arch={"fnn": "fnn"})["trial_id"]) == list(relu["trial_id"])
    capsys.readouterr()
    renamed = nnbench.run(**{**GRID, "arch": {"simple": "fnn"}}, store=tmp_path / "plan.db", dry_run=True)
    assert list(renamed["trial_id"]) == list(relu["trial_id"])
    assert "arch={'simple': 'fnn'} is the architecture 'fnn': its trials are stored and shown as 'fnn'" in \
        capsys.readouterr().out


def test_two_objects_that_would_share_a_name_are_one_error_naming_both(tmp_path: Path) -> None:
    with pytest.raises(NNBenchError) as caught:
        planned(tmp_path, arch="fnn", activation=[squareplus, Squareplus])
    message = str(caught.value)
    assert message == (
        "activation: function test_user_names.squareplus and class test_user_names.Squareplus would both be the "
        "activation 'Squareplus' ('squareplus' and 'Squareplus' are one name: case and underscores do not count); "
        "name them apart in a mapping, e.g. activation={'squareplus': squareplus, 'Squareplus_2': Squareplus}")
    assert "plugin" not in message and "NNBENCH_PLUGINS" not in message
    apart = planned(tmp_path, arch="fnn", activation={"squareplus": squareplus, "squareplus_module": Squareplus})
    assert set(apart["activation"]) == {"squareplus", "squareplus_module"}
    twice = planned(tmp_path, arch="fnn", activation=[Squareplus, {"Squareplus": Squareplus}])
    assert set(twice["activation"]) == {"Squareplus"}  # the same object twice is one component


def test_required_optimizer_arguments_can_be_given_and_are_part_of_the_id(tmp_path: Path) -> None:
    with pytest.raises(NNBenchError, match=r"optimizer 'NoDefaultRate' \(class test_user_names.NoDefaultRate\) has no "
                                           r"default learning rate: give the rates to try with lr=..."):
        planned(tmp_path, arch="fnn", optimizer=NoDefaultRate)
    assert not (tmp_path / "plan.db").exists()
    rates = planned(tmp_path, arch="fnn", optimizer=NoDefaultRate, lr=[0.01, 0.1])
    assert sorted(set(rates["lr"])) == [0.01, 0.1]
    own = planned(tmp_path, arch="fnn", optimizer=functools.partial(NoDefaultRate, lr=0.02))
    assert set(own["lr"]) == {0.02}
    momenta = [planned(tmp_path, arch="fnn", optimizer={"heavy": functools.partial(NoDefaultRate, lr=0.02,
                                                                                     momentum=m)})
               for m in (0.5, 0.9)]
    assert not set(momenta[0]["trial_id"]) & set(momenta[1]["trial_id"])
    trained = nnbench.run(**{**GRID, "arch": "fnn", "optimizer": NoDefaultRate, "lr": 0.01},
                          store=tmp_path / "o.db", quiet=True)
    assert set(trained["status"]) == {"ok"}


def test_an_object_of_another_kind_is_refused_before_anything_is_stored(tmp_path: Path) -> None:
    store = tmp_path / "kind.db"
    with pytest.raises(NNBenchError, match="class torch.nn.modules.loss.MSELoss is a loss, not an activation: "
                                           "give it as loss=MSELoss"):
        nnbench.run(**{**GRID, "arch": "fnn", "activation": nn.MSELoss}, store=store, quiet=True)
    with pytest.raises(NNBenchError, match="class torch.nn.modules.activation.Tanh is an activation, not an "
                                           "architecture: give it as activation=Tanh"):
        nnbench.run(**{**GRID, "arch": nn.Tanh}, store=store, quiet=True)
    assert not store.exists()


class ActivationAsModule(nn.Module):
    def __init__(self, input_spec: Any, outputs: int, activation: Any) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), activation, nn.Linear(8, outputs))


def test_an_architecture_that_uses_its_activation_factory_as_a_module_is_told_to_call_it(tmp_path: Path) -> None:
    with pytest.raises(NNBenchError, match=r"architecture 'ActivationAsModule' \(class test_user_names."
                                           r"ActivationAsModule\) uses the activation it is given as a module, but it "
                                           r"is a factory of modules: call activation\(\) for each nonlinearity"):
        nnbench.run(**{**GRID, "arch": ActivationAsModule}, store=tmp_path / "a.db", quiet=True)
    assert not (tmp_path / "a.db").exists()


SHADOWING_SCRIPT = """
import sys
import torch
from torch import nn
import nnbench

class CNN(nn.Module):
    def __init__(self, input_spec, outputs, activation):
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(64, 8), activation(), nn.Linear(8, outputs))
    def forward(self, x):
        return self.net(x)

if __name__ == "__main__":
    frame = nnbench.run(task="digits", arch={"cnn": CNN}, activation="relu,tanh", optimizer="adam", seeds=2,
                        epochs=1, store=sys.argv[1], workers=int(sys.argv[2]), quiet=True)
    frame.sort_values("trial_id")[["trial_id", "arch", "status", "n_params", "metric"]].to_csv(sys.argv[3])
"""


def test_the_users_name_is_theirs_in_worker_processes_too(tmp_path: Path) -> None:
    import pandas as pd

    script = tmp_path / "shadow.py"
    script.write_text(SHADOWING_SCRIPT)
    frames = []
    for workers in (1, 2):
        out = tmp_path / f"{workers}.csv"
        command = [sys.executable, str(script), str(tmp_path / f"{workers}.db"), str(workers), str(out)]
        done = subprocess.run(command, capture_output=True, text=True, timeout=300,
                              env={**os.environ, "NNBENCH_PLUGINS": "none"})
        assert done.returncode == 0, done.stderr
        frames.append(pd.read_csv(out))
    inline, workers = frames
    assert set(workers["arch"]) == {"cnn (yours)"} and set(workers["status"]) == {"ok"}
    assert set(workers["n_params"]) == {64 * 8 + 8 + 8 * 10 + 10}  # the user's network, not the built-in cnn
    assert list(inline["trial_id"]) == list(workers["trial_id"])
    assert ((inline["metric"] - workers["metric"]).abs() <= 1e-6).all()
