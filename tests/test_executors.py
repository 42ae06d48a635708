"""Devices, worker processes, fault containment, time limits and interrupts (the Ray executor: test_cluster.py)."""

from __future__ import annotations

import dataclasses
import multiprocessing
import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path
from typing import Any

import pandas as pd
import pytest
from faulty_plugin import FaultyArchitectures
from training_events import completions, event_env

import nnbench
from nnbench import Device, hookimpl
from nnbench.contract.errors import NNBenchError
from nnbench.contract.executor import WorkerStartError, WorkItem, WorkPlan
from nnbench.contract.run_options import RunOptions
from nnbench.contract.trial import TrialResult
from nnbench.execution.costs import CostModel
from nnbench.execution.devices import discover_devices
from nnbench.execution.job import ItemTraining
from nnbench.execution.local import LocalExecutor, _Worker
from nnbench.execution.messages import describe_exit, pack_plugins, result_from_dict, result_to_dict
from nnbench.execution.planner import WorkQueue, plan_work
from nnbench.loading.plugins import PluginHookWarning
from nnbench.observer import RunObserver
from nnbench.session import Session

GRID = {"task": "moons,spirals", "arch": "fnn", "activation": "relu,tanh", "optimizer": "sgd,adam",
        "seeds": 2, "epochs": 3}
METRICS = ["trial_id", "status", "metric", "train_loss", "test_loss", "val_metric"]


def by_trial(frame: pd.DataFrame) -> pd.DataFrame:
    return frame[METRICS].sort_values("trial_id").reset_index(drop=True)


def test_discovery_lists_cpu_each_cuda_device_and_mps() -> None:
    names = [d.name for d in discover_devices(["H200", "H200"], mps=False)]
    assert names == ["cpu", "cuda:0", "cuda:1"]
    assert [d.name for d in discover_devices([], mps=True)] == ["cpu", "mps"]
    assert discover_devices(["A100"], mps=False)[1].description == "A100"


class TwoGpus:
    @hookimpl
    def register_devices(self, register: Any) -> None:
        register(Device("cuda:0", "fake"))
        register(Device("cuda:1", "fake"))


def test_devices_resolve_to_kinds_any_device_here_takes_and_an_index_pins_one(nnbench_plugin: Any) -> None:
    nnbench_plugin(TwoGpus())
    session = Session(nnbench.loading.plugins.make_plugin_manager())
    assert session.resolve_devices(["all"]) == ["cpu", "cuda"]
    assert session.resolve_devices(["auto"]) == ["cuda"]
    assert session.resolve_devices(["cuda", "cuda:1", "cpu", "cuda"]) == ["cuda", "cuda:1", "cpu"]
    with pytest.raises(NNBenchError, match=r"device 'cuda:7' is not available; devices here: cpu, cuda:0, cuda:1 "
                                           r"\(or a kind: cuda; or auto, all\)"):
        session.resolve_devices(["cuda:7"])


def test_a_trial_stored_on_an_indexed_device_is_reused_where_that_device_is_asked_for(
        nnbench_plugin: Any, tmp_path: Path, trial_result: Any, store_writer: Any) -> None:
    nnbench_plugin(TwoGpus())
    session = Session(nnbench.loading.plugins.make_plugin_manager())
    axes = {"task": "moons", "arch": "fnn", "activation": "relu", "optimizer": "adam", "seeds": 1, "epochs": 2}
    stored = trial_result("moons", epochs=2)
    [stored.trial] = session.dry_run(session.grid(None, **axes, device="cuda:0"), tmp_path / "none.db").todo
    store_writer(tmp_path / "old.db", [stored]).close()  # as a run before device kinds stored it
    pinned = session.dry_run(session.grid(None, **axes, device="cuda:0"), tmp_path / "old.db")
    assert [t.trial_id for t in pinned.reused] == [stored.trial.trial_id] and not pinned.todo
    kind = session.dry_run(session.grid(None, **axes, device="cuda"), tmp_path / "old.db")
    assert not kind.reused and [t.device for t in kind.todo] == ["cuda"]
    assert kind.todo[0].trial_id != stored.trial.trial_id
    item = WorkItem(tuple(kind.todo))
    assert item.on("cuda:1").trials == item.trials and item.on("cuda:1").where == "cuda:1"


