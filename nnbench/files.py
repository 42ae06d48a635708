"""Files written whole or not at all: reports, exports, saved splits, remembered verdicts.

A file a user keeps is never rewritten in place: :func:`written_whole` gives a partial file beside
it, and only once that is complete and on disk is it renamed onto the real name, in one step. A
full disk, a killed process or a library that raises half-way leaves the earlier file as it was
(and at worst a partial file, which the next writer of that name sweeps away once it is old).
"""

from __future__ import annotations

import contextlib
import os
import secrets
import time
from collections.abc import Iterator
from contextlib import contextmanager
from pathlib import Path

ABANDONED_SECONDS = 3600
"""A partial file this old belongs to a writer that was killed mid-write (a worker past its time limit)."""


@contextmanager
def written_whole(path: str | Path) -> Iterator[Path]:
    """Yield the path of a new partial file beside ``path`` to write; when the block ends without an
    error the partial file is flushed to disk and renamed onto ``path``, replacing any file there in
    one step (with that file's permissions). On an error the partial file is removed, ``path`` is
    left as it was, and the error propagates (an ``OSError`` for a full disk or a read-only folder).

    ``path`` may be a symbolic link: the file it points to is replaced, and the link stays."""
    target = Path(os.path.realpath(path))
    # A name of its own for each writer (threads of one process, or hosts sharing the folder, too);
    # created as a new file, so with the folder's usual permissions, unlike mkstemp's owner-only ones.
    partial = target.with_name(f".{target.name}.{secrets.token_hex(8)}.partial")
    try:
        with open(partial, "xb"):
            pass
        yield partial
        with open(partial, "rb+") as written:
            os.fsync(written.fileno())  # a full disk may show only here, and must, before the rename
        with contextlib.suppress(OSError):
            os.chmod(partial, os.stat(target).st_mode & 0o7777)  # the replaced file's permissions
        os.replace(partial, target)
    except BaseException:
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
        raise
    _sync_folder(target.parent)
    sweep_abandoned(target)


def write_text_whole(path: str | Path, text: str) -> None:
    """Write ``text`` (UTF-8) to ``path`` whole or not at all (see :func:`written_whole`)."""
    with written_whole(path) as partial:
        partial.write_text(text, encoding="utf-8")


def sweep_abandoned(path: Path) -> None:
    """Remove the partial files of ``path`` that writers left behind long ago."""
    limit = time.time() - ABANDONED_SECONDS
    for partial in path.parent.glob(f".{path.name}.*.partial"):
        with contextlib.suppress(OSError):  # gone already, or another writer's to remove
            if partial.stat().st_mtime < limit:
                partial.unlink()


def _sync_folder(folder: Path) -> None:
    """Make the rename itself durable where the system allows opening a folder."""
    try:
        descriptor = os.open(folder, os.O_RDONLY)
    except OSError:
        return
    try:
        os.fsync(descriptor)
    except OSError:
        pass
    finally:
        os.close(descriptor)


def unwritable_folder(folder: str | Path) -> str | None:
    """Why files cannot be created in ``folder`` (made with its parents where missing), or ``None``.

    Asked before work whose result will be written there, so that the answer comes first; nothing is
    created: the nearest folder that exists is tried with a file of its own, removed at once."""
    folder = Path(folder)
    try:
        existing = folder
        while not existing.exists():
            if existing.parent == existing:
                break
            existing = existing.parent
        if not existing.is_dir():
            return f"{existing} is a file, not a folder"
        probe = existing / f".nnbench-probe-{secrets.token_hex(8)}"
        os.close(os.open(probe, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600))
        probe.unlink()
    except OSError as exc:
        return f"{exc.filename or folder}: {exc.strerror or exc}"
    return None
