"""The domain declared once: every kind and axis reaches the command line, grid files, the store and the
report; a plugin's kind works end to end; stores of the previous release resume."""

from __future__ import annotations

import csv
import shutil
import sqlite3
from collections.abc import Callable
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from report_outline import outline
from torch import nn

from nnbench import Component, Kind, hookimpl
from nnbench.analysis.frames import config_axes, effect_axes
from nnbench.cli import cli
from nnbench.contract.domain import CORE_KINDS, KindError, build_domain
from nnbench.contract.trial import TRIAL_AXES
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid, load_grid_file
from nnbench.storage.store import ResultStore
from nnbench.testing import check_component

PREVIOUS_RELEASE_STORE = Path(__file__).parent / "data" / "store-0.1.0.db"
PREVIOUS_RELEASE_GRIDS = [
    ["--task", "moons,sine", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam", "--seeds", "2",
     "--epochs", "2"],
    ["--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer", "sgd", "--clip", "1", "--schedule",
     "cosine", "--patience", "2", "--seeds", "2", "--epochs", "2"],
]


def scale(model: nn.Module, factor: float = 0.5) -> None:
    with torch.no_grad():
        for parameter in model.parameters():
            parameter.mul_(factor)


class ScalerPlugin:
    """A kind of this test's own, at the model stage: weights scaled after the model is built."""

    @hookimpl
    def register_kinds(self, register: Callable[[Kind], None]) -> None:
        register(Kind("scaler", "scalers", "model", "none", "weights scaled after building"))

    @hookimpl
    def register_components(self, register: Callable[[Component], None]) -> None:
        register(Component("scaler", "none", lambda model: None, "unchanged"))
        register(Component("scaler", "half", scale, "weights halved", {"factor": 0.5}, vectorizable=True))
        register(Component("scaler", "double", scale, "weights doubled", {"factor": 2.0}, vectorizable=True))


def invoke(*args: str) -> Any:
    return CliRunner().invoke(cli, list(args), catch_exceptions=False)


# -- one declaration, every place ------------------------------------------------------------------


def test_every_axis_reaches_the_cli_the_grid_file_the_store_and_the_analysis(
        nnbench_plugin: Any, tmp_path: Path, trial_result: Callable[..., Any]) -> None:
    nnbench_plugin(ScalerPlugin(), name="scaler-plugin")
    domain = collect_catalogue(make_plugin_manager()).domain
    assert {"initializer", "norm", "scaler"} <= {ax.name for ax in domain.axes}
    help_text = invoke("run", "--help").output
    missing_flags = [ax.flag for ax in domain.axes if ax.flag not in help_text]
    assert not missing_flags, f"declared but not on the command line: {missing_flags}"

    lines = ["[grid]"]
    for ax in domain.axes:
        lines.append(f"{ax.grid_key} = {ax.default[0]!r}".replace("'", '"') if ax.count else
                     f"{ax.grid_key} = {[str(v) if isinstance(v, str) else v for v in ax.default]!r}".replace("'", '"'))
    path = tmp_path / "every-axis.toml"
    path.write_text("\n".join(lines) + "\n")
    spec = build_grid(load_grid_file(path, domain), domain=domain)
    assert all(spec[ax.name] == list(ax.default) for ax in domain.axes if not ax.count)

    with ResultStore(tmp_path / "store.db", axes=domain.axes) as store:
        columns = {row[1] for row in store._db.execute("PRAGMA table_info(trials)")}
        assert {ax.name for ax in domain.axes} <= columns, "declared but not in the store"
        store.start_run("r", {}, {}, 1, [])
        store.save_result("r", trial_result())
        frame = store.trials()
    config = config_axes(frame)
    names = {ax.name for ax in domain.axes}
    assert [ax.name for ax in domain.axes if ax.role == "config"] == [a for a in config if a in names]
    effects = effect_axes(frame)
    expected = [ax.name for ax in sorted((ax for ax in domain.axes if ax.effect), key=lambda ax: ax.effect)]
    assert effects == [*expected, "protocol"], "declared as an axis of analysis but not analysed"


