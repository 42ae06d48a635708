"""Plugin loading, registries and duplicate detection."""

from __future__ import annotations

import warnings
from types import SimpleNamespace
from typing import Any

import pytest
from torch import nn

import nnbench.loading.plugins as plugins
from nnbench import Activation, hookimpl
from nnbench.contract.errors import DuplicateComponentError, UnknownComponentError
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import PluginLoadWarning, make_plugin_manager


def test_builtin_catalogue_is_complete(catalogue: Any) -> None:
    assert len(catalogue.activations) >= 12
    assert len(catalogue.losses) >= 9
    assert len(catalogue.optimizers) >= 11
    assert len(catalogue.architectures) >= 5
    assert len(catalogue.tasks) >= 12
    for name in ("relu", "leaky_relu", "elu", "selu", "gelu", "silu", "mish", "softplus", "tanh", "sigmoid",
                 "hardswish", "identity"):
        assert name in catalogue.activations
    for name in ("sgd", "momentum", "nesterov", "adam", "adamw", "rmsprop", "adagrad", "adadelta", "adamax",
                 "nadam", "radam"):
        assert name in catalogue.optimizers
    assert set(catalogue.architectures) >= {"fnn", "cnn", "rnn", "lstm", "gru"}


def test_builtins_are_registered_through_the_public_hooks(catalogue: Any) -> None:
    assert catalogue.activations.plugin_of("relu") == "nnbench.builtin.activations"
    assert catalogue.tasks.plugin_of("digits") == "nnbench.builtin.tasks"


class SwishPlugin:
    @hookimpl
    def register_activations(self, register: Any) -> None:
        register(Activation("swish_test", nn.SiLU, "test activation"))


def test_in_process_plugin_adds_a_component() -> None:
    pm = make_plugin_manager(load_entry_points=False, extra=[SwishPlugin()])
    try:
        catalogue = collect_catalogue(pm)
        assert "swish_test" in catalogue.activations
        provider = catalogue.activations.plugin_of("swish_test")
        assert not provider.startswith("nnbench.builtin")
        assert isinstance(pm.get_plugin(provider), SwishPlugin)
    finally:
        for plugin in list(pm.get_plugins()):
            if isinstance(plugin, SwishPlugin):
                pm.unregister(plugin)
    assert "swish_test" not in collect_catalogue(pm).activations


def test_duplicate_name_is_an_error_naming_both_plugins() -> None:
    class Clash:
        @hookimpl
        def register_activations(self, register: Any) -> None:
            register(Activation("relu", nn.ReLU))

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Clash(), name="clashing-plugin")
    with pytest.raises(DuplicateComponentError) as info:
        collect_catalogue(pm).activations  # noqa: B018 - a registry is filled when first used
    assert "nnbench.builtin.activations" in str(info.value)
    assert "clashing-plugin" in str(info.value)


def test_misspelled_hook_fails_check_pending() -> None:
    class Typo:
        @hookimpl
        def register_activatons(self, register: Any) -> None:  # sic
            pass

    with pytest.raises(Exception, match="register_activatons"):
        make_plugin_manager(load_entry_points=False, extra=[Typo()])


def test_plugin_raising_while_registering_is_named_and_skipped() -> None:
    class Broken:
        @hookimpl
        def register_losses(self, register: Any) -> None:
            raise RuntimeError("boom")

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Broken(), name="broken-plugin")
    with pytest.warns(PluginLoadWarning, match="broken-plugin.*boom"):
        losses = collect_catalogue(pm).losses
    assert "cross_entropy" in losses


def test_registering_a_wrong_spec_type_is_named_and_skipped() -> None:
    class Wrong:
        @hookimpl
        def register_tasks(self, register: Any) -> None:
            register(Activation("not_a_task", nn.ReLU))

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Wrong(), name="wrong-plugin")
    with pytest.warns(PluginLoadWarning, match="wrong-plugin"):
        tasks = collect_catalogue(pm).tasks
    assert "not_a_task" not in tasks


class FakeEntryPoint:
    group = "nnbench"

    def __init__(self, name: str, target: Any, dist: str = "fake-dist") -> None:
        self.name, self.value, self._target = name, f"{dist}.module", target
        self.dist = SimpleNamespace(name=dist, version="1.2.3")

    def load(self) -> Any:
        if isinstance(self._target, BaseException):
            raise self._target
        return self._target


@pytest.fixture
def fake_entry_points(monkeypatch: pytest.MonkeyPatch) -> list[FakeEntryPoint]:
    points: list[FakeEntryPoint] = []
    monkeypatch.setattr(plugins, "entry_points", lambda group: list(points) if group == "nnbench" else [])
    return points


