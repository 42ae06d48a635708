"""nnbench-extras: its components conform, nnbench finds it, and a grid trains with it."""

from __future__ import annotations

import csv
import tomllib
from importlib.metadata import entry_points
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner

# Not skipped when missing: the README's test command installs the plugin, so its absence is a failure
# (pip install ./plugins/nnbench-extras).
from nnbench_extras import csv_log, plugin, regularizer
from nnbench_extras.lion import Lion
from nnbench_extras.transformer import build_transformer

import nnbench
from nnbench import ExecutorSpec
from nnbench.cli import cli
from nnbench.testing import check_component, check_executor, components_of, kinds_of

PYPROJECT = Path(__file__).parents[1] / "pyproject.toml"
SMALL_GRID = {"task": "recall", "arch": "transformer,fnn", "activation": "snake,relu", "optimizer": "lion,adam",
              "seeds": 1, "epochs": 1, "set_params": ["arch.transformer.layers=1"]}


KINDS = {kind.name: kind for kind in kinds_of(plugin)}


@pytest.mark.parametrize("spec", [s for s in components_of(plugin) if not isinstance(s, ExecutorSpec)],
                         ids=lambda spec: spec.name)
def test_every_component_conforms(spec: Any) -> None:
    check_component(spec, KINDS.get(getattr(spec, "kind", "")))


def test_the_plugin_declares_the_regularizer_kind_at_the_loss_stage() -> None:
    assert list(KINDS) == ["regularizer"]
    assert (KINDS["regularizer"].stage, KINDS["regularizer"].default) == ("loss", "none")
    names = [s.name for s in components_of(plugin) if getattr(s, "kind", None) == "regularizer"]
    assert names == ["none", "l1", "l2", "orthogonal"]


def test_each_penalty_adds_what_it_says() -> None:
    model = torch.nn.Linear(3, 2)
    with torch.no_grad():
        model.weight.copy_(torch.tensor([[1.0, -2.0, 0.0], [0.5, 0.0, 3.0]]))
        model.bias.fill_(10.0)  # biases are not penalized
    zero = lambda out, y: torch.zeros(())  # noqa: E731 - the criterion's own value is 0
    x, y = torch.zeros(1, 3), torch.zeros(1, 2)
    assert regularizer.l1(zero, model, weight=1.0)(x, y).item() == pytest.approx(6.5)
    assert regularizer.l2(zero, model, weight=1.0)(x, y).item() == pytest.approx(0.5 * (1 + 4 + 0.25 + 9))
    gram = model.weight @ model.weight.t()
    expected = (gram - torch.eye(2)).pow(2).sum().item()
    assert regularizer.orthogonal(zero, model, weight=1.0)(x, y).item() == pytest.approx(expected)
    assert regularizer.none(zero, model) is zero


