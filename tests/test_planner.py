"""Planning the work of a grid, once: stacks and work items, worker counts, longest first, and option checks."""

from __future__ import annotations

import dataclasses
from typing import Any

import pytest

from nnbench import Architecture, hookimpl
from nnbench.contract.errors import NNBenchError
from nnbench.contract.executor import WorkItem
from nnbench.contract.run_options import RunOptions
from nnbench.contract.trial import Trial
from nnbench.execution.costs import CostModel
from nnbench.execution.job import ItemTraining
from nnbench.execution.planner import (
    PARALLEL_SECONDS,
    LocalExecutors,
    Workers,
    WorkQueue,
    choose_workers,
    plan_work,
    work_items,
)
from nnbench.execution.stacks import Stacking, group_by_seed, stack_groups, stacking
from nnbench.planning.grid import expand_grid
from nnbench.planning.gridfile import build_grid


def grid_trials(catalogue: Any, **axes: Any) -> list[Trial]:
    base = {"task": "moons", "arch": "fnn", "activation": "relu", "optimizer": "adam", "seeds": 3, "epochs": 5}
    trials, _ = expand_grid(build_grid(None, [], domain=catalogue.domain, **{**base, **axes}), catalogue)
    return trials


def items(count: int, seconds: float, device: str = "cpu") -> list[WorkItem]:
    trial = Trial("moons", "fnn", "relu", "cross_entropy", "adam", 1e-3, 32, 5, 0, device)
    return [WorkItem((dataclasses.replace(trial, seed=i),), False, seconds) for i in range(count)]


LOCAL = LocalExecutors("inline", "processes")


def workers(count: int | None = None, per_device: int | None = None, threads: int = 1, timeout: float | None = None,
            **more: Any) -> RunOptions:
    return RunOptions(workers=count, per_device=per_device, threads=threads, timeout=timeout, **more)


# -- how many workers --------------------------------------------------------------------------------


def test_auto_takes_one_worker_per_core_clamped_to_the_work() -> None:
    chosen = choose_workers(workers(), items(10, 5.0), LOCAL, cores=4)
    assert (chosen.executor, chosen.cpu, chosen.notes) == ("processes", 4, ())
    assert choose_workers(workers(), items(3, 5.0), LOCAL, cores=4).cpu == 3
    assert choose_workers(workers(threads=2), items(10, 5.0), LOCAL, cores=4).cpu == 2  # two threads a worker


def test_auto_trains_a_grid_too_small_for_workers_in_this_process_and_says_so() -> None:
    small = choose_workers(workers(), items(4, PARALLEL_SECONDS / 8), LOCAL, cores=2)
    assert small.executor == "inline" and small.cpu == 0
    assert small.notes == ("training in this process: 4 work items of about 1.0 s in all would not pay for starting "
                           "worker processes (--workers N starts them anyway)",)
    assert choose_workers(workers(), items(4, PARALLEL_SECONDS / 4), LOCAL, cores=2).executor == "processes"  # pays
    single = choose_workers(workers(), items(1, 100.0), LOCAL, cores=2)
    assert single.executor == "inline"
    assert single.notes == ("training in this process: 1 work item of about 100.0 s in all would not pay for "
                            "starting worker processes (--workers N starts them anyway)",)
    one_core = choose_workers(workers(), items(10, 100.0), LOCAL, cores=1)
    assert one_core.executor == "inline" and one_core.notes == ()
    asked = choose_workers(workers(executor="processes"), items(4, PARALLEL_SECONDS / 8), LOCAL, cores=2)
    assert (asked.executor, asked.cpu, asked.notes) == ("processes", 2, ())


def test_one_worker_is_this_process_unless_a_time_limit_needs_a_worker() -> None:
    assert choose_workers(workers(1), items(10, 5.0), LOCAL, cores=4) == Workers("inline", 0)
    limited = choose_workers(workers(1, timeout=30.0), items(10, 5.0), LOCAL, cores=4)
    assert (limited.executor, limited.cpu) == ("processes", 1)
    assert choose_workers(workers(timeout=30.0), items(1, 0.1), LOCAL, cores=4).executor == "processes"
    in_process_asked = choose_workers(workers(executor="inline", timeout=30.0), items(1, 0.1), LOCAL, cores=4)
    assert in_process_asked.executor == "processes"


def test_worker_processes_may_start_early_exactly_when_the_options_may_need_them() -> None:
    assert LOCAL.may_start_workers(workers(executor="processes"))
    assert not LOCAL.may_start_workers(workers(executor="inline"))
    assert not LOCAL.may_start_workers(workers(1, executor="inline"))
    assert LOCAL.may_start_workers(workers(2, executor="inline"))
    assert LOCAL.may_start_workers(workers(executor="inline", timeout=30.0))
    assert LOCAL.may_start_workers(workers())  # auto may choose workers
    assert not LOCAL.may_start_workers(workers(1))
    assert LOCAL.may_start_workers(workers(1, timeout=30.0))
    assert not LOCAL.may_start_workers(workers(executor="ray"))


