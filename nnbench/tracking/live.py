"""The live side of a tracker plugin: what its lifecycle hooks share, whatever the tracker.

A tracker plugin makes one :class:`LiveTracker` and calls it from its hooks (``before_run``, ``after_trial``,
``after_run``); the tracker writes each trial as it is stored and the run's seed groups once it ends, through
the three methods a subclass gives (:meth:`LiveTracker.start`, :meth:`LiveTracker.log_trial`,
:meth:`LiveTracker.finish`). It is on while installed, and off where its switch says (``NNBENCH_MLFLOW=off``).
A tracker that fails (a server down, a full disk) costs one warning line and is off for the rest of the run;
the run, its trials and its store never notice, and ``nnbench export --to`` catches up later.

Trials are written once they are stored (``after_trial``, in the process that stores them), with their
whole curve: an ``after_epoch`` hook would run in every worker process and make every epoch measure the
test data.
"""

from __future__ import annotations

import os
import warnings
from collections.abc import Callable, Mapping, Sequence
from typing import TYPE_CHECKING, Any

from nnbench.execution.devices import local_devices
from nnbench.execution.environment import environment
from nnbench.tracking.records import TrackedRun, TrackedTrial, from_result

if TYPE_CHECKING:
    from nnbench.contract.trial import Trial, TrialResult

OFF = frozenset({"off", "0", "false", "no", "none"})
"""Values of a tracker's switch that turn its live logging off (any other value, or none, leaves it on)."""


class TrackerWarning(UserWarning):
    """A tracker failed while a run was logged: it is off for the rest of the run, which goes on."""


def switched_on(variable: str) -> bool:
    """Whether the environment variable ``variable`` leaves a tracker on (unset: on)."""
    return os.environ.get(variable, "on").strip().lower() not in OFF


class LiveTracker:
    """One tracker's live logging of the runs of this process: one run at a time, from ``before_run`` to
    ``after_run``. Subclasses write to their tracker; this class decides when, and keeps failures contained.

    :param name: the tracker's name as users know it (``MLflow``) and as ``export --to`` takes it.
    :param switch: the environment variable that turns live logging off (``NNBENCH_MLFLOW=off``).
    """

    def __init__(self, name: str, switch: str) -> None:
        self.name, self.switch = name, switch
        self.run_id: str | None = None
        self.environment: dict[str, Any] = {}
        self.failed = False

    # -- what a tracker writes -----------------------------------------------------------------------------

    def start(self, run_id: str, trials: Sequence[Trial]) -> None:
        """A run starts: ``trials`` will be trained."""
        raise NotImplementedError

    def log_trial(self, trial: TrackedTrial) -> None:
        """A trial of the run was stored."""
        raise NotImplementedError

    def finish(self, run: TrackedRun) -> None:
        """The run ended: ``run`` holds the trials it trained and their seed groups."""
        raise NotImplementedError

    # -- called by the plugin's hooks -----------------------------------------------------------------------

    def before_run(self, run_id: str, trials: Sequence[Trial]) -> None:
        self.run_id, self.failed = None, False
        if not switched_on(self.switch):
            return
        self.run_id = run_id
        self.environment = self._guarded(current_environment) or {}
        self._guarded(self.start, run_id, trials)

    def after_trial(self, trial: Trial, result: TrialResult) -> None:
        if self.run_id is None:
            return
        self._guarded(lambda: self.log_trial(from_result(result, str(self.run_id), self.environment)))

    def after_run(self, run_id: str, results: Sequence[TrialResult]) -> None:
        if self.run_id != run_id:
            return
        from nnbench.tracking.reading import live_run  # pandas: a tracker plugin loads without it

        self._guarded(lambda: self.finish(live_run(run_id, "finished", results, self.environment)))
        self.run_id = None

    def _guarded(self, step: Callable[..., Any], *args: Any) -> Any:
        """``step(*args)``, unless this tracker failed in this run already; a failure is one warning line."""
        if self.failed:
            return None
        try:
            return step(*args)
        except Exception as exc:
            self.failed = True
            warnings.warn(f"{self.name} tracking failed and is off for the rest of this run ({type(exc).__name__}: "
                          f"{_first_line(exc)}); the run and its store are not affected, and `nnbench export --to "
                          f"{self.name.lower()}` catches up later", TrackerWarning, stacklevel=2)
            return None


def current_environment() -> dict[str, Any]:
    """What this process runs on, as a run records it (the parts trackers show)."""
    return environment({device.name: device.description for device in local_devices()}, 1)


def _first_line(exc: BaseException) -> str:
    text = str(exc).strip()
    return text.splitlines()[0][:300] if text else "no message"


def environment_tags(environment: Mapping[str, Any]) -> dict[str, str]:
    """A run's environment as flat text (``devices`` as ``cpu: x86_64; cuda:0: ...``), for tags and labels."""
    tags = {}
    for key, value in environment.items():
        if isinstance(value, Mapping):
            value = "; ".join(f"{k}: {v}" for k, v in value.items())
        if value is not None:
            tags[key] = str(value)
    return tags