def test_auto_is_the_first_accelerator_kind_here_else_cpu() -> None:
    present = list(Session().catalogue.devices)  # whatever this machine has: ask the device registry
    kinds = list(dict.fromkeys(name.split(":")[0] for name in present))
    assert Session().resolve_devices(["auto"]) == ([kind for kind in kinds if kind != "cpu"][:1] or ["cpu"])
    assert Session().resolve_devices(["all"]) == kinds and kinds[0] == "cpu"


def test_results_survive_the_trip_between_processes_as_plain_data(catalogue: Any) -> None:
    from nnbench.planning.grid import expand_grid
    from nnbench.planning.gridfile import build_grid
    from nnbench.training.trainer import train_trial

    trial = expand_grid(build_grid(None, task="iris", arch="fnn", activation="relu", optimizer="adam", seeds=1,
                                   epochs=2), catalogue)[0][0]
    result = train_trial(trial, catalogue)
    assert result_from_dict(result_to_dict(result)) == result


def test_exit_causes_are_described() -> None:
    assert "SIGSEGV" in describe_exit(-signal.SIGSEGV)
    assert "out-of-memory" in describe_exit(-signal.SIGKILL)
    assert "status 3" in describe_exit(3)


def test_two_workers_give_the_same_metrics_as_one_process(tmp_path: Path) -> None:
    inline = nnbench.run(**GRID, store=tmp_path / "inline.db")
    pooled = nnbench.run(**GRID, store=tmp_path / "pool.db", workers=2)
    assert len(pooled) == 16
    pd.testing.assert_frame_equal(by_trial(inline), by_trial(pooled))


def test_faults_are_contained_and_every_other_trial_finishes(nnbench_plugin: Any, tmp_path: Path) -> None:
    nnbench_plugin(FaultyArchitectures())
    frame = nnbench.run(task="moons", arch="segfault,exit,hang,raise,fnn", activation="relu", optimizer="adam",
                        seeds=1, epochs=2, store=tmp_path / "faults.db", workers=2, timeout=8)
    status = dict(zip(frame["arch"], frame["status"], strict=True))
    error = dict(zip(frame["arch"], frame["error"], strict=True))
    assert status == {"segfault": "failed", "exit": "failed", "hang": "timeout", "raise": "failed", "fnn": "ok"}
    assert "SIGSEGV" in error["segfault"]
    assert "exited with status 3" in error["exit"]
    assert "--timeout 8" in error["hang"]
    assert "ValueError: this architecture always raises" in error["raise"]


def test_fail_fast_stops_the_grid(nnbench_plugin: Any, tmp_path: Path) -> None:
    nnbench_plugin(FaultyArchitectures())
    frame = nnbench.run(task="moons", arch="raise,fnn", activation="relu,tanh,gelu", optimizer="adam", seeds=1,
                        epochs=2, store=tmp_path / "ff.db", max_failures=0)
    assert list(frame["status"]).count("failed") == 1 and len(frame) < 6  # stopped at the first failure
    with sqlite3.connect(tmp_path / "ff.db") as db:
        assert db.execute("SELECT status FROM runs").fetchone()[0] == "stopped"


def _children(pid: int) -> list[int]:
    found = []
    for task in Path(f"/proc/{pid}/task").iterdir():
        found += [int(c) for c in (task / "children").read_text().split()]
    return found


def _alive(pids: list[int]) -> list[int]:
    found = []
    for pid in pids:
        try:
            if "zombie" not in Path(f"/proc/{pid}/status").read_text():
                found.append(pid)
        except OSError:  # gone
            pass
    return found


def _stored(db: Path) -> int:
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:
        return 0


PARALLEL_EPOCHS = 60
CLI = [sys.executable, "-m", "nnbench", "run", "--task", "moons,spirals", "--arch", "fnn",
       "--activation", "relu,tanh", "--optimizer", "sgd,adam", "--seeds", "2", "--epochs", str(PARALLEL_EPOCHS),
       "--batch-size", "16", "--workers", "2", "--no-vectorize", "--quiet", "--no-report"]
TOTAL = 2 * 2 * 2 * 2


