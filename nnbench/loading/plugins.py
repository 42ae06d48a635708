"""Plugin loading: built-ins first, then the ``nnbench`` entry points, filtered by ``NNBENCH_PLUGINS``.

``NNBENCH_PLUGINS`` unset (or ``all``) loads every installed third-party plugin; ``none`` (or an
empty value) loads none; a comma-separated list loads only the entry points or distributions named.

A plugin's faults stay the plugin's: one that fails to load (raising anything, ``SystemExit`` and a
``KeyboardInterrupt`` of its own included) is named and skipped, and a lifecycle hook that raises is
named once and not called again for the rest of the run (:class:`LifecycleHooks`). Ctrl-C typed by
the user (and a stop signal, SIGTERM or SIGHUP) still stops nnbench: :func:`watch_interrupts` tells it from a
plugin's own ``KeyboardInterrupt``.
"""

from __future__ import annotations

import contextlib
import importlib
import os
import signal
import sys
import threading
import warnings
from collections.abc import Callable, Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from importlib.metadata import entry_points
from typing import Any

import pluggy

from nnbench.contract import hookspecs
from nnbench.contract.errors import echoed
from nnbench.contract.release import VERSION
from nnbench.loading.exits import PluginExit, exits_guarded, exits_named
from nnbench.loading.import_check import import_verdicts

ENTRY_POINT_GROUP = "nnbench"
ENV_VAR = "NNBENCH_PLUGINS"

BUILTIN_PLUGINS = (
    "nnbench.builtin.defaults",
    "nnbench.builtin.activations",
    "nnbench.builtin.losses",
    "nnbench.builtin.optimizers",
    "nnbench.builtin.architectures",
    "nnbench.builtin.tasks",
    "nnbench.builtin.schedules",
    "nnbench.builtin.initializers",
    "nnbench.builtin.norms",
    "nnbench.builtin.augmentation",
    "nnbench.builtin.averaging",
    "nnbench.builtin.vision",
    "nnbench.builtin.devices",
    "nnbench.builtin.executors",
    "nnbench.builtin.commands",
    "nnbench.builtin.provenance",
    "nnbench.builtin.report_sections",
)


class PluginLoadWarning(UserWarning):
    """A third-party plugin could not be loaded or failed while registering; it was skipped."""


class PluginHookWarning(UserWarning):
    """A plugin's lifecycle hook raised; it was disabled for the rest of the run."""


PLUGIN_FAULTS: tuple[type[BaseException], ...] = (Exception, SystemExit, KeyboardInterrupt)
"""What a plugin may raise without stopping nnbench (a Ctrl-C of the user's excepted, see
:func:`watch_interrupts`)."""


IMPORT_FAULTS: tuple[type[BaseException], ...] = (*PLUGIN_FAULTS, PluginExit)
"""What a plugin may do while it is imported without stopping nnbench (``os._exit`` included)."""


STOP_SIGNALS: tuple[signal.Signals, ...] = tuple(
    getattr(signal.Signals, name) for name in ("SIGTERM", "SIGHUP") if hasattr(signal.Signals, name))
"""Signals that ask a process to end (``timeout``, ``docker stop``, a CI job cancelled, a batch scheduler, a closed
terminal): while :func:`watch_interrupts` is in force they stop nnbench as Ctrl-C does."""


class SignalStop(KeyboardInterrupt):
    """A stop signal other than SIGINT (see :data:`STOP_SIGNALS`) arrived: handled as Ctrl-C is, after which the
    process should end as the signal asked (:meth:`end_process`)."""

    def __init__(self, signum: int) -> None:
        self.signum = signum
        self.name = signal.Signals(signum).name
        super().__init__(self.name)

    def end_process(self) -> None:
        """End this process by the signal, as it would have ended had nnbench not handled it (a shell reads
        128 + its number), once what was printed is out."""
        for stream in (sys.stdout, sys.stderr):
            with contextlib.suppress(Exception):  # a stream closed or replaced: nothing left to show
                stream.flush()
        signal.signal(self.signum, signal.SIG_DFL)
        signal.raise_signal(self.signum)


