"""Components as Python objects: classes, functions and torch types on every axis of ``nnbench.run``,
sent to workers by value, identified by their code; the names people type; the Python API."""

from __future__ import annotations

import functools
import importlib
import inspect
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from torch import nn

import nnbench
from nnbench.analysis import frames as analysis
from nnbench.cli import cli
from nnbench.contract.errors import DuplicateComponentError, NNBenchError, UnknownComponentError
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager


class SimpleNN(nn.Module):
    """The tutorial's 2-2-1 network."""

    def __init__(self) -> None:
        super().__init__()
        self.fc1 = nn.Linear(2, 2)
        self.relu = nn.ReLU()
        self.fc2 = nn.Linear(2, 1)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.fc2(self.relu(self.fc1(x)))


def squareplus_formula(x: torch.Tensor) -> torch.Tensor:
    return 0.5 * (x + torch.sqrt(x * x + 4))


class Squareplus(nn.Module):
    """0.5 * (x + sqrt(x^2 + 4))"""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return squareplus_formula(x)


class Sized(nn.Module):
    """An architecture that takes the build arguments (and a hyper-parameter of its own)."""

    def __init__(self, input_spec: Any, outputs: int, activation: Any, width: int = 8) -> None:
        super().__init__()
        features = int(torch.tensor(input_spec.shape).prod())
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(features, width), activation(), nn.Linear(width, outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


class IgnoresActivation(nn.Module):
    def __init__(self, input_spec: Any, outputs: int, activation: Any) -> None:
        super().__init__()
        self.net = nn.Sequential(nn.Flatten(), nn.Linear(int(torch.tensor(input_spec.shape).prod()), outputs))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return self.net(x)


QUIET = {"seeds": 2, "epochs": 2, "quiet": True}


def test_objects_on_every_axis_train_next_to_names(tmp_path: Path) -> None:
    frame = nnbench.run(task="toy", arch={"simple": SimpleNN, "fnn": "fnn"}, activation=["relu", Squareplus],
                        optimizer=[torch.optim.RMSprop, "adam"], loss=nn.MSELoss, store=tmp_path / "o.db", **QUIET)
    assert set(frame["status"]) == {"ok"}
    configurations = set(zip(frame["arch"], frame["activation"], frame["optimizer"], strict=True))
    # the simple net builds its own nonlinearities: one trial per optimizer and seed, not one per activation
    assert configurations == {("simple", "none", "rmsprop"), ("simple", "none", "adam"), ("fnn", "relu", "rmsprop"),
                              ("fnn", "relu", "adam"), ("fnn", "Squareplus", "rmsprop"), ("fnn", "Squareplus", "adam")}
    assert set(frame["loss"]) == {"mse"}  # torch's own classes of the built-ins are the built-ins
    assert len(frame) == 12
    # The report names the code each result came from: a hash of each session object's source.
    versions = analysis.code_versions(frame)
    assert [tuple(row) for row in versions[["axis", "component", "trials"]].itertuples(index=False)] == [
        ("activation", "Squareplus", 4), ("arch", "simple", 4)]  # torch.optim.RMSprop is the built-in rmsprop
    assert all(code.startswith("source:") and len(code) == len("source:") + 16 for code in versions["code"])
    page = nnbench.report(store=tmp_path / "o.db").html
    overview = page[page.index('<section id="overview">'):]
    assert all(code in overview for code in versions["code"]) and "that is not built in" in overview


def test_a_plain_function_and_a_configured_module_are_activations(tmp_path: Path) -> None:
    frame = nnbench.run(task="moons", arch="fnn", activation={"swish": lambda x: x * torch.sigmoid(x),
                                                              "leaky2": nn.LeakyReLU(0.2)},
                        optimizer="adam", store=tmp_path / "f.db", **QUIET)
    assert sorted(set(frame["activation"])) == ["leaky2", "swish"] and set(frame["status"]) == {"ok"}
    torch_tanh = nnbench.run(task="moons", arch="fnn", activation=torch.tanh, optimizer=torch.optim.Adam,
                             store=tmp_path / "f.db", **QUIET)
    assert set(torch_tanh["activation"]) == {"tanh"} and set(torch_tanh["optimizer"]) == {"adam"}


def test_an_architecture_that_takes_the_build_arguments_gets_them_and_its_params(tmp_path: Path) -> None:
    frame = nnbench.run(task="digits", arch=Sized, activation="relu,tanh", optimizer="adam",
                        set_params=["arch.Sized.width=4"], store=tmp_path / "s.db", **QUIET)
    assert set(frame["activation"]) == {"relu", "tanh"} and set(frame["status"]) == {"ok"}
    assert all('"width": 4' in p for p in frame["params"])
    assert (frame["n_params"] == 64 * 4 + 4 + 4 * 10 + 10).all()


def test_an_architecture_that_never_calls_its_activation_is_trained_once(tmp_path: Path,
                                                                        capsys: pytest.CaptureFixture[str]) -> None:
    frame = nnbench.run(task="iris", arch=IgnoresActivation, activation="relu,tanh,gelu", optimizer="adam",
                        store=tmp_path / "i.db", seeds=1, epochs=1)
    assert len(frame) == 1 and frame["activation"].iloc[0] == "none"
    assert "never calls the activation it is given" in capsys.readouterr().out


MAIN_SCRIPT = """
import sys
import torch
from torch import nn
import nnbench

class SimpleNN(nn.Module):
    def __init__(self):
        super().__init__()
        self.fc1, self.fc2 = nn.Linear(2, 2), nn.Linear(2, 1)
    def forward(self, x):
        return self.fc2(torch.relu(self.fc1(x)))

class Squareplus(nn.Module):
    def forward(self, x):
        return 0.5 * (x + torch.sqrt(x * x + {constant}))

if __name__ == "__main__":
    how = {"executor": "ray"} if sys.argv[2] == "ray" else {"workers": int(sys.argv[2])}
    frame = nnbench.run(task="toy", arch=["fnn", SimpleNN], activation=["relu", Squareplus],
                        optimizer=[torch.optim.RMSprop, "sgd"], seeds=2, epochs=2, store=sys.argv[1],
                        quiet=True, **how)
    frame[["trial_id", "status", "metric"]].to_csv(sys.argv[3], index=False)
"""


def run_main(tmp_path: Path, store: str, workers: int | str, constant: int = 4) -> Any:
    import pandas as pd

    script = tmp_path / f"main_{constant}.py"
    script.write_text(MAIN_SCRIPT.replace("{constant}", str(constant)))
    out = tmp_path / f"out-{store}-{workers}-{constant}.csv"
    done = subprocess.run([sys.executable, str(script), str(tmp_path / store), str(workers), str(out)],
                          capture_output=True, text=True, timeout=300,
                          env={**os.environ, "NNBENCH_PLUGINS": "none"})
    assert done.returncode == 0, done.stderr
    return pd.read_csv(out).set_index("trial_id").sort_index()


def same_numbers(one: Any, other: Any) -> bool:
    """Equal metrics per trial: exactly where both trained a group the same way, to float rounding where
    the measurement chose stacked training in one and one by one in the other."""
    return bool(((one["metric"] - other["metric"]).abs() <= 1e-6).all())


def test_objects_of_main_travel_to_workers_by_value_with_the_same_numbers(tmp_path: Path) -> None:
    inline = run_main(tmp_path, "inline.db", 1)
    workers = run_main(tmp_path, "workers.db", 2)
    assert len(inline) == 12 and set(inline["status"]) == {"ok"}
    assert list(inline.index) == list(workers.index)
    assert same_numbers(inline, workers)


@pytest.mark.slow
def test_objects_of_main_travel_to_ray_workers_with_the_same_numbers(tmp_path: Path) -> None:
    inline = run_main(tmp_path, "inline.db", 1)
    on_ray = run_main(tmp_path, "ray.db", "ray")
    assert list(inline.index) == list(on_ray.index) and set(on_ray["status"]) == {"ok"}
    assert same_numbers(inline, on_ray)


class NeedsAnArgument(torch.optim.SGD):
    def __init__(self, params: Any, lr: float = 0.1, *, dampening_schedule: str) -> None:
        if dampening_schedule not in ("linear", "none"):
            raise ValueError(f"unknown dampening schedule {dampening_schedule!r}")
        super().__init__(params, lr=lr)


def test_an_optimizer_class_that_cannot_be_built_is_named_before_anything_is_stored(tmp_path: Path) -> None:
    grid = {"task": "moons", "arch": "fnn", "store": tmp_path / "x.db", "quiet": True, "seeds": 1, "epochs": 1}
    with pytest.raises(NNBenchError, match=r"optimizer 'NeedsAnArgument' .* requires dampening_schedule, which has "
                                           r"no default; give it as functools.partial\(NeedsAnArgument, "
                                           r"dampening_schedule=...\)"):
        nnbench.run(optimizer=NeedsAnArgument, **grid)
    with pytest.raises(NNBenchError, match="optimizer 'NeedsAnArgument' rejects its hyper-parameters "
                                           "{'dampening_schedule': 'cosine'}: ValueError: unknown dampening"):
        nnbench.run(optimizer=functools.partial(NeedsAnArgument, dampening_schedule="cosine"), **grid)
    assert not (tmp_path / "x.db").exists()


def test_editing_a_component_trains_its_trials_again_and_reuses_the_rest(tmp_path: Path) -> None:
    first = run_main(tmp_path, "edit.db", 1, constant=4)
    edited = run_main(tmp_path, "edit.db", 1, constant=9)
    same, changed = first.index.intersection(edited.index), edited.index.difference(first.index)
    assert len(same) == 8 and len(changed) == 4  # the four Squareplus trials (2 optimizers x 2 seeds)
    rows = sqlite3.connect(tmp_path / "edit.db").execute(
        "SELECT activation, COUNT(*), COUNT(DISTINCT json_extract(params, '$.code.activation')) FROM trials "
        "GROUP BY activation").fetchall()
    assert dict((a, (n, codes)) for a, n, codes in rows) == {"relu": (4, 0), "Squareplus": (8, 2), "none": (4, 0)}
    again = run_main(tmp_path, "edit.db", 1, constant=9)
    assert list(again.index) == list(edited.index)
    runs = sqlite3.connect(tmp_path / "edit.db").execute(
        "SELECT run_id, SUM(1 - reused) FROM run_trials GROUP BY run_id ORDER BY run_id").fetchall()
    assert [trained for _, trained in runs] == [12, 4, 0]


def test_builtin_components_and_installed_plugins_keep_their_identity(catalogue: Any) -> None:
    assert catalogue.activations.code_of("relu") is None and catalogue.architectures.code_of("fnn") is None


def test_a_component_registered_in_process_is_identified_by_its_source(nnbench_plugin: Any) -> None:
    class Plugin:
        @nnbench.hookimpl
        def register_activations(self, register: Any) -> None:
            register(nnbench.Activation("squareplus", Squareplus))

    nnbench_plugin(Plugin(), name="inline-plugin")
    code = collect_catalogue(make_plugin_manager()).activations.code_of("squareplus")
    assert code is not None and code.startswith("source:")


# -- names people type -------------------------------------------------------------------------------


def test_the_tutorial_names_run_from_the_command_line(tmp_path: Path) -> None:
    result = CliRunner().invoke(cli, ["run", "--task", "iris", "--activation", "ReLU,GELU", "--optimizer", "Adam,SGD",
                                      "--loss", "CrossEntropyLoss", "--arch", "fnn", "--seeds", "1", "--epochs", "1",
                                      "--store", str(tmp_path / "n.db"), "--no-report", "-q"])
    assert result.exit_code == 0, result.output
    assert "4 trials: 4 to train" in result.output
    assert "fnn/gelu/cross_entropy/adam" in result.output


@pytest.mark.parametrize(("kind", "typed", "meant"), [
    ("activation", "ReLU", "relu"), ("activation", "LeakyReLU", "leaky_relu"), ("activation", "Tanh", "tanh"),
    ("loss", "MSELoss", "mse"), ("loss", "BCEWithLogitsLoss", "bce_with_logits"), ("loss", "L1Loss", "l1"),
    ("loss", "HuberLoss", "huber"), ("loss", "NLLLoss", "nll"), ("optimizer", "RMSprop", "rmsprop"),
    ("optimizer", "AdamW", "adamw"), ("optimizer", "Adagrad", "adagrad"), ("architecture", "LSTM", "lstm"),
    ("architecture", "GRU", "gru"), ("architecture", "RNN", "rnn"),
])
def test_torch_names_resolve_to_the_builtins(catalogue: Any, kind: str, typed: str, meant: str) -> None:
    assert catalogue.registry(kind).resolve(typed) == meant


def test_softmax_is_explained_not_just_refused(catalogue: Any) -> None:
    for name in ("softmax", "Softmax", "log_softmax", "LogSoftmax"):
        with pytest.raises(UnknownComponentError, match="is an output layer, not a hidden activation.*cross_entropy"):
            catalogue.activations.get(name)


def test_two_names_that_differ_only_by_case_are_refused(nnbench_plugin: Any) -> None:
    class Clash:
        @nnbench.hookimpl
        def register_activations(self, register: Any) -> None:
            register(nnbench.Activation("ReLU", nn.ReLU))

    nnbench_plugin(Clash(), name="clash")
    with pytest.raises(DuplicateComponentError, match="names that differ only in case or underscores are one"):
        collect_catalogue(make_plugin_manager()).activations  # noqa: B018


# -- bad input -----------------------------------------------------------------------------------------


@pytest.mark.parametrize(("axes", "message"), [
    ({"activation": 3.5}, "the activation axis takes names, not 3.5"),
    ({"activation": [object()]}, "the activation axis takes names or an nn.Module subclass or instance"),
    ({"arch": torch.optim.Adam}, "class torch.optim.adam.Adam is an optimizer, not an architecture: give it as "
                                 "optimizer=Adam"),
    ({"arch": nn.Linear}, r"architecture 'Linear' \(class torch.nn.modules.linear.Linear\) takes \(in_features"),
    ({"optimizer": "adam", "loss": nn.MSELoss()}, None),
    ({"optimizer": torch.optim.Adam([torch.zeros(1, requires_grad=True)])}, "is an optimizer already built"),
    ({"optimizer": nn.ReLU}, "class torch.nn.modules.activation.ReLU is an activation, not an optimizer"),
    ({"optimizer": object}, "the optimizer axis takes names or a torch.optim.Optimizer subclass"),
    ({"activation": nn.MSELoss}, "class torch.nn.modules.loss.MSELoss is a loss, not an activation: give it as "
                                 "loss=MSELoss"),
    ({"activation": SimpleNN}, r"activation 'SimpleNN' .* cannot be applied to a tensor of hidden features"),
    ({"loss": Squareplus}, r"loss 'Squareplus' .* cannot be called as criterion\(outputs, targets\)"),
])
def test_an_object_that_cannot_be_a_component_is_one_clear_error_before_anything_is_stored(
        tmp_path: Path, axes: dict[str, Any], message: str | None) -> None:
    store = tmp_path / "bad.db"
    grid = {"task": "moons", "arch": "fnn", "activation": "relu", "optimizer": "adam", "seeds": 1, "epochs": 1,
            **axes}
    if message is None:  # a configured loss instance is accepted
        assert set(nnbench.run(store=store, quiet=True, **grid)["status"]) == {"ok"}
        return
    with pytest.raises(NNBenchError, match=message):
        nnbench.run(store=store, quiet=True, **grid)
    assert not store.exists()


def test_an_architecture_whose_output_does_not_fit_the_task_is_named_before_anything_is_stored(tmp_path: Path) -> None:
    store = tmp_path / "fit.db"
    with pytest.raises(NNBenchError, match=r"architecture 'SimpleNN' on task 'moons'.*returns \(2, 1\).*loss "
                                           r"'cross_entropy' needs \(2, 2\)"):
        nnbench.run(task="moons", arch=SimpleNN, optimizer="adam", store=store, quiet=True, seeds=1, epochs=1)
    with pytest.raises(NNBenchError, match="architecture 'SimpleNN' on task 'iris'.*fails: RuntimeError"):
        nnbench.run(task="iris", arch=SimpleNN, loss="mse", optimizer="adam", store=store, quiet=True, seeds=1,
                    epochs=1)
    assert not store.exists()
    fits = nnbench.run(task="moons", arch=SimpleNN, loss="bce_with_logits", optimizer="adam", store=store,
                       quiet=True, seeds=1, epochs=1)
    assert set(fits["status"]) == {"ok"}


def test_a_component_without_source_and_a_local_class_are_noted(tmp_path: Path,
                                                               capsys: pytest.CaptureFixture[str]) -> None:
    class Local(nn.Module):
        def forward(self, x: torch.Tensor) -> torch.Tensor:
            return torch.relu(x) - 0.1

    prompt_function = eval("lambda x: x * torch.tanh(x)", {"torch": torch})  # noqa: S307 - as typed at a prompt
    nnbench.run(task="moons", arch="fnn", activation={"local": Local, "typed": prompt_function}, optimizer="adam",
                store=tmp_path / "n.db", seeds=1, epochs=1)
    out = capsys.readouterr().out
    assert "activation 'local' is defined inside a function: it travels to worker processes by value" in out
    assert "activation 'typed' has no source to read" in out


# -- the Python API behaves like the command line -----------------------------------------------------------


def test_run_has_a_real_signature_and_docstring() -> None:
    signature = inspect.signature(nnbench.run)
    for name in ("task", "arch", "activation", "loss", "optimizer", "lr", "seeds", "epochs", "batch_size", "device",
                 "schedule", "clip", "patience", "workers", "executor", "store", "dry_run", "quiet"):
        assert name in signature.parameters
        assert f"    {name}:" in (nnbench.run.__doc__ or "")
    assert signature.parameters["workers"].default == "auto" and signature.parameters["store"].default == "nnbench.db"
    assert "nnbench.session.run_grid" not in (nnbench.run.__doc__ or "")


def test_a_dry_run_returns_the_planned_trials_and_trains_nothing(tmp_path: Path,
                                                                capsys: pytest.CaptureFixture[str]) -> None:
    store = tmp_path / "dry.db"
    planned = nnbench.run(task="moons,iris", arch="fnn,lstm", activation=["relu", Squareplus], optimizer="adam",
                          seeds=2, epochs=1, store=store, dry_run=True)
    assert not store.exists()
    assert len(planned) == 8 and set(planned["state"]) == {"to train"}
    assert {"trial_id", "task", "arch", "activation", "seed", "label"} <= set(planned.columns)
    out = capsys.readouterr().out
    assert "skipped 4 combinations" in out and "8 trials: 8 to train, 0 already stored, 4 combinations skipped" in out
    nnbench.run(task="moons", arch="fnn", activation="relu", optimizer="adam", seeds=2, epochs=1, store=store,
                quiet=True)
    again = nnbench.run(task="moons,iris", arch="fnn,lstm", activation=["relu", Squareplus], optimizer="adam",
                        seeds=2, epochs=1, store=store, dry_run=True, quiet=True)
    assert (again["state"] == "stored").sum() == 2


def test_quiet_prints_nothing_and_a_loud_run_prints_like_the_cli(tmp_path: Path,
                                                                 capsys: pytest.CaptureFixture[str]) -> None:
    nnbench.run(task="moons", arch="fnn", activation="relu", optimizer="adam", seeds=1, epochs=1,
                store=tmp_path / "q.db", quiet=True)
    quiet = capsys.readouterr()
    assert quiet.out == "" and quiet.err == ""
    nnbench.run(task="moons", arch="fnn,lstm", activation="relu", optimizer="adam", seeds=1, epochs=1,
                store=tmp_path / "q.db")
    loud = capsys.readouterr().out
    assert "skipped 1 combinations" in loud and "1 trials: 0 to train, 1 already stored" in loud
    assert "moons — test accuracy (higher is better)" in loud


def test_report_can_be_built_again_and_again_with_and_without_run_ids(tmp_path: Path) -> None:
    store = tmp_path / "r.db"
    for optimizer in ("adam", "sgd"):
        nnbench.run(task="moons", arch="fnn", activation="relu", optimizer=optimizer, seeds=1, epochs=1, store=store,
                    quiet=True)
    importlib.import_module("nnbench.reporting")  # importing the package must not shadow nnbench.report

    runs = [r[0] for r in sqlite3.connect(store).execute("SELECT run_id FROM runs ORDER BY started_at")]
    reports = [nnbench.report(store=store), nnbench.report(runs[0], store=store), nnbench.report(*runs, store=store)]
    assert all("<html" in r.html for r in reports)
    assert "2 trials" in reports[2].html and "1 trials" not in reports[0].html.split("</header>")[0][:0]
    with pytest.raises(NNBenchError, match="does not exist"):
        nnbench.report(store=tmp_path / "absent.db")