def test_every_effect_axis_has_a_place_in_the_report(nnbench_plugin: Any, tmp_path: Path) -> None:
    nnbench_plugin(ScalerPlugin(), name="scaler-plugin")
    store = tmp_path / "r.db"
    assert invoke("run", "--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer", "adam",
                  "--seeds", "1", "--epochs", "1", "--store", str(store), "--no-report", "-q").exit_code == 0
    page = outline(invoke_report(store))
    assert "effects" not in page.sections  # nothing varied: the section is left out, every axis named why
    reason = page.left_out_sections()["Effect of each axis"]
    named = [part.split(" (")[0] for part in reason.removeprefix("not varied, so no effect to show: ").split("), ")]
    domain = collect_catalogue(make_plugin_manager()).domain
    assert [ax.name for ax in sorted((a for a in domain.axes if a.effect), key=lambda a: a.effect)] == named[:-1]


def invoke_report(store: Path, *args: str) -> str:
    output = store.parent / "report.html"
    result = invoke("report", "--store", str(store), "-o", str(output), *args)
    assert result.exit_code == 0, result.output
    return output.read_text()


def test_every_kind_is_listed_by_its_plural(nnbench_plugin: Any) -> None:
    nnbench_plugin(ScalerPlugin(), name="scaler-plugin")
    for record in collect_catalogue(make_plugin_manager()).domain.kinds:
        result = invoke("list", record.plural)
        assert result.exit_code == 0 and result.output.startswith(f"{record.plural} ("), record.plural
    assert "half" in invoke("list", "scalers").output
    listed = invoke("list").output  # every kind, the plugin's among them, with its components
    assert "scalers (" in listed and "half" in listed


# -- a plugin's kind, end to end ---------------------------------------------------------------------


