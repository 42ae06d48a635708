"""The SQLite store: atomic writes, resume, schema checks and export."""

from __future__ import annotations

import json
import os
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest

from nnbench.contract.trial import EpochRecord, Skipped, Trial, TrialResult
from nnbench.storage.migrations import MIGRATIONS
from nnbench.storage.store import SCHEMA_VERSION, ResultStore, StoreError, write_error


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


def test_a_read_only_store_file_in_a_writable_folder_is_named_read_only(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    ResultStore(path).close()
    before = path.read_bytes()
    if os.geteuid() == 0:  # root writes any file it may not, but not an immutable one
        subprocess.run(["chattr", "+i", str(path)], check=True)
    else:
        path.chmod(0o444)
    try:
        with pytest.raises(StoreError) as refused:
            ResultStore(path)
    finally:
        if os.geteuid() == 0:
            subprocess.run(["chattr", "-i", str(path)], check=True)
    assert f"cannot write to store {path}: it is read-only ({path}: " in str(refused.value)
    assert "make the file and its folder writable, or give another --store" in str(refused.value)
    assert path.read_bytes() == before


@pytest.mark.parametrize(("cause", "advice"), [
    ("database or disk is full", "free some space (or give another --store), then run the same command to resume"),
    ("disk I/O error", "free some space (or give another --store), then run the same command to resume"),
    ("attempt to write a readonly database", "make the file and its folder writable, or give another --store"),
    ("unable to open: read-only file system", "make the file and its folder writable, or give another --store"),
    ("database is locked", "another process holds the store for too long; try again when it is done"),
    ("database table is busy", "another process holds the store for too long; try again when it is done"),
    ("no such table: trials", "give a writable --store path"),
])
def test_a_failed_write_is_one_line_with_its_cause_and_what_to_do(tmp_path: Path, cause: str, advice: str) -> None:
    error = write_error(tmp_path / "r.db", sqlite3.OperationalError(cause))
    assert str(error) == (f"cannot write to store {tmp_path / 'r.db'}: {cause}; nothing stored before was changed; "
                          f"{advice}")


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


PREVIOUS_RELEASE_STORE = Path(__file__).parent / "data" / "store-0.1.0.db"


def table_counts(path: Path) -> dict[str, int]:
    with sqlite3.connect(path) as db:
        return {t: db.execute(f"SELECT COUNT(*) FROM {t}").fetchone()[0]
                for t in ("runs", "trials", "epochs", "run_trials", "skipped", "micro")}


def test_a_store_of_schema_version_1_migrates_forward_without_losing_a_row(tmp_path: Path) -> None:
    path = tmp_path / "old.db"
    path.write_bytes(PREVIOUS_RELEASE_STORE.read_bytes())
    before = table_counts(path)
    with ResultStore(path, readonly=True) as old:  # read as it is, unchanged
        assert old.migrated == [m.__name__ for m in MIGRATIONS[1:]]  # in memory only
        assert len(old.trials()) == before["trials"] and old.crashed_trials(old.trials()["trial_id"]) == {}
    assert path.read_bytes() == PREVIOUS_RELEASE_STORE.read_bytes()
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET status = 'running' WHERE rowid = 1")  # left running by the old release
    ResultStore(path).close()
    assert table_counts(path) == before
    with sqlite3.connect(path) as db:
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)
        assert db.execute("SELECT status FROM runs WHERE rowid = 1").fetchone()[0] == "interrupted"
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone()[0] == 0
        assert {"training", "metric"} <= {r[1] for r in db.execute("PRAGMA table_info(trials)")}
        assert db.execute("SELECT COUNT(*) FROM trials WHERE training IS NOT NULL").fetchone()[0] == 0


@pytest.mark.parametrize(("value", "message"), [
    ("two", "schema version 'two', which is not a number"),
    (None, "has a meta table but no schema version"),
])
def test_a_schema_version_that_is_not_a_number_is_one_clear_error(tmp_path: Path, value: str | None,
                                                                   message: str) -> None:
    path = tmp_path / "r.db"
    ResultStore(path).close()
    with sqlite3.connect(path) as db:
        if value is None:
            db.execute("DELETE FROM meta")
        else:
            db.execute("UPDATE meta SET value = ? WHERE key = 'schema_version'", (value,))
    for readonly in (False, True):
        with pytest.raises(StoreError, match=message):
            ResultStore(path, readonly=readonly)