@pytest.mark.parametrize("sig", [signal.SIGINT, signal.SIGKILL], ids=["sigint", "sigkill"])
def test_stopping_a_parallel_grid_then_resuming_trains_each_finished_trial_once(tmp_path: Path, sig: int) -> None:
    env = event_env(tmp_path)
    db = tmp_path / "nnbench.db"
    process = subprocess.Popen(CLI, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while _stored(db) < 4 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    workers = _children(process.pid)
    process.send_signal(sig)
    code = process.wait(timeout=30)
    with sqlite3.connect(db) as conn:
        first = {r[0] for r in conn.execute("SELECT trial_id FROM trials")}
    assert 0 < len(first) < TOTAL
    if sig == signal.SIGINT:
        assert code == 130 and b"interrupted" in process.stderr.read()
        with sqlite3.connect(db) as conn:
            assert conn.execute("SELECT status FROM runs").fetchone()[0] == "interrupted"
    # workers notice their parent is gone within a second (more on a loaded machine) and exit
    deadline = time.monotonic() + 15
    while _alive(workers) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(workers)
    again = subprocess.run(CLI, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{TOTAL - len(first)} to train, {len(first)} already stored" in again.stdout
    trained = completions(tmp_path, PARALLEL_EPOCHS)
    assert len(trained) == TOTAL and all(trained[t] == 1 for t in first)
    assert sum(count - 1 for count in trained.values()) <= 2  # at most one trial in flight per worker
    with sqlite3.connect(db) as conn:
        counts = conn.execute("SELECT COUNT(*), COUNT(DISTINCT trial_id) FROM trials").fetchone()
        epochs = conn.execute("SELECT COUNT(*) FROM epochs").fetchone()[0]
    assert counts == (TOTAL, TOTAL) and epochs == TOTAL * PARALLEL_EPOCHS


# -- the whole machine: per-item limits, cheap workers, company on a device --------------------------


class RecordingSink:
    """A sink that keeps what executors hand it."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.messages: list[str] = []
        self.claimed: list[list[str]] = []

    def claim(self, trials: Any, *, here: bool = False) -> list[Any]:
        self.claimed.append([t.trial_id for t in trials])
        return list(trials)

    def result(self, result: Any) -> None:
        self.results.append(result)

    def log(self, message: str) -> None:
        self.messages.append(message)


class Collect(RunObserver):
    def __init__(self) -> None:
        self.messages: list[str] = []

    def log(self, message: str) -> None:
        self.messages.append(message)


def probe_trials(catalogue: Any, **axes: Any) -> list[Any]:
    from nnbench.planning.grid import expand_grid
    from nnbench.planning.gridfile import build_grid

    base = {"task": "moons", "arch": "fnn", "activation": "relu", "optimizer": "adam", "seeds": 4, "epochs": 2}
    return expand_grid(build_grid(None, [], domain=catalogue.domain, **{**base, **axes}), catalogue)[0]


def probe_session(*plugins: Any) -> Session:
    from worker_probes import ProbeArchitectures

    return Session(nnbench.loading.plugins.make_plugin_manager(extra=[ProbeArchitectures(), *plugins]))


def planned(session: Session, trials: list[Any], **options: Any) -> WorkPlan:
    """The plan of ``trials`` as a run of ``session`` makes it, for worker processes (``workers`` 1 by default)."""
    options = {"executor": "processes", "workers": 1, **options}
    job = ItemTraining(tuple(pack_plugins(session._extra_plugins())), options.get("threads", 1),
                       options.get("timeout"))
    return plan_work(trials, session.catalogue, RunOptions(**options), CostModel(session.catalogue), job)


def begun(plan: WorkPlan, sink: Any = None) -> LocalExecutor:
    """A local executor ready to take ``plan``'s items step by step, as ``run`` does."""
    executor = LocalExecutor()
    executor.begin(plan, sink or RecordingSink())
    return executor


def test_seeds_that_train_one_by_one_go_to_different_workers(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    from worker_probes import PID_LOG, PidRecorder

    monkeypatch.setenv(PID_LOG, str(tmp_path / "pids.txt"))
    session = probe_session(PidRecorder())
    trials = probe_trials(session.catalogue, optimizer="lbfgs", epochs=3)  # lbfgs: one by one
    sink = RecordingSink()
    LocalExecutor().run(planned(session, trials, workers=2), sink)
    assert sorted(r.trial.seed for r in sink.results) == [0, 1, 2, 3]
    assert all(r.status == "ok" and r.training["mode"] == "one_by_one" for r in sink.results)
    assert all(len(claim) == 1 for claim in sink.claimed)  # each seed claimed as it starts
    pids = {line.split()[1] for line in (tmp_path / "pids.txt").read_text().splitlines()}
    assert len(pids) == 2
    assert {r.training["slots"] for r in sink.results} == {max(1, len(os.sched_getaffinity(0)))}
    assert all(1 <= r.training["concurrent"] <= 2 for r in sink.results)


def test_a_worker_that_dies_training_one_seed_costs_that_seed_only() -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, arch="seed1_crashes", seeds=3)
    sink = RecordingSink()
    LocalExecutor().run(planned(session, trials, workers=2), sink)
    status = {r.trial.seed: r.status for r in sink.results}
    assert status == {0: "ok", 1: "failed", 2: "ok"}
    assert "SIGSEGV" in next(r.error for r in sink.results if r.trial.seed == 1)


def test_the_time_limit_applies_per_trial_and_not_to_the_worker_start() -> None:
    from worker_probes import SlowToLoad

    session = probe_session(SlowToLoad(3.0))  # each worker takes 3 s to load its plugins
    trials = probe_trials(session.catalogue, arch="hangs,fnn", seeds=2, epochs=1)
    sink = RecordingSink()
    start = time.monotonic()
    LocalExecutor().run(planned(session, trials, workers=2, timeout=2.0), sink)
    status = {(r.trial.arch, r.trial.seed): r.status for r in sink.results}
    assert status == {("hangs", 0): "timeout", ("hangs", 1): "timeout", ("fnn", 0): "ok", ("fnn", 1): "ok"}
    assert all("--timeout 2 s per trial" in r.error for r in sink.results if r.status == "timeout")
    assert time.monotonic() - start < 60


def test_a_trial_that_trains_past_its_limit_is_stopped_where_it_trains() -> None:
    session = probe_session()
    [trial] = probe_trials(session.catalogue, task="digits", seeds=1, epochs=500)
    sink = RecordingSink()
    start = time.monotonic()
    LocalExecutor().run(planned(session, [trial], timeout=1.0), sink)
    [result] = sink.results
    assert result.status == "timeout" and result.error == "ran past --timeout 1 s per trial and was stopped"
    assert time.monotonic() - start < 30  # stopped by the trainer itself, not when its worker is killed


def test_a_run_whose_every_trial_times_out_ends_with_its_summary_and_report(tmp_path: Path) -> None:
    from click.testing import CliRunner

    from nnbench.cli import cli

    done = CliRunner().invoke(cli, ["run", "--task", "moons", "--arch", "fnn", "--activation", "relu,tanh",
                                    "--optimizer", "adam", "--seeds", "1", "--epochs", "100000", "--timeout", "0.2",
                                    "--store", str(tmp_path / "late.db"), "--report-dir", str(tmp_path / "reports")])
    assert done.exit_code == 0, done.output
    assert "2 trials did not finish ok" in done.output and "findings:" not in done.output
    assert len(list((tmp_path / "reports").glob("*/index.html"))) == 1


def test_workers_warnings_reach_the_run_as_one_line(tmp_path: Path) -> None:
    session = probe_session()
    grid = session.grid(task="moons", arch="warns", activation="relu", optimizer="adam", seeds=2, epochs=1)
    observer = Collect()
    session.run(grid, tmp_path / "w.db", RunOptions(workers=2), observer=observer)
    warned = [m for m in observer.messages if "noisy" in m]
    assert warned and all(m.startswith("warning: this architecture is noisy (UserWarning, worker_probes.py:")
                          and "\n" not in m for m in warned)


@pytest.mark.parametrize("per_device", [2, None], ids=["per-device-2", "measured"])
def test_an_accelerator_takes_several_trials_at_once_and_results_say_so(per_device: int | None) -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, activation="relu,tanh,gelu", optimizer="lbfgs", seeds=2, epochs=4)
    executor = LocalExecutor()
    executor.is_accelerator = lambda device: True  # the CPU stands in for an accelerator
    sink = RecordingSink()
    executor.run(planned(session, trials, per_device=per_device), sink)
    assert len(sink.results) == 6 and {r.status for r in sink.results} == {"ok"}
    assert {r.training["slots"] for r in sink.results} == {1}
    if per_device == 2:
        assert max(r.training["concurrent"] for r in sink.results) == 2
    else:
        measured = [m for m in sink.messages if "trials train at once (measured:" in m]
        assert len(measured) == 1 and measured[0].startswith("cpu: ")


def test_a_trial_that_crashed_the_inline_process_trains_contained_next_time(tmp_path: Path) -> None:
    tests = Path(__file__).parent
    script = tmp_path / "inline.py"
    script.write_text(f"""
import sys
sys.path.insert(0, {str(tests)!r})
from faulty_plugin import FaultyArchitectures
import nnbench
from nnbench.contract.run_options import RunOptions
from nnbench.loading.plugins import make_plugin_manager
from nnbench.observer import RunObserver
from nnbench.session import Session

class Say(RunObserver):
    def log(self, message):
        print(message, flush=True)

if __name__ == "__main__":
    session = Session(make_plugin_manager(extra=[FaultyArchitectures()]))
    grid = session.grid(task="moons", arch="fnn,segfault", activation="relu", optimizer="adam", seeds=1, epochs=2)
    outcome = session.run(grid, "store.db", RunOptions(workers=1), observer=Say())
    print("status", outcome.status)
""")
    env = {**os.environ, "NNBENCH_PLUGINS": "none"}
    first = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True, text=True,
                           timeout=300)
    assert first.returncode == -signal.SIGSEGV, first.stderr
    for _ in range(2):  # the next runs survive, and say which trial crashed
        again = subprocess.run([sys.executable, str(script)], cwd=tmp_path, env=env, capture_output=True,
                               text=True, timeout=300)
        assert again.returncode == 0, again.stderr
        assert "status finished" in again.stdout
    second_output = again.stdout
    with sqlite3.connect(tmp_path / "store.db") as db:
        rows = dict(db.execute("SELECT arch, status FROM trials").fetchall())
        error = db.execute("SELECT error FROM trials WHERE arch = 'segfault'").fetchone()[0]
        statuses = [r[0] for r in db.execute("SELECT status FROM runs ORDER BY rowid")]
    assert rows == {"fnn": "ok", "segfault": "failed"} and "SIGSEGV" in error
    assert statuses == ["interrupted", "finished", "finished"]
    assert "status finished" in second_output