def test_a_plugin_kind_trains_resumes_exports_and_reports_and_outlives_its_plugin(
        nnbench_plugin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    registered = ScalerPlugin()
    nnbench_plugin(registered, name="scaler-plugin")
    store = tmp_path / "kind.db"
    grid = tmp_path / "grid.toml"
    grid.write_text('[grid]\ntask = ["moons"]\narch = ["fnn"]\nactivation = ["relu", "tanh"]\noptimizer = ["adam"]\n'
                    'scaler = ["none", "half", "double"]\nseeds = 6\nepochs = 1\n\n[scaler.double]\nfactor = 3.0\n')
    first = invoke("run", str(grid), "--store", str(store), "--no-report", "-q")
    assert first.exit_code == 0, first.output
    assert "36 trials: 36 to train" in first.output and "scaler=half" in first.output
    again = invoke("run", str(grid), "--store", str(store), "--no-report", "-q")
    assert "36 trials: 0 to train, 36 already stored" in again.output
    wild = invoke("run", "--task", "moons", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam",
                  "--scaler", "all", "--set", "scaler.double.factor=3.0", "--seeds", "6", "--epochs", "1",
                  "--store", str(store), "--dry-run")
    assert "36 trials: 0 to train, 36 already stored" in wild.output  # flags and the file mean the same trials

    with ResultStore(store, readonly=True) as results:
        frame = results.trials()
    assert sorted(frame["scaler"].unique()) == ["double", "half", "none"]
    factors = {row.scaler: row.params for row in frame.itertuples()}
    assert '"factor": 3.0' in factors["double"] and "scaler" not in factors["none"]
    assert frame.groupby("scaler")["metric"].mean().nunique() == 3  # scaling the weights changed the numbers

    def reported_and_exported() -> None:
        page = outline(invoke_report(store))
        assert "scaler" in page.sections["effects"]["h3"]
        assert page.sections["effects"]["images"] >= 2
        assert "activation × scaler" in page.sections["interactions"]["h3"]
        assert "scaler" in page.sections["comparisons"]["h3"]
        assert "scaler: " in page.sections["comparisons"]["text"]  # its verdict and its evidence
        exported = tmp_path / "all.csv"
        assert invoke("export", "--all", "--store", str(store), "-o", str(exported)).exit_code == 0
        rows = list(csv.DictReader(exported.open()))
        assert len(rows) == 36 and {r["scaler"] for r in rows} == {"none", "half", "double"}

    reported_and_exported()
    from nnbench.loading import plugins

    monkeypatch.setattr(plugins, "PluginManager", plugins.PluginManager.__mro__[1])  # without the test plugin
    assert "scaler" not in {r.name for r in collect_catalogue(make_plugin_manager()).domain.kinds}
    reported_and_exported()


def test_a_component_that_does_not_fit_is_skipped_with_a_reason(catalogue: Any) -> None:
    trials, skipped = expand_grid(build_grid(None, domain=catalogue.domain, task="digits", arch="fnn,cnn,rnn,lstm",
                                             activation="relu", optimizer="adam", norm="none,batch", seeds=1,
                                             epochs=1), catalogue)
    assert {(t.arch, t.components.get("norm")) for t in trials} == {
        ("fnn", None), ("fnn", "batch"), ("cnn", None), ("cnn", "batch"), ("rnn", None), ("lstm", None)}
    reasons = {s.reason for s in skipped}
    assert reasons == {"architecture rnn takes no norm, so norm batch cannot apply; architectures that do: fnn, cnn",
                       "architecture lstm takes no norm, so norm batch cannot apply; architectures that do: fnn, cnn"}


# -- the built-in kinds ------------------------------------------------------------------------------


def model_of(catalogue: Any, arch: str = "fnn", task: str = "iris", **components: str) -> nn.Module:
    from nnbench.training.trainer import build_model, choose_view

    trials, _ = expand_grid(build_grid(None, domain=catalogue.domain, task=task, arch=arch, activation="relu",
                                       optimizer="adam", seeds=1, epochs=1, **components), catalogue)
    spec = catalogue.tasks.get(task)
    return build_model(trials[0], catalogue, spec, choose_view(spec, catalogue.architectures.get(arch).modalities))


@pytest.mark.parametrize("name", ["xavier_uniform", "xavier_normal", "kaiming_uniform", "kaiming_normal",
                                  "orthogonal", "lecun_normal"])
def test_an_initializer_redraws_every_weight_and_zeroes_every_bias(catalogue: Any, name: str) -> None:
    plain = dict(model_of(catalogue).named_parameters())
    drawn = dict(model_of(catalogue, initializer=name).named_parameters())
    twin = dict(model_of(catalogue, initializer=name).named_parameters())
    for key, value in drawn.items():
        assert torch.equal(value, twin[key])  # the trial's seed decides
        if value.dim() >= 2:
            assert not torch.equal(value, plain[key])
        else:
            assert torch.count_nonzero(value) == 0
    first = drawn["1.weight"]
    if name == "orthogonal":  # (64, 4): orthonormal columns
        assert torch.allclose(first.t() @ first, torch.eye(first.shape[1]), atol=1e-5)
    if name == "lecun_normal":
        assert first.std().item() == pytest.approx(1 / first.shape[1] ** 0.5, rel=0.15)


def test_the_default_initializer_and_no_norm_leave_the_model_as_it_was(catalogue: Any) -> None:
    for arch, task in (("fnn", "iris"), ("cnn", "digits")):
        plain = model_of(catalogue, arch, task)
        same = model_of(catalogue, arch, task, initializer="default", norm="none")
        assert [n for n, _ in plain.named_modules()] == [n for n, _ in same.named_modules()]
        assert all(torch.equal(a, b) for a, b in zip(plain.parameters(), same.parameters(), strict=True))


@pytest.mark.parametrize(("arch", "task", "norm", "layer"), [
    ("fnn", "iris", "batch", nn.BatchNorm1d), ("fnn", "iris", "layer", nn.LayerNorm),
    ("cnn", "digits", "batch", nn.BatchNorm2d), ("cnn", "digits", "layer", nn.GroupNorm),
    ("cnn", "adding", "batch", nn.BatchNorm1d), ("fnn", "iris", "group", nn.GroupNorm),
])
def test_a_norm_follows_every_hidden_layer(catalogue: Any, arch: str, task: str, norm: str, layer: type) -> None:
    model = model_of(catalogue, arch, task, norm=norm)
    found = [m for m in model.modules() if isinstance(m, layer)]
    hidden = [m for m in model.modules() if isinstance(m, nn.Linear | nn.Conv1d | nn.Conv2d)]
    assert len(found) == len(hidden) - (1 if arch == "fnn" else 2)  # not after the output layer (cnn: nor the head)


def test_the_builtin_kinds_conform_and_are_listed(catalogue: Any) -> None:
    for kind in ("initializer", "norm"):
        for name in catalogue.registry(kind):
            check_component(catalogue.registry(kind).get(name))
    listing = invoke("list", "initializers").output
    assert listing.startswith("initializers (7, plugs in at the model stage, default default)")
    assert "batch" in invoke("list", "norms").output


def test_a_builtin_kind_trains_end_to_end(tmp_path: Path) -> None:
    result = invoke("run", "--task", "iris", "--arch", "fnn", "--activation", "relu", "--optimizer", "adam",
                    "--initializer", "default,kaiming_normal", "--norm", "none,layer", "--seeds", "2", "--epochs", "2",
                    "--store", str(tmp_path / "b.db"), "--no-report", "-q")
    assert result.exit_code == 0, result.output
    assert "8 trials: 8 to train" in result.output
    with ResultStore(tmp_path / "b.db", readonly=True) as store:
        frame = store.trials()
    assert set(frame["status"]) == {"ok"}
    assert set(zip(frame["initializer"], frame["norm"], strict=True)) == {
        ("default", "none"), ("default", "layer"), ("kaiming_normal", "none"), ("kaiming_normal", "layer")}


# -- stores and trial ids of the previous release ----------------------------------------------------


def test_the_previous_release_trial_ids_are_kept(catalogue: Any) -> None:
    grid = build_grid(None, task="iris", arch="fnn", activation="relu", loss="default", optimizer="adam",
                      lr="default", seeds=1, epochs=1, batch_size=32)
    assert expand_grid(grid, catalogue)[0][0].trial_id == "1209d583771e9848"  # as nnbench 0.1.0 computed it


def test_a_store_of_the_previous_release_resumes_without_retraining_or_losing_a_row(tmp_path: Path) -> None:
    store = tmp_path / "old.db"
    shutil.copy(PREVIOUS_RELEASE_STORE, store)
    before = sqlite3.connect(store).execute("SELECT trial_id, metric FROM trials ORDER BY trial_id").fetchall()
    assert len(before) == 10
    for grid in PREVIOUS_RELEASE_GRIDS:
        result = invoke("run", *grid, "--store", str(store), "--no-report", "-q")
        assert result.exit_code == 0, result.output
        assert " 0 to train" in result.output and "0 trained" in result.output
    db = sqlite3.connect(store)
    assert db.execute("SELECT trial_id, metric FROM trials ORDER BY trial_id").fetchall() == before
    columns = {row[1] for row in db.execute("PRAGMA table_info(trials)")}
    assert {"initializer", "norm"} <= columns
    assert set(db.execute("SELECT DISTINCT initializer, norm FROM trials").fetchall()) == {("default", "none")}
    assert outline(invoke_report(store, "--all")).sections["leaderboard"]["tables"] == 2  # moons and sine


# -- declaring kinds ---------------------------------------------------------------------------------


@pytest.mark.parametrize(("kind", "message"), [
    (Kind("activation", "acts", "model", "none"), "'activation' is taken by nnbench itself"),
    (Kind("lr", "lrs", "model", "none"), "'lr' is taken by nnbench itself"),
    (Kind("scaler", "scalers", "core", "none"), "plugs in at one of the stages model, build, loss"),
    (Kind("Scaler", "scalers", "model", "none"), "lower-case letters, digits and underscores"),
    (Kind("scaler", "scalers", "model", ""), "without a default component"),
])
def test_a_kind_that_cannot_be_declared_is_named_with_its_plugin(kind: Kind, message: str) -> None:
    with pytest.raises(KindError, match=message) as info:
        build_domain([(kind, "some-plugin")])
    assert "some-plugin" in str(info.value)


def test_two_plugins_declaring_one_kind_are_both_named() -> None:
    kind = Kind("scaler", "scalers", "model", "none")
    with pytest.raises(KindError, match="'scaler' is taken by plugin 'first'"):
        build_domain([(kind, "first"), (kind, "second")])


def test_the_core_domain_is_the_trial_and_the_core_kinds() -> None:
    domain = build_domain()
    assert [ax.name for ax in domain.axes] == [ax.name for ax in TRIAL_AXES]
    assert [r.name for r in domain.kinds] == [r.name for r in CORE_KINDS]
    assert domain.kind("archs").name == "architecture" and domain.kind("Losses").name == "loss"
    with pytest.raises(KindError, match="unknown component kind 'optimisers'; did you mean 'optimizers'"):
        domain.kind("optimisers")