def test_more_workers_than_work_or_cores_is_clamped_or_warned_and_said() -> None:
    many = choose_workers(workers(8), items(3, 5.0), LOCAL, cores=2)
    assert many.cpu == 3
    assert "--workers 8: only 3 work items can train at once here, so 3 workers start" in many.notes
    assert "3 workers with --threads 1 need more than the 2 cores here: workers share cores, so their timings " \
        "are measured in company" in many.notes
    one = choose_workers(workers(8), items(1, 5.0), LOCAL, cores=2)
    assert one.notes == ("--workers 8: only 1 work item can train at once here, so 1 worker starts",)  # no company
    assert choose_workers(workers(2), items(4, 5.0), LOCAL, cores=2).notes == ()
    assert choose_workers(workers(2), items(2, 5.0), LOCAL, cores=2).notes == ()  # as many workers as items
    alone = choose_workers(workers(8, threads=4), items(1, 5.0), LOCAL, cores=2)  # one worker, its own threads too many
    assert alone.notes[1] == ("--threads 4 is more than the 2 cores here: the worker's threads share cores, which "
                              "slows its steps (--threads 2 or fewer would not)")
    assert not any("company" in note for note in choose_workers(workers(1, threads=4, timeout=30.0), items(3, 5.0),
                                                                  LOCAL, cores=2).notes)
    assert any("2 workers with --threads 2 need more" in n
               for n in choose_workers(workers(2, threads=2), items(4, 5.0), LOCAL, cores=2).notes)


def test_per_device_on_a_cpu_only_grid_is_said_to_change_nothing() -> None:
    chosen = choose_workers(workers(per_device=2), items(10, 5.0), LOCAL, cores=2)
    assert "--per-device 2 applies to accelerators" in chosen.notes[0]


def test_accelerator_trials_always_get_workers() -> None:
    chosen = choose_workers(workers(1), items(1, 0.1, device="cuda:0"), LOCAL, cores=2)
    assert chosen.executor == "processes"


def test_an_executor_of_another_kind_is_given_the_workers_asked_for() -> None:
    assert choose_workers(workers(3, executor="ray"), items(10, 5.0), LOCAL, cores=2) == choose_workers(
        workers(3, executor="ray"), items(1, 5.0), LOCAL, cores=8)  # not clamped to the local work or cores
    assert choose_workers(workers(3, executor="ray"), items(10, 5.0), LOCAL, cores=2).cpu == 3
    assert choose_workers(workers(executor="ray"), items(10, 5.0), LOCAL, cores=4).executor == "ray"


@pytest.mark.parametrize(("count", "message"), [
    (0, "--workers must be a whole number >= 1 or auto, not 0"),
    (-2, "--workers must be a whole number >= 1 or auto, not -2"),
    ("many", "--workers must be a whole number >= 1 or auto, not 'many'"),
])
def test_bad_worker_counts_are_one_clear_error(count: Any, message: str) -> None:
    with pytest.raises(NNBenchError, match=message):
        RunOptions(workers=count)


def test_bad_per_device_counts_are_one_clear_error() -> None:
    with pytest.raises(NNBenchError, match="--per-device must be a whole number >= 1 or auto, not -1"):
        RunOptions(per_device=-1)
    options = RunOptions(workers="auto", per_device="3")  # type: ignore[arg-type]  # as the command line gives them
    assert (options.workers, options.per_device) == (None, 3)


# -- stacks and work items ---------------------------------------------------------------------------


def test_groups_that_train_one_by_one_become_one_item_per_seed(catalogue: Any) -> None:
    trials = grid_trials(catalogue, optimizer="lbfgs,adam")
    planned, notes = work_items(trials, catalogue, True, CostModel(catalogue))
    lbfgs = [i for i in planned if i.trials[0].optimizer == "lbfgs"]
    adam = [i for i in planned if i.trials[0].optimizer == "adam"]
    assert [len(i.trials) for i in lbfgs] == [1, 1, 1]
    assert all(not i.stacked and "re-evaluates" in str(i.reason) for i in lbfgs)
    assert [len(i.trials) for i in adam] == [3] and adam[0].stacked and adam[0].reason is None
    assert notes == ["1 group of seeds that could share a stack trains one seed at a time: optimizer 'lbfgs' "
                     "re-evaluates the loss of the whole model in each step"]
    _, two_groups = work_items(grid_trials(catalogue, task="moons,spirals", optimizer="lbfgs"), catalogue, True,
                               CostModel(catalogue))
    assert two_groups == ["2 groups of seeds that could share a stack train one seed at a time: optimizer 'lbfgs' "
                          "re-evaluates the loss of the whole model in each step"]
    turned_off, _ = work_items(trials, catalogue, False, CostModel(catalogue))
    assert stacking(trials[3:], catalogue, vectorize=False) == Stacking(False, "stacking was turned off")
    assert len(turned_off) == 6 and {i.reason for i in turned_off} == {"stacking was turned off"}