def test_the_regularizer_kind_is_a_grid_axis_end_to_end(nnbench_plugin: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    nnbench_plugin(plugin, name="extras")
    store = str(tmp_path / "reg.db")
    args = ["run", "--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer", "adam", "--regularizer",
            "none,l2,orthogonal", "--set", "regularizer.l2.weight=0.01", "--seeds", "2", "--epochs", "2", "--store",
            store, "--no-report", "-q"]
    first = CliRunner().invoke(cli, args, catch_exceptions=False)
    assert "6 trials: 6 to train" in first.output and "regularizer=l2" in first.output
    assert "6 trials: 0 to train, 6 already stored" in CliRunner().invoke(cli, args, catch_exceptions=False).output

    def readable() -> None:
        exported = tmp_path / "reg.csv"
        assert CliRunner().invoke(cli, ["export", "--store", store, "-o", str(exported)]).exit_code == 0
        rows = list(csv.DictReader(exported.open()))
        assert sorted(r["regularizer"] for r in rows) == ["l2", "l2", "none", "none", "orthogonal", "orthogonal"]
        report = tmp_path / "reg.html"
        assert CliRunner().invoke(cli, ["report", "--store", store, "-o", str(report)]).exit_code == 0
        assert "<h3>regularizer</h3>" in report.read_text()

    readable()
    from nnbench.loading import plugins

    monkeypatch.setattr(plugins, "PluginManager", plugins.PluginManager.__mro__[1])  # the plugin is gone
    readable()


def test_the_entry_point_names_the_plugin_module() -> None:
    declared = tomllib.loads(PYPROJECT.read_text())["project"]["entry-points"]["nnbench"]
    assert declared == {"extras": "nnbench_extras.plugin"}
    installed = [ep for ep in entry_points(group="nnbench") if ep.name == "extras"]
    assert installed and installed[0].load() is plugin


def test_a_grid_trains_every_combination(nnbench_plugin: Any, tmp_path: Path) -> None:
    nnbench_plugin(plugin, name="extras")
    frame = nnbench.run(store=tmp_path / "results.db", **SMALL_GRID)
    assert len(frame) == 8 and set(frame["status"]) == {"ok"}
    assert set(frame["activation"]) == {"snake", "relu"} and set(frame["optimizer"]) == {"lion", "adam"}


def test_list_and_plugins_show_the_components(nnbench_plugin: Any) -> None:
    nnbench_plugin(plugin, name="extras")
    listing = CliRunner().invoke(cli, ["list"], catch_exceptions=False).output
    for name in ("snake", "lion", "transformer", "recall"):
        assert any(line.split()[:1] == [name] and "(plugin: extras, source:" in line for line in listing.splitlines())
    plugins = CliRunner().invoke(cli, ["plugins"], catch_exceptions=False).output
    section = plugins[plugins.index("extras"):]
    assert "after_epoch" in section and "register_optimizers" in section


def test_csv_log_writes_one_row_per_epoch_only_when_asked(nnbench_plugin: Any, tmp_path: Path,
                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    nnbench_plugin(plugin, name="extras")
    monkeypatch.chdir(tmp_path)
    grid = {"task": "recall", "arch": "fnn", "activation": "snake", "optimizer": "lion", "seeds": 1, "epochs": 2}
    nnbench.run(store=tmp_path / "off.db", **grid)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["off.db"]  # off by default: nothing written

    monkeypatch.setenv(csv_log.ENV_VAR, str(tmp_path / "epochs"))
    frame = nnbench.run(store=tmp_path / "on.db", **grid)
    (log,) = (tmp_path / "epochs").iterdir()
    assert log.name == f"{frame['trial_id'].iloc[0]}.csv"
    rows = list(csv.DictReader(log.open()))
    assert [row["epoch"] for row in rows] == ["1", "2"]
    assert rows[0]["activation"] == "snake" and rows[0]["optimizer"] == "lion"
    assert float(rows[-1]["metric"]) == pytest.approx(frame["metric"].iloc[0])


def test_lion_steps_by_the_sign_of_the_interpolated_momentum() -> None:
    weight = torch.tensor([1.0, -2.0, 3.0], requires_grad=True)
    optimizer = Lion([weight], lr=0.1, betas=(0.9, 0.99), weight_decay=0.5)
    weight.grad = torch.tensor([0.5, -0.1, 0.0])
    optimizer.step()
    # decay by lr * wd = 5%, then step -lr * sign(0.1 * grad) (momentum starts at zero)
    assert torch.allclose(weight.detach(), torch.tensor([0.95 - 0.1, -1.9 + 0.1, 2.85]))
    assert torch.allclose(optimizer.state[weight]["momentum"], 0.01 * torch.tensor([0.5, -0.1, 0.0]))


def test_transformer_names_a_bad_head_count() -> None:
    with pytest.raises(ValueError, match=r"d_model \(30\) must be a multiple of heads \(4\)"):
        build_transformer(nnbench.InputSpec("sequence", (5, 2)), 3, torch.nn.ReLU, d_model=30)


def test_the_pool_executor_conforms_to_the_executor_contract(nnbench_plugin: Any, tmp_path: Path) -> None:
    nnbench_plugin(plugin, name="extras")
    check_executor("pool", tmp_path)
