"""What a run tells whoever started it: :class:`RunObserver`, whose every method does nothing by default.

``nnbench run`` and ``nnbench.run`` watch a run through one observer (:class:`nnbench.progress.ConsoleProgress`
prints it); the run's sink tells it about each claim and result, the run sequence about the plan and the end.
"""

from __future__ import annotations

from typing import TYPE_CHECKING

if TYPE_CHECKING:
    from nnbench.contract.trial import Trial, TrialResult
    from nnbench.execution.forecast import Forecast
    from nnbench.session import Plan, RunOutcome
    from nnbench.storage.store import ResultStore


class RunObserver:
    """What the run sequence tells whoever started it; every method does nothing by default."""

    def planned(self, plan: Plan) -> None:
        """The grid is expanded and checked against the store; training is about to start."""

    def scheduled(self, forecast: Forecast) -> None:
        """A batch of the run's trials (the grid; with tuning, later its final trials) is planned into work items;
        ``forecast`` says how long what is left of it will take, as it goes (it learns from the items that start
        and finish: tell it, through :meth:`Forecast.started` and :meth:`Forecast.finished`)."""

    def started(self, trials: list[Trial]) -> None:
        """A work item (one trial, or seeds of one configuration trained together) starts training."""

    def result(self, result: TrialResult) -> None:
        """A trial's result was stored."""

    def log(self, message: str) -> None:
        """Something the user should know (a fallback, the end of tuning), in one line."""

    def training_location(self, in_process: bool) -> None:
        """Trials are about to train in this process (``in_process``), or in others (workers, a cluster)
        while this one mostly waits, with time for other work that slows no timed training."""

    def finished(self, outcome: RunOutcome, store: ResultStore) -> None:
        """The run ended without an exception (finished, or stopped by the failure budget); ``store``
        is still open, for reading what the run stored."""

    def close(self) -> None:
        """The run ended, however it ended."""
