"""Stops that do not come from the grid: a component's own ``sys.exit`` or ``KeyboardInterrupt``, SIGTERM and
SIGHUP (what ``timeout``, ``docker stop``, a cancelled CI job and a batch scheduler send), a plugin or object that
cannot reach the workers. Each ends in one clear line, the run's status stored true, no claim left behind, and the
next run goes on."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import threading
import time
from pathlib import Path
from typing import Any

import pytest
import torch
from click.testing import CliRunner
from test_executors import _alive, _children
from test_hostile_plugins import install, nnbench
from torch import nn

import nnbench as nb
from nnbench import Activation, hookimpl
from nnbench.cli import cli
from nnbench.contract.errors import NNBenchError

SMALL = ["--task", "moons", "--arch", "fnn", "--optimizer", "adam", "--seeds", "2", "--epochs", "1", "-q",
         "--no-report"]


def table(db: Path, query: str) -> list[tuple[Any, ...]]:
    with sqlite3.connect(db) as conn:
        return conn.execute(query).fetchall()


# -- a component that ends its own training --------------------------------------------------------


class Quits(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise SystemExit(3)


class Stops(nn.Module):
    def forward(self, x: torch.Tensor) -> torch.Tensor:
        raise KeyboardInterrupt


class ExitingActivations:
    @hookimpl
    def register_activations(self, register: Any) -> None:
        register(Activation("quits", Quits, "calls sys.exit(3) as it trains"))
        register(Activation("stops", Stops, "raises a KeyboardInterrupt of its own as it trains"))
        register(Activation("quits_stacked", Quits, "calls sys.exit(3) in a stack of seeds", vectorizable=True))


@pytest.mark.parametrize(("activation", "cause"), [("quits", "it called sys.exit(3)"),
                                                   ("stops", "it raised KeyboardInterrupt"),
                                                   ("quits_stacked", "it called sys.exit(3)")])
def test_a_component_that_exits_in_this_process_fails_its_trial_alone_and_the_next_run_goes_on(
        nnbench_plugin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, activation: str, cause: str) -> None:
    monkeypatch.chdir(tmp_path)
    nnbench_plugin(ExitingActivations(), name="exiting")
    command = ["run", *SMALL, "--activation", f"relu,{activation}"]
    first = CliRunner().invoke(cli, command, catch_exceptions=False)
    assert first.exit_code == 0, first.output
    ending = (f"a component of this trial ended its training: {cause}; the trial is stored as failed and the run "
              "went on")
    named = [line for line in first.output.splitlines() if line.strip().startswith("failed")]
    assert named == [f"  failed   moons fnn/{activation}/cross_entropy/adam@0.001 seed {seed}: {ending}"
                     for seed in (0, 1)]  # -q still names each trial
    db = tmp_path / "nnbench.db"
    statuses = table(db, "SELECT activation, seed, status FROM trials ORDER BY activation, seed")
    assert sorted(statuses) == sorted([("relu", 0, "ok"), ("relu", 1, "ok"), (activation, 0, "failed"),
                                       (activation, 1, "failed")])
    assert table(db, "SELECT status FROM runs") == [("finished",)]
    assert table(db, "SELECT COUNT(*) FROM claims") == [(0,)]
    # The next run retries the failed trials (in a worker process of their own) and does not die either.
    again = CliRunner().invoke(cli, command, catch_exceptions=False)
    assert again.exit_code == 0, again.output
    assert "4 trials: 2 to train, 2 already stored" in again.output
    errors = table(db, f"SELECT error FROM trials WHERE activation = '{activation}'")
    assert len(errors) == 2 and all(error.strip().splitlines()[-1] == ending for (error,) in errors)
    assert table(db, "SELECT status FROM runs ORDER BY started_at") == [("finished",), ("finished",)]


class QuitsWhileTraining(nn.Module):
    """Behaves when probed, and calls ``sys.exit`` once it trains."""

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        if x.requires_grad:
            sys.exit(3)
        return torch.tanh(x)


def test_an_object_given_to_run_that_calls_sys_exit_fails_its_trials_and_the_rest_are_stored(tmp_path: Path) -> None:
    frame = nb.run(task="moons", arch="fnn", activation=[QuitsWhileTraining, "relu"], optimizer="adam", seeds=1,
                   epochs=1, store=tmp_path / "x.db", quiet=True)
    assert sorted(zip(frame["activation"], frame["status"], strict=True)) == [("QuitsWhileTraining", "failed"),
                                                                               ("relu", "ok")]
    assert table(tmp_path / "x.db", "SELECT status FROM runs") == [("finished",)]


def test_an_object_that_calls_sys_exit_when_probed_is_one_error_before_anything_is_stored(tmp_path: Path) -> None:
    with pytest.raises(NNBenchError, match=r"activation 'Quits' \(.*\) cannot be applied to a tensor of hidden "
                                           r"features: SystemExit: 3"):
        nb.run(task="moons", arch="fnn", activation=[Quits, "relu"], seeds=1, epochs=1, store=tmp_path / "x.db",
               quiet=True)
    assert not (tmp_path / "x.db").exists()


# -- SIGTERM, SIGHUP and Ctrl-C ---------------------------------------------------------------------------

GRID = [sys.executable, "-m", "nnbench", "run", "--task", "moons", "--arch", "fnn", "--activation", "relu,tanh",
        "--optimizer", "adam", "--seeds", "2", "--epochs", "60", "--batch-size", "16", "--no-vectorize", "-q",
        "--no-report"]
TOTAL = 4


def stored(db: Path) -> int:
    try:
        return table(db, "SELECT COUNT(*) FROM trials")[0][0]
    except sqlite3.OperationalError:  # not made yet
        return 0


def stop_midway(command: list[str], folder: Path, sig: int, group: bool) -> tuple[int, str, list[int]]:
    """Start ``command`` in ``folder``, send ``sig`` once a trial is stored (to the whole process group with
    ``group``, as a scheduler does; else to the process, as ``timeout`` does); its status, stderr and children."""
    process = subprocess.Popen(command, cwd=folder, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE, text=True,
                               start_new_session=True, env={**os.environ, "NNBENCH_PLUGINS": "none"})
    deadline = time.monotonic() + 120
    while stored(folder / "nnbench.db") < 1 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    children = _children(process.pid)
    if group:
        os.killpg(process.pid, sig)
    else:
        process.send_signal(sig)
    _, err = process.communicate(timeout=60)
    return process.returncode, err, children


@pytest.mark.parametrize(("sig", "group", "how"), [
    (signal.SIGTERM, True, ["--workers", "2"]),  # a batch scheduler, a cancelled CI job: the whole group
    (signal.SIGTERM, False, ["--workers", "2"]),  # timeout, docker stop: the process alone
    (signal.SIGHUP, False, ["--workers", "2"]),  # the terminal closed
    (signal.SIGTERM, False, ["--executor", "inline"]),
    (signal.SIGINT, False, ["--executor", "inline"]),  # Ctrl-C still stops a trial training in this process
], ids=["sigterm-group-workers", "sigterm-workers", "sighup-workers", "sigterm-inline", "sigint-inline"])
def test_a_stop_signal_ends_the_run_interrupted_in_one_line_and_the_next_run_resumes(
        tmp_path: Path, sig: int, group: bool, how: list[str]) -> None:
    code, err, children = stop_midway([*GRID, *how], tmp_path, sig, group)
    assert code == (130 if sig == signal.SIGINT else -sig), err  # ended by the signal: a shell reads 128 + it
    by = "" if sig == signal.SIGINT else f" by {signal.Signals(sig).name}"
    assert err.strip().splitlines()[-1] == (f"interrupted{by}: finished trials are stored in nnbench.db; run the "
                                            "same command to resume")
    assert "Traceback" not in err and "Error" not in err, err  # nothing from the workers either
    db = tmp_path / "nnbench.db"
    assert table(db, "SELECT status FROM runs") == [("interrupted",)]
    assert table(db, "SELECT COUNT(*) FROM claims") == [(0,)]
    assert [p.name for p in tmp_path.iterdir() if "reserve" in p.name] == []
    deadline = time.monotonic() + 15
    while _alive(children) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not _alive(children)
    kept = stored(db)
    assert 1 <= kept < TOTAL
    again = subprocess.run([*GRID, *how], cwd=tmp_path, capture_output=True, text=True, timeout=300,
                           env={**os.environ, "NNBENCH_PLUGINS": "none"})
    assert again.returncode == 0, again.stderr
    assert f"{TOTAL} trials: {TOTAL - kept} to train, {kept} already stored" in again.stdout
    assert table(db, "SELECT status FROM runs ORDER BY started_at") == [("interrupted",), ("finished",)]


SCRIPT = """
import nnbench

