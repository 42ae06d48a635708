"""The store's schema as named migrations: each change to its tables is one function, applied once.

A store records the migrations applied to it, by name, in its ``migrations`` table. Opening a store to
write applies the ones it lacks, in the order below, inside the transaction that opens it; opening one
to read applies them to a copy in memory (see :class:`~nnbench.storage.store.ResultStore`), so a store
of every release reads with today's tables while its file stays as it was. Migrations are only ever
appended to the end of :data:`MIGRATIONS`, and none loses a row.

Stores made before migrations were recorded say which of the first ones they hold in
``meta.schema_version`` (:data:`LEGACY_VERSIONS`).

A new core trial axis is one field of :class:`~nnbench.contract.trial.Trial` plus one migration here
that adds its column, every row stored before reading as the axis's neutral value::

    @migration
    def m003_trials_shuffle(db: sqlite3.Connection) -> None:
        add_axis_column(db, "shuffle")
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable
from contextlib import closing
from datetime import UTC, datetime
from functools import cache

from nnbench.contract.axes import UNSET, Axis
from nnbench.contract.trial import TRIAL_AXES

Migration = Callable[[sqlite3.Connection], None]

MIGRATIONS: list[Migration] = []
"""Every migration, in the order they apply."""

SCHEMA_VERSION = 3
"""``meta.schema_version`` of a store whose migrations are recorded by name (a release that predates them
refuses such a store, saying which version it reads)."""

LEGACY_VERSIONS = {1: 1, 2: 2}
"""``meta.schema_version`` of a store made before migrations were recorded -> how many of the first
migrations it holds."""


def migration(function: Migration) -> Migration:
    """Append ``function`` to :data:`MIGRATIONS`; its name is what a store records once it is applied."""
    MIGRATIONS.append(function)
    return function


@migration
def m001_initial_tables(db: sqlite3.Connection) -> None:
    """The tables of nnbench 0.1.0 (``meta.schema_version`` 1)."""
    execute_script(db, """
    CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
    CREATE TABLE IF NOT EXISTS runs (
        run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
        grid TEXT NOT NULL, environment TEXT NOT NULL, n_trials INTEGER, n_skipped INTEGER
    );
    CREATE TABLE IF NOT EXISTS trials (
        trial_id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES runs(run_id), task TEXT NOT NULL,
        arch TEXT NOT NULL, activation TEXT NOT NULL, loss TEXT NOT NULL, optimizer TEXT NOT NULL,
        lr REAL NOT NULL, batch_size INTEGER NOT NULL, epochs INTEGER NOT NULL, seed INTEGER NOT NULL,
        device TEXT NOT NULL, schedule TEXT NOT NULL, clip REAL, patience INTEGER, params TEXT NOT NULL,
        status TEXT NOT NULL, metric_name TEXT, metric REAL,
        train_loss REAL, test_loss REAL, val_loss REAL, val_metric REAL, accuracy REAL, rmse REAL, r2 REAL,
        n_params INTEGER, train_time REAL, throughput REAL, peak_memory INTEGER, epochs_run INTEGER,
        best_epoch INTEGER, error TEXT,
        finished_at TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS epochs (
        trial_id TEXT NOT NULL REFERENCES trials(trial_id) ON DELETE CASCADE, epoch INTEGER NOT NULL,
        train_loss REAL, test_loss REAL, metric REAL, val_loss REAL, val_metric REAL, accuracy REAL, rmse REAL,
        r2 REAL, epoch_time REAL,
        PRIMARY KEY (trial_id, epoch)
    );
    CREATE TABLE IF NOT EXISTS run_trials (
        run_id TEXT NOT NULL REFERENCES runs(run_id), trial_id TEXT NOT NULL, reused INTEGER NOT NULL,
        PRIMARY KEY (run_id, trial_id)
    );
    CREATE TABLE IF NOT EXISTS skipped (
        run_id TEXT NOT NULL REFERENCES runs(run_id), combination TEXT NOT NULL, reason TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS micro (
        run_id TEXT NOT NULL, created_at TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, plugin TEXT,
        device TEXT NOT NULL, shape TEXT NOT NULL, size INTEGER, status TEXT NOT NULL, error TEXT, rounds INTEGER,
        iterations INTEGER, min REAL, max REAL, mean REAL, median REAL, stddev REAL, iqr REAL, ops REAL
    );
    """)


@migration
def m002_run_processes_claims_and_training(db: sqlite3.Connection) -> None:
    """Runs name the process that writes them; claims of the trials in training; how each trial was
    trained (``meta.schema_version`` 2). Runs left ``running`` by a release before this one cannot be
    checked, and no such release writes a store migrated past it: they ended without saying so."""
    db.execute("ALTER TABLE runs ADD COLUMN process TEXT")
    db.execute("ALTER TABLE trials ADD COLUMN training TEXT")
    db.execute("CREATE TABLE IF NOT EXISTS claims (trial_id TEXT PRIMARY KEY, run_id TEXT NOT NULL REFERENCES "
               "runs(run_id), claimed_at TEXT NOT NULL, in_process INTEGER NOT NULL DEFAULT 0)")
    db.execute("UPDATE runs SET status = 'interrupted' WHERE status = 'running'")


@migration
def m003_merges_and_trial_conflicts(db: sqlite3.Connection) -> None:
    """Stores merged into this one (``nnbench merge``): each merge, what it merged and from where; and the trials
    a source held with other numbers than this store. The trial id stays the key of ``trials`` (the numbers this
    store had); each other copy of the same trial is kept in ``trial_conflicts``, whole (its row and its curve,
    as JSON), with the run that trained it and what differs: both sides are kept, and the difference is shown
    wherever the trial is reported."""
    execute_script(db, """
    CREATE TABLE IF NOT EXISTS merges (
        merge_id TEXT PRIMARY KEY, merged_at TEXT NOT NULL, source TEXT NOT NULL, kind TEXT NOT NULL,
        nnbench TEXT, schema TEXT NOT NULL, runs TEXT NOT NULL, summary TEXT NOT NULL
    );
    CREATE TABLE IF NOT EXISTS trial_conflicts (
        trial_id TEXT NOT NULL REFERENCES trials(trial_id), copy TEXT NOT NULL,
        run_id TEXT NOT NULL REFERENCES runs(run_id), merge_id TEXT NOT NULL REFERENCES merges(merge_id),
        trial TEXT NOT NULL, epochs TEXT NOT NULL, differences TEXT NOT NULL,
        PRIMARY KEY (trial_id, copy)
    );
    """)


@migration
def m004_trials_validation_and_shuffle(db: sqlite3.Connection) -> None:
    """The protocol axes: what a trial is selected on and whether its batches are shuffled (rows stored before
    read ``split`` and ``true``, as they trained)."""
    add_axis_column(db, "validation")
    add_axis_column(db, "shuffle")


@migration
def m005_races(db: sqlite3.Connection) -> None:
    """Racing (``nnbench run --race``): why a race pruned a trial (status ``pruned``), its evidence as JSON in
    ``trials.race`` (NULL for every other trial); and each raced run's account of its rungs, the configurations
    left and the epochs the grid plans (``races``)."""
    db.execute("ALTER TABLE trials ADD COLUMN race TEXT")
    db.execute("CREATE TABLE IF NOT EXISTS races (run_id TEXT PRIMARY KEY REFERENCES runs(run_id), "
               "summary TEXT NOT NULL)")


# -- helpers for migrations --------------------------------------------------------------------------


def execute_script(db: sqlite3.Connection, script: str) -> None:
    """The statements of ``script``, one by one, in the caller's transaction (``executescript`` would
    commit it first)."""
    for statement in script.split(";"):
        if statement.strip():
            db.execute(statement)


def add_axis_column(db: sqlite3.Connection, name: str, axes: tuple[Axis, ...] = TRIAL_AXES) -> None:
    """Give ``trials`` the column of the axis ``name``, rows stored before it reading as its neutral value
    (which keeps their trial ids)."""
    ax = next(a for a in axes if a.name == name)
    db.execute(f"ALTER TABLE trials ADD COLUMN {column_definition(ax)}")


def column_definition(ax: Axis) -> str:
    """The column of ``ax`` for ``ALTER TABLE ... ADD COLUMN``: typed as its values, defaulting to its
    neutral value (NULL where ``none`` means NULL)."""
    if ax.neutral is UNSET:
        raise ValueError(f"the axis {ax.name!r} has no neutral value, so rows stored before it cannot read as one")
    if ax.nullable and ax.neutral is None:
        return f"{ax.name} {ax.sql_type}"
    return f"{ax.name} {ax.sql_type} NOT NULL DEFAULT {sql_literal(ax.neutral)}"


def sql_literal(value: object) -> str:
    """``value`` written as an SQL literal (text quoted; numbers and booleans as numbers)."""
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    if isinstance(value, bool):
        return str(int(value))
    return json.dumps(value)


# -- applying them ---------------------------------------------------------------------------------


def tables(db: sqlite3.Connection) -> set[str]:
    """The names of the tables of ``db``."""
    return {r[0] for r in db.execute("SELECT name FROM sqlite_master WHERE type = 'table'")}


class MigrationError(Exception):
    """A store whose migrations this release cannot apply (one from a newer release)."""


def applied(db: sqlite3.Connection) -> list[str]:
    """The names of the migrations applied to the store ``db``: recorded, or implied by a legacy
    ``meta.schema_version``; empty for an empty database."""
    present = tables(db)
    if "migrations" in present:
        return [r[0] for r in db.execute("SELECT name FROM migrations ORDER BY rowid")]
    if "meta" not in present:
        return []
    row = db.execute("SELECT value FROM meta WHERE key = 'schema_version'").fetchone()
    count = LEGACY_VERSIONS.get(int(row[0])) if row is not None and str(row[0]).isdigit() else None
    return [m.__name__ for m in MIGRATIONS[:count]] if count else []


def pending(db: sqlite3.Connection) -> list[Migration]:
    """The migrations the store ``db`` lacks, in order. Raises :class:`MigrationError` for a store that
    holds a migration this release does not know (written by a newer one)."""
    done = applied(db)
    known = {m.__name__ for m in MIGRATIONS}
    unknown = [name for name in done if name not in known]
    if unknown:
        raise MigrationError(unknown[0])
    return [m for m in MIGRATIONS if m.__name__ not in done]


def migrate(db: sqlite3.Connection) -> list[str]:
    """Apply the migrations ``db`` lacks and record them, inside the caller's transaction; return their
    names."""
    todo = pending(db)
    legacy = applied(db)
    if not todo and "migrations" in tables(db):
        return []
    db.execute("CREATE TABLE IF NOT EXISTS migrations (name TEXT PRIMARY KEY, applied_at TEXT NOT NULL)")
    stamp = datetime.now(UTC).isoformat(timespec="seconds")
    db.executemany("INSERT OR IGNORE INTO migrations VALUES (?, ?)", [(name, "before records") for name in legacy])
    for step in todo:
        step(db)
        db.execute("INSERT INTO migrations VALUES (?, ?)", (step.__name__, stamp))
    db.execute("INSERT OR REPLACE INTO meta VALUES ('schema_version', ?)", (str(SCHEMA_VERSION),))
    return [step.__name__ for step in todo]


@cache
def expected_columns() -> dict[str, tuple[str, ...]]:
    """Every table the migrations make, with its columns: what a store must hold once migrated (the
    ``migrations`` table aside: a store of an earlier release records its migrations once it is written)."""
    with closing(sqlite3.connect(":memory:")) as db:
        migrate(db)
        return {t: tuple(r[1] for r in db.execute(f"PRAGMA table_info({t})")) for t in tables(db) if t != "migrations"}