def test_an_error_while_storing_a_result_stops_the_run_instead_of_hanging_it() -> None:
    class BrokenSink(RecordingSink):
        def result(self, result: Any) -> None:
            raise BrokenPipeError("the terminal went away")  # an OSError, as a closed pipe raises

    session = probe_session()
    trials = probe_trials(session.catalogue, optimizer="lbfgs", seeds=2, epochs=1)
    with pytest.raises(BrokenPipeError, match="the terminal went away"):
        LocalExecutor().run(planned(session, trials, workers=2), BrokenSink())


def test_what_a_worker_sent_before_it_died_counts_and_only_the_rest_fail() -> None:
    session = probe_session()
    first, second = probe_trials(session.catalogue, seeds=2)

    class Dead:  # a worker process that ended on SIGKILL after sending one result
        exitcode = -signal.SIGKILL

        def is_alive(self) -> bool:
            return False

        def join(self, timeout: float | None = None) -> None:
            pass

    parent, child = multiprocessing.Pipe()
    child.send(("result", result_to_dict(TrialResult(first, "ok", "accuracy", 0.75))))
    child.close()
    worker = _Worker("cpu", Dead(), parent, ready=True)  # type: ignore[arg-type]
    worker.item, worker.remaining = WorkItem((first, second), True), {t.trial_id: t for t in (first, second)}
    sink = RecordingSink()
    assert begun(planned(session, [first, second]), sink)._ended(worker)
    outcome = {r.trial.trial_id: (r.status, r.metric) for r in sink.results}
    assert outcome[first.trial_id] == ("ok", 0.75) and outcome[second.trial_id][0] == "failed"
    assert "SIGKILL" in next(r.error for r in sink.results if r.trial == second) and worker.conn.closed


