"""Plugin loading: built-ins first, then the ``nnbench`` entry points, filtered by ``NNBENCH_PLUGINS``.

``NNBENCH_PLUGINS`` unset (or ``all``) loads every installed third-party plugin; ``none`` (or an
empty value) loads none; a comma-separated list loads only the entry points or distributions named.
"""

from __future__ import annotations

import importlib
import os
import warnings
from collections.abc import Iterable
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from nnbench.contract import hookspecs

ENTRY_POINT_GROUP = "nnbench"
ENV_VAR = "NNBENCH_PLUGINS"

BUILTIN_PLUGINS = (
    "nnbench.builtin.activations",
    "nnbench.builtin.losses",
    "nnbench.builtin.optimizers",
    "nnbench.builtin.architectures",
    "nnbench.builtin.tasks",
    "nnbench.builtin.schedules",
    "nnbench.builtin.initializers",
    "nnbench.builtin.norms",
    "nnbench.builtin.vision",
    "nnbench.builtin.devices",
    "nnbench.builtin.executors",
    "nnbench.builtin.commands",
    "nnbench.builtin.report_sections",
)


class PluginLoadWarning(UserWarning):
    """A third-party plugin could not be loaded or failed while registering; it was skipped."""


@dataclass(frozen=True)
class PluginInfo:
    """What ``nnbench plugins`` shows about one plugin."""

    name: str
    source: str  # "builtin", "entry point" or "registered"
    distribution: str
    version: str
    hooks: tuple[str, ...]


class PluginManager(pluggy.PluginManager):
    """A pluggy manager that also remembers each plugin's distribution and version."""

    def __init__(self) -> None:
        super().__init__(hookspecs.PROJECT)
        self.add_hookspecs(hookspecs)
        self.origins: dict[str, tuple[str, str, str]] = {}

    def register_builtin(self, module_name: str) -> None:
        from nnbench import __version__

        self.register(importlib.import_module(module_name), name=module_name)
        self.origins[module_name] = ("builtin", "nnbench-arena", __version__)

    def load_entry_points(self, selection: str | None) -> None:
        """Load third-party plugins; ``selection`` follows the ``NNBENCH_PLUGINS`` syntax."""
        wanted = _parse_selection(selection)
        if wanted is not None and not wanted:
            return
        found: set[str] = set()
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            version = ep.dist.version if ep.dist else "?"
            found |= {ep.name, dist}
            if wanted is not None and ep.name not in wanted and dist not in wanted:
                continue
            if self.has_plugin(ep.name):
                continue
            try:
                plugin = ep.load()
                self.register(plugin, name=ep.name)
            except Exception as exc:  # a broken plugin must not take the tool down
                warnings.warn(
                    f"plugin {ep.name!r} (distribution {dist} {version}, entry point {ep.value}) "
                    f"failed to load and was skipped: {type(exc).__name__}: {exc}",
                    PluginLoadWarning,
                    stacklevel=2,
                )
                continue
            self.origins[ep.name] = ("entry point", dist, version)
        for name in sorted((wanted or set()) - found):
            warnings.warn(f"{ENV_VAR} names {name!r}, but no installed plugin is called that; installed: "
                          f"{', '.join(sorted(found)) or 'none'}", PluginLoadWarning, stacklevel=2)

    def drop_invalid_entry_points(self) -> None:
        """Skip, with a warning, third-party plugins that implement hooks nnbench does not have (a
        misspelled hook name would otherwise stop every command)."""
        while True:
            try:
                self.check_pending()
                return
            except pluggy.PluginValidationError as exc:
                name = self.get_name(exc.plugin)
                if name is None or self.origins.get(name, ("",))[0] != "entry point":
                    raise
                warnings.warn(f"plugin {name!r} ({self.origins[name][1]}) was skipped: {exc}", PluginLoadWarning,
                              stacklevel=2)
                self.unregister(exc.plugin)
                del self.origins[name]

    def describe(self) -> list[PluginInfo]:
        infos = []
        for name, plugin in self.list_name_plugin():
            if plugin is None:
                continue
            source, dist, version = self.origins.get(name, ("registered", "", ""))
            hooks = tuple(sorted(c.name for c in self.get_hookcallers(plugin) or []))
            infos.append(PluginInfo(name, source, dist, version, hooks))
        return infos


def _parse_selection(selection: str | None) -> set[str] | None:
    if selection is None or selection.strip().lower() == "all":
        return None
    if selection.strip().lower() in ("", "none"):
        return set()
    return {s.strip() for s in selection.split(",") if s.strip()}


def make_plugin_manager(*, load_entry_points: bool = True, extra: Iterable[Any] = ()) -> PluginManager:
    """Build a plugin manager: built-ins, then entry points (unless disabled), then ``extra``.

    ``check_pending()`` runs last, so a hook implementation with a misspelled name fails here.
    """
    pm = PluginManager()
    for module_name in BUILTIN_PLUGINS:
        pm.register_builtin(module_name)
    if load_entry_points:
        pm.load_entry_points(os.environ.get(ENV_VAR))
    pm.drop_invalid_entry_points()
    for item in extra:  # a plugin, or a (name, plugin) pair
        name, plugin = item if isinstance(item, tuple) else (None, item)
        pm.register(plugin, name=name)
    pm.check_pending()
    return pm
