"""Built-in tasks' splits kept on disk, so that a run reads them instead of making them again.

Making a split imports scikit-learn (its loaders and ``train_test_split``), which costs a process
about 1.5 s, more than training a small grid does; every worker pays it again. A split made once is
therefore saved under ``<data folder>/splits/`` (see :func:`~nnbench.builtin.data_folder.data_root`)
as an uncompressed ``.npz`` file, and later processes read it in milliseconds.

A file is named by its task and a digest of everything that decides its contents: the source of the
module that makes the split, and the versions of numpy and scikit-learn. Editing the loader or
upgrading either library therefore makes a new file instead of reading a stale one. A file is
written under a temporary name and renamed, so a reader never sees half of one; a file that cannot
be read (damaged, truncated, from another format) is made again and replaced. A folder that cannot
be written to costs speed only: the split is made in memory as before. Deleting the folder is safe.
"""

from __future__ import annotations

import contextlib
import hashlib
import os
import sys
import zipfile
from collections.abc import Callable
from dataclasses import fields
from functools import cache, wraps
from importlib import metadata
from pathlib import Path

import numpy as np
import torch

from nnbench.builtin.data_folder import data_root
from nnbench.contract.specs import TaskData

FORMAT = 1
"""Bumped when the layout of a saved split changes, so that older files are not read."""

FIELDS = tuple(field.name for field in fields(TaskData))
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def split_folder() -> Path:
    """The folder saved splits live in."""
    return data_root() / "splits"


def cached_split(make: Callable[[], TaskData]) -> Callable[[], TaskData]:
    """Wrap a task's ``load`` (no arguments, deterministic): remembered in memory for the process,
    and read from disk when another process has already made it."""

    @cache
    @wraps(make)
    def load() -> TaskData:
        path = split_folder() / f"{make.__name__}-{_digest(make.__module__)}.npz"
        saved = _read(path)
        if saved is not None:
            return saved
        data = make()
        _write(path, data)
        return data

    return load


@cache
def _digest(module: str) -> str:
    source = Path(sys.modules[module].__file__ or "").read_bytes()
    versions = f"{FORMAT}|{np.__version__}|{_version('scikit-learn')}".encode()
    return hashlib.sha256(versions + b"|" + source).hexdigest()[:16]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _read(path: Path) -> TaskData | None:
    """The split saved at ``path``, or None when there is none or it cannot be read whole."""
    try:
        with np.load(path, allow_pickle=False) as saved:
            arrays = {name: saved[name] for name in FIELDS}
    except UNREADABLE:  # none saved yet, or damaged: made again, and the file replaced
        return None
    return TaskData(**{name: torch.from_numpy(array) for name, array in arrays.items()})


def _write(path: Path, data: TaskData) -> None:
    partial = path.with_name(f".{path.name}.{os.getpid()}.partial")
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with open(partial, "wb") as out:
            np.savez(out, **{name: getattr(data, name).numpy() for name in FIELDS})
        os.replace(partial, path)  # a file under its real name is always complete
    except OSError:  # an unwritable folder costs speed, not the run
        with contextlib.suppress(OSError):
            partial.unlink(missing_ok=True)
