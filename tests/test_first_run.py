"""A first run that feels right: the time left comes from the cost model and what the run measures, and is within a
factor of two once a tenth of the run has passed; the bar says what is training in the user's words; help lists
every kind without ``import nnbench`` loading a plugin."""

from __future__ import annotations

import inspect
import subprocess
import sys
import time
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

import nnbench
from nnbench.contract.executor import WorkItem
from nnbench.contract.run_options import RunOptions
from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.execution.costs import CostModel
from nnbench.execution.forecast import Forecast
from nnbench.loading.catalogue import Catalogue
from nnbench.progress import ConsoleProgress, format_duration, training_label
from nnbench.session import Session


class Clock:
    def __init__(self) -> None:
        self.now = 0.0

    def __call__(self) -> float:
        return self.now


class FlatCost(CostModel):
    """Every trial is estimated at ``each`` seconds."""

    def __init__(self, catalogue: Catalogue, each: float) -> None:
        super().__init__(catalogue)
        self.each = each

    def item_seconds(self, trials: Any, stacked: bool) -> float:
        return self.each * len(trials)


def trials(n: int, arch: str = "fnn") -> list[Trial]:
    return [Trial(task="digits", arch=arch, activation="relu", loss="cross_entropy", optimizer="adam", lr=0.001,
                  batch_size=32, epochs=2, seed=seed) for seed in range(n)]


def result(trial: Trial, train_time: float) -> TrialResult:
    return TrialResult(trial, "ok", train_time=train_time)


def test_the_forecast_lays_the_estimates_over_the_slots_and_learns_the_pace(catalogue: Catalogue) -> None:
    clock = Clock()
    cost = FlatCost(catalogue, 10.0)
    planned = [WorkItem((t,), False, 10.0) for t in trials(5)]
    queue = list(planned)
    forecast = Forecast(queue, cost, slots=2, clock=clock)
    assert forecast.seconds_left() == 30.0  # five items of 10 s over two slots: 10 + 10 + 10 on the busier one
    for item in planned[:2]:
        queue.remove(item)
        forecast.started(item.trials)
    clock.now = 4.0
    assert forecast.seconds_left() == 6.0 + 10.0 + 10.0  # what is left of the two, then three more over two slots
    clock.now = 20.0  # the first item trained twice as long as estimated: everything left will too
    forecast.finished(result(planned[0].trials[0], train_time=20.0))
    assert forecast.pace() == 2.0  # its training only: a slot's first item also did one-time work
    assert forecast.seconds_left() == 40.0  # the second item is overdue: 2 s assumed, then 3 x 20 s over two slots
    queue.remove(planned[2])
    forecast.started(planned[2].trials)
    clock.now = 45.0  # a later item: 20 s of training and 5 s around it, 25 s for an estimate of 10 s
    forecast.finished(result(planned[2].trials[0], train_time=20.0))
    assert forecast.pace() == 2.5
    assert forecast.seconds_left() == 2.5 + 25.0  # the overdue one, then two items of 25 s over two slots
    assert forecast.trial_ids == {t.trial_id for item in planned for t in item.trials}


def test_measured_trials_calibrate_the_architectures_own_estimates(catalogue: Catalogue) -> None:
    cost = CostModel(catalogue)
    fnn, cnn = trials(2), [replace(t, epochs=3) for t in trials(2, "cnn")]
    declared_cnn, declared_fnn = cost.seconds(cnn[0]), cost.seconds(fnn[1])
    measured = TrialResult(cnn[0], "ok", train_time=4 * declared_cnn)  # its first epoch warmed up, once
    measured.curve = [EpochRecord(epoch, 0.5, 0.5, 0.5, seconds * declared_cnn)
                      for epoch, seconds in ((1, 2.5), (2, 1.5), (3, 1.5))]
    cost.learn(measured)
    assert cost.seconds(cnn[0]) == pytest.approx(3 * 1.5 * declared_cnn)  # measured: its epochs at a steady pace
    assert cost.seconds(fnn[1]) == pytest.approx(4.5 * declared_fnn)  # not measured yet: the same correction


