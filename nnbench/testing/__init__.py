"""Testing helpers for plugin authors: a pytest fixture and conformance checks.

pytest loads this module through nnbench's ``pytest11`` entry point, so once nnbench is installed
every test can ask for the :func:`nnbench_plugin` fixture::

    def test_squareplus_in_a_grid(nnbench_plugin, tmp_path):
        nnbench_plugin(my_plugin)
        frame = nnbench.run(task="moons", activation="squareplus,relu", store=tmp_path / "r.db")

The checks (from :mod:`nnbench.testing.conformance`) raise :class:`ConformanceError` naming the component
and the promise it broke::

    @pytest.mark.parametrize("spec", components_of(my_plugin), ids=lambda s: s.name)
    def test_conformance(spec):
        check_component(spec)

An executor is checked by running grids with it (:func:`nnbench.testing.executors.check_executor`)::

    def test_my_executor(nnbench_plugin, tmp_path):
        nnbench_plugin(my_plugin)
        check_executor("my_executor", tmp_path)
"""

from __future__ import annotations

import importlib
from collections.abc import Callable
from types import ModuleType
from typing import TYPE_CHECKING, Any

import pluggy
import pytest

from nnbench.contract import hookspecs
from nnbench.contract.domain import CORE_KINDS
from nnbench.contract.specs import Kind, Spec

if TYPE_CHECKING:
    from nnbench.testing.conformance import (
        ConformanceError,
        check_activation,
        check_architecture,
        check_component,
        check_loss,
        check_optimizer,
        check_schedule,
        check_task,
    )
    from nnbench.testing.executors import ExecutorConformanceError, check_executor

__all__ = [
    "ConformanceError",
    "ExecutorConformanceError",
    "check_activation",
    "check_architecture",
    "check_component",
    "check_executor",
    "check_loss",
    "check_optimizer",
    "check_schedule",
    "check_task",
    "components_of",
    "kinds_of",
    "nnbench_plugin",
]


def __getattr__(name: str) -> Any:
    # pytest imports this module in every session of every project: torch loads with the first check.
    if name in ("ExecutorConformanceError", "check_executor"):
        return getattr(importlib.import_module("nnbench.testing.executors"), name)
    if name in __all__:
        return getattr(importlib.import_module("nnbench.testing.conformance"), name)
    raise AttributeError(f"module {__name__!r} has no attribute {name!r}")


@pytest.fixture
def nnbench_plugin(monkeypatch: pytest.MonkeyPatch) -> Callable[..., Any]:
    """Register plugins for one test; they are gone when the test ends.

    Call it with a plugin (a module or an object with hook implementations) and, optionally, the
    name it is listed under. Every plugin manager that :func:`nnbench.loading.plugins.make_plugin_manager`
    builds during the test includes it, wherever that happens (``nnbench.run``, the CLI through
    click's ``CliRunner``, the report), and it is sent to worker processes like any plugin
    registered in process. Installed third-party plugins are not loaded during the test
    (``NNBENCH_PLUGINS=none``), so the test sees the built-ins and exactly the plugins it registered.
    """
    from nnbench.loading import plugins  # pytest loads this module in every project: nnbench loads when used

    registered: list[tuple[Any, str]] = []

    class PluginManagerWithTestPlugins(plugins.PluginManager):
        def check_pending(self) -> None:
            # make_plugin_manager() calls this last, after built-ins and entry points: the test's
            # plugins come exactly where its ``extra`` plugins would.
            for plugin, name in registered:
                if not self.is_registered(plugin):
                    self.register(plugin, name=name)
            super().check_pending()

    monkeypatch.setattr(plugins, "PluginManager", PluginManagerWithTestPlugins)
    monkeypatch.setenv(plugins.ENV_VAR, "none")

    def register(plugin: Any, name: str | None = None) -> Any:
        registered.append((plugin, name or _plugin_name(plugin)))
        return plugin

    return register


def _plugin_name(plugin: Any) -> str:
    return plugin.__name__ if isinstance(plugin, ModuleType) else type(plugin).__name__


def components_of(plugin: Any) -> list[Spec]:
    """Every component ``plugin`` registers, in the order its registration hooks register them."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    specs: list[Spec] = []
    for hook_name in (*(record.hook for record in CORE_KINDS), "register_components"):
        getattr(pm.hook, hook_name)(register=specs.append)
    return specs


def kinds_of(plugin: Any) -> list[Kind]:
    """Every kind ``plugin`` declares through ``register_kinds``."""
    pm = pluggy.PluginManager(hookspecs.PROJECT)
    pm.add_hookspecs(hookspecs)
    pm.register(plugin)
    kinds: list[Kind] = []
    pm.hook.register_kinds(register=kinds.append)
    return kinds
