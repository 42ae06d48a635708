"""Built-in tasks: small, offline and deterministic.

Synthetic data are drawn from fixed seeds; the scikit-learn data sets ship with scikit-learn. Every
task has a fixed train/validation/test split (64/16/20, stratified for classes) and inputs
standardized with the training statistics, so nothing from held-out data leaks into training.
A split, once made, is saved on disk and read from there by later processes (:mod:`~nnbench.builtin.split_cache`).
"""

from __future__ import annotations

import numpy as np

from nnbench.builtin.split_cache import cached_split
from nnbench.contract.specs import Task, TaskData
from nnbench.planning.task_data import SPLIT_SEED, make_task_data


def _rng(name: str) -> np.random.Generator:
    # One fixed stream per task, independent of the order tasks are loaded in (and of PYTHONHASHSEED).
    return np.random.default_rng([SPLIT_SEED, *name.encode()])


@cached_split
def load_toy() -> TaskData:
    rng = _rng("toy")
    x = rng.normal(size=(1000, 2))
    y = x[:, 0] - 2 * x[:, 1] + 0.5 * x[:, 0] * x[:, 1] + rng.normal(scale=0.1, size=1000)
    return make_task_data(x, y, classification=False, standardize_target=True)


@cached_split
def load_spirals() -> TaskData:
    rng = _rng("spirals")
    n = 500
    theta = np.sqrt(rng.uniform(size=n)) * 3 * np.pi
    arms = []
    for sign in (1, -1):
        r = theta + np.pi
        arms.append(np.c_[sign * r * np.cos(theta), sign * r * np.sin(theta)] + rng.normal(scale=0.6, size=(n, 2)))
    x = np.concatenate(arms)
    y = np.r_[np.zeros(n, dtype=int), np.ones(n, dtype=int)]
    return make_task_data(x, y, classification=True)


@cached_split
def load_moons() -> TaskData:
    from sklearn import datasets

    x, y = datasets.make_moons(n_samples=1000, noise=0.25, random_state=1)
    return make_task_data(x, y, classification=True)


@cached_split
def load_circles() -> TaskData:
    from sklearn import datasets

    x, y = datasets.make_circles(n_samples=1000, noise=0.12, factor=0.5, random_state=2)
    return make_task_data(x, y, classification=True)


@cached_split
def load_xor() -> TaskData:
    rng = _rng("xor")
    x = rng.uniform(-1, 1, size=(1000, 2))
    y = (x[:, 0] * x[:, 1] > 0).astype(int)
    flip = rng.uniform(size=1000) < 0.05  # label noise keeps 100% out of reach
    y[flip] = 1 - y[flip]
    return make_task_data(x, y, classification=True)


@cached_split
def load_iris() -> TaskData:
    from sklearn import datasets

    x, y = datasets.load_iris(return_X_y=True)
    return make_task_data(x, y, classification=True)


@cached_split
def load_wine() -> TaskData:
    from sklearn import datasets

    x, y = datasets.load_wine(return_X_y=True)
    return make_task_data(x, y, classification=True)


@cached_split
def load_breast_cancer() -> TaskData:
    from sklearn import datasets

    x, y = datasets.load_breast_cancer(return_X_y=True)
    return make_task_data(x, y, classification=True)


@cached_split
def load_digits() -> TaskData:
    from sklearn import datasets

    x, y = datasets.load_digits(return_X_y=True)
    images = x.reshape(-1, 1, 8, 8)
    return make_task_data(images, y, classification=True, feature_axes=(0, 1, 2, 3))


@cached_split
def load_diabetes() -> TaskData:
    from sklearn import datasets

    x, y = datasets.load_diabetes(return_X_y=True)
    return make_task_data(x, y, classification=False, standardize_target=True)


ADDING_STEPS = 30