class _InterruptWatch(threading.local):
    depth = 0
    typed = False  # a SIGINT (or a stop signal) arrived while watching
    certain = True  # SIGINT is delivered through our handler (or ignored), so a typed Ctrl-C is seen


_watch = _InterruptWatch()


@contextmanager
def watch_interrupts() -> Iterator[None]:
    """Within this block, :func:`user_interrupted` says whether a ``KeyboardInterrupt`` came from
    Ctrl-C (SIGINT) or from code that raised it itself. Where SIGINT has a handler of someone
    else's (a notebook's), every ``KeyboardInterrupt`` counts as the user's. A stop signal
    (:data:`STOP_SIGNALS`) whose default action would end the process raises :class:`SignalStop`
    instead, which unwinds as Ctrl-C does."""
    if _watch.depth:
        _watch.depth += 1
        try:
            yield
        finally:
            _watch.depth -= 1
        return
    installed: dict[int, Any] = {}  # signal -> the handler it had
    main = threading.current_thread() is threading.main_thread()
    previous = signal.getsignal(signal.SIGINT) if main else None
    _watch.typed, _watch.certain = False, previous in (signal.default_int_handler, signal.SIG_IGN)
    if main and previous is signal.default_int_handler:
        def typed(signum: int, frame: object) -> None:
            _watch.typed = True
            raise KeyboardInterrupt

        installed[signal.SIGINT] = previous
        signal.signal(signal.SIGINT, typed)
    elif not main:
        _watch.certain = True  # SIGINT reaches the main thread only: here every KeyboardInterrupt is code's
    if main:
        for signum in STOP_SIGNALS:
            if signal.getsignal(signum) is signal.SIG_DFL:
                installed[signum] = signal.SIG_DFL
                signal.signal(signum, _stop_signalled)
    mine = {signum: signal.getsignal(signum) for signum in installed}
    _watch.depth = 1
    try:
        yield
    finally:
        _watch.depth = 0
        for number, handler in installed.items():
            if signal.getsignal(number) is mine[number]:
                signal.signal(number, handler)


def _stop_signalled(signum: int, frame: object) -> None:
    _watch.typed = True
    raise SignalStop(signum)


def user_interrupted(exc: BaseException) -> bool:
    """Whether ``exc`` must stop nnbench: a Ctrl-C the user typed, a stop signal (or one that cannot be told
    apart)."""
    return isinstance(exc, SignalStop) or (isinstance(exc, KeyboardInterrupt) and (_watch.typed or not _watch.certain))


def plugin_name(pm: pluggy.PluginManager, plugin: Any) -> str:
    """The name ``plugin`` is registered under, or (where pluggy named it by its id, as for plugins
    sent to a worker process) its module's or class's name."""
    name = pm.get_name(plugin)
    if name and not name.isdigit():
        return name
    return str(getattr(plugin, "__name__", None) or type(plugin).__name__)


