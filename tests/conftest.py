"""Shared fixtures: a loaded catalogue and a way to register an in-process plugin for one test."""

from __future__ import annotations

from collections.abc import Callable, Iterator
from typing import Any

import pytest

from nnbench.components import Catalogue
from nnbench.plugins import PluginManager, collect_catalogue, make_plugin_manager


@pytest.fixture(scope="session")
def catalogue() -> Catalogue:
    """The built-in components only (third-party entry points are not loaded)."""
    return collect_catalogue(make_plugin_manager(load_entry_points=False))


@pytest.fixture
def plugin_manager() -> PluginManager:
    return make_plugin_manager(load_entry_points=False)


@pytest.fixture
def with_plugin(monkeypatch: pytest.MonkeyPatch) -> Iterator[Callable[[Any], None]]:
    """Register plugin objects for every plugin manager made during one test, then drop them."""
    import nnbench.plugins as plugins

    extra: list[Any] = []
    original = plugins.make_plugin_manager

    def make(**kwargs: Any) -> PluginManager:
        return original(load_entry_points=False, extra=list(extra))

    import nnbench.runner as runner

    monkeypatch.setattr(plugins, "make_plugin_manager", make)
    monkeypatch.setattr(runner, "make_plugin_manager", make)
    try:
        yield extra.append
    finally:
        extra.clear()