@cached_split
def load_adding() -> TaskData:
    """The adding problem: sum the two values whose marker is 1."""
    rng = _rng("adding")
    n, t = 3000, ADDING_STEPS
    values = rng.uniform(size=(n, t))
    markers = np.zeros((n, t))
    first = rng.integers(0, t // 2, size=n)
    second = rng.integers(t // 2, t, size=n)
    markers[np.arange(n), first] = 1
    markers[np.arange(n), second] = 1
    x = np.stack([values, markers], axis=-1)
    y = values[np.arange(n), first] + values[np.arange(n), second]
    # Targets stay in their own units: always predicting 1 scores MSE 1/6.
    return make_task_data(x, y, classification=False, feature_axes=(0, 1))


PARITY_BITS = 12


@cached_split
def load_parity() -> TaskData:
    """Is the number of ones in a bit string odd? Train and test strings are disjoint."""
    rng = _rng("parity")
    codes = rng.choice(2**PARITY_BITS, size=3000, replace=False)
    bits = (codes[:, None] >> np.arange(PARITY_BITS)) & 1
    y = bits.sum(axis=1) % 2
    return make_task_data(bits[..., None].astype(float), y, classification=True, feature_axes=(0, 1))


SINE_WINDOW = 20


@cached_split
def load_sine() -> TaskData:
    """Forecast the next value of a noisy sine wave of random frequency, phase and amplitude."""
    rng = _rng("sine")
    n = 1200
    steps = np.arange(SINE_WINDOW + 1)
    freq = rng.uniform(0.1, 0.6, size=(n, 1))
    phase = rng.uniform(0, 2 * np.pi, size=(n, 1))
    amp = rng.uniform(0.5, 1.5, size=(n, 1))
    series = amp * np.sin(freq * steps + phase) + rng.normal(scale=0.05, size=(n, SINE_WINDOW + 1))
    return make_task_data(series[:, :-1, None], series[:, -1], classification=False, feature_axes=(0, 1))


TASKS = (
    Task("toy", "regression", "vector", (2,), load_toy,
         "2 random features, 1 noisy target with a mild interaction (the tutorial's regression)", target=0.3),
    Task("spirals", "binary", "vector", (2,), load_spirals, "two interleaved noisy spirals", num_classes=2,
         target=0.9),
    Task("moons", "binary", "vector", (2,), load_moons, "two noisy half-moons (scikit-learn)", num_classes=2,
         target=0.9),
    Task("circles", "binary", "vector", (2,), load_circles, "a noisy circle inside another", num_classes=2,
         target=0.9),
    Task("xor", "binary", "vector", (2,), load_xor, "sign of x1 * x2 with 5% label noise", num_classes=2,
         target=0.9),
    Task("iris", "multiclass", "vector", (4,), load_iris, "Fisher's iris flowers, 3 species", num_classes=3,
         target=0.9),
    Task("wine", "multiclass", "vector", (13,), load_wine, "wine cultivars from chemical analysis",
         num_classes=3, target=0.9),
    Task("breast_cancer", "binary", "vector", (30,), load_breast_cancer,
         "Wisconsin diagnostic breast cancer, malignant or benign", num_classes=2, target=0.95),
    Task("digits", "multiclass", "image", (1, 8, 8), load_digits,
         "8x8 handwritten digits (also read as a sequence of 8 rows)", num_classes=10, views=("sequence",),
         target=0.95),
    Task("diabetes", "regression", "vector", (10,), load_diabetes,
         "diabetes progression after one year (standardized target)", target=0.8),
    Task("adding", "regression", "sequence", (ADDING_STEPS, 2), load_adding,
         f"adding problem over {ADDING_STEPS} steps; predicting 1 always scores MSE 1/6", target=0.1),
    Task("parity", "binary", "sequence", (PARITY_BITS, 1), load_parity,
         f"parity of {PARITY_BITS} bits read one at a time", num_classes=2, target=0.9),
    Task("sine", "regression", "sequence", (SINE_WINDOW, 1), load_sine,
         f"forecast the next value of a noisy sine from {SINE_WINDOW} steps", target=0.1),
)