def test_an_architecture_stacks_from_the_seed_count_it_declares(catalogue: Any) -> None:
    lstm = grid_trials(catalogue, task="digits", arch="lstm", seeds=4)
    assert stacking(lstm, catalogue) == stacking(lstm, catalogue)
    assert not stacking(lstm, catalogue).stacked
    assert "from 8 seeds on cpu" in str(stacking(lstm, catalogue).reason)
    assert stacking(grid_trials(catalogue, task="digits", arch="lstm", seeds=8), catalogue).stacked
    assert stacking(grid_trials(catalogue, task="digits", arch="gru", seeds=2), catalogue).stacked
    assert not stacking(grid_trials(catalogue, seeds=1), catalogue).stacked


def test_the_same_grid_makes_the_same_stacks_whatever_the_workers(catalogue: Any) -> None:
    trials = grid_trials(catalogue, activation="relu,tanh,prelu", seeds=4)
    plans = [plan_work(trials, catalogue, RunOptions(workers=count), CostModel(catalogue), ItemTraining(), cores=8)
             for count in (1, 2, 8)]
    stacks = [sorted(tuple(t.trial_id for t in item.trials) for item in plan.items) for plan in plans]  # type: ignore
    assert stacks[0] == stacks[1] == stacks[2]
    assert sorted(len(s) for s in stacks[0]) == [4, 8]  # relu and tanh share one stack; prelu has parameters


def test_a_plan_takes_the_cores_and_the_executor_options_it_is_given(catalogue: Any) -> None:
    trials = grid_trials(catalogue, activation="relu,tanh,prelu", seeds=4, epochs=200)
    one_core = plan_work(trials, catalogue, RunOptions(), CostModel(catalogue), ItemTraining(), cores=1)
    assert (one_core.executor, one_core.workers) == ("inline", 0)  # one core: no worker pays, whatever the machine
    many = plan_work(trials, catalogue, RunOptions(), CostModel(catalogue), ItemTraining(), cores=64)
    assert (many.executor, many.workers) == ("processes", 2)  # one worker per item
    ray = plan_work(trials, catalogue, RunOptions(executor="ray", extra={"address": "ray://head:10001"}),
                    CostModel(catalogue), ItemTraining(), cores=2)
    assert ray.options == {"address": "ray://head:10001", "nodes": None}  # each of its options, given or not
    assert many.options == {}
    limited = plan_work(trials, catalogue, RunOptions(timeout=30.0), CostModel(catalogue), ItemTraining(), cores=2)
    assert (limited.executor, limited.timeout) == ("processes", 30.0)


def test_seeds_with_element_wise_activations_share_a_stack_by_declaration(catalogue: Any) -> None:
    trials = grid_trials(catalogue, activation="relu,tanh,prelu", seeds=2)
    groups = stack_groups(trials, catalogue)
    assert sorted(sorted({t.activation for t in g}) for g in groups) == [["prelu"], ["relu", "tanh"]]
    assert [t.activation for t in groups[0]] == ["relu", "relu", "tanh", "tanh"]
    assert group_by_seed(trials) == [[t for t in trials if t.activation == a] for a in ("relu", "tanh", "prelu")]


def test_items_go_out_longest_first_with_isolated_items_before_all(catalogue: Any) -> None:
    trials = grid_trials(catalogue, task="moons,digits", arch="fnn,cnn", seeds=1, epochs="2,20")
    planned, _ = work_items(trials, catalogue, True, CostModel(catalogue))
    queue = WorkQueue(planned, CostModel(catalogue))
    seconds = [i.seconds for i in queue]
    assert seconds == sorted(seconds, reverse=True)
    first, last = next(iter(queue)).trials[0], list(queue)[-1].trials[0]
    assert (first.task, first.arch, first.epochs) == ("digits", "cnn", 20)
    assert (last.task, last.arch, last.epochs) == ("moons", "fnn", 2)
    apart, _ = work_items(trials, catalogue, True, CostModel(catalogue), isolated=[last.trial_id])
    taken = WorkQueue(apart, CostModel(catalogue)).take()
    assert taken is not None and taken.isolated and taken.trials[0] == last


