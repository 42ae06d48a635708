"""The recall task: which digit carries the marker?

Each sample is a sequence of 16 steps, each a digit (0-9) and a marker bit; exactly one step is
marked and the class is its digit. Attention finds the marked step directly; a feed-forward
network must learn it from the flattened sequence.
"""

from __future__ import annotations

from functools import cache

import numpy as np

from nnbench import TaskData, make_task_data

STEPS = 16
SAMPLES = 3000
SEED = 7


@cache
def load_recall() -> TaskData:
    """The fixed data set, split 64/16/20 (stratified) and standardized like nnbench's own tasks."""
    rng = np.random.default_rng(SEED)
    digits = rng.integers(0, 10, size=(SAMPLES, STEPS))
    marked = rng.integers(0, STEPS, size=SAMPLES)
    markers = np.zeros((SAMPLES, STEPS))
    markers[np.arange(SAMPLES), marked] = 1
    x = np.stack([digits, markers], axis=-1).astype(float)
    y = digits[np.arange(SAMPLES), marked]
    return make_task_data(x, y, classification=True, feature_axes=(0, 1))