# -- the parent's bookkeeping, step by step (no worker process: a stand-in records what is sent) -----


class SentTo:
    """The parent's end of a worker's pipe, keeping what the parent sends."""

    closed = False

    def __init__(self) -> None:
        self.sent: list[Any] = []

    def send(self, message: Any) -> None:
        self.sent.append(message)

    def poll(self) -> bool:
        return False  # the worker has said nothing yet

    def close(self) -> None:
        self.closed = True


def stand_in(device: str = "cpu", item: Any = None) -> Any:
    return _Worker(device, None, SentTo(), ready=True, item=item)  # type: ignore[arg-type]


class PartialClaims(RecordingSink):
    """A sink whose store grants only the trials another run does not hold."""

    def __init__(self, held_elsewhere: set[str]) -> None:
        super().__init__()
        self.held_elsewhere = held_elsewhere

    def claim(self, trials: Any, *, here: bool = False) -> list[Any]:
        super().claim(trials)
        return [t for t in trials if t.trial_id not in self.held_elsewhere]


def test_a_stack_another_run_holds_part_of_trains_the_rest_as_a_smaller_stack() -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, seeds=4)
    plan = planned(session, trials)
    [item] = list(plan.items)  # type: ignore[call-overload]
    assert item.stacked and len(item.trials) == 4
    executor = begun(plan, PartialClaims({t.trial_id for t in trials[:2]}))  # another run trains seeds 0 and 1
    worker = stand_in()
    executor._assign(worker, [worker])
    sent, _measure = worker.conn.sent[0]
    assert list(sent.trials) == trials[2:] and sent.stacked and sent.seconds == pytest.approx(item.seconds / 2)
    assert list(worker.remaining) == [t.trial_id for t in trials[2:]] and worker.item == sent
    assert not plan.items.waiting()


