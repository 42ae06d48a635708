"""Several runs on one store at once: safe schema creation, claims, and runs whose process died."""

from __future__ import annotations

import multiprocessing
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest
from training_events import completions, event_env

from nnbench.contract.trial import Trial
from nnbench.storage.liveness import is_alive, this_process
from nnbench.storage.migrations import MIGRATIONS, SCHEMA_VERSION
from nnbench.storage.store import ResultStore

EPOCHS = 8
COMMAND = [sys.executable, "-m", "nnbench", "run", "--task", "moons,circles", "--arch", "fnn",
           "--activation", "relu,tanh,gelu", "--optimizer", "sgd,adam", "--seeds", "2", "--epochs", str(EPOCHS),
           "--quiet", "--no-report", "--no-vectorize"]
TOTAL = 2 * 3 * 2 * 2


def trial(seed: int) -> Trial:
    return Trial("moons", "fnn", "relu", "cross_entropy", "adam", 1e-3, 32, 2, seed, "cpu", {})


def _open(path: str, barrier: multiprocessing.synchronize.Barrier, errors: multiprocessing.Queue) -> None:
    barrier.wait()
    try:
        ResultStore(path).close()
    except Exception as exc:  # reported to the test, which names it
        errors.put(f"{type(exc).__name__}: {exc}")


def test_stores_created_by_many_processes_at_once_are_one_valid_store(tmp_path: Path) -> None:
    context = multiprocessing.get_context("fork")
    path = str(tmp_path / "new.db")
    barrier, errors = context.Barrier(6), context.Queue()
    workers = [context.Process(target=_open, args=(path, barrier, errors)) for _ in range(6)]
    for worker in workers:
        worker.start()
    for worker in workers:
        worker.join(60)
    found = [errors.get() for _ in range(errors.qsize())] if not errors.empty() else []
    assert found == []
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchall() == [(str(SCHEMA_VERSION),)]
        assert [r[0] for r in db.execute("SELECT name FROM migrations ORDER BY rowid")] == [
            m.__name__ for m in MIGRATIONS]  # each applied once, in order


def test_two_runs_of_one_grid_on_one_store_train_each_trial_once_between_them(tmp_path: Path) -> None:
    env = event_env(tmp_path)
    runs = [subprocess.Popen(COMMAND, cwd=tmp_path, env=env, stdout=subprocess.PIPE, stderr=subprocess.PIPE,
                             text=True) for _ in range(2)]
    outputs = [run.communicate(timeout=600) for run in runs]
    for run, (_out, err) in zip(runs, outputs, strict=True):
        assert run.returncode == 0, err
        assert "schema version" not in err
    trained = completions(tmp_path, EPOCHS)
    assert len(trained) == TOTAL and set(trained.values()) == {1}, trained
    with sqlite3.connect(tmp_path / "nnbench.db") as db:
        covered = db.execute("SELECT run_id, COUNT(*), SUM(reused) FROM run_trials GROUP BY run_id").fetchall()
        statuses = {r[0] for r in db.execute("SELECT status FROM runs")}
        claims = db.execute("SELECT COUNT(*) FROM claims").fetchone()[0]
    assert [count for _, count, _ in covered] == [TOTAL, TOTAL]  # each run's report covers the whole grid
    assert sum(reused for *_, reused in covered) == TOTAL  # each trial trained by one run, reused by the other
    assert statuses == {"finished"} and claims == 0


def test_a_claim_keeps_a_trial_from_other_runs_until_stored_or_the_run_ends(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.db") as store:
        store.start_run("a", {}, {}, 3, [])
        store.start_run("b", {}, {}, 3, [])
        assert store.claim("a", [trial(0), trial(1)]) == [trial(0), trial(1)]
        assert store.claim("b", [trial(0), trial(1), trial(2)]) == [trial(2)]
        assert store.claimed_elsewhere("b", [trial(0).trial_id, trial(2).trial_id]) == {trial(0).trial_id}
        from nnbench.contract.trial import TrialResult

        store.save_result("a", TrialResult(trial(0), "ok", "accuracy", 0.9))
        assert store.claim("b", [trial(0)]) == []  # stored as finished since: nothing to train
        store.finish_run("a", "failed")
        assert store.claim("b", [trial(1)]) == [trial(1)]  # released when run a ended


def test_a_run_whose_process_died_is_interrupted_and_its_claims_are_released(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "from nnbench.storage.liveness import this_process as p; "
                           "print(p())"], capture_output=True, text=True, check=True).stdout.strip()
    assert not is_alive(gone) and is_alive(this_process())
    path = tmp_path / "r.db"
    with ResultStore(path) as store:
        store.start_run("dead", {}, {}, 1, [])
        store.claim("dead", [trial(0)])
        store.start_run("alive", {}, {}, 1, [])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET process = ? WHERE run_id = 'dead'", (gone,))
    with ResultStore(path, readonly=True) as store:  # read only: shown as interrupted, not changed
        assert dict(zip(store.runs()["run_id"], store.runs()["status"], strict=True)) == {
            "dead": "interrupted", "alive": "running"}
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT status FROM runs WHERE run_id = 'dead'").fetchone()[0] == "running"
    with ResultStore(path) as store:
        assert store.claim("alive", [trial(0)]) == [trial(0)]
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT status FROM runs WHERE run_id = 'dead'").fetchone()[0] == "interrupted"


@pytest.mark.parametrize("token", ["", None, "otherhost:1:1", "garbage"])
def test_processes_that_cannot_be_checked_count_as_alive(token: str | None) -> None:
    assert is_alive(token)