if __name__ == "__main__":
    nnbench.run(task="moons", arch="fnn", activation="relu,tanh", optimizer="adam", seeds=2, epochs=60,
                batch_size=16, vectorize=False, quiet=True, executor="inline")
"""


def test_sigterm_to_a_script_ends_its_run_interrupted_and_then_the_process_as_the_signal_asks(tmp_path: Path) -> None:
    (tmp_path / "grid.py").write_text(SCRIPT)
    code, err, _ = stop_midway([sys.executable, "grid.py"], tmp_path, signal.SIGTERM, group=False)
    assert code == -signal.SIGTERM, err
    assert err.strip().splitlines() == ["interrupted by SIGTERM: finished trials are stored in nnbench.db; run the "
                                        "same call to resume"]
    assert table(tmp_path / "nnbench.db", "SELECT status FROM runs") == [("interrupted",)]
    assert table(tmp_path / "nnbench.db", "SELECT COUNT(*) FROM claims") == [(0,)]


def test_a_signal_handler_of_the_callers_own_is_left_alone() -> None:
    from nnbench.loading.plugins import watch_interrupts

    def own(signum: int, frame: object) -> None:
        raise AssertionError("not called here")

    previous = signal.signal(signal.SIGTERM, own)
    try:
        with watch_interrupts():
            assert signal.getsignal(signal.SIGTERM) is own
            assert signal.getsignal(signal.SIGHUP) is not signal.SIG_DFL
        assert signal.getsignal(signal.SIGHUP) is signal.SIG_DFL
    finally:
        signal.signal(signal.SIGTERM, previous)


# -- what cannot reach the workers -------------------------------------------------------------------------

PARENT_ONLY = """
import multiprocessing
from torch import nn
from nnbench import Activation, hookimpl

