"""The metrics a task can be judged by, declared once: each metric's name, its direction and the store
columns it is read from.

Every place that needs to know whether a larger value is better (ranking, time-to-target, early
stopping, tuning, the verdicts, the report's arrows) reads it here, so a metric is added in one row.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnbench.contract.errors import NNBenchError


@dataclass(frozen=True)
class Metric:
    """One metric: ``higher_is_better`` says its direction; ``test_column`` and ``validation_column`` are
    the store's ``trials`` (and ``epochs``) columns holding it on held-out data when it is the task's
    primary metric (``metric``, ``val_metric``), ``own_column`` the column holding it whatever the
    primary metric is (``accuracy``, ``rmse``, ``r2``); ``task_kinds`` are the kinds of task whose
    primary metric it is. ``fixed_scale``: its values mean the same on every task (accuracy, R²), so
    differences compare across tasks as they are; ``default_rope``: the half-width of practical
    equivalence used unless the user gives one (``None``: a fraction of the values compared, for a metric
    whose scale is the task's own)."""

    name: str
    higher_is_better: bool
    own_column: str
    task_kinds: tuple[str, ...] = ()
    fixed_scale: bool = False
    default_rope: float | None = None
    test_column: str = "metric"
    validation_column: str = "val_metric"

    @property
    def direction(self) -> str:
        """``higher is better`` or ``lower is better``."""
        return "higher is better" if self.higher_is_better else "lower is better"


METRICS: dict[str, Metric] = {metric.name: metric for metric in (
    Metric("accuracy", higher_is_better=True, own_column="accuracy", task_kinds=("binary", "multiclass"),
           fixed_scale=True, default_rope=0.005),
    Metric("rmse", higher_is_better=False, own_column="rmse", task_kinds=("regression",)),
    Metric("r2", higher_is_better=True, own_column="r2", fixed_scale=True, default_rope=0.005),
)}
"""Every metric by name."""


def metric(name: str) -> Metric:
    """The metric called ``name``; an unknown name is an error that lists the known ones."""
    try:
        return METRICS[name]
    except KeyError:
        raise NNBenchError(f"unknown metric {name!r}; known metrics: {', '.join(METRICS)}") from None


def higher_is_better(name: str) -> bool:
    """Whether a larger value of metric ``name`` is better (accuracy, R²) or worse (RMSE)."""
    return metric(name).higher_is_better


def primary_metric(task_kind: str) -> Metric:
    """The metric a task of ``task_kind`` is ranked by (accuracy for classes, RMSE for regression)."""
    for candidate in METRICS.values():
        if task_kind in candidate.task_kinds:
            return candidate
    raise NNBenchError(f"no metric ranks a {task_kind!r} task; kinds with a metric: "
                       + ", ".join(kind for m in METRICS.values() for kind in m.task_kinds))
