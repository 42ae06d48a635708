"""What this machine lends this process, asked without importing anything heavy (both the executors
and the report's forked sections ask it)."""

from __future__ import annotations

import os


def usable_cores() -> int:
    """The CPU cores this process may run on: its affinity where the system says (Linux), else every core."""
    try:
        return len(os.sched_getaffinity(0))
    except AttributeError:  # not on Linux
        return os.cpu_count() or 1