def describe_fault(exc: BaseException) -> str:
    """``ValueError: bad value``, or what a ``SystemExit`` means."""
    if isinstance(exc, PluginExit):
        return f"it called os._exit({exc.code})"
    if isinstance(exc, SystemExit):
        return f"it called sys.exit({exc.code!r})"
    if isinstance(exc, KeyboardInterrupt):
        return "it raised KeyboardInterrupt"
    return f"{type(exc).__name__}: {exc}"


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
        self.register(importlib.import_module(module_name), name=module_name)
        self.origins[module_name] = ("builtin", "nnbench-arena", VERSION)

    def load_entry_points(self, selection: str | None) -> None:
        """Load third-party plugins; ``selection`` follows the ``NNBENCH_PLUGINS`` syntax. Each is
        imported in a child process first, within a time limit (:mod:`nnbench.loading.import_check`):
        one whose import ends the process or hangs is named and skipped, like one that raises."""
        wanted = _parse_selection(selection)
        if wanted is not None and not wanted:
            return
        found: set[str] = set()
        chosen = []
        for ep in entry_points(group=ENTRY_POINT_GROUP):
            dist = ep.dist.name if ep.dist else "?"
            found |= {ep.name, dist}
            if wanted is not None and ep.name not in wanted and dist not in wanted:
                continue
            if not self.has_plugin(ep.name):
                chosen.append(ep)
        with watch_interrupts():  # a Ctrl-C typed while a child imports stops nnbench as ever
            verdicts = import_verdicts([ep for ep in chosen if _module_of(ep) not in sys.modules])
        for ep in chosen:
            where = (f"plugin {ep.name!r} (distribution {ep.dist.name if ep.dist else '?'} "
                     f"{ep.dist.version if ep.dist else '?'}, entry point {ep.value})")
            verdict = verdicts.get(ep.name)
            if verdict is not None and not verdict.safe:
                warnings.warn(f"{where} was skipped: {verdict.reason}", PluginLoadWarning, stacklevel=2)
                continue
            try:
                with watch_interrupts(), exits_guarded(), exits_named(f"plugin {ep.name!r}"):
                    plugin = ep.load()
                    self.register(plugin, name=ep.name)
            except IMPORT_FAULTS as exc:  # a broken plugin must not take the tool down
                if user_interrupted(exc):
                    raise
                warnings.warn(f"{where} failed to load and was skipped: {describe_fault(exc)}", PluginLoadWarning,
                              stacklevel=2)
                continue
            self.origins[ep.name] = ("entry point", ep.dist.name if ep.dist else "?",
                                     ep.dist.version if ep.dist else "?")
        for name in sorted((wanted or set()) - found):
            warnings.warn(f"{ENV_VAR} names {echoed(name)}, but no installed plugin is called that; installed: "
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


def _module_of(ep: Any) -> str:
    """The module an entry point imports (``pkg.mod`` of ``pkg.mod:attr``)."""
    return str(ep.value).partition(":")[0].strip()


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


class LifecycleHooks:
    """Calls the plugins' lifecycle hooks (``before_run``, ``after_epoch``, ``after_trial``,
    ``after_run``) one implementation at a time, in pluggy's order. An implementation that raises
    is named in one warning line (through ``warn``; default: a :class:`PluginHookWarning`) and not
    called again by this object: make one per run (and one per worker process). The run, its
    trials and their status are not affected; a Ctrl-C typed meanwhile still stops the run. One that
    calls ``os._exit`` where :func:`~nnbench.loading.exits.exits_guarded` is in force raises
    :class:`~nnbench.loading.exits.PluginExit` naming it, which ends the run (marked failed).
    """

    def __init__(self, pm: pluggy.PluginManager, warn: Callable[[str], None] | None = None) -> None:
        self.pm = pm
        self.warn = warn or (lambda message: warnings.warn(message, PluginHookWarning, stacklevel=4))
        self.disabled: set[tuple[str, int]] = set()

    def __call__(self, hook_name: str, **kwargs: Any) -> None:
        """Call every enabled implementation of ``hook_name`` with the arguments it takes."""
        for impl in reversed(getattr(self.pm.hook, hook_name).get_hookimpls()):
            key = (hook_name, id(impl.function))
            if key in self.disabled:
                continue
            try:
                # under exits_guarded (the command line's), an os._exit here names the plugin and ends the run
                with watch_interrupts(), exits_named(f"plugin {plugin_name(self.pm, impl.plugin)!r} in its "
                                                     f"{hook_name} hook"):
                    impl.function(**{name: kwargs[name] for name in impl.argnames})
            except PLUGIN_FAULTS as exc:
                if user_interrupted(exc):
                    raise
                self.disabled.add(key)
                name = plugin_name(self.pm, impl.plugin)
                self.warn(f"plugin {name!r} raised in {hook_name} ({describe_fault(exc)}); its {hook_name} "
                          "hook is disabled for the rest of this run, and the run goes on")
