"""Splitting and standardizing a task's arrays: what built-in tasks, ``csv:`` tasks and plugin tasks share.

:func:`make_task_data` is public (``nnbench.make_task_data``): a task author hands it arrays and gets the three
splits nnbench trains on, standardized with the training rows' statistics only.
"""

from __future__ import annotations

import numpy as np
import torch

from nnbench.contract.specs import TaskData

SPLIT_SEED = 0
TEST_FRACTION = 0.2
VAL_FRACTION = 0.2  # of what remains after the test split


def make_task_data(
    x: np.ndarray,
    y: np.ndarray,
    *,
    classification: bool,
    feature_axes: tuple[int, ...] = (0,),
    standardize_target: bool = False,
    validation: tuple[np.ndarray, np.ndarray] | None = None,
) -> TaskData:
    """Split ``x, y`` into train/validation/test with a fixed seed; standardize with training statistics.

    ``feature_axes`` are the axes of ``x`` that statistics are pooled over (``(0,)``: one mean per
    feature; ``(0, 1, 2, 3)``: one mean for a whole image). Regression targets are standardized
    too when ``standardize_target`` is set. ``validation``: the task's own validation rows ``(x, y)``, kept
    apart and standardized alike (``TaskData.x_own_val``; declare ``Task(own_validation=True)``).
    """
    from sklearn.model_selection import train_test_split  # imported when data are, not at start-up

    x_rest, x_te, y_rest, y_te = train_test_split(
        x, y, test_size=TEST_FRACTION, random_state=SPLIT_SEED, stratify=y if classification else None
    )
    x_tr, x_va, y_tr, y_va = train_test_split(
        x_rest, y_rest, test_size=VAL_FRACTION, random_state=SPLIT_SEED,
        stratify=y_rest if classification else None,
    )
    mean = x_tr.mean(axis=feature_axes, keepdims=True)
    std = x_tr.std(axis=feature_axes, keepdims=True)
    std[std == 0] = 1.0
    x_parts, y_parts = [x_tr, x_va, x_te], [y_tr, y_va, y_te]
    if validation is not None:
        x_parts.append(np.asarray(validation[0]))
        y_parts.append(np.asarray(validation[1]))
    inputs = [torch.as_tensor((part - mean) / std, dtype=torch.float32) for part in x_parts]
    if classification:
        targets = [torch.as_tensor(part, dtype=torch.int64) for part in y_parts]
    else:
        columns = [part.reshape(len(part), -1) for part in y_parts]
        if standardize_target:
            y_mean, y_std = columns[0].mean(axis=0), columns[0].std(axis=0)
            columns = [(part - y_mean) / y_std for part in columns]
        targets = [torch.as_tensor(part, dtype=torch.float32) for part in columns]
    own = (inputs[3], targets[3]) if validation is not None else (None, None)
    return TaskData(inputs[0], targets[0], inputs[1], targets[1], inputs[2], targets[2], *own)