def test_a_store_missing_a_column_is_refused_before_anything_is_written(tmp_path: Path) -> None:
    path = tmp_path / "r.db"
    with ResultStore(path) as store:
        store.start_run("a", {}, {}, 1, [])
    with sqlite3.connect(path) as db:
        db.execute("ALTER TABLE trials DROP COLUMN throughput")
    before = table_counts(path)
    for readonly in (False, True):
        with pytest.raises(StoreError, match="lacks the column 'throughput' of its 'trials' table"):
            ResultStore(path, readonly=readonly)
    assert table_counts(path) == before


def test_a_write_transaction_holds_the_write_lock_from_its_start(tmp_path: Path) -> None:
    # BEGIN IMMEDIATE: another writer cannot slip in between a claim's read and its write.
    with ResultStore(tmp_path / "r.db") as store, store._transaction():
        other = sqlite3.connect(tmp_path / "r.db", timeout=0, isolation_level=None)
        with pytest.raises(sqlite3.OperationalError, match="locked"):
            other.execute("BEGIN IMMEDIATE")
        other.close()


def test_the_main_file_alone_holds_every_committed_trial(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.db") as store:
        store.start_run("a", {}, {}, 2, [])
        store.save_result("a", result(0))
        store.save_result("a", result(1))
        assert (tmp_path / "r.db-wal").exists()  # still open: the log is there
        copy = tmp_path / "copy.db"
        copy.write_bytes((tmp_path / "r.db").read_bytes())  # the file alone, as a user copies it
        with sqlite3.connect(copy) as db:
            assert db.execute("SELECT COUNT(*) FROM trials").fetchone()[0] == 2
            assert db.execute("SELECT COUNT(*) FROM epochs").fetchone()[0] == 6


def test_non_finite_numbers_never_enter_the_store_and_old_ones_still_read(tmp_path: Path) -> None:
    import dataclasses

    path = tmp_path / "r.db"
    with ResultStore(path) as store:
        store.start_run("a", {}, {}, 1, [])
        bad = result(0)
        bad.trial = dataclasses.replace(bad.trial, params={"optimizer": {"momentum": float("inf")}})
        with pytest.raises(StoreError, match="not finite"):
            store.save_result("a", bad)
        with pytest.raises(StoreError, match="not finite"):
            store.start_run("b", {"timeout": float("nan")}, {}, 1, [])
        store.save_result("a", result(1))
    with sqlite3.connect(path) as db:  # what an older release let in
        db.execute("""UPDATE trials SET params = '{"optimizer": {"momentum": Infinity}, "tuning": {"role": "tune"}}'""")
        db.execute("""UPDATE runs SET grid = '{"timeout": NaN}'""")
    with ResultStore(path, readonly=True) as store:
        trials = store.trials(["a"])
        assert list(trials["protocol"]) == ["tuning"] and len(store.runs()) == 1


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


def test_runs_whose_process_died_name_the_trial_that_trained_in_their_own_process(tmp_path: Path) -> None:
    gone = subprocess.run([sys.executable, "-c", "from nnbench.storage.liveness import this_process as p; "
                           "print(p())"], capture_output=True, text=True, check=True).stdout.strip()
    path = tmp_path / "d.db"
    inline, worker, done = result(0).trial, result(1).trial, result(2).trial
    ids = [inline.trial_id, worker.trial_id, done.trial_id]
    with ResultStore(path) as store:
        store.start_run("dead", {}, {}, 3, [])
        store.claim("dead", [inline], in_process=True)
        store.claim("dead", [worker], in_process=False)
        store.claim("dead", [done], in_process=True)
        store.save_result("dead", result(2))  # stored: no longer in training
        store.start_run("alive", {}, {}, 1, [])
    with sqlite3.connect(path) as db:
        db.execute("UPDATE runs SET process = ? WHERE run_id = 'dead'", (gone,))
    with ResultStore(path) as store:
        assert store.ended_runs == ["dead"]
        assert dict(zip(store.runs()["run_id"], store.runs()["status"], strict=True)) == {
            "dead": "interrupted", "alive": "running"}
        assert store.crashed_trials(ids) == {inline.trial_id: "dead"}
        assert store.claim("alive", [inline, worker]) == [inline, worker]  # released: the run is over
        assert store.crashed_trials(ids) == {}  # the next run took it over
        store.finish_run("alive")
    with ResultStore(path) as store:
        assert store.ended_runs == [] and store.crashed_trials(ids) == {}


def test_a_run_stopped_by_ctrl_c_names_no_trial_as_crashed(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "c.db") as store:
        store.start_run("stopped", {}, {}, 1, [])
        store.claim("stopped", [result(0).trial], in_process=True)
        store.finish_run("stopped", "interrupted")
        assert store.crashed_trials([result(0).trial.trial_id]) == {}


def test_each_reader_keeps_to_the_runs_it_is_given(tmp_path: Path, store_writer: Any, trial_result: Any) -> None:
    store_writer(tmp_path / "s.db", [trial_result(seed=0)], run_id="run-a",
                 skipped=[Skipped({"arch": "cnn"}, "no images")]).close()
    store = store_writer(tmp_path / "s.db", [trial_result(seed=1), trial_result(seed=2)], run_id="run-b",
                         skipped=[Skipped({"arch": "rnn"}, "no sequences")])
    store.close()
    store = store_writer(tmp_path / "s.db", [trial_result(seed=3)], run_id="run-c")
    case = {"kind": "activation", "name": "relu", "device": "cpu", "shape": "[64]", "status": "ok", "mean": 2e-6,
            "run_id": "ignored"}
    store.save_micro("micro-a", [case, {**case, "name": "tanh"}])
    store.save_micro("micro-b", [{**case, "name": "gelu"}])
    with store:
        assert store.latest_run_id() == "run-c" and store.run_ids() == ["run-a", "run-b", "run-c"]  # micro apart
        assert store.runs(["run-b"])["run_id"].tolist() == ["run-b"]
        assert set(store.trials(["run-a"])["seed"]) == {0}
        assert set(store.epochs(["run-a"])["trial_id"]) == set(store.trials(["run-a"])["trial_id"])
        assert set(store.epochs()["trial_id"]) == set(store.trials()["trial_id"])
        assert store.skipped(["run-b"])["reason"].tolist() == ["no sequences"]
        micro = store.micro(["micro-a"])
        assert micro["name"].tolist() == ["relu", "tanh"] and set(micro["run_id"]) == {"micro-a"}
        assert micro["mean"].tolist() == [2e-6, 2e-6] and micro["median"].isna().all()  # missing: NULL
        assert micro["created_at"].notna().all() and store.micro()["name"].tolist() == ["relu", "tanh", "gelu"]


def test_an_empty_store_has_no_latest_run(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "empty.db") as store:
        assert store.latest_run_id() is None


def test_a_races_account_reads_back_with_its_run_and_a_new_one_replaces_it(tmp_path: Path) -> None:
    with ResultStore(tmp_path / "r.db") as store:
        store.start_run("raced", {}, {}, 2, [])
        store.start_run("plain", {}, {}, 1, [])
        store.record_race("raced", {"rungs": [1, 2], "pruned": 1})
        assert store.runs(["plain"])["race"].isna().all()
        assert store.runs(["raced"])["race"].iloc[0] == '{"pruned": 1, "rungs": [1, 2]}'  # one text per account
        with pytest.raises(StoreError, match="the race's account holds a number that is not finite"):
            store.record_race("raced", {"pruned": float("nan")})
        store.record_race("raced", {"pruned": 2})
        assert json.loads(store.runs(["raced"])["race"].iloc[0]) == {"pruned": 2}


def test_a_trial_is_claimed_elsewhere_only_while_another_live_run_holds_it(tmp_path: Path) -> None:
    one, two = result(0).trial, result(1).trial
    with ResultStore(tmp_path / "c.db") as store:
        store.start_run("first", {}, {}, 2, [])
        store.start_run("second", {}, {}, 2, [])
        assert store.claim("first", [one]) == [one]
        ids = [one.trial_id, two.trial_id]
        assert store.claimed_elsewhere("second", ids) == {one.trial_id}
        assert store.claimed_elsewhere("first", ids) == set()  # its own claim
        assert store.claim("second", [one, two]) == [two]
        store.finish_run("first")
        assert store.claimed_elsewhere("second", ids) == set()
        assert store.claimed_elsewhere("first", ids) == {two.trial_id}