class Recorder(ConsoleProgress):
    """Records, at each result, the forecast of the time left."""

    def __init__(self, session: Session) -> None:
        super().__init__(session.domain, session.pm, lambda *a, **k: None, bar=False, plan=False, summary=False)
        self.forecasts: list[tuple[float, float, int]] = []  # (when, seconds left, items still to finish)
        self.start = 0.0

    def scheduled(self, forecast: Forecast) -> None:
        super().scheduled(forecast)
        self.start = time.monotonic()

    def result(self, result: TrialResult) -> None:
        super().result(result)
        assert self.forecast is not None
        pending = len(self.forecast.items) + len({id(t) for t in self.forecast._training.values()})
        self.forecasts.append((time.monotonic() - self.start, self.forecast.seconds_left(), pending))


@pytest.mark.slow
def test_the_time_left_is_within_a_factor_of_two_after_a_tenth_of_a_real_run(tmp_path: Path, one_thread: None) -> None:
    session = Session()
    grid = session.grid(task="digits", arch="fnn,cnn", activation="relu,tanh", optimizer="adam", seeds=2, epochs=25)
    recorder = Recorder(session)
    session.run(grid, tmp_path / "eta.db", RunOptions(workers=1, vectorize=False), observer=recorder)
    end = recorder.forecasts[-1][0]
    # In its last moments a forecast and what is left are fractions of a second, and one item's luck.
    checked = [(when, left, end - when) for when, left, pending in recorder.forecasts if 0.1 * end <= when <= 0.9 * end]
    assert len(checked) >= 4
    for when, left, actual in checked:
        assert 0.5 <= left / actual <= 2.0, (when, left, actual, recorder.forecasts)


def test_the_bar_names_what_trains_in_the_users_words(catalogue: Catalogue) -> None:
    domain = catalogue.domain
    stack = [Trial(task="digits", arch="fnn", activation=activation, loss="cross_entropy", optimizer="adam",
                   lr=0.001, batch_size=32, epochs=2, seed=seed) for activation in ("relu", "tanh", "gelu")
             for seed in range(3)]
    assert training_label(stack, domain) == ("digits fnn/cross_entropy/adam@0.001 with activations relu, tanh and "
                                             "gelu, 3 seeds each")
    assert training_label(stack[:3], domain) == "digits fnn/relu/cross_entropy/adam@0.001, 3 seeds"
    assert training_label(stack[4:5], domain) == "digits fnn/tanh/cross_entropy/adam@0.001, seed 1"
    assert format_duration(194) == "03:14" and format_duration(3723) == "1:02:03" and format_duration(-1) == "00:00"


def test_help_lists_the_kinds_of_plugins_installed(nnbench_plugin: Any) -> None:
    class Dropouts:
        @nnbench.hookimpl
        def register_kinds(self, register: Any) -> None:
            register(nnbench.Kind("dropout_scheme", "dropout_schemes", "model", "none", "dropout through hooks"))

        @nnbench.hookimpl
        def register_components(self, register: Any) -> None:
            register(nnbench.Component("dropout_scheme", "none", lambda model, **_: model))

    nnbench_plugin(Dropouts(), name="dropouts")
    assert "dropout_scheme" in inspect.signature(nnbench.run).parameters
    assert "    dropout_scheme: Dropout_schemes: dropout through hooks (default 'none')." in (nnbench.run.__doc__ or "")
    assert "A kind of plugin 'dropouts'." in (nnbench.run.__doc__ or "")


def test_importing_nnbench_loads_no_plugin() -> None:
    code = "import sys, nnbench; print(sorted(m for m in sys.modules if m.startswith('nnbench.builtin')))"
    done = subprocess.run([sys.executable, "-c", code], capture_output=True, text=True, timeout=120)
    assert done.returncode == 0, done.stderr
    assert done.stdout.strip() == "[]"
