"""The user's own table as a task: ``--task csv:PATH --target COLUMN [--kind KIND]``.

Numeric features are standardized with training statistics, categorical features one-hot encoded,
and the split is the same fixed, stratified train/validation/test split as the built-in tasks. The
file's checksum is part of every trial's identity, so editing the file never reuses old results.
"""

from __future__ import annotations

import hashlib
from functools import cache
from pathlib import Path
from typing import Any

import numpy as np

from nnbench.contract.errors import NNBenchError
from nnbench.contract.specs import TASK_KINDS, Task, TaskData
from nnbench.loading.catalogue import Catalogue

PREFIX = "csv:"
PLUGIN_NAME = "nnbench.csv"
MAX_CLASSES = 50  # more distinct target values than this reads as a regression target
MIN_PER_CLASS = 5  # rows per class for a stratified three-way split


class CSVTaskError(NNBenchError):
    """A CSV file that cannot become a task."""


def is_csv_task(name: str) -> bool:
    return name.startswith(PREFIX)


def join_csv_paths(items: list[str]) -> list[str]:
    """Comma-separated task names, with the commas of ``csv:`` paths put back: ``csv:a,b.csv`` is one
    task when the file ``a,b.csv`` exists (the longest existing path wins)."""
    joined: list[str] = []
    i = 0
    while i < len(items):
        end = i
        if is_csv_task(items[i]):
            for j in range(len(items) - 1, i, -1):
                if Path(",".join(items[i : j + 1])[len(PREFIX):]).is_file():
                    end = j
                    break
        joined.append(",".join(items[i : end + 1]))
        i = end + 1
    return joined


def file_digest(path: Path) -> str:
    try:
        return hashlib.sha256(path.read_bytes()).hexdigest()[:16]
    except OSError as exc:
        raise CSVTaskError(f"cannot read CSV file {path}: {exc.strerror or exc}") from None


@cache
def _read(path: str, digest: str, target: str, kind: str | None) -> tuple[np.ndarray, np.ndarray, str, int, str]:
    """Features, targets, kind, number of classes and a description; cached per file content."""
    import pandas as pd

    try:
        frame = pd.read_csv(path)
    except (OSError, ValueError) as exc:
        raise CSVTaskError(f"cannot parse CSV file {path}: {exc}") from None
    if target not in frame.columns:
        raise CSVTaskError(
            f"CSV file {path} has no column {target!r}; its columns: {', '.join(map(str, frame.columns))}"
        )
    if frame.empty:
        raise CSVTaskError(f"CSV file {path} has no rows")
    y_raw = frame.pop(target)
    if y_raw.isna().any():
        raise CSVTaskError(f"target column {target!r} of {path} has {int(y_raw.isna().sum())} empty values")
    kind = kind or infer_kind(y_raw)
    if kind not in TASK_KINDS:
        raise CSVTaskError(f"--kind must be one of {', '.join(TASK_KINDS)}, not {kind!r}")
    x = encode_features(frame, path)
    if kind == "regression":
        try:
            y = y_raw.astype(float).to_numpy()
        except ValueError:
            raise CSVTaskError(f"target column {target!r} of {path} is not numeric, so it cannot be a "
                               "regression target; use --kind binary or multiclass") from None
        classes = 0
        check_numbers(y_raw.astype(float), f"target column {target!r} of {path}")
        if np.nanstd(y) == 0:
            raise CSVTaskError(f"target column {target!r} of {path} is constant; there is nothing to predict")
    else:
        labels = sorted(y_raw.unique(), key=str)
        classes = len(labels)
        if classes < 2:
            raise CSVTaskError(f"target column {target!r} of {path} has a single class ({_plain(labels[0])!r}): "
                               "there is nothing to classify")
        counts = y_raw.value_counts()
        if counts.min() < MIN_PER_CLASS:
            rare = _plain(counts.idxmin())
            raise CSVTaskError(f"class {rare!r} of target column {target!r} in {path} has only {int(counts.min())} "
                               f"row(s); a stratified train/validation/test split needs at least {MIN_PER_CLASS} "
                               "per class (drop or merge rare classes)")
        if kind == "binary" and classes != 2:
            raise CSVTaskError(f"target column {target!r} of {path} has {classes} classes, not 2; use --kind "
                               "multiclass")
        index = {label: i for i, label in enumerate(labels)}
        y = y_raw.map(index).to_numpy()
    description = f"{Path(path).name}: {len(frame)} rows, {x.shape[1]} features, target {target} ({kind})"
    return x, y, kind, classes, description


def _plain(value: Any) -> Any:
    """A numpy scalar as the Python value it holds, so messages say ``0``, not ``np.int64(0)``."""
    return value.item() if isinstance(value, np.generic) else value


