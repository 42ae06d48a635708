"""Planning the work of a grid: worker counts, splitting seed groups, longest first, and option checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import Trial
from nnbench.execution.scheduling import (
    PARALLEL_SECONDS,
    CostModel,
    WorkItem,
    fill_workers,
    plan_items,
    resolve_workers,
)
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid
from nnbench.session import RunOptions
from nnbench.training.calibration import StackingChoice, StackingChoices, calibration_key
from nnbench.training.ensemble import group_by_seed


def grid_trials(catalogue: Any, **axes: Any) -> list[Trial]:
    base = {"task": "moons", "arch": "fnn", "activation": "relu", "optimizer": "adam", "seeds": 3, "epochs": 5}
    trials, _ = expand_grid(build_grid(None, [], domain=catalogue.domain, **{**base, **axes}), catalogue)
    return trials


def items(count: int, seconds: float, device: str = "cpu") -> list[WorkItem]:
    trial = Trial("moons", "fnn", "relu", "cross_entropy", "adam", 1e-3, 32, 5, 0, device)
    return [WorkItem([dataclasses.replace(trial, seed=i)], None, seconds) for i in range(count)]


# -- how many workers --------------------------------------------------------------------------------


def test_auto_takes_one_worker_per_core_clamped_to_the_work() -> None:
    chosen = resolve_workers(None, None, items(10, 5.0), 1, None, cores=4)
    assert (chosen.inline, chosen.cpu, chosen.notes) == (False, 4, ())
    assert resolve_workers(None, None, items(3, 5.0), 1, None, cores=4).cpu == 3
    assert resolve_workers(None, None, items(10, 5.0), 2, None, cores=4).cpu == 2  # two threads a worker


def test_auto_trains_a_grid_too_small_for_workers_in_this_process_and_says_so() -> None:
    small = resolve_workers(None, None, items(4, PARALLEL_SECONDS / 8), 1, None, cores=2)
    assert small.inline and "would not pay for starting worker processes" in small.notes[0]
    single = resolve_workers(None, None, items(1, 100.0), 1, None, cores=2)
    assert single.inline
    one_core = resolve_workers(None, None, items(10, 100.0), 1, None, cores=1)
    assert one_core.inline and one_core.notes == ()


def test_one_worker_is_this_process_unless_a_time_limit_needs_a_worker() -> None:
    assert resolve_workers(1, None, items(10, 5.0), 1, None, cores=4).inline
    limited = resolve_workers(1, None, items(10, 5.0), 1, 30.0, cores=4)
    assert (limited.inline, limited.cpu) == (False, 1)
    assert not resolve_workers(None, None, items(1, 0.1), 1, 30.0, cores=4).inline


def test_more_workers_than_work_or_cores_is_clamped_or_warned_and_said() -> None:
    many = resolve_workers(8, None, items(3, 5.0), 1, None, cores=2)
    assert many.cpu == 3
    assert "--workers 8: only 3 work items can train at once here, so 3 workers start" in many.notes
    assert "3 workers with --threads 1 need more than the 2 cores here: workers share cores, so their timings " \
        "are measured in company" in many.notes
    one = resolve_workers(8, None, items(1, 5.0), 1, None, cores=2)
    assert one.notes == ("--workers 8: only 1 work item can train at once here, so 1 worker starts",)  # no company
    assert resolve_workers(2, None, items(4, 5.0), 1, None, cores=2).notes == ()
    alone = resolve_workers(8, None, items(1, 5.0), 4, None, cores=2)  # one worker, its own threads too many
    assert alone.notes[1] == ("--threads 4 is more than the 2 cores here: the worker's threads share cores, which "
                              "slows its steps (--threads 2 or fewer would not)")
    assert not any("company" in note for note in resolve_workers(1, None, items(3, 5.0), 4, 30.0, cores=2).notes)
    assert any("2 workers with --threads 2 need more" in n for n in resolve_workers(2, None, items(4, 5.0), 2, None,
                                                                                     cores=2).notes)


def test_per_device_on_a_cpu_only_grid_is_said_to_change_nothing() -> None:
    chosen = resolve_workers(None, 2, items(10, 5.0), 1, None, cores=2)
    assert "--per-device 2 applies to accelerators" in chosen.notes[0]


def test_accelerator_trials_always_get_workers() -> None:
    chosen = resolve_workers(1, None, items(1, 0.1, device="cuda:0"), 1, None, cores=2)
    assert not chosen.inline and chosen.per_device is None


@pytest.mark.parametrize(("workers", "message"), [
    (0, "--workers must be a whole number >= 1 or auto, not 0"),
    (-2, "--workers must be a whole number >= 1 or auto, not -2"),
    ("many", "--workers must be a whole number >= 1 or auto, not 'many'"),
])
def test_bad_worker_counts_are_one_clear_error(workers: Any, message: str) -> None:
    with pytest.raises(NNBenchError, match=message):
        RunOptions(workers=workers).validate()


def test_bad_per_device_counts_are_one_clear_error() -> None:
    with pytest.raises(NNBenchError, match="--per-device must be a whole number >= 1 or auto, not -1"):
        RunOptions(per_device=-1).validate()
    options = RunOptions(workers="auto", per_device="3")
    options.validate()
    assert (options.workers, options.per_device) == (None, 3)


# -- work items --------------------------------------------------------------------------------------


def test_groups_that_train_one_by_one_become_one_item_per_seed(catalogue: Any) -> None:
    trials = grid_trials(catalogue, optimizer="lbfgs,adam")
    cost = CostModel(catalogue)
    planned = plan_items(group_by_seed(trials), catalogue, StackingChoices(), True, cost)
    lbfgs = [i for i in planned if i.trials[0].optimizer == "lbfgs"]
    adam = [i for i in planned if i.trials[0].optimizer == "adam"]
    assert [len(i.trials) for i in lbfgs] == [1, 1, 1]
    assert all(i.choice is not None and not i.choice.stacked and "re-evaluates" in i.choice.reason for i in lbfgs)
    assert [len(i.trials) for i in adam] == [3] and adam[0].undecided and adam[0].key
    turned_off = plan_items(group_by_seed(trials), catalogue, StackingChoices(), False, cost)
    assert len(turned_off) == 6 and {i.choice.reason for i in turned_off} == {"stacking was turned off"}


def test_a_known_choice_decides_a_group_before_it_goes_out(catalogue: Any) -> None:
    group = grid_trials(catalogue)
    choices = StackingChoices()
    choices.put(calibration_key(group, catalogue), StackingChoice(False, 0.7))
    planned = plan_items([group], catalogue, choices, True, CostModel(catalogue))
    assert [len(i.trials) for i in planned] == [1, 1, 1] and planned[0].choice.ratio == 0.7
    choices.put(calibration_key(group, catalogue), StackingChoice(True, 2.5))
    stacked = plan_items([group], catalogue, choices, True, CostModel(catalogue))
    assert len(stacked) == 1 and stacked[0].choice.stacked and not stacked[0].undecided


def test_items_go_out_longest_first(catalogue: Any) -> None:
    trials = grid_trials(catalogue, task="moons,digits", arch="fnn,cnn", seeds=1, epochs="2,20")
    planned = plan_items(group_by_seed(trials), catalogue, StackingChoices(), True, CostModel(catalogue))
    seconds = [i.seconds for i in planned]
    assert seconds == sorted(seconds, reverse=True)
    first, last = planned[0].trials[0], planned[-1].trials[0]
    assert (first.task, first.arch, first.epochs) == ("digits", "cnn", 20)
    assert (last.task, last.arch, last.epochs) == ("moons", "fnn", 2)


def test_stored_timings_of_similar_trials_override_the_estimate(catalogue: Any) -> None:
    trial = grid_trials(catalogue, seeds=1)[0]
    guessed = CostModel(catalogue).seconds(trial)
    stored = CostModel(catalogue, [("moons", "fnn", '{"dropout": 0.0, "hidden": [64, 64]}', 32, "cpu", 0.5, 640)])
    assert stored.seconds(trial) == pytest.approx(5 * 0.5) != pytest.approx(guessed)
    other_device = CostModel(catalogue, [("moons", "fnn", '{"dropout": 0.0, "hidden": [64, 64]}', 32, "cuda:0",
                                          0.5, 640)])
    assert other_device.seconds(trial) != pytest.approx(2.5)


def test_fewer_items_than_workers_split_the_largest_group(catalogue: Any) -> None:
    group = grid_trials(catalogue, seeds=4)
    cost = CostModel(catalogue)
    planned = plan_items([group], catalogue, StackingChoices(), True, cost)
    split = fill_workers(planned, 2, catalogue, StackingChoices(), cost)
    assert sorted(len(i.trials) for i in split) == [2, 2]
    assert all(i.undecided for i in split)  # each half measures its own choice
    assert sorted(t.seed for i in split for t in i.trials) == [0, 1, 2, 3]
    assert len(fill_workers(planned, 8, catalogue, StackingChoices(), cost)) == 4  # no further than one a seed
    assert fill_workers(planned, 1, catalogue, StackingChoices(), cost) == planned
