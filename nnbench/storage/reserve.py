"""Space set aside beside a store while a run writes it, so that a full disk still lets the run end as stored.

On a full disk SQLite cannot write anything, not even the few pages that mark a run ``failed`` and release its
claims: the run would read as ``running`` until the next run finds its process gone. So each run sets aside
:data:`RESERVE_BYTES` in a file of its own beside the store (``nnbench.db-reserve-RUN``, allocated on disk, not
sparse) when it starts, and deletes it when it ends; when a write fails for want of space, deleting it first gives
the disk back just enough to store how the run ended. A run killed with SIGKILL leaves its file behind, and the next
run that finds the dead run deletes it.
"""

from __future__ import annotations

import errno
import os
from contextlib import suppress
from pathlib import Path

RESERVE_BYTES = 1 << 20
"""Enough for SQLite to copy the last committed trial from its log into the main file and write a run's end."""


def reserve_path(store: Path, run_id: str) -> Path:
    """Where the space set aside for run ``run_id`` of ``store`` lies."""
    return store.with_name(f"{store.name}-reserve-{run_id}")


def set_aside(store: Path, run_id: str) -> bool:
    """Allocate the reserve of run ``run_id``; ``False`` where the disk has not that much space left. Any other
    refusal (a file system that cannot allocate ahead) leaves the run without a reserve, as before there was one."""
    path = reserve_path(store, run_id)
    try:
        fd = os.open(path, os.O_WRONLY | os.O_CREAT | os.O_TRUNC, 0o600)
    except OSError as exc:
        return exc.errno not in (errno.ENOSPC, errno.EDQUOT)
    try:
        if hasattr(os, "posix_fallocate"):
            os.posix_fallocate(fd, 0, RESERVE_BYTES)
        else:  # written out, so that the blocks are taken now
            os.write(fd, bytes(RESERVE_BYTES))
    except OSError as exc:
        os.close(fd)
        give_back(store, run_id)
        return exc.errno not in (errno.ENOSPC, errno.EDQUOT)
    os.close(fd)
    return True


def give_back(store: Path, run_id: str) -> bool:
    """Delete the reserve of run ``run_id``; whether there was one."""
    with suppress(FileNotFoundError):
        reserve_path(store, run_id).unlink()
        return True
    return False
