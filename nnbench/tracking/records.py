"""Runs, trials and seed groups as trackers receive them, built from a store or from a live run's results.

A :class:`TrackedTrial` is built from a :class:`~nnbench.contract.trial.Trial` in both cases (a stored row is
read back into the trial it was, so its id and its seed group are those the run had), and its
:attr:`~TrackedTrial.fingerprint` covers its numbers only: a trial logged live and exported later from the
store reads as the same, and a trial trained again with other numbers does not.
"""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Iterable, Mapping
from dataclasses import dataclass, field
from typing import TYPE_CHECKING, Any

from nnbench.contract.trial import TRIAL_AXES, Trial, TrialResult
from nnbench.planning.tuning import role_of

if TYPE_CHECKING:
    from nnbench.tracking.seed_groups import SeedGroup

FINAL_METRICS = ("metric", "val_metric", "accuracy", "rmse", "r2", "train_loss", "val_loss", "test_loss",
                 "train_time", "throughput", "peak_memory", "n_params", "epochs_run", "best_epoch")
"""A trial's final numbers, as the store's columns name them (``metric`` is the task's own test metric)."""
CURVE_METRICS = ("train_loss", "val_loss", "val_metric", "test_loss", "metric", "accuracy", "rmse", "r2",
                 "epoch_time")
"""What each epoch of a curve holds (the test numbers only where they were measured)."""
ENVIRONMENT_KEYS = ("nnbench", "torch", "python", "platform", "host", "cpu_count", "devices", "git_commit")
"""The parts of a run's environment that trackers show with each trial (what it ran on, with which code)."""
PROTOCOLS = {"final": "tuned", "tune": "tuning"}


@dataclass(frozen=True)
class TrackedTrial:
    """One trial as trackers show it.

    :param trial_id: the trial's id (a tracker finds the trial again by it).
    :param label: its short name without the seed (``fnn/relu/cross_entropy/adam@0.001``).
    :param axes: every axis of the trial, seed included, and the components of plugin kinds it uses.
    :param params: its hyper-parameters flattened to dotted names (``arch.hidden``), code identities aside.
    :param code: the code of each of its components that is not built in (``{"activation": "my-pkg==1.0"}``).
    :param protocol: ``default``, ``tuning`` (a trial of ``--tune``'s search) or ``tuned``.
    :param status: ``ok``, ``diverged``, ``failed`` or ``timeout``.
    :param metrics: its final numbers (:data:`FINAL_METRICS`, finite ones only).
    :param curve: one mapping per epoch, ``epoch`` and the :data:`CURVE_METRICS` measured in it.
    :param group: its seed group (the configuration key: the trial without its seed); ``None`` for a tuning
        trial, which is one point of a search, not a seed of a configuration.
    :param trained_in: the run that trained it (another than the run it is tracked with when that run reused it).
    :param environment: what the run that trained it ran on (:data:`ENVIRONMENT_KEYS`).
    :param error: the last line of its error, for a trial that failed.
    """

    trial_id: str
    label: str
    axes: Mapping[str, Any]
    params: Mapping[str, Any]
    code: Mapping[str, str]
    protocol: str
    status: str
    metric_name: str
    metrics: Mapping[str, float]
    curve: tuple[Mapping[str, float], ...]
    group: str | None
    trained_in: str
    environment: Mapping[str, Any] = field(default_factory=dict)
    error: str | None = None

    @property
    def task(self) -> str:
        return str(self.axes["task"])

    @property
    def seed(self) -> int:
        return int(self.axes["seed"])

    @property
    def fingerprint(self) -> str:
        """A hash of the trial's outcome: its status, final numbers and curve (never where or when it ran)."""
        return digest([self.trial_id, self.status, sorted(self.metrics.items()),
                       [sorted(epoch.items()) for epoch in self.curve]])


@dataclass(frozen=True)
class TrackedRun:
    """One ``nnbench run`` as trackers show it: its trials (those it trained and those it reused from the
    store) and its seed groups, with the run's grid and environment as stored (JSON-ready)."""

    run_id: str
    status: str
    started_at: str | None
    finished_at: str | None
    grid: Mapping[str, Any]
    environment: Mapping[str, Any]
    trials: tuple[TrackedTrial, ...]
    groups: tuple[SeedGroup, ...]


def digest(value: Any) -> str:
    """A short stable hash of a JSON-ready ``value``."""
    return hashlib.sha256(json.dumps(value, sort_keys=True, default=str).encode()).hexdigest()[:16]


def finite(value: Any) -> float | None:
    """``value`` as a float when it is a finite number (``None``, NaN, text, booleans and infinities are not)."""
    if isinstance(value, bool | str | bytes):
        return None
    try:
        number = float(value)  # numpy scalars too
    except (TypeError, ValueError):
        return None
    return number if math.isfinite(number) else None


def flatten(params: Mapping[str, Any], prefix: str = "") -> dict[str, Any]:
    """``{"arch": {"hidden": [64]}}`` as ``{"arch.hidden": [64]}`` (lists stay values)."""
    flat: dict[str, Any] = {}
    for key, value in params.items():
        name = f"{prefix}{key}"
        if isinstance(value, Mapping) and value:
            flat.update(flatten(value, name + "."))
        elif not isinstance(value, Mapping):
            flat[name] = value
    return flat


def tracked_trial(trial: Trial, status: str, metric_name: str, metrics: Mapping[str, Any],
                  curve: Iterable[Mapping[str, Any]], trained_in: str, environment: Mapping[str, Any],
                  error: str | None = None, trial_id: str | None = None) -> TrackedTrial:
    """A trial with its outcome, as trackers show it (every number that is not finite left out); ``trial_id``
    is the id it is stored under, when that is not the trial's own."""
    params = {k: v for k, v in trial.params.items() if k != "code"}
    tuning = trial.params.get("tuning") or {}
    role = tuning.get("role") if isinstance(tuning, Mapping) else None
    axes = {ax.name: getattr(trial, ax.name) for ax in TRIAL_AXES}
    axes.update(sorted(trial.components.items()))
    epochs = []
    for record in curve:
        values = {name: v for name in CURVE_METRICS if (v := finite(record.get(name))) is not None}
        epochs.append({"epoch": int(record["epoch"]), **values})
    last_line = str(error).strip().splitlines()[-1] if error and str(error).strip() else None
    numbers = {name: value for name in FINAL_METRICS if (value := finite(metrics.get(name))) is not None}
    return TrackedTrial(
        trial_id=trial_id or trial.trial_id, label=trial.label(), axes=axes, params=flatten(params),
        code=dict(trial.params.get("code") or {}), protocol=PROTOCOLS.get(str(role), "default"), status=status,
        metric_name=metric_name or "", metrics=numbers,
        curve=tuple(epochs), group=None if role_of(trial) == "tune" else trial.configuration_key,
        trained_in=trained_in, environment={k: environment[k] for k in ENVIRONMENT_KEYS if k in environment},
        error=last_line)


def from_result(result: TrialResult, run_id: str, environment: Mapping[str, Any]) -> TrackedTrial:
    """A live run's result as trackers show it (the same trial read back from the store reads the same)."""
    metrics = {**result.summary(), "epochs_run": len(result.curve)}
    curve = [vars(record) for record in result.curve]
    return tracked_trial(result.trial, result.status, result.metric_name, metrics, curve, run_id, environment,
                         result.error)
