"""Devices, worker processes, fault containment, time limits, interrupts and the Ray executor."""

from __future__ import annotations

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
from nnbench.builtin.devices import discover_devices
from nnbench.contract.errors import NNBenchError
from nnbench.execution.messages import describe_exit, result_from_dict, result_to_dict
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


def test_device_names_resolve_against_those_present(nnbench_plugin: Any) -> None:
    nnbench_plugin(TwoGpus())
    session = Session(nnbench.loading.plugins.make_plugin_manager())
    assert session.resolve_devices(["all"]) == ["cpu", "cuda:0", "cuda:1"]
    assert session.resolve_devices(["auto"]) == ["cuda:0"]
    assert session.resolve_devices(["cuda", "cuda:1", "cpu"]) == ["cuda:0", "cuda:1", "cpu"]
    with pytest.raises(NNBenchError, match="device 'cuda:7' is not available; devices here: cpu, cuda:0, cuda:1"):
        session.resolve_devices(["cuda:7"])


def test_auto_is_the_first_accelerator_here_else_cpu() -> None:
    present = list(Session().catalogue.devices)  # whatever this machine has: ask the device registry
    accelerators = [name for name in present if name != "cpu"]
    assert Session().resolve_devices(["auto"]) == (accelerators[:1] or ["cpu"])
    assert Session().resolve_devices(["all"]) == present and present[0] == "cpu"


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


PARALLEL_EPOCHS = 20
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


@pytest.fixture(scope="module")
def local_ray() -> Any:
    import ray

    # Ray's workers import in-process plugins by module name: this folder must be on their path.
    tests = str(Path(__file__).parent)
    ray.init(num_cpus=2, include_dashboard=False, log_to_driver=False, configure_logging=False,
             runtime_env={"env_vars": {"PYTHONPATH": os.pathsep.join([tests, os.environ.get("PYTHONPATH", "")])}})
    yield ray
    ray.shutdown()


def test_ray_executor_matches_the_local_executor(local_ray: Any, tmp_path: Path) -> None:
    inline = nnbench.run(**GRID, store=tmp_path / "inline.db")
    on_ray = nnbench.run(**GRID, store=tmp_path / "ray.db", executor="ray")
    pd.testing.assert_frame_equal(by_trial(inline), by_trial(on_ray))


def test_a_crashed_ray_task_is_a_failed_trial_not_a_retry(local_ray: Any, nnbench_plugin: Any, tmp_path: Path) -> None:
    nnbench_plugin(FaultyArchitectures())
    frame = nnbench.run(task="moons", arch="exit,raise,fnn", activation="relu", optimizer="adam", seeds=1, epochs=2,
                        store=tmp_path / "ray.db", executor="ray")
    status = dict(zip(frame["arch"], frame["status"], strict=True))
    errors = dict(zip(frame["arch"], frame["error"], strict=True))
    assert status == {"exit": "failed", "raise": "failed", "fnn": "ok"}, errors
    assert "ValueError: this architecture always raises" in errors["raise"]


# -- the whole machine: split groups, per-trial limits, cheap workers, company on a device ----------


class RecordingSink:
    """A sink that keeps what executors hand it."""

    def __init__(self) -> None:
        self.results: list[Any] = []
        self.messages: list[str] = []
        self.claimed: list[list[str]] = []

    def claim(self, trials: Any) -> list[Any]:
        self.claimed.append([t.trial_id for t in trials])
        return list(trials)

    def result(self, result: Any) -> None:
        self.results.append(result)

    def log(self, message: str) -> None:
        self.messages.append(message)


class Collect(nnbench.session.RunObserver):
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


def processes(session: Session, **options: Any) -> Any:
    from nnbench.execution.executors import ExecutorOptions
    from nnbench.execution.processes import ProcessExecutor

    return ProcessExecutor(ExecutorOptions(catalogue=session.catalogue, extra_plugins=session._extra_plugins(),
                                           **options))


def test_seeds_of_a_group_that_trains_one_by_one_go_to_different_workers(tmp_path: Path,
                                                                          monkeypatch: pytest.MonkeyPatch) -> None:
    from worker_probes import PID_LOG, PidRecorder

    from nnbench.training.ensemble import group_by_seed

    monkeypatch.setenv(PID_LOG, str(tmp_path / "pids.txt"))
    session = probe_session(PidRecorder())
    trials = probe_trials(session.catalogue, optimizer="lbfgs", epochs=3)  # lbfgs: one by one
    sink = RecordingSink()
    processes(session, workers=2).run(group_by_seed(trials), sink)
    assert sorted(r.trial.seed for r in sink.results) == [0, 1, 2, 3]
    assert all(r.status == "ok" and r.training["mode"] == "one_by_one" for r in sink.results)
    assert all(len(claim) == 1 for claim in sink.claimed)  # each seed claimed as it starts
    pids = {line.split()[1] for line in (tmp_path / "pids.txt").read_text().splitlines()}
    assert len(pids) == 2
    assert {r.training["slots"] for r in sink.results} == {max(1, len(os.sched_getaffinity(0)))}
    assert all(1 <= r.training["concurrent"] <= 2 for r in sink.results)