def test_the_one_trial_left_of_a_stack_another_run_holds_trains_alone() -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, seeds=2)
    executor = begun(planned(session, trials), PartialClaims({trials[0].trial_id}))
    worker = stand_in()
    executor._assign(worker, [worker])
    assert list(worker.item.trials) == trials[1:] and not worker.item.stacked


def test_an_item_another_run_holds_all_of_is_passed_over() -> None:
    session = probe_session()
    first, second = probe_trials(session.catalogue, activation="relu,prelu", seeds=1)
    sink = PartialClaims({first.trial_id})
    plan = planned(session, [first, second])
    order = [item.trials[0] for item in plan.items]  # type: ignore[attr-defined]
    executor = begun(plan, sink)
    worker = stand_in()
    executor._assign(worker, [worker])
    assert sink.claimed == [[t.trial_id] for t in order][: len(sink.claimed)]
    assert list(worker.item.trials) == [second] and [first.trial_id] in sink.claimed


@pytest.mark.parametrize("per_device", [2, None], ids=["per-device-2", "measured"])
def test_an_accelerators_capacity_is_measured_once_unless_given(per_device: int | None) -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, activation="relu,tanh,gelu", optimizer="lbfgs", seeds=1)
    executor = begun(planned(session, trials, per_device=per_device))
    executor.is_accelerator = lambda device: device == "cpu"  # the CPU stands in for an accelerator
    executor._wanted("cpu")
    workers = [stand_in(), stand_in(), stand_in()]
    elsewhere = stand_in("cuda:1", item=WorkItem(tuple(trials[:1])))  # busy on another device: no company
    for worker in workers:
        executor._assign(worker, [*workers, elsewhere])
    asked = [w.conn.sent[0][1] for w in workers]
    assert asked == ([False, False, False] if per_device else [True, False, False])
    assert [w.peak for w in workers] == [3, 3, 3]  # each saw three trials on the device at once, itself included
    assert elsewhere.peak == 0


def test_workers_grow_to_a_measured_capacity_for_the_work_waiting() -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, optimizer="lbfgs", seeds=3)
    gpu = [dataclasses.replace(t, device="cuda:0") for t in trials]
    executor = begun(planned(session, trials, workers=3))
    executor.plan = dataclasses.replace(executor.plan, items=WorkQueue(
        [WorkItem((t,), False, 1.0) for t in [*trials, *gpu]], CostModel(session.catalogue)))
    executor.target["cuda:0"] = 5  # measured: five trials at once
    started: list[str] = []
    executor._start = lambda device: started.append(device) or stand_in(device)  # type: ignore[method-assign]
    cpu = [stand_in("cpu") for _ in range(3)]
    assert executor._grow("cpu", cpu) == [] and started == []  # three cpu items for three idle cpu workers
    # three items wait and two workers are idle: one more worker is enough
    assert len(executor._grow("cuda:0", [*cpu, stand_in("cuda:0"), stand_in("cuda:0")])) == 1
    assert started == ["cuda:0"]
    started.clear()  # one is idle and two are busy: two more, one for each item the idle one will not take
    busy = [stand_in("cuda:0", item=WorkItem(tuple(gpu[:1]))) for _ in range(2)]
    assert len(executor._grow("cuda:0", [*cpu, stand_in("cuda:0"), *busy])) == 2 and started == ["cuda:0", "cuda:0"]