def test_entry_point_that_fails_to_import_is_named_and_the_rest_load(
    fake_entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.delenv("NNBENCH_PLUGINS", raising=False)
    fake_entry_points += [FakeEntryPoint("broken", ImportError("no module named x"), "broken-dist"),
                          FakeEntryPoint("swish", SwishPlugin())]
    with pytest.warns(PluginLoadWarning, match="'broken'.*broken-dist.*no module named x"):
        pm = make_plugin_manager()
    assert "swish_test" in collect_catalogue(pm).activations
    info = {i.name: i for i in pm.describe()}
    assert info["swish"].distribution == "fake-dist" and info["swish"].version == "1.2.3"
    assert info["swish"].hooks == ("register_activations",)


@pytest.mark.parametrize(("selection", "loaded"), [("none", False), ("", False), ("swish", True),
                                                   ("fake-dist", True), ("all", True)])
def test_environment_variable_selects_third_party_plugins(
    fake_entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch, selection: str, loaded: bool
) -> None:
    fake_entry_points.append(FakeEntryPoint("swish", SwishPlugin()))
    monkeypatch.setenv("NNBENCH_PLUGINS", selection)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        catalogue = collect_catalogue(make_plugin_manager())
    assert ("swish_test" in catalogue.activations) is loaded
    assert "relu" in catalogue.activations  # built-ins always load


def test_unknown_name_suggests_the_closest_and_lists_the_rest(catalogue: Any) -> None:
    with pytest.raises(UnknownComponentError) as info:
        catalogue.activations.get("rleu")
    message = str(info.value)
    assert "unknown activation 'rleu'" in message
    assert "did you mean 'relu'?" in message
    assert "gelu" in message and "tanh" in message


def test_registry_wildcards(catalogue: Any) -> None:
    assert set(catalogue.optimizers.names("adam*")) == {"adam", "adamw", "adamax"}


def test_entry_point_with_a_misspelled_hook_is_named_and_skipped(
    fake_entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    class Typo:
        @hookimpl
        def register_activatons(self, register: Any) -> None:  # sic
            pass

    monkeypatch.delenv("NNBENCH_PLUGINS", raising=False)
    fake_entry_points += [FakeEntryPoint("typo", Typo(), "typo-dist"), FakeEntryPoint("swish", SwishPlugin())]
    with pytest.warns(PluginLoadWarning, match="'typo' \\(typo-dist\\) was skipped.*register_activatons"):
        pm = make_plugin_manager()
    assert "swish_test" in collect_catalogue(pm).activations
    assert "typo" not in {info.name for info in pm.describe()}


def test_naming_a_plugin_that_is_not_installed_warns(fake_entry_points: list[FakeEntryPoint],
                                                     monkeypatch: pytest.MonkeyPatch) -> None:
    fake_entry_points.append(FakeEntryPoint("swish", SwishPlugin()))
    monkeypatch.setenv("NNBENCH_PLUGINS", "swish,other")
    with pytest.warns(PluginLoadWarning, match="names 'other', but no installed plugin is called that; "
                                               "installed: fake-dist, swish"):
        catalogue = collect_catalogue(make_plugin_manager())
    assert "swish_test" in catalogue.activations


@pytest.mark.parametrize("fault", [SystemExit(2), KeyboardInterrupt(), RuntimeError("boom")],
                         ids=["sys.exit", "KeyboardInterrupt", "RuntimeError"])
def test_an_entry_point_that_exits_or_interrupts_while_loading_is_skipped(
    fake_entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch, fault: BaseException
) -> None:
    monkeypatch.delenv("NNBENCH_PLUGINS", raising=False)
    fake_entry_points += [FakeEntryPoint("quitter", fault, "quitter-dist"), FakeEntryPoint("swish", SwishPlugin())]
    with pytest.warns(PluginLoadWarning, match="'quitter' .*failed to load and was skipped"):
        pm = make_plugin_manager()
    assert "swish_test" in collect_catalogue(pm).activations
    assert "quitter" not in {info.name for info in pm.describe()}


def test_ctrl_c_typed_while_plugins_load_still_stops_nnbench(
    fake_entry_points: list[FakeEntryPoint], monkeypatch: pytest.MonkeyPatch
) -> None:
    import os
    import signal
    import time

    class SlowToImport(FakeEntryPoint):
        def load(self) -> Any:
            os.kill(os.getpid(), signal.SIGINT)  # the user presses Ctrl-C during a slow import
            time.sleep(5)
            raise AssertionError("the interrupt should have stopped the import")

    monkeypatch.delenv("NNBENCH_PLUGINS", raising=False)
    fake_entry_points.append(SlowToImport("slow", None))
    with pytest.raises(KeyboardInterrupt):
        make_plugin_manager()
    assert signal.getsignal(signal.SIGINT) is signal.default_int_handler  # the handler is put back


def test_a_registration_hook_that_calls_sys_exit_is_named_and_skipped() -> None:
    class Exits:
        @hookimpl
        def register_optimizers(self, register: Any) -> None:
            raise SystemExit(1)

    pm = make_plugin_manager(load_entry_points=False)
    pm.register(Exits(), name="exiting-plugin")
    with pytest.warns(PluginLoadWarning, match=r"'exiting-plugin' raised in register_optimizers .*sys.exit\(1\)"):
        optimizers = collect_catalogue(pm).optimizers
    assert "adam" in optimizers