if multiprocessing.parent_process() is not None:
    raise ImportError("parent_only needs a license server that worker processes cannot reach")

@hookimpl
def register_activations(register):
    register(Activation("ponly", nn.Tanh, "loads where the run starts only"))
"""


def test_a_plugin_that_does_not_load_in_workers_fails_its_trials_with_its_own_error(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, "parent_only", PARENT_ONLY)
    done = nnbench(tmp_path, site, "run", "--task", "moons", "--arch", "fnn", "--activation", "ponly,relu",
                   "--optimizer", "adam", "--seeds", "1", "--epochs", "1", "--workers", "2", "-q", "--no-report",
                   plugins="parent_only")
    assert done.returncode == 0, done.stderr
    own = "ImportError: parent_only needs a license server that worker processes cannot reach"
    cause = (f"{own} (in this worker process, plugin 'parent_only' (distribution parent_only 1.0, entry point "
             "parent_only) failed to load and was skipped), so activation 'ponly' cannot be trained there")
    assert table(tmp_path / "nnbench.db", "SELECT activation, status, error FROM trials ORDER BY activation") == [
        ("ponly", "failed", cause), ("relu", "ok", None)]
    assert f"failed   moons fnn/ponly/cross_entropy/adam@0.001 seed 0: {own}" in done.stdout  # -q shows it
    assert "Traceback" not in done.stderr


def _refuse() -> None:
    raise RuntimeError("this plugin holds a handle that only the process that made it can use")


class LoadsInTheParentOnly:
    """An in-process plugin that is packed for the workers but cannot be unpacked there."""

    def __reduce__(self) -> tuple[Any, tuple[()]]:
        return _refuse, ()

    @hookimpl
    def register_activations(self, register: Any) -> None:
        register(Activation("handle_act", nn.Tanh, "from a plugin that stays in its process"))


def test_an_in_process_plugin_that_cannot_be_unpacked_in_workers_keeps_its_own_error(
        nnbench_plugin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.chdir(tmp_path)
    nnbench_plugin(LoadsInTheParentOnly(), name="handles")
    result = CliRunner().invoke(cli, ["run", *SMALL, "--activation", "handle_act,relu", "--workers", "2"],
                                catch_exceptions=False)
    assert result.exit_code == 0, result.output
    errors = {e for (e,) in table(tmp_path / "nnbench.db", "SELECT error FROM trials WHERE activation = 'handle_act'")}
    assert errors == {"RuntimeError: this plugin holds a handle that only the process that made it can use (in "
                      "this worker process, plugin 'handles' of the run's own process failed to load here and was "
                      "skipped), so activation 'handle_act' cannot be trained there"}
    assert "the worker process exited" not in result.output


def test_an_object_that_cannot_reach_the_workers_is_named_before_anything_trains(tmp_path: Path) -> None:
    class LockAct(nn.Module):  # defined here, so that it travels by value, lock and all
        lock = threading.Lock()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            with self.lock:
                return torch.tanh(x)

    with pytest.raises(NNBenchError) as info:
        nb.run(task="moons", arch="fnn", activation=[LockAct, "relu"], optimizer="adam", seeds=1, epochs=1,
               workers=2, store=tmp_path / "x.db", quiet=True)
    assert str(info.value) == (
        "the activation 'LockAct' given as an object cannot be sent to worker processes (TypeError: cannot pickle "
        "'_thread.lock' object), and this run trains in worker processes: make it picklable (define it at module "
        "level, hold no locks, open files or connections), or train in this process (workers=1); nothing was "
        "trained")
    assert table(tmp_path / "x.db", "SELECT COUNT(*) FROM runs") == [(0,)]
    frame = nb.run(task="moons", arch="fnn", activation=[LockAct, "relu"], optimizer="adam", seeds=1, epochs=1,
                   workers=1, store=tmp_path / "x.db", quiet=True)
    assert list(frame["status"]) == ["ok", "ok"]  # in this process it trains


def test_a_failed_trial_of_an_object_that_cannot_reach_a_worker_is_retried_there_and_fails_saying_why(
        tmp_path: Path) -> None:
    class LockedQuits(nn.Module):  # defined here, so that it travels by value, lock and all
        lock = threading.Lock()

        def forward(self, x: torch.Tensor) -> torch.Tensor:
            if x.requires_grad:
                sys.exit(3)
            return torch.tanh(x)

    def run() -> Any:
        return nb.run(task="moons", arch="fnn", activation=[LockedQuits, "relu"], optimizer="adam", seeds=1,
                      epochs=1, store=tmp_path / "x.db", quiet=True)

    first = run()  # trains here, where its exit fails the trial
    assert sorted(zip(first["activation"], first["status"], strict=True)) == [("LockedQuits", "failed"),
                                                                              ("relu", "ok")]
    second = run()  # retries it in a worker process, which it cannot reach
    assert sorted(zip(second["activation"], second["status"], strict=True)) == [("LockedQuits", "failed"),
                                                                               ("relu", "ok")]
    (error,) = table(tmp_path / "x.db", "SELECT error FROM trials WHERE activation = 'LockedQuits'")[0]
    assert error == ("the activation 'LockedQuits' given as an object cannot be sent to worker processes (TypeError: "
                     "cannot pickle '_thread.lock' object), so activation 'LockedQuits' cannot be trained there")
    assert table(tmp_path / "x.db", "SELECT status FROM runs") == [("finished",)] * 2
