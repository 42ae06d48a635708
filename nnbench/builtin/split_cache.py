"""Built-in tasks' splits kept on disk, so that a run reads them instead of making them again.

Making a split imports scikit-learn (its loaders and ``train_test_split``), which costs a process
about 1.5 s, more than training a small grid does; every worker pays it again. A split made once is
therefore saved under ``<data folder>/splits/`` (see :func:`~nnbench.contract.paths.data_root`)
as an uncompressed ``.npz`` file, and later processes read it in milliseconds.

A file is named by its task and a digest of everything that decides its contents: the source of the
module that makes the split, and the versions of numpy and scikit-learn. Editing the loader or
upgrading either library therefore makes a new file instead of reading a stale one. A file is
written under a temporary name and renamed, so a reader never sees half of one; a file that cannot
be read (damaged, truncated, from another format) is made again and replaced. A folder that cannot
be written to costs speed only: the split is made in memory as before. Deleting the folder is safe.

Tasks whose data come from files (the vision sets) save less: only the indices of their validation
split (:func:`saved_arrays`), named by a digest of the labels they were drawn from, so that new
files give a new split while the standardized images are still made from the files themselves.
"""

from __future__ import annotations

import hashlib
import sys
import zipfile
from collections.abc import Callable
from dataclasses import fields
from functools import cache, wraps
from importlib import metadata
from pathlib import Path
from typing import Any, cast

import numpy as np
import torch

from nnbench.contract.paths import data_root
from nnbench.contract.specs import TaskData
from nnbench.files import written_whole
from nnbench.planning import task_data

FORMAT = 2
"""Bumped when the layout of a saved split changes, so that older files are not read."""

FIELDS = tuple(field.name for field in fields(TaskData))
NOT_GIVEN = np.zeros(())
"""What a split saves for an optional part the task does not have (its own validation split): no part is 0-d."""
UNREADABLE = (OSError, ValueError, KeyError, EOFError, zipfile.BadZipFile)


def split_folder() -> Path:
    """The folder saved splits live in."""
    return data_root() / "splits"


def cached_split(make: Callable[[], TaskData]) -> Callable[[], TaskData]:
    """Wrap a task's ``load`` (no arguments, deterministic): remembered in memory for the process,
    and read from disk when another process has already made it."""

    def arrays() -> dict[str, np.ndarray]:
        data = make()
        return {name: NOT_GIVEN if getattr(data, name) is None else getattr(data, name).numpy() for name in FIELDS}

    @cache
    @wraps(make)
    def load() -> TaskData:
        saved = saved_arrays(make.__name__, FIELDS, b"", arrays, make.__module__)  # no inputs: make takes none
        return TaskData(**{name: None if array.ndim == 0 else torch.from_numpy(array)  # type: ignore[arg-type]
                           for name, array in saved.items()})

    return load


def saved_arrays(name: str, names: tuple[str, ...], inputs: bytes, make: Callable[[], dict[str, np.ndarray]],
                 module: str, check: Callable[[dict[str, np.ndarray]], bool] = lambda arrays: True,
                 ) -> dict[str, np.ndarray]:
    """The arrays ``names`` that ``make`` computes from data it is given (a split's indices from a
    data set's labels), read from disk when another process has already made them.

    ``inputs`` are the bytes that decide the result (the labels, the split's fraction and seed); with
    ``module``'s source and the library versions they name the file, so other data, an edited maker
    or another library version make a new file. A file that cannot be read whole, or whose arrays
    fail ``check``, is made again and replaced.
    """
    digest = hashlib.sha256(_digest(module).encode() + b"|" + inputs).hexdigest()[:16]
    path = split_folder() / f"{name}-{digest}.npz"
    saved = _read(path, names)
    if saved is not None and _passes(check, saved):
        return saved
    arrays = make()
    _write(path, {key: arrays[key] for key in names})
    return arrays


def _passes(check: Callable[[dict[str, np.ndarray]], bool], saved: dict[str, np.ndarray]) -> bool:
    """Whether ``saved`` passes ``check``; arrays of a shape the check cannot even look at do not."""
    try:
        return bool(check(saved))
    except (TypeError, ValueError, IndexError):  # a 0-d array where a vector belongs, say
        return False


@cache
def _digest(module: str) -> str:
    """What decides the saved arrays of ``module``'s tasks: its source, the shared splitting code's, and the
    libraries' versions."""
    sources = b"|".join(Path(sys.modules[name].__file__ or "").read_bytes() for name in (module, task_data.__name__))
    versions = f"{FORMAT}|{np.__version__}|{_version('scikit-learn')}".encode()
    return hashlib.sha256(versions + b"|" + sources).hexdigest()[:16]


def _version(distribution: str) -> str:
    try:
        return metadata.version(distribution)
    except metadata.PackageNotFoundError:
        return "absent"


def _read(path: Path, names: tuple[str, ...]) -> dict[str, np.ndarray] | None:
    """The arrays ``names`` saved at ``path``, or None when there is no such file, it lacks one of
    them or it cannot be read whole."""
    try:
        saved = np.load(path, allow_pickle=False)
    except UNREADABLE:  # none saved yet, or damaged: made again, and the file replaced
        return None
    if not isinstance(saved, np.lib.npyio.NpzFile):  # one bare array (a .npy), not the arrays saved here
        return None
    try:
        with saved:
            return {name: saved[name] for name in names}
    except UNREADABLE:
        return None


def _write(path: Path, arrays: dict[str, np.ndarray]) -> None:
    try:
        path.parent.mkdir(parents=True, exist_ok=True)
        with written_whole(path) as partial, open(partial, "wb") as out:
            np.savez(out, **cast(dict[str, Any], arrays))  # the names are arrays, not savez options
    except OSError:  # an unwritable folder costs speed, not the run
        pass
