"""Named migrations: a store of every release opens, reports and resumes, and a new core axis is one field
plus one migration."""

from __future__ import annotations

import os
import shutil
import sqlite3
import subprocess
import sys
from pathlib import Path

import pytest

from nnbench.contract.trial import TRIAL_AXES
from nnbench.storage.migrations import LEGACY_VERSIONS, MIGRATIONS, SCHEMA_VERSION, applied, expected_columns
from nnbench.storage.store import TRIAL_COLUMNS, ResultStore, StoreError

DATA = Path(__file__).parent / "data"
PACKAGE = Path(__file__).parents[1] / "nnbench"
RELEASE_GRIDS = [
    ["--task", "moons,sine", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam", "--seeds", "2",
     "--epochs", "2"],
    ["--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer", "sgd", "--clip", "1", "--schedule",
     "cosine", "--patience", "2", "--seeds", "2", "--epochs", "2"],
]
STORES = {
    # nnbench 0.1.0: schema version 1, before the built-in initializer and norm kinds existed
    "store-0.1.0.db": RELEASE_GRIDS,
    # the release before migrations were recorded: schema version 2, with a plugin kind's column
    "store-schema-2.db": [*RELEASE_GRIDS, ["--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer",
                                           "adam", "--initializer", "xavier_uniform", "--seeds", "2", "--epochs", "2"]],
}


def test_every_core_axis_and_result_has_a_migration_that_adds_its_column() -> None:
    assert set(TRIAL_COLUMNS) <= set(expected_columns()["trials"])
    assert {ax.name for ax in TRIAL_AXES} <= set(expected_columns()["trials"])


def test_migrations_have_unique_names_and_a_new_store_records_each_once(tmp_path: Path) -> None:
    names = [m.__name__ for m in MIGRATIONS]
    assert len(set(names)) == len(names)
    ResultStore(tmp_path / "new.db").close()
    ResultStore(tmp_path / "new.db").close()  # opening again applies nothing
    with sqlite3.connect(tmp_path / "new.db") as db:
        assert applied(db) == names
        assert db.execute("SELECT COUNT(*) FROM migrations").fetchone()[0] == len(names)
        assert db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0] == str(SCHEMA_VERSION)


@pytest.mark.parametrize("name", sorted(STORES))
def test_a_store_of_an_earlier_release_reads_in_memory_and_migrates_once_when_written(tmp_path: Path,
                                                                                       name: str) -> None:
    path = tmp_path / name
    shutil.copy(DATA / name, path)
    with sqlite3.connect(path) as db:
        version = int(db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()[0])
    with ResultStore(path, readonly=True) as old:
        assert old.migrated == [m.__name__ for m in MIGRATIONS[LEGACY_VERSIONS[version]:]]
        assert len(old.trials()) > 0
    assert path.read_bytes() == (DATA / name).read_bytes()  # reading changed nothing
    with ResultStore(path) as store:
        assert store.migrated == old.migrated
    with ResultStore(path) as again:
        assert again.migrated == []
    with sqlite3.connect(path) as db:
        assert applied(db) == [m.__name__ for m in MIGRATIONS]


def test_a_store_of_a_newer_release_is_read_but_not_written(tmp_path: Path) -> None:
    path = tmp_path / "newer.db"
    ResultStore(path).close()
    with sqlite3.connect(path) as db:
        db.execute("INSERT INTO migrations VALUES ('m999_from_the_future', 'later')")
    with ResultStore(path, readonly=True) as newer:
        assert newer.runs().empty
    with pytest.raises(StoreError, match="written by a newer nnbench: it holds the migration 'm999_from_the_future'"):
        ResultStore(path)


NEW_AXIS = '''    precision: str = axis(field_default="float32", default=("float32",), neutral="float32",
                          help="Numeric precision of training.")
    components: Mapping[str, str] = field(default_factory=dict)
'''
NEW_MIGRATION = '''

@migration
def m999_trials_precision(db: sqlite3.Connection) -> None:
    add_axis_column(db, "precision")
'''


def scratch_package_with_a_new_axis(root: Path) -> Path:
    """A copy of nnbench whose Trial has one more axis, with its one migration: nothing else changed."""
    copy = root / "nnbench"
    shutil.copytree(PACKAGE, copy, ignore=shutil.ignore_patterns("__pycache__"))
    trial = copy / "contract" / "trial.py"
    text = trial.read_text()
    anchor = "    components: Mapping[str, str] = field(default_factory=dict)\n"
    assert text.count(anchor) == 1
    trial.write_text(text.replace(anchor, NEW_AXIS))
    migrations = copy / "storage" / "migrations.py"
    migrations.write_text(migrations.read_text() + NEW_MIGRATION)
    return root


@pytest.mark.slow
@pytest.mark.parametrize("name", sorted(STORES))
def test_a_core_axis_added_later_opens_reports_and_resumes_every_earlier_store(tmp_path: Path, name: str) -> None:
    root = scratch_package_with_a_new_axis(tmp_path / "src")
    store = tmp_path / name
    shutil.copy(DATA / name, store)
    before = sqlite3.connect(store).execute("SELECT trial_id, metric FROM trials ORDER BY trial_id").fetchall()
    env = {**os.environ, "PYTHONPATH": str(root)}

    def nnbench(*args: str) -> str:
        done = subprocess.run([sys.executable, "-m", "nnbench", *args], cwd=tmp_path, env=env, capture_output=True,
                              text=True, timeout=300)
        assert done.returncode == 0, done.stderr
        return done.stdout + done.stderr

    assert "--precision" in nnbench("run", "--help")  # the scratch copy is the nnbench that runs
    for grid in STORES[name]:
        out = nnbench("run", *grid, "--store", str(store), "--no-report", "-q")
        assert "0 trained" in out, out
    out = nnbench("run", *RELEASE_GRIDS[0], "--precision", "float32", "--store", str(store), "--no-report", "-q")
    assert "0 trained" in out, out  # the neutral value keeps every stored id
    nnbench("report", "--all", "--store", str(store), "-o", str(tmp_path / "report.html"))
    assert "<html" in (tmp_path / "report.html").read_text()[:200].lower()
    out = nnbench("run", "--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer", "adam",
                  "--precision", "bf16", "--seeds", "1", "--epochs", "1", "--store", str(store), "--no-report", "-q")
    assert "1 trained" in out, out
    db = sqlite3.connect(store)
    assert db.execute("SELECT trial_id, metric FROM trials WHERE precision = 'float32' ORDER BY trial_id").fetchall() \
        == before
    assert db.execute("SELECT COUNT(*) FROM trials WHERE precision = 'bf16'").fetchone()[0] == 1
    assert applied(db)[-1] == "m999_trials_precision"
