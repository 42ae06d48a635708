"""The region of practical equivalence (ROPE): how small a difference in a task's metric counts as none.

``--rope 0.005`` sets one half-width for every task; ``--rope accuracy=0.01,rmse=0.02`` one per metric and
``--rope sine=0.05`` one per task (a task's own beats its metric's, which beats a bare number). Without one,
each metric has its default: half an accuracy point (0.005) for accuracy and R², and for RMSE, whose scale
is the task's own, 1% of the median RMSE of the two levels compared on that task.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from dataclasses import dataclass, field

import numpy as np

from nnbench.contract.errors import NNBenchError
from nnbench.contract.metrics import METRICS

DEFAULT_ROPE = {m.name: m.default_rope for m in METRICS.values() if m.default_rope is not None}
"""Half-widths in the metric's own units, for metrics with a fixed scale (the table of metrics)."""
RELATIVE_ROPE = 0.01
"""For a metric without a fixed scale (RMSE): this fraction of the median value compared."""
EVERY = "*"


@dataclass(frozen=True)
class Rope:
    """Half-widths given by the user, by task name, metric name or :data:`EVERY`; defaults elsewhere."""

    given: Mapping[str, float] = field(default_factory=dict)

    def width(self, task: str, metric_name: str, values: np.ndarray) -> float:
        """The half-width for ``task`` (whose metric is ``metric_name``), given the metric ``values`` of
        the trials compared (used only by the relative default)."""
        for key in (task, metric_name, EVERY):
            if key in self.given:
                return float(self.given[key])
        if metric_name in DEFAULT_ROPE:
            return DEFAULT_ROPE[metric_name]
        finite = np.asarray(values, dtype=float)
        finite = finite[np.isfinite(finite)]
        return RELATIVE_ROPE * float(np.median(np.abs(finite))) if len(finite) else 0.0

    def describe(self, task: str, metric_name: str, width: float) -> str:
        """``±0.005 accuracy``, or ``±0.0042 rmse (1% of the median)`` for a relative default."""
        text = f"±{width:.2g} {metric_name}"
        if not any(key in self.given for key in (task, metric_name, EVERY)) and metric_name not in DEFAULT_ROPE:
            text += f" ({RELATIVE_ROPE:.0%} of the median)"
        return text

    def to_dict(self) -> dict[str, float]:
        return dict(self.given)


def parse_rope(value: Rope | str | float | Mapping[str, float] | None) -> Rope:
    """A :class:`Rope` from ``--rope`` text (``0.005``, ``accuracy=0.01,sine=0.05``), a number, a mapping
    or ``None`` (the defaults)."""
    if value is None or isinstance(value, Rope):
        return value or Rope()
    if isinstance(value, int | float) and not isinstance(value, bool):
        return Rope({EVERY: _half_width(str(value), value)})
    if isinstance(value, Mapping):
        return Rope({str(key): _half_width(f"{key}={number}", number) for key, number in value.items()})
    given: dict[str, float] = {}
    for part in (p.strip() for p in str(value).split(",")):
        if not part:
            continue
        key, sep, number = part.rpartition("=")
        given[key.strip() if sep else EVERY] = _half_width(part, number)
    if not given:
        raise NNBenchError(f"--rope {value!r} sets nothing; give a number (0.005) or METRIC=NUMBER pairs "
                           "(accuracy=0.005,rmse=0.02)")
    return Rope(given)


def _half_width(part: str, number: object) -> float:
    try:
        width = float(number)  # type: ignore[arg-type]
    except (TypeError, ValueError):
        width = math.nan
    if not (math.isfinite(width) and width >= 0):
        raise NNBenchError(f"--rope {part!r} is not a half-width: give a number >= 0 (0.005), or METRIC=NUMBER or "
                           "TASK=NUMBER pairs (accuracy=0.005,rmse=0.02)")
    return width
