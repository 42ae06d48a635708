"""Which process writes a run, and whether it is still alive.

A run records the process that writes it as ``host:pid:start`` (``start`` is the process's start
time as the kernel counts it, so a pid reused by a later process does not pass for the run's). A
run whose process is gone from this host is over, however it ended (SIGKILL, a power cut), and its
claims on trials are released. A process on another host cannot be checked from here: its runs
count as alive until they are marked finished.
"""

from __future__ import annotations

import os
import socket
from pathlib import Path


def _start_time(pid: int) -> str:
    """The process's start time in clock ticks since boot (Linux), or ``""`` where unknown."""
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return ""
    # the command name (field 2) is in parentheses and may hold spaces: split after it
    fields = stat[stat.rfind(")") + 2 :].split()
    return fields[19] if len(fields) > 19 else ""


def _is_zombie(pid: int) -> bool:
    try:
        stat = Path(f"/proc/{pid}/stat").read_text()
    except OSError:
        return False
    return stat[stat.rfind(")") + 2 :].startswith("Z")


def this_process() -> str:
    """The token of the calling process: ``host:pid:start``."""
    pid = os.getpid()
    return f"{socket.gethostname()}:{pid}:{_start_time(pid)}"


def is_alive(token: object) -> bool:
    """Whether the process ``token`` names still runs; ``True`` when that cannot be known (another
    host, or a run recorded before runs named their process)."""
    if not isinstance(token, str) or not token:
        return True
    parts = token.rsplit(":", 2)
    if len(parts) != 3:
        return True
    host, pid_text, start = parts
    if host != socket.gethostname() or not pid_text.isdigit():
        return True
    pid = int(pid_text)
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:  # another user's process exists
        pass
    if _is_zombie(pid):
        return False
    return not start or _start_time(pid) == start