def test_a_worker_that_dies_training_one_seed_costs_that_seed_only() -> None:
    from nnbench.training.ensemble import group_by_seed

    session = probe_session()
    trials = probe_trials(session.catalogue, arch="seed1_crashes", seeds=3)
    sink = RecordingSink()
    processes(session, workers=2).run(group_by_seed(trials), sink)
    status = {r.trial.seed: r.status for r in sink.results}
    assert status == {0: "ok", 1: "failed", 2: "ok"}
    assert "SIGSEGV" in next(r.error for r in sink.results if r.trial.seed == 1)


def test_the_time_limit_applies_per_trial_and_not_to_the_worker_start() -> None:
    from worker_probes import SlowToLoad

    from nnbench.training.ensemble import group_by_seed

    session = probe_session(SlowToLoad(3.0))  # each worker takes 3 s to load its plugins
    trials = probe_trials(session.catalogue, arch="hangs,fnn", seeds=2, epochs=1)
    sink = RecordingSink()
    start = time.monotonic()
    processes(session, workers=2, timeout=2.0).run(group_by_seed(trials), sink)
    status = {(r.trial.arch, r.trial.seed): r.status for r in sink.results}
    assert status == {("hangs", 0): "timeout", ("hangs", 1): "timeout", ("fnn", 0): "ok", ("fnn", 1): "ok"}
    assert all("--timeout 2 s per trial" in r.error for r in sink.results if r.status == "timeout")
    assert time.monotonic() - start < 60


def test_workers_warnings_reach_the_run_as_one_line(tmp_path: Path) -> None:
    session = probe_session()
    grid = session.grid(task="moons", arch="warns", activation="relu", optimizer="adam", seeds=2, epochs=1)
    observer = Collect()
    session.run(grid, tmp_path / "w.db", nnbench.session.RunOptions(workers=2), observer=observer)
    warned = [m for m in observer.messages if "noisy" in m]
    assert warned and all(m.startswith("warning: this architecture is noisy (UserWarning, worker_probes.py:")
                          and "\n" not in m for m in warned)


@pytest.mark.parametrize("per_device", [2, None], ids=["per-device-2", "measured"])
def test_an_accelerator_takes_several_trials_at_once_and_results_say_so(per_device: int | None) -> None:
    from nnbench.training.ensemble import group_by_seed

    session = probe_session()
    trials = probe_trials(session.catalogue, activation="relu,tanh,gelu", optimizer="lbfgs", seeds=2, epochs=4)
    executor = processes(session, workers=1, per_device=per_device)
    executor.is_accelerator = lambda device: True  # the CPU stands in for an accelerator
    sink = RecordingSink()
    executor.run(group_by_seed(trials), sink)
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
from nnbench.loading.plugins import make_plugin_manager
from nnbench.session import RunObserver, RunOptions, Session

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
    from nnbench.training.ensemble import group_by_seed

    class BrokenSink(RecordingSink):
        def result(self, result: Any) -> None:
            raise BrokenPipeError("the terminal went away")  # an OSError, as a closed pipe raises

    session = probe_session()
    trials = probe_trials(session.catalogue, optimizer="lbfgs", seeds=2, epochs=1)
    with pytest.raises(BrokenPipeError, match="the terminal went away"):
        processes(session, workers=2).run(group_by_seed(trials), BrokenSink())


def test_what_a_worker_sent_before_it_died_counts_and_only_the_rest_fail() -> None:
    import multiprocessing

    from nnbench.contract.trial import TrialResult
    from nnbench.execution.processes import _Worker

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
    worker.item, worker.remaining = object(), {t.trial_id: t for t in (first, second)}  # type: ignore[assignment]
    sink = RecordingSink()
    assert processes(session, workers=1)._ended(worker, sink)
    outcome = {r.trial.trial_id: (r.status, r.metric) for r in sink.results}
    assert outcome[first.trial_id] == ("ok", 0.75) and outcome[second.trial_id][0] == "failed"
    assert "SIGKILL" in next(r.error for r in sink.results if r.trial == second) and worker.conn.closed
