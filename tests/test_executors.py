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
    assert list(frame["status"]) == ["failed"]
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
