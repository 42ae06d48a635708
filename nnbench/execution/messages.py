"""What crosses a process or machine boundary: results as plain dicts, in-process plugins packed."""

from __future__ import annotations

import importlib
import pickle
import signal
import warnings
from collections.abc import Sequence
from dataclasses import asdict
from types import ModuleType
from typing import Any

from nnbench.contract.trial import EpochRecord, Trial, TrialResult


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


def pack_plugins(plugins: Sequence[Any]) -> list[bytes]:
    """Pack in-process plugins (objects, or ``(name, object)`` pairs keeping the names they were registered
    under) so workers load them too: modules by name, objects by value.

    Objects go through cloudpickle, so classes and functions defined in ``__main__`` or a notebook
    cell travel with their code (plain pickle would send only their names, which a worker cannot find).
    A plugin that cannot travel is named in a warning and left out of the workers.
    """
    import cloudpickle

    blobs = []
    for item in plugins:
        name, plugin = item if isinstance(item, tuple) else (None, item)
        try:
            packed = ("module", name, plugin.__name__) if isinstance(plugin, ModuleType) else ("object", name, plugin)
            blobs.append(cloudpickle.dumps(packed))
        except Exception as exc:
            warnings.warn(f"plugin {plugin!r} cannot be sent to worker processes and is not loaded there: {exc}",
                          stacklevel=2)
    return blobs


def unpack_plugins(blobs: Sequence[bytes]) -> list[tuple[str | None, Any]]:
    """The plugins :func:`pack_plugins` packed, imported or unpickled in this process, with their names."""
    plugins = []
    for blob in blobs:
        kind, name, value = pickle.loads(blob)
        plugins.append((name, importlib.import_module(value) if kind == "module" else value))
    return plugins