class Alive:
    """A worker process that is still running (and can be stopped)."""

    exitcode = None

    def __init__(self) -> None:
        self.killed = False

    def is_alive(self) -> bool:
        return not self.killed

    def kill(self) -> None:
        self.killed = True

    def join(self, timeout: float | None = None) -> None:
        pass


def test_a_worker_past_its_deadline_is_spared_when_its_item_has_just_started() -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, seeds=2)
    plan = planned(session, trials, timeout=10.0)
    deadline = plan.deadline(WorkItem(tuple(trials), True))
    assert deadline == pytest.approx(10.0 * 2 * 1.5 + 2)  # a stack shares its members' limits, with a grace
    parent, child = multiprocessing.Pipe()
    child.send(("started", [t.trial_id for t in trials]))  # sent while the parent was busy: the clock restarts
    worker = _Worker("cpu", Alive(), parent, ready=True, item=WorkItem(tuple(trials), True))  # type: ignore[arg-type]
    worker.remaining = {t.trial_id: t for t in trials}
    worker.clock = time.monotonic() - deadline - 5  # assigned long ago
    sink = RecordingSink()
    executor = begun(plan, sink)
    assert not executor._ended(worker) and not worker.process.killed and sink.results == []
    worker.clock = time.monotonic() - deadline - 5  # and with no news from the worker, it is stopped
    assert executor._ended(worker) and worker.process.killed
    assert [r.status for r in sink.results] == ["timeout"] * 2
    assert {r.error for r in sink.results} == {"ran past --timeout 10 s per trial inside a component that did not "
                                               "return, and its worker was stopped"}


def test_a_stack_past_its_shared_limit_says_how_long_the_stack_had(catalogue: Any) -> None:
    from nnbench.training.ensemble import train_item

    trials = probe_trials(catalogue, task="digits", seeds=2, epochs=500)
    results = train_item(trials, catalogue, stacked=True, timeout=0.5)
    assert [r.status for r in results] == ["timeout"] * 2
    assert {r.error for r in results} == {"ran past --timeout 0.5 s per trial (2 trials stacked: 1 s) and was stopped"}


def test_a_measured_capacity_sets_the_devices_workers_and_is_said() -> None:
    sink = RecordingSink()
    executor = begun(planned(probe_session(), probe_trials(probe_session().catalogue, seeds=1)), sink)
    executor.target["cuda:0"] = 1
    executor._handle(stand_in("cuda:0"), ("capacity", 3, "3 at once: 2.6x the trials per second"))
    assert executor.target["cuda:0"] == 3
    assert sink.messages == ["cuda:0: 3 trials train at once (measured: 3 at once: 2.6x the trials per second; "
                             "--per-device N to choose)"]
    executor._handle(stand_in("cuda:0"), ("capacity", 1, "stacked was no faster"))
    assert executor.target["cuda:0"] == 1


def test_a_worker_that_dies_before_it_is_ready_stops_the_run_with_what_to_do() -> None:
    class DiedAtStart:
        exitcode = 1

        def is_alive(self) -> bool:
            return False

        def join(self, timeout: float | None = None) -> None:
            pass

    parent, child = multiprocessing.Pipe()
    child.close()
    worker = _Worker("cpu", DiedAtStart(), parent)  # type: ignore[arg-type]
    said = (r"^a worker process could not start: the worker process exited with status 1; see the messages above\. "
            r"From a Python script, call nnbench\.run\(\.\.\., workers=N\) under `if __name__ == \"__main__\":`$")
    session = probe_session()
    with pytest.raises(WorkerStartError, match=said):
        begun(planned(session, probe_trials(session.catalogue, seeds=1)))._ended(worker)


def test_a_warning_a_worker_sends_is_raised_in_the_run_as_a_plugin_warning() -> None:
    session = probe_session()
    executor = begun(planned(session, probe_trials(session.catalogue, seeds=1)))
    with pytest.warns(PluginHookWarning, match=r"^after_epoch of plugin 'noisy' raised ValueError$"):
        executor._handle(stand_in(), ("warning", "after_epoch of plugin 'noisy' raised ValueError"))