def infer_kind(y: Any) -> str:
    """binary for two values, multiclass for a few labels, regression for many numbers."""
    unique = y.nunique()
    if unique == 2:
        return "binary"
    numeric = y.dtype.kind in "fiu"
    if not numeric or (y.dtype.kind in "iu" and unique <= MAX_CLASSES):
        return "multiclass"
    return "regression"


def check_numbers(values: Any, where: str) -> None:
    """Numbers that training can use: finite, and small enough that standardizing them (their mean
    and spread) stays finite. ``values`` is a float Series."""
    bad = values[~np.isfinite(values.to_numpy())]
    if len(bad):
        raise CSVTaskError(f"{where} holds {bad.iloc[0]} at row {int(bad.index[0]) + 2}; every value must be a "
                           "finite number (fix or remove that row)")
    with np.errstate(over="ignore", invalid="ignore"):
        spread = np.std(values.to_numpy()) if len(values) else 0.0
    if not np.isfinite(spread):
        row = int(values.abs().idxmax())
        raise CSVTaskError(f"{where} holds numbers too large to standardize ({values[row]:g} at row {row + 2}); "
                           "rescale the column (e.g. to other units) so its values stay below about 1e150")


def encode_features(frame: Any, path: str) -> np.ndarray:
    """Numeric columns as they are, text and boolean columns one-hot; empty cells and garbage in a
    numeric column are errors."""
    import pandas as pd

    parts = []
    for column in frame.columns:
        values = frame[column]
        if values.isna().any():
            raise CSVTaskError(f"column {column!r} of {path} has {int(values.isna().sum())} empty values; "
                               "fill or drop them first")
        if values.dtype.kind in "fiu":
            check_numbers(values.astype(float), f"column {column!r} of {path}")
            parts.append(values.astype(float).to_frame())
            continue
        numbers = pd.to_numeric(values, errors="coerce")
        bad = values[numbers.isna() & values.notna()]
        if numbers.notna().mean() >= 0.9 and len(bad):
            raise CSVTaskError(f"column {column!r} of {path} is numeric but row {int(bad.index[0]) + 2} holds "
                               f"{_plain(bad.iloc[0])!r}; fix or remove that value")
        parts.append(pd.get_dummies(values.astype("string"), prefix=str(column), dtype=float))
    if not parts:
        raise CSVTaskError(f"CSV file {path} has no feature columns besides the target")
    return pd.concat(parts, axis=1).to_numpy(dtype=np.float64)


def csv_task(name: str, target: str | None, kind: str | None) -> tuple[Task, dict[str, Any]]:
    """The task for ``csv:PATH`` and the parameters that identify it (target, kind, file checksum)."""
    from nnbench.planning.task_data import make_task_data  # torch: planning a grid loads none

    if not target:
        raise CSVTaskError(f"task {name!r} needs --target COLUMN naming the column to predict")
    path = Path(name[len(PREFIX):])
    if path.is_dir():
        raise CSVTaskError(f"{path} (from task {name!r}) is a folder; give a CSV file, such as "
                           f"csv:{path / 'data.csv'}")
    if not path.is_file():
        raise CSVTaskError(f"CSV file {path} does not exist (from task {name!r}); give an existing file")
    digest = file_digest(path)
    x, y, resolved_kind, classes, description = _read(str(path), digest, target, kind)

    def load() -> TaskData:
        features, targets, *_ = _read(str(path), digest, target, kind)
        classification = resolved_kind != "regression"
        return make_task_data(features, targets, classification=classification,
                              standardize_target=not classification)

    task = Task(name, resolved_kind, "vector", (x.shape[1],), cache(load), description,  # type: ignore[arg-type]
                num_classes=classes)
    return task, {"target": target, "kind": resolved_kind, "sha256": digest}


def register_csv_tasks(catalogue: Catalogue, names: list[str], target: str | None, kind: str | None) -> dict[str, Any]:
    """Add the ``csv:`` tasks among ``names`` to ``catalogue``; their identifying parameters by name."""
    params = {}
    for name in names:
        if is_csv_task(name) and name not in catalogue.tasks:
            task, params[name] = csv_task(name, target, kind)
            catalogue.tasks.add(task, PLUGIN_NAME)
    return params


def ensure_csv_tasks(catalogue: Catalogue, trials: list[Any]) -> None:
    """In a worker: register the ``csv:`` tasks of ``trials`` from their identifying parameters."""
    for trial in trials:
        if is_csv_task(trial.task) and trial.task not in catalogue.tasks:
            wanted = dict(trial.params.get("task", {}))
            task, found = csv_task(trial.task, wanted.get("target"), wanted.get("kind"))
            if found["sha256"] != wanted.get("sha256"):
                raise CSVTaskError(f"CSV file of task {trial.task!r} differs here from the one the grid was "
                                   "planned with; every machine must see the same file")
            catalogue.tasks.add(task, PLUGIN_NAME)
