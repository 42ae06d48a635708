"""Built-in tasks' splits saved on disk: read back exactly, remade when stale or damaged, never fatal."""

from __future__ import annotations

import functools
import inspect
import os
import subprocess
import sys
from collections.abc import Callable
from pathlib import Path

import numpy as np
import pytest
import torch

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


def test_a_process_with_the_split_saved_does_not_import_scikit_learn(tmp_path: Path) -> None:
    probe = ("import sys; from nnbench.builtin.datasets import load_digits; load_digits(); "
             "print('sklearn' in sys.modules)")
    env = {**os.environ, "NNBENCH_DATA": str(tmp_path)}
    seen = [subprocess.run([sys.executable, "-c", probe], env=env, capture_output=True, text=True, check=True).stdout
            for _ in range(2)]
    assert seen == ["True\n", "False\n"]


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
