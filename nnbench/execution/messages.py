"""What crosses a process or machine boundary: results as plain dicts, in-process plugins packed."""

from __future__ import annotations

import importlib
import pickle
import signal
import warnings
from collections.abc import Callable, Sequence
from dataclasses import asdict
from types import ModuleType
from typing import Any

from nnbench.contract.errors import echoed, shortened
from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.loading.plugins import PLUGIN_FAULTS, PluginLoadWarning, describe_fault, user_interrupted


def result_to_dict(result: TrialResult) -> dict[str, Any]:
    """A JSON-ready form of a result, for sending between processes and machines."""
    return {"trial": result.trial.config(), **result.summary(), "curve": [asdict(e) for e in result.curve]}


def result_from_dict(data: dict[str, Any]) -> TrialResult:
    fields = {k: v for k, v in data.items() if k not in ("trial", "curve")}
    curve = [EpochRecord(**e) for e in data["curve"]]
    return TrialResult(Trial.from_config(data["trial"]), curve=curve, **fields)


def failed_result(trial: Trial, status: str, cause: str) -> TrialResult:
    """A result for a trial that produced none of its own (its worker died or it ran out of time)."""
    return TrialResult(trial, status, error=cause)


def describe_exit(exitcode: int | None) -> str:
    """Say why a worker process ended, in words."""
    if exitcode is None:
        return "the worker process vanished"
    if exitcode < 0:
        try:
            name = signal.Signals(-exitcode).name
        except ValueError:
            name = f"signal {-exitcode}"
        hint = " (killed: possibly by the out-of-memory killer)" if -exitcode == signal.SIGKILL else ""
        return f"the worker process died from {name}{hint}"
    return f"the worker process exited with status {exitcode}"


def pack_plugins(plugins: Sequence[Any], problems: list[str] | None = None) -> list[bytes]:
    """Pack in-process plugins (objects, or ``(name, object)`` pairs keeping the names they were registered
    under) so workers load them too: modules by name, objects by value.

    Objects go through cloudpickle, so classes and functions defined in ``__main__`` or a notebook
    cell travel with their code (plain pickle would send only their names, which a worker cannot find).
    A plugin that cannot travel is left out of the workers and said why in one line: added to ``problems``
    where given (the caller decides), else in a warning.
    """
    import cloudpickle  # only where plugins are packed: a run's start, not every command

    blobs = []
    for item in plugins:
        name, plugin = item if isinstance(item, tuple) else (None, item)
        try:
            # the object is pickled on its own, so that a worker that cannot unpickle it still knows its name
            packed = (("module", name, plugin.__name__, plugin.__name__) if isinstance(plugin, ModuleType)
                      else ("object", name, cloudpickle.dumps(plugin), name or _named(plugin)))
            blobs.append(pickle.dumps(packed))
        except Exception as exc:
            for problem in _unsendable(plugin, exc, cloudpickle.dumps):
                if problems is None:
                    warnings.warn(f"{problem}; it is not loaded there", stacklevel=2)
                else:
                    problems.append(problem)
    return blobs


def _unsendable(plugin: Any, exc: Exception, dumps: Callable[[Any], bytes]) -> list[str]:
    """What cannot be sent to a worker process in ``plugin``, which failed to pickle (with ``dumps``) with ``exc``:
    each component it holds that fails alone (components given as objects), or else the plugin."""
    found = []
    specs = getattr(plugin, "specs", None)
    for kind, given in (specs.items() if isinstance(specs, dict) else ()):
        for spec in given:
            try:
                dumps(spec)
            except Exception as own:
                found.append(f"the {kind} {echoed(getattr(spec, 'name', spec))} given as an object cannot be sent "
                             f"to worker processes ({type(own).__name__}: {own})")
    return found or [f"plugin {shortened(repr(plugin))} cannot be sent to worker processes "
                     f"({type(exc).__name__}: {exc})"]


def _named(plugin: Any) -> str:
    return str(getattr(plugin, "__name__", None) or type(plugin).__name__)


def unpack_plugins(blobs: Sequence[bytes]) -> list[tuple[str | None, Any]]:
    """The plugins :func:`pack_plugins` packed, imported or unpickled in this process, with their names. One
    that cannot be loaded here is named in a :class:`~nnbench.loading.plugins.PluginLoadWarning` with its own
    error and left out, as an entry point that fails to load is."""
    plugins = []
    for blob in blobs:
        kind, name, value, label = pickle.loads(blob)
        try:
            plugins.append((name, importlib.import_module(value) if kind == "module" else pickle.loads(value)))
        except PLUGIN_FAULTS as exc:
            if user_interrupted(exc):
                raise
            warnings.warn(f"plugin {label!r} of the run's own process failed to load here and was skipped: "
                          f"{describe_fault(exc)}", PluginLoadWarning, stacklevel=2)
    return plugins
