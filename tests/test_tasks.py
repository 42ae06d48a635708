"""Every built-in task: declared shapes and dtypes, a deterministic three-way split, no leaks."""

from __future__ import annotations

import inspect
from typing import Any

import pytest
import torch

from nnbench.builtin.datasets import TASKS


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_shapes_dtypes_and_split(task: Any) -> None:
    data = task.load()
    splits = [(data.x_train, data.y_train), (data.x_val, data.y_val), (data.x_test, data.y_test)]
    total = sum(len(x) for x, _ in splits)
    for x, y in splits:
        assert x.dtype == torch.float32 and tuple(x.shape[1:]) == task.input_shape
        assert len(x) == len(y)
        if task.kind == "regression":
            assert y.dtype == torch.float32 and tuple(y.shape[1:]) == (task.output_dim,)
        else:
            assert y.dtype == torch.int64 and y.ndim == 1
            assert set(y.unique().tolist()) == set(range(task.num_classes))  # stratified: every class in every split
    assert len(data.x_test) == pytest.approx(0.2 * total, abs=1)
    assert len(data.x_val) == pytest.approx(0.16 * total, abs=2)
    # standardized with training statistics
    assert data.x_train.mean().abs() < 0.1 and (data.x_train.std() - 1).abs() < 0.1


@pytest.mark.parametrize("task", TASKS, ids=lambda t: t.name)
def test_split_is_deterministic_and_disjoint(task: Any) -> None:
    first = task.load()
    second = inspect.unwrap(task.load)()  # made again, not read from the saved split
    for name in ("x_train", "y_train", "x_val", "y_val", "x_test", "y_test"):
        assert torch.equal(getattr(first, name), getattr(second, name))
    rows = {tuple(r.flatten().tolist()) for r in first.x_train}
    held_out = [tuple(r.flatten().tolist()) for r in torch.cat([first.x_val, first.x_test])]
    overlap = sum(r in rows for r in held_out)
    everything = torch.cat([first.x_train, first.x_val, first.x_test]).flatten(1)
    duplicates = len(everything) - len(everything.unique(dim=0))
    assert overlap <= duplicates  # a held-out row may equal a training row only if the source repeats it


def test_adding_problem_baseline_is_one_sixth() -> None:
    task = next(t for t in TASKS if t.name == "adding")
    y = task.load().y_test
    assert ((y - 1) ** 2).mean().item() == pytest.approx(1 / 6, abs=0.02)
