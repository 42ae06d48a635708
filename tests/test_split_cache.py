"""Built-in tasks' splits saved on disk: read back exactly, remade when stale or damaged, never fatal."""

from __future__ import annotations

import functools
import inspect
import os
import subprocess
import sys
import time
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

from nnbench import files
from nnbench.builtin import split_cache
from nnbench.builtin.datasets import TASKS, load_digits
from nnbench.builtin.split_cache import FIELDS, cached_split
from nnbench.contract.specs import TaskData


@pytest.fixture
def folder(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    monkeypatch.setenv("NNBENCH_DATA", str(tmp_path))
    return tmp_path / "splits"


def counted(make: Callable[[], TaskData], calls: list[int]) -> Callable[[], TaskData]:
    """``make``, under its own name and module (which name its saved file), counting its calls."""

    @functools.wraps(make)
    def counting() -> TaskData:
        calls.append(1)
        return make()

    return counting


def assert_same(one: TaskData, other: TaskData) -> None:
    for name in FIELDS:
        a, b = getattr(one, name), getattr(other, name)
        if a is None or b is None:  # a task's own validation split, where it has none
            assert a is None and b is None, name
            continue
        assert a.dtype == b.dtype and torch.equal(a, b), name


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_a_saved_split_is_read_back_exactly(task: object, folder: Path) -> None:
    make = inspect.unwrap(task.load)  # type: ignore[attr-defined]
    calls: list[int] = []
    made = cached_split(counted(make, calls))()
    read = cached_split(counted(make, calls))()  # a new process's view: nothing remembered in memory
    assert calls == [1]
    assert [path.name.split("-")[0] for path in folder.iterdir()] == [make.__name__]
    assert_same(read, made)
    assert_same(read, make())


def twice_in_new_processes(probe: str, data: Path) -> list[str]:
    """What ``probe`` prints in two processes, one after the other, sharing the data folder ``data``."""
    env = {**os.environ, "NNBENCH_DATA": str(data)}
    return [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
            for _ in range(2)]


def test_a_process_with_the_split_saved_does_not_import_scikit_learn(tmp_path: Path) -> None:
    probe = ("import sys; from nnbench.builtin.datasets import load_digits; load_digits(); "
             "print('sklearn' in sys.modules)")
    assert twice_in_new_processes(probe, tmp_path) == ["True\n", "False\n"]


@pytest.mark.parametrize("damage", [b"", b"not a zip file", "truncated"])
def test_a_damaged_file_is_made_again_and_replaced(damage: bytes | str, folder: Path) -> None:
    make = inspect.unwrap(load_digits)
    cached_split(make)()
    (saved,) = folder.iterdir()
    whole = saved.read_bytes()
    saved.write_bytes(whole[: len(whole) // 2] if damage == "truncated" else damage)  # type: ignore[arg-type]
    calls: list[int] = []
    assert_same(cached_split(counted(make, calls))(), make())
    assert calls == [1]
    assert saved.read_bytes() == whole
    assert [path.name for path in folder.iterdir()] == [saved.name]  # no partial file left behind


def test_a_single_array_under_the_name_is_made_again_and_replaced(folder: Path) -> None:
    make = inspect.unwrap(load_digits)
    cached_split(make)()
    (saved,) = folder.iterdir()
    whole = saved.read_bytes()
    with open(saved, "wb") as out:  # a readable .npy, not the .npz of named arrays written here
        np.save(out, np.arange(10))
    assert_same(cached_split(make)(), make())
    assert saved.read_bytes() == whole


def test_partial_files_that_writers_left_long_ago_are_swept(folder: Path) -> None:
    make = inspect.unwrap(load_digits)
    cached_split(make)()
    (saved,) = folder.iterdir()
    abandoned, fresh = (folder / f".{saved.name}.{tag}.partial" for tag in ("abandoned", "fresh"))
    for partial in (abandoned, fresh):
        partial.write_bytes(b"half a file")
    old = time.time() - files.ABANDONED_SECONDS - 60
    os.utime(abandoned, (old, old))
    saved.unlink()
    cached_split(make)()
    assert sorted(path.name for path in folder.iterdir()) == sorted([saved.name, fresh.name])  # fresh: maybe writing


def test_an_edited_loader_or_another_library_version_makes_a_new_file(folder: Path,
                                                                       monkeypatch: pytest.MonkeyPatch) -> None:
    make = inspect.unwrap(load_digits)
    calls: list[int] = []
    cached_split(counted(make, calls))()
    monkeypatch.setattr(np, "__version__", "0.0.0")
    split_cache._digest.cache_clear()
    try:
        cached_split(counted(make, calls))()
    finally:
        split_cache._digest.cache_clear()
    assert calls == [1, 1]
    assert len(list(folder.iterdir())) == 2


def test_a_folder_that_cannot_be_written_costs_speed_only(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    blocked = tmp_path / "a file"
    blocked.write_text("nnbench cannot make a folder here")
    monkeypatch.setenv("NNBENCH_DATA", str(blocked))
    make = inspect.unwrap(load_digits)
    assert_same(cached_split(make)(), make())
    assert blocked.read_text() == "nnbench cannot make a folder here"


# -- the vision sets: only their validation indices are saved --------------------------------------


def labels(n: int = 600, classes: int = 10, seed: int = 0) -> np.ndarray:
    return np.random.default_rng(seed).integers(0, classes, n).astype(np.int64)


def test_validation_indices_are_the_stratified_split_and_are_read_back_without_drawing(
        folder: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from sklearn.model_selection import train_test_split

    from nnbench.builtin import image_sets

    y = labels()
    expected = train_test_split(np.arange(len(y)), test_size=image_sets.VAL_FRACTION,
                                random_state=image_sets.SPLIT_SEED, stratify=y)
    train, val = image_sets.validation_split(y)
    assert np.array_equal(train, np.sort(expected[0])) and np.array_equal(val, np.sort(expected[1]))
    monkeypatch.setattr("sklearn.model_selection.train_test_split", lambda *a, **k: pytest.fail("drawn again"))
    again = image_sets.validation_split(y.copy())
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    assert len(list(folder.iterdir())) == 1


def test_other_labels_get_a_split_of_their_own(folder: Path) -> None:
    from nnbench.builtin import image_sets

    first, second = image_sets.validation_split(labels(seed=0)), image_sets.validation_split(labels(seed=1))
    assert not np.array_equal(first[1], second[1])
    longer = image_sets.validation_split(labels(n=700))
    assert len(longer[0]) + len(longer[1]) == 700
    assert len(list(folder.iterdir())) == 3


WRONG_INDICES = {
    "five left out": lambda train, n: train[:-5],
    "one past the end": lambda train, n: np.append(train[1:], n),
    "floats": lambda train, n: train.astype(np.float64),
    "out of order": lambda train, n: train[::-1],
    "one number": lambda train, n: np.array(5),
}


@pytest.mark.parametrize("wrong", list(WRONG_INDICES))
def test_saved_indices_that_do_not_split_these_images_are_drawn_again(wrong: str, folder: Path) -> None:
    from nnbench.builtin import image_sets

    y = labels()
    train, val = image_sets.validation_split(y)
    (saved,) = folder.iterdir()
    whole = saved.read_bytes()
    with open(saved, "wb") as out:  # a readable file, of indices that are not these images' split as drawn
        np.savez(out, train=WRONG_INDICES[wrong](train, len(y)), val=val)
    again = image_sets.validation_split(y)
    assert np.array_equal(again[0], train) and np.array_equal(again[1], val)
    assert saved.read_bytes() == whole  # replaced by the split drawn again


def test_a_process_with_the_validation_indices_saved_does_not_import_scikit_learn(tmp_path: Path) -> None:
    probe = ("import sys, numpy as np; from nnbench.builtin.image_sets import validation_split; "
             "train, val = validation_split(np.arange(500) % 5); print('sklearn' in sys.modules, len(val))")
    assert twice_in_new_processes(probe, tmp_path) == ["True 50\n", "False 50\n"]
