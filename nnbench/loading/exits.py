"""A plugin's ``os._exit`` in nnbench's own process: named, never a silent success.

``os._exit`` ends a process at once: no ``finally`` block, no exit handler and no store transaction
runs, and an exit status of 0 tells a CI job that nothing went wrong. Nothing inside a process can
observe that call except the call itself, so while :func:`exits_guarded` is in force ``os._exit``
is replaced by a function that first looks at who called it:

- code that nnbench runs on a plugin's behalf and has named with :func:`exits_named` (a lifecycle
  hook, a plugin being imported) gets :class:`PluginExit` raised instead, which unwinds like
  Ctrl-C does: a run is marked ended, its store closed, and the command says which plugin it was;
- any other caller in this process (a component training in it) still ends the process, after one
  line naming the caller's module, and with a non-zero status where it asked for 0.

Child processes (workers, forked report sections) are never affected: the guard acts only in the
process that installed it.
"""

from __future__ import annotations

import os
import posix
import sys
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import NoReturn

_exit_process = os._exit  # the real one, whoever replaced the attribute later


class PluginExit(BaseException):  # noqa: N818 - like SystemExit, an exit, not an error
    """Plugin code called ``os._exit(code)`` where nnbench could stop it; ``where`` names the plugin
    (``plugin 'tracker' in its after_trial hook``)."""

    def __init__(self, code: int, where: str) -> None:
        super().__init__(f"{where} called os._exit({code})")
        self.code, self.where = code, where


class _Names(threading.local):
    where: str | None = None


_names = _Names()
_lock = threading.Lock()
_installs = 0
_owner = 0  # the process that installed the guard
_replaced = (os._exit, posix._exit)  # what the guard stands in for while installed


def _guarded_exit(status: int) -> NoReturn:
    code = status
    if os.getpid() != _owner:  # a child forked while the guard was in force: its exits are its own
        _exit_process(code)
    if _names.where is not None:
        raise PluginExit(code, _names.where)
    caller = sys._getframe(1).f_globals.get("__name__", "unknown code")
    try:
        sys.stderr.write(f"error: {caller} called os._exit({code}) while nnbench was running in this process; "
                         f"nnbench stops with status {code or 1}\n")
        sys.stderr.flush()
    finally:
        _exit_process(code or 1)


@contextmanager
def exits_guarded() -> Iterator[None]:
    """While this block runs, ``os._exit`` in this process goes through the guard (see the module)."""
    global _installs, _owner, _replaced
    with _lock:
        if _installs == 0:
            _owner, _replaced = os.getpid(), (os._exit, posix._exit)
            os._exit = posix._exit = _guarded_exit
        _installs += 1
    try:
        yield
    finally:
        with _lock:
            _installs -= 1
            if _installs == 0:
                os._exit, posix._exit = _replaced


@contextmanager
def exits_named(where: str) -> Iterator[None]:
    """Name the plugin code this thread runs inside this block: under :func:`exits_guarded` its
    ``os._exit`` raises :class:`PluginExit` with ``where``. Cheap: nothing is installed."""
    before = _names.where
    _names.where = where
    try:
        yield
    finally:
        _names.where = before