def test_workers_are_daemons_so_none_outlives_the_run() -> None:
    session = probe_session()
    executor = begun(planned(session, probe_trials(session.catalogue, seeds=1)))
    worker = executor._start("cpu")
    try:
        assert worker.process.daemon and worker.process.name == "nnbench-worker-cpu"  # as ps and tracebacks show it
    finally:
        executor._stop([worker])
    assert not worker.process.is_alive() and worker.conn.closed


@pytest.mark.skipif("forkserver" not in multiprocessing.get_all_start_methods(), reason="workers are spawned here")
def test_workers_start_with_the_servers_imports_frozen_so_they_share_its_memory() -> None:
    from worker_probes import send_frozen_count

    from nnbench.execution.launching import PRELOAD, worker_context

    assert PRELOAD[-1] == "nnbench.execution.preloaded"  # frozen after every other import, not before some
    context = worker_context()
    ours, theirs = context.Pipe()
    process = context.Process(target=send_frozen_count, args=(theirs,), daemon=True)
    process.start()
    theirs.close()
    try:
        frozen = ours.recv()
    finally:
        process.join(30)
    # torch alone makes hundreds of thousands of objects; a server that never froze leaves none frozen.
    assert frozen > 100_000


def test_a_failed_start_on_one_device_stops_the_workers_of_every_device() -> None:
    session = probe_session()
    trials = probe_trials(session.catalogue, activation="relu,tanh", optimizer="lbfgs", seeds=1)
    trials = [trials[0], dataclasses.replace(trials[1], device="cuda:0")]
    executor = LocalExecutor()
    started: list[Any] = []

    class NeverReady(Alive):
        def is_alive(self) -> bool:
            return False  # died before saying it was ready

    def start(device: str) -> Any:
        parent, child = multiprocessing.Pipe()
        child.close()
        started.append(_Worker(device, NeverReady(), parent))
        return started[-1]

    executor._start = start  # type: ignore[method-assign]
    plan = dataclasses.replace(planned(session, trials), per_device=1)
    with pytest.raises(WorkerStartError):
        executor.run(plan, RecordingSink())
    assert sorted(w.device for w in started) == ["cpu", "cuda:0"]
    assert all(w.process.killed and w.conn.closed for w in started)


def test_an_accelerator_of_unknown_capacity_starts_with_one_worker_and_the_stack_whole() -> None:
    session = probe_session()
    executor = begun(planned(session, probe_trials(session.catalogue, seeds=4), workers=2))
    executor.is_accelerator = lambda device: True
    [item] = list(executor.plan.items)  # type: ignore[call-overload]
    assert len(item.trials) == 4 and executor._wanted("cpu") == 1 and "cpu" not in executor.measured


def test_an_item_sent_to_a_worker_has_one_deadline_before_it_starts(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nnbench.execution.local.usable_cores", lambda: 4)
    session = probe_session()
    [trial] = probe_trials(session.catalogue, seeds=1)
    sink = RecordingSink()
    executor = begun(planned(session, [trial], timeout=10.0), sink)
    worker = stand_in()
    worker.process = Alive()
    executor._assign(worker, [worker])
    worker.clock -= 10.0 * 1.5 + 3  # sent long ago, and the worker never said it started
    assert executor._ended(worker) and worker.process.killed and worker.conn.closed
    [result] = sink.results
    assert result.status == "timeout" and "ran past --timeout 10 s per trial" in result.error
    assert result.training == {"concurrent": 1, "slots": 4}  # alone on a CPU of four single-threaded slots


def test_results_that_arrive_by_the_deadline_count_and_the_worker_is_spared(monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("nnbench.execution.local.usable_cores", lambda: 3)
    session = probe_session()
    [trial] = probe_trials(session.catalogue, seeds=1)
    parent, child = multiprocessing.Pipe()
    child.send(("result", result_to_dict(TrialResult(trial, "ok", "accuracy", 0.75))))
    child.send(("done",))  # both sent while the parent was busy
    worker = _Worker("cpu", Alive(), parent, ready=True, item=WorkItem((trial,)))  # type: ignore[arg-type]
    worker.remaining, worker.clock = {trial.trial_id: trial}, time.monotonic() - 30
    sink = RecordingSink()
    executor = begun(planned(session, [trial], timeout=10.0, threads=2), sink)
    assert not executor._ended(worker) and not worker.process.killed
    [result] = sink.results
    assert (result.status, result.metric) == ("ok", 0.75) and worker.item is None and worker.remaining == {}
    assert result.training == {"concurrent": 1, "slots": 1}  # three cores hold one two-threaded trial
