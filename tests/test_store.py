"""The SQLite store: atomic writes, resume, schema checks and export."""

from __future__ import annotations

import sqlite3
from pathlib import Path

import pytest

from nnbench.contract.trial import EpochRecord, Skipped, Trial, TrialResult
from nnbench.storage.store import SCHEMA_VERSION, ResultStore, StoreError


def result(seed: int = 0, status: str = "ok", metric: float = 0.9, epochs: int = 3) -> TrialResult:
    trial = Trial("iris", "fnn", "relu", "cross_entropy", "adam", 1e-3, 32, epochs, seed, "cpu",
                  {"arch": {"hidden": [8]}, "optimizer": {}})
    curve = [EpochRecord(e, 1.0 / e, 1.1 / e, metric * e / epochs, 0.01, accuracy=metric * e / epochs)
             for e in range(1, epochs + 1)]
    return TrialResult(trial, status, "accuracy", metric, 1 / epochs, 1.1 / epochs, metric, n_params=100,
                       train_time=0.03, throughput=1000.0, curve=curve,
                       error=None if status == "ok" else "Traceback ...\nValueError: bad")


def test_round_trip_of_runs_trials_and_curves(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.db") as store:
        store.start_run("run1", {"task": ["iris"]}, {"torch": "x"}, 2, [Skipped({"arch": "cnn"}, "no images")])
        store.save_result("run1", result(0))
        store.save_result("run1", result(1, status="failed"))
        store.finish_run("run1")
        trials = store.trials(["run1"])
        assert list(trials["seed"]) == [0, 1]
        assert list(trials["status"]) == ["ok", "failed"]
        assert trials.loc[0, "metric"] == pytest.approx(0.9)
        assert '"hidden": [8]' in trials.loc[0, "params"]
        epochs = store.epochs(["run1"])
        assert len(epochs) == 6 and list(epochs["epoch"][:3]) == [1, 2, 3]
        assert store.runs().loc[0, "status"] == "finished"
        assert list(store.skipped(["run1"])["reason"]) == ["no images"]
        assert store.finished_trial_ids([result(0).trial.trial_id, result(1).trial.trial_id]) == {
            result(0).trial.trial_id}


def test_saving_a_trial_again_replaces_it_exactly_once(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.db") as store:
        store.start_run("a", {}, {}, 1, [])
        store.save_result("a", result(0, metric=0.5))
        store.start_run("b", {}, {}, 1, [])
        store.save_result("b", result(0, metric=0.7))
        trials = store.trials()
        assert len(trials) == 1 and trials.loc[0, "metric"] == pytest.approx(0.7)
        assert len(store.epochs()) == 3
        assert len(store.trials(["a"])) == 1 and len(store.trials(["b"])) == 1


def test_reused_trials_belong_to_the_new_run(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.db") as store:
        store.start_run("a", {}, {}, 1, [])
        store.save_result("a", result(0))
        store.start_run("b", {}, {}, 1, [])
        store.link_trials("b", [result(0).trial.trial_id])
        assert len(store.trials(["b"])) == 1
        assert len(store.epochs(["b"])) == 3


def test_unknown_schema_version_is_a_clear_error(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    ResultStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE meta SET value = '99' WHERE key = 'schema_version'")
    with pytest.raises(StoreError, match=f"schema version 99, but this nnbench reads version {SCHEMA_VERSION}"):
        ResultStore(path)


def test_foreign_database_and_garbage_files_are_refused_untouched(tmp_path: Path) -> None:
    other = tmp_path / "other.db"
    with sqlite3.connect(other) as db:
        db.execute("CREATE TABLE precious (x)")
    with pytest.raises(StoreError, match="not an nnbench store"):
        ResultStore(other)
    with sqlite3.connect(other) as db:
        assert [r[0] for r in db.execute("SELECT name FROM sqlite_master")] == ["precious"]
    garbage = tmp_path / "notes.txt"
    garbage.write_text("hello, this is not a database\n" * 100)
    with pytest.raises(StoreError, match="cannot use .*notes.txt as a results store"):
        ResultStore(garbage)
    assert garbage.read_text().startswith("hello")


def test_unwritable_locations(tmp_path: Path) -> None:
    with pytest.raises(StoreError, match="does not exist"):
        ResultStore(tmp_path / "missing" / "r.db")
    with pytest.raises(StoreError, match="is a folder"):
        ResultStore(tmp_path)


def test_resolve_runs_by_prefix(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.db") as store:
        with pytest.raises(StoreError, match="holds no runs yet"):
            store.resolve_runs(None)
        store.start_run("20260101-aaaa", {}, {}, 0, [])
        store.start_run("20260102-bbbb", {}, {}, 0, [])
        assert store.resolve_runs(None) == ["20260102-bbbb"]
        assert store.resolve_runs(["20260101"]) == ["20260101-aaaa"]
        with pytest.raises(StoreError, match="more than one run"):
            store.resolve_runs(["2026"])




def test_how_a_trial_was_trained_is_stored_as_json(tmp_path: Path) -> None:
    import json

    trained = result(0)
    trained.training = {"mode": "stacked", "members": 3, "ratio": 2.5, "concurrent": 1, "slots": 2}
    with ResultStore(tmp_path / "t.db") as store:
        store.start_run("run1", {}, {}, 2, [])
        store.save_result("run1", trained)
        store.save_result("run1", result(1))
        rows = store.trials(["run1"])
    assert json.loads(rows.loc[0, "training"]) == trained.training
    assert rows["training"].isna().tolist() == [False, True]


def test_a_store_written_before_the_training_column_gains_it_and_keeps_its_rows(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    with ResultStore(path) as store:
        store.start_run("run1", {}, {}, 1, [])
        store.save_result("run1", result(0))
        store.finish_run("run1")
    with sqlite3.connect(path) as db:  # as an older nnbench left it
        db.execute("ALTER TABLE trials DROP COLUMN training")
    with ResultStore(path, readonly=True) as store:
        assert "training" not in store.trials().columns and len(store.trials()) == 1
    with ResultStore(path) as store:
        store.start_run("run2", {}, {}, 1, [])
        store.save_result("run2", result(1))
        rows = store.trials()
    assert list(rows["seed"]) == [0, 1] and rows["training"].isna().all()


def test_runs_whose_process_died_are_marked_and_their_trial_in_training_is_named(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "d.db") as store:
        store.start_run("dead", {}, {"host": "here", "pid": 4242}, 3, [])
        store.start_run("alive", {}, {"host": "here", "pid": 4343}, 1, [])
        store.start_run("elsewhere", {}, {"host": "there", "pid": 4242}, 1, [])
        inline, worker, done = result(0).trial, result(1).trial, result(2).trial
        store.mark_started("dead", [inline.trial_id], in_process=True)
        store.mark_started("dead", [worker.trial_id], in_process=False)
        store.mark_started("dead", [done.trial_id], in_process=True)
        store.save_result("dead", result(2))  # stored: no longer in training
        assert store.close_dead_runs("here", alive=lambda pid: pid != 4242) == ["dead"]
        assert dict(zip(store.runs()["run_id"], store.runs()["status"], strict=True)) == {
            "dead": "died", "alive": "running", "elsewhere": "running"}
        ids = [inline.trial_id, worker.trial_id, done.trial_id]
        assert store.crashed_trials(ids) == {inline.trial_id: "dead"}
        store.start_run("next", {}, {"host": "here", "pid": 4444}, 1, [])
        store.mark_started("next", [inline.trial_id], in_process=False)
        store.finish_run("next")
        assert store.crashed_trials(ids) == {}  # the next run took it over, and finished