def test_the_queue_counts_and_hands_out_only_the_items_a_device_can_train(catalogue: Any) -> None:
    queue = WorkQueue([*items(3, 5.0), *items(2, 5.0, device="cuda:0")], CostModel(catalogue))
    assert (len(queue), queue.waiting(), queue.waiting("cpu"), queue.waiting("cuda:0"), queue.waiting("cuda:1")) == (
        5, 5, 3, 2, 0)
    taken = queue.take("cpu")
    assert taken is not None and taken.device == "cpu"
    assert (queue.waiting(), queue.waiting("cpu"), queue.waiting("cuda:0")) == (4, 2, 2)
    assert queue.take("cuda:1") is None and sorted(queue.devices()) == ["cpu", "cuda:0"]


def test_stored_timings_of_similar_trials_override_the_estimate(catalogue: Any) -> None:
    trial = grid_trials(catalogue, seeds=1)[0]
    guessed = CostModel(catalogue).seconds(trial)
    stored = CostModel(catalogue, [("moons", "fnn", '{"dropout": 0.0, "hidden": [64, 64]}', 32, "cpu", 0.5, 640)])
    assert stored.seconds(trial) == pytest.approx(5 * 0.5) != pytest.approx(guessed)
    other_device = CostModel(catalogue, [("moons", "fnn", '{"dropout": 0.0, "hidden": [64, 64]}', 32, "cuda:0",
                                          0.5, 640)])
    assert other_device.seconds(trial) != pytest.approx(2.5)


# -- planned once ------------------------------------------------------------------------------------


@pytest.mark.parametrize(("tune", "batches"), [({}, 1), ({"tune": "lr", "budget": 2}, 2)])
def test_the_planner_and_the_stack_grouping_run_once_per_batch(tmp_path: Any, monkeypatch: pytest.MonkeyPatch,
                                                               tune: dict[str, Any], batches: int) -> None:
    import nnbench.execution.planner as planner
    import nnbench.session as session_module
    from nnbench.session import Session

    calls = {"plan_work": 0, "stack_groups": 0}

    def counted(name: str, function: Any) -> Any:
        def wrapper(*args: Any, **kwargs: Any) -> Any:
            calls[name] += 1
            return function(*args, **kwargs)

        return wrapper

    monkeypatch.setattr(session_module, "plan_work", counted("plan_work", planner.plan_work))
    monkeypatch.setattr(planner, "stack_groups", counted("stack_groups", planner.stack_groups))
    session = Session()
    grid = session.grid(task="moons", arch="fnn", activation="relu,tanh", optimizer="sgd,adam", seeds=2, epochs=1,
                        **tune)
    outcome = session.run(grid, tmp_path / "once.db", RunOptions(workers=1))
    assert outcome.status == "finished" and len(outcome.results) > 0
    assert calls == {"plan_work": batches, "stack_groups": batches}


def small_net(spec: Any, outputs: int, activation: Any, width: int = 8) -> Any:
    from torch import nn

    return nn.Sequential(nn.Flatten(), nn.Linear(spec.shape[0], width), activation(), nn.Linear(width, outputs))


class Unknown:
    """Two architectures of a plugin that declare no cost: one slow, one quick."""

    @hookimpl
    def register_architectures(self, register: Any) -> None:
        register(Architecture("slow_unknown", small_net, ("vector",), "no cost declared"))
        register(Architecture("quick_unknown", small_net, ("vector",), "no cost declared"))


def test_an_architecture_without_a_cost_is_ordered_by_the_epoch_times_measured_so_far() -> None:
    from nnbench.contract.trial import EpochRecord, TrialResult
    from nnbench.loading.catalogue import collect_catalogue
    from nnbench.loading.plugins import make_plugin_manager

    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False, extra=[Unknown()]))
    trials = grid_trials(catalogue, arch="slow_unknown,quick_unknown", optimizer="lbfgs", seeds=3)
    items_, _ = work_items(trials, catalogue, True, CostModel(catalogue))
    queue = WorkQueue(items_, CostModel(catalogue))
    guessed = {round(item.seconds, 9) for item in queue}
    assert len(guessed) == 1  # nothing is known of either: the same guess
    first_quick = next(item for item in queue if item.trials[0].arch == "quick_unknown")
    done = first_quick.trials[0]
    for arch, seconds in (("quick_unknown", 0.01), ("slow_unknown", 5.0)):
        trial = next(t for t in trials if t.arch == arch and t != done)
        curve = [EpochRecord(e, 0.5, 0.5, 0.9, seconds) for e in range(1, 6)]
        queue.learn(TrialResult(trial, "ok", "accuracy", 0.9, train_time=5 * seconds, curve=curve,
                                throughput=640 * 5 / (5 * seconds)))
    order = [item.trials[0].arch for item in queue]
    assert order[: order.count("slow_unknown")] == ["slow_unknown"] * order.count("slow_unknown")
    slow = next(item for item in queue if item.trials[0].arch == "slow_unknown")
    assert slow.seconds == pytest.approx(5 * 5.0, rel=0.01)  # five epochs of the measured five seconds
