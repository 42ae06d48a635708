"""The embedded SQLite results store.

Tables: ``runs`` (grid and environment of each ``nnbench run``), ``trials`` (one row per trial id,
with its configuration, status and final metrics), ``epochs`` (per-epoch curves), ``run_trials``
(which trials each run covered, including ones reused from earlier runs), ``skipped``
(combinations a run did not train, with the reason) and ``micro`` (``nnbench micro`` timings, one
row per component, device and shape, under run ids of their own) and ``claims`` (the trials a live
run is training, so that a second run on the same store trains something else, and so that after a
process died the next run knows which trial was training in it). Each finished
trial is written in one transaction and checkpointed into the main file at once, so a killed
process loses at most the trials it was still training, and the file ``nnbench.db`` alone holds
every committed trial.

The tables are made, and changed between releases, by named migrations
(:mod:`nnbench.storage.migrations`), applied once when a store opens: a store of every release opens.
Several runs may use one store at the same time: creating and migrating the schema, claiming
trials and storing results are each one ``BEGIN IMMEDIATE`` transaction. A run whose process died
reads as ``interrupted`` and its claims are released the next time the store is opened (all but
those of trials that trained in its own process: see :meth:`ResultStore.crashed_trials`).
"""

from __future__ import annotations

import json
import os
import secrets
import sqlite3
import time
from collections.abc import Iterable, Iterator, Mapping, Sequence
from contextlib import closing, suppress
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnbench.contract.axes import Axis
from nnbench.contract.errors import NNBenchError
from nnbench.contract.paths import DEFAULT_STORE
from nnbench.contract.trial import TRIAL_AXES
from nnbench.storage import reserve
from nnbench.storage.liveness import is_alive, this_process
from nnbench.storage.migrations import (
    LEGACY_VERSIONS,
    SCHEMA_VERSION,
    MigrationError,
    column_definition,
    expected_columns,
    migrate,
    pending,
)

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.contract.trial import Skipped, Trial, TrialResult

FINISHED = ("ok", "diverged")  # statuses a resumed run does not train again

RESULT_COLUMNS = (
    "status", "metric_name", "metric", "train_loss", "test_loss", "val_loss", "val_metric", "accuracy", "rmse",
    "r2", "n_params", "train_time", "throughput", "peak_memory", "epochs_run", "best_epoch", "error", "finished_at",
    "training", "race",
)
"""What the ``trials`` table holds besides a trial's axes: its outcome. ``training`` (JSON, NULL in rows
stored before it was recorded) says how the trial was trained: see ``TrialResult.training``; ``race`` (JSON,
NULL unless a race pruned the trial) its evidence: see ``TrialResult.race``."""

TRIAL_COLUMNS = ("trial_id", "run_id", *(ax.name for ax in TRIAL_AXES), "params", *RESULT_COLUMNS)
"""The columns of every store; a kind that a plugin declares adds one of its own when a store is opened with
its axis (``ResultStore(path, axes=...)``)."""
NON_AXIS_COLUMNS = frozenset({"trial_id", "run_id", "params", *RESULT_COLUMNS})
MICRO_COLUMNS = (
    "run_id", "created_at", "kind", "name", "plugin", "device", "shape", "size", "status", "error", "rounds",
    "iterations", "min", "max", "mean", "median", "stddev", "iqr", "ops",
)
EPOCH_COLUMNS = ("trial_id", "epoch", "train_loss", "test_loss", "metric", "val_loss", "val_metric", "accuracy",
                 "rmse", "r2", "epoch_time")


class StoreError(NNBenchError):
    """The store cannot be opened, written or understood."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261129-061530-3fa2``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


LOCK_WAIT_SECONDS = 30
"""How long opening or writing the store waits for another run's lock before it gives up."""


class ResultStore:
    """A results database at ``path`` (created on first use)."""

    def __init__(self, path: str | Path = DEFAULT_STORE, *, readonly: bool = False, axes: Sequence[Axis] = ()) -> None:
        """Open (or create) the store, applying the migrations it lacks (:mod:`nnbench.storage.migrations`).

        ``readonly`` opens an existing store for reading only, so reports and exports work on a store in a
        read-only place and never change it (a store of an older release is migrated in a copy in memory).
        ``axes`` are the session's trial axes: a kind that a plugin declared gets its column where the store
        lacks one, rows stored before reading as the kind's default (so their trial ids stay what they were).
        """
        self.path = Path(path)
        self.readonly = readonly
        self._column_defaults: dict[str, Any] | None = None
        self.migrated: list[str] = []  # the migrations this opening applied (in memory, for a read-only store)
        self.ended_runs: list[str] = []  # runs found running whose process had died: marked interrupted
        self._reserves: set[str] = set()  # runs started here whose space set aside is still held
        try:
            is_dir, is_file, has_folder = self.path.is_dir(), self.path.is_file(), self.path.parent.exists()
        except OSError as exc:  # a name too long for the file system, a loop of links
            raise StoreError(f"cannot use store {self.path}: {exc.strerror or exc}; give another --store") from None
        if is_dir:
            raise StoreError(
                f"store path {self.path} is a folder; give a file path such as {self.path / DEFAULT_STORE}"
            )
        if readonly and not is_file:
            raise StoreError(f"store {self.path} does not exist; run `nnbench run` first or pass --store")
        if not has_folder:
            raise StoreError(f"cannot create store {self.path}: folder {self.path.parent} does not exist")
        try:
            if readonly:
                self._db = self._connect_readonly()
                self._open_for_reading()
                return
            self._db = self._connect()
            try:
                self._open_for_writing(axes)
            except StoreError:
                reason = _unwritable(self.path)
                if reason:
                    raise StoreError(f"cannot write to store {self.path}: it is read-only ({reason}); make the "
                                     "file and its folder writable, or give another --store") from None
                raise
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot use {self.path} as a results store: {exc}; give a writable path (--store) to a "
                "new file or an existing nnbench store"
            ) from None
        self._identity = _identity(self.path)

    def _connect(self) -> sqlite3.Connection:
        db = sqlite3.connect(self.path, timeout=LOCK_WAIT_SECONDS, isolation_level=None)
        db.execute("PRAGMA foreign_keys = ON")
        return db

    def _open_for_writing(self, axes: Sequence[Axis]) -> None:
        """Create or migrate the store and add the columns of ``axes`` in one write transaction, so two runs
        opening a new store at the same moment cannot see it half made; then switch to write-ahead logging."""
        with self._transaction(check=False) as db:
            self._check_store()
            try:
                self.migrated = migrate(db)
            except MigrationError as exc:
                raise StoreError(f"store {self.path} was written by a newer nnbench: it holds the migration "
                                 f"{exc.args[0]!r}, which this release does not know; upgrade nnbench to write to "
                                 "it, or give another --store") from None
            self._add_axis_columns(db, axes)
            self._check_columns()
            self._release_dead_runs(db)
        deadline = time.monotonic() + LOCK_WAIT_SECONDS
        while self._db.execute("PRAGMA journal_mode").fetchone()[0].lower() != "wal":
            try:
                self._db.execute("PRAGMA journal_mode = WAL")
            except sqlite3.OperationalError as exc:
                # switching needs the file to itself, and SQLite does not wait for that as it waits for a
                # write lock: another run opening the store at the same moment makes it fail at once
                if "locked" not in str(exc) or time.monotonic() > deadline:
                    raise
                time.sleep(0.05)

    def _open_for_reading(self) -> None:
        """Check the store; one that lacks migrations is copied into memory and migrated there, so it reads
        with today's tables and its file stays as it was. A store of a newer release reads as it is: its
        migrations only ever added."""
        self._check_store(readonly=True)
        try:
            todo = pending(self._db)
        except MigrationError:
            todo = []
        if todo:
            copy = sqlite3.connect(":memory:", isolation_level=None)
            self._db.backup(copy)
            self._db.close()
            self._db = copy
            with self._transaction(check=False) as db:
                self.migrated = migrate(db)
        self._check_columns()

    def _add_axis_columns(self, db: sqlite3.Connection, axes: Sequence[Axis]) -> None:
        have = {row[1] for row in db.execute("PRAGMA table_info(trials)")}
        for ax in axes:
            if ax.name in have:
                continue
            if not ax.name.isidentifier():
                raise StoreError(f"the axis {ax.name!r} cannot become a column of store {self.path}")
            try:
                db.execute(f"ALTER TABLE trials ADD COLUMN {column_definition(ax)}")
            except ValueError as exc:
                raise StoreError(f"the axis {ax.name!r} cannot become a column of store {self.path}: {exc}") from None
        self._column_defaults = None

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=LOCK_WAIT_SECONDS, isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master").fetchall()
            return db
        except sqlite3.OperationalError:
            # A WAL store in a read-only folder cannot get its shared-memory file: read the file as
            # it stands (the main file holds every committed trial: each commit is checkpointed).
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)

    def _check_store(self, readonly: bool = False) -> None:
        """Raise, saying why, when the file is neither empty (to be made a store, when writing) nor an
        nnbench store of this release or an earlier one."""
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            if readonly:
                raise StoreError(f"{self.path} is empty, not an nnbench store; run `nnbench run` first")
            return
        if "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite database but not an nnbench store (no meta table)")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        if row is None:
            raise StoreError(f"{self.path} has a meta table but no schema version, so it was not written by "
                             "nnbench; give a new --store path")
        try:
            version = int(row[0])
        except (TypeError, ValueError):
            raise StoreError(f"{self.path} has store schema version {row[0]!r}, which is not a number, so it was "
                             "not written by nnbench; give a new --store path") from None
        if version != SCHEMA_VERSION and version not in LEGACY_VERSIONS:
            raise StoreError(
                f"{self.path} has store schema version {version}, but this nnbench reads version "
                f"{SCHEMA_VERSION} (and migrates every earlier one); use the nnbench release that wrote it, or a "
                "new --store path"
            )

    def _check_columns(self) -> None:
        """Every table and column this nnbench reads is there (a store changed by hand is refused
        before anything is written to it)."""
        present = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        for table, columns in expected_columns().items():
            if table not in present:
                raise StoreError(f"store {self.path} has no {table!r} table, so it is damaged or was changed by "
                                 "hand; give a new --store path")
            have = {r[1] for r in self._db.execute(f"PRAGMA table_info({table})")}
            missing = [c for c in columns if c not in have]
            if missing:
                raise StoreError(f"store {self.path} lacks the column {missing[0]!r} of its {table!r} table, so it "
                                 "is damaged or was changed by hand; give a new --store path")
        undeclared = [name for name in TRIAL_COLUMNS if name not in expected_columns()["trials"]]
        if undeclared:  # a core axis declared without its migration: nnbench's own mistake
            raise StoreError(f"the trial axis {undeclared[0]!r} has no migration that adds its column; add one "
                             "to nnbench/storage/migrations.py")

    def close(self) -> None:
        for run_id in list(self._reserves):  # a run that could not be marked ended: its space is not kept
            self._give_back(run_id)
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- which runs are alive ----------------------------------------------------------------------

    def _release_dead_runs(self, db: sqlite3.Connection) -> list[str]:
        """Mark ``interrupted`` the running runs whose process died and return their ids (inside the
        caller's transaction). The claims of a run that is not running any more are released, except
        those of trials that were training in the dead run's own process: the trial may be what
        killed it (see :meth:`crashed_trials`), until a run claims it again."""
        dead = [run_id for run_id, process in db.execute("SELECT run_id, process FROM runs WHERE status = 'running'")
                if not is_alive(process)]
        db.executemany("UPDATE runs SET status = 'interrupted' WHERE run_id = ?", [(r,) for r in dead])
        db.execute("DELETE FROM claims WHERE run_id NOT IN (SELECT run_id FROM runs WHERE status = 'running') AND "
                   "NOT (in_process = 1 AND run_id IN (SELECT run_id FROM runs WHERE status = 'interrupted' AND "
                   "finished_at IS NULL))")
        self.ended_runs += dead
        for run_id in dead:  # the space a killed run set aside
            reserve.give_back(self.path, run_id)
        return dead

    # -- writing ---------------------------------------------------------------------------------

    def start_run(self, run_id: str, grid: dict[str, Any], environment: dict[str, Any],
                  n_trials: int, skipped: Sequence[Skipped]) -> None:
        """Record a new run, written by this process, and the combinations it skips, with space set aside for
        storing how it ends (:mod:`nnbench.storage.reserve`)."""
        if not reserve.set_aside(self.path, run_id):
            raise write_error(self.path, sqlite3.OperationalError("database or disk is full"))
        self._reserves.add(run_id)
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, 'running', ?, ?, ?, ?, ?)",
                (run_id, now(), to_json(grid, "the grid"), to_json(environment, "the environment"),
                 n_trials, len(skipped), this_process()),
            )
            db.executemany(
                "INSERT INTO skipped VALUES (?, ?, ?)",
                [(run_id, to_json(dict(s.combination), "a skipped combination"), s.reason) for s in skipped],
            )

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        """Mark the run ended with ``status`` and release the trials it still claimed. On a full disk, the space set
        aside when the run started is given back first, so that this is stored all the same."""
        try:
            self._finish_run(run_id, status)
        except StoreError:
            if not self._give_back(run_id):
                raise
            self._finish_run(run_id, status)
        self._give_back(run_id)

    def _finish_run(self, run_id: str, status: str) -> None:
        if self._db.in_transaction:  # a write that a signal cut short between BEGIN and its block: nothing of it
            with suppress(sqlite3.Error):
                self._db.execute("ROLLBACK")
        with self._transaction() as db:
            # the trial count grows when a tuning protocol adds its final reruns
            db.execute("UPDATE runs SET finished_at = ?, status = ?, n_trials = (SELECT COUNT(*) FROM run_trials "
                       "WHERE run_id = ?) WHERE run_id = ?", (now(), status, run_id, run_id))
            db.execute("DELETE FROM claims WHERE run_id = ?", (run_id,))

    def _give_back(self, run_id: str) -> bool:
        self._reserves.discard(run_id)
        return reserve.give_back(self.path, run_id)

    def claim(self, run_id: str, trials: Sequence[Trial], replacing: Mapping[str, str] | None = None, *,
              in_process: bool = False) -> list[Trial]:
        """Claim for ``run_id`` the trials among ``trials`` that it may train now: those that no other
        live run has claimed and that are not stored as finished. ``replacing`` maps the ids of
        finished trials the run retrains (``--force``) to their stored ``finished_at``: such a trial
        counts as finished only once another run stored it again. ``in_process``: the trials train in
        the run's own process, so that, should it die, the next run knows which trial was in training.

        The claims of runs whose process died are released first; a run's claim on a trial ends when
        its result is stored or the run ends.
        """
        if not trials:
            return []
        replacing = replacing or {}
        with self._transaction() as db:
            self._release_dead_runs(db)
            taken: set[str] = set()
            done: set[str] = set()
            for chunk in _chunks([t.trial_id for t in trials]):
                marks = ", ".join("?" * len(chunk))
                taken.update(r[0] for r in db.execute(
                    f"SELECT trial_id FROM claims WHERE run_id != ? AND trial_id IN ({marks}) AND run_id IN "
                    "(SELECT run_id FROM runs WHERE status = 'running')", [run_id, *chunk]))
                done.update(trial_id for trial_id, finished_at in db.execute(
                    f"SELECT trial_id, finished_at FROM trials WHERE status IN {FINISHED} AND trial_id IN ({marks})",
                    chunk) if replacing.get(trial_id) != finished_at)
            mine = [t for t in trials if t.trial_id not in taken and t.trial_id not in done]
            stamp = now()
            db.executemany("INSERT OR REPLACE INTO claims VALUES (?, ?, ?, ?)",
                           [(t.trial_id, run_id, stamp, int(in_process)) for t in mine])
        return mine

    def claimed_elsewhere(self, run_id: str, trial_ids: Iterable[str]) -> set[str]:
        """The ids among ``trial_ids`` that a live run other than ``run_id`` is training."""
        found: set[str] = set()
        with self._transaction() as db:
            self._release_dead_runs(db)
            for chunk in _chunks(list(trial_ids)):
                found.update(r[0] for r in db.execute(
                    f"SELECT trial_id FROM claims WHERE run_id != ? AND trial_id IN ({', '.join('?' * len(chunk))}) "
                    "AND run_id IN (SELECT run_id FROM runs WHERE status = 'running')", [run_id, *chunk]))
        return found

    def finished_at(self, trial_ids: Iterable[str]) -> dict[str, str]:
        """``finished_at`` of the trials among ``trial_ids`` stored as finished (``ok`` or ``diverged``)."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(trial_ids)):
            found.update(self._db.execute(
                f"SELECT trial_id, finished_at FROM trials WHERE status IN {FINISHED} AND trial_id IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def link_trials(self, run_id: str, trial_ids: Iterable[str]) -> None:
        """Record that ``run_id`` covers already-stored trials it did not train again."""
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO run_trials VALUES (?, ?, 1)", [(run_id, t) for t in trial_ids])

    def crashed_trials(self, trial_ids: Iterable[str]) -> dict[str, str]:
        """Among ``trial_ids``, those that were training in the own process of a run whose process died
        (read ``interrupted``), with no result and no other run's claim since: each with that run's id."""
        found: dict[str, str] = {}
        for chunk in _chunks(list(trial_ids)):
            found.update(self._db.execute(
                "SELECT c.trial_id, c.run_id FROM claims c JOIN runs r ON r.run_id = c.run_id WHERE c.in_process = 1 "
                f"AND r.status = 'interrupted' AND r.finished_at IS NULL AND c.trial_id IN "
                f"({', '.join('?' * len(chunk))})", chunk).fetchall())
        return found

    def epoch_times(self) -> list[tuple[str, str, str, int, str, float, float]]:
        """Timings of stored trials that finished ok, per kind of trial: ``(task, arch, arch params as
        JSON, batch size, device, mean seconds per epoch, mean training samples)``, for
        estimating how long similar trials take."""
        return self._db.execute(
            "SELECT task, arch, COALESCE(json_extract(params, '$.arch'), '{}'), batch_size, device, "
            "AVG(train_time / epochs_run), AVG(throughput * train_time / epochs_run) FROM trials "
            "WHERE status = 'ok' AND epochs_run > 0 AND train_time > 0 GROUP BY 1, 2, 3, 4, 5").fetchall()

    def _columns(self) -> dict[str, Any]:
        """Every column of ``trials`` with its default value (plugin kinds' columns have their neutral one)."""
        if self._column_defaults is None:
            rows = self._db.execute("PRAGMA table_info(trials)").fetchall()
            self._column_defaults = {row[1]: _unquote(row[4]) for row in rows}
        return self._column_defaults

    def kind_defaults(self) -> dict[str, Any]:
        """The columns of ``trials`` that hold a plugin kind's axis, each with its default component (a row
        at the default uses no component of the kind)."""
        return {name: default for name, default in self._columns().items() if name not in TRIAL_COLUMNS}

    def save_result(self, run_id: str, result: TrialResult) -> None:
        """Store one finished trial and its curve atomically, replacing an earlier try of it."""
        trial = result.trial
        row = {**trial.config(), **result.summary(), "trial_id": trial.trial_id, "run_id": run_id,
               "epochs_run": len(result.curve), "finished_at": now()}
        row["params"] = to_json(row["params"], f"the hyper-parameters of trial {trial.trial_id}", sort_keys=True)
        row["training"] = (None if result.training is None
                           else to_json(result.training, f"how trial {trial.trial_id} was trained", sort_keys=True))
        row["race"] = None if result.race is None else to_json(result.race, f"why trial {trial.trial_id} was pruned",
                                                                 sort_keys=True)
        columns = self._columns()
        unknown = sorted(set(trial.components) - set(columns))
        if unknown:
            raise StoreError(f"store {self.path} has no column for the kind {unknown[0]!r}; open it with the session's "
                             "axes (ResultStore(path, axes=domain.axes))")
        for name in TRIAL_COLUMNS:
            row.setdefault(name, None)  # an axis left out of the id at its neutral value
        names = [*TRIAL_COLUMNS, *(c for c in columns if c not in TRIAL_COLUMNS)]
        for name in names[len(TRIAL_COLUMNS):]:
            row[name] = trial.components.get(name, columns[name])
        for ax in TRIAL_AXES:
            if row[ax.name] is None and not ax.nullable:
                row[ax.name] = ax.neutral
        with self._transaction() as db:
            db.execute("DELETE FROM epochs WHERE trial_id = ?", (trial.trial_id,))
            db.execute(
                f"INSERT OR REPLACE INTO trials ({', '.join(names)}) VALUES ({', '.join('?' * len(names))})",
                [row[c] for c in names],
            )
            db.executemany(
                f"INSERT INTO epochs VALUES ({', '.join('?' * len(EPOCH_COLUMNS))})",
                [(trial.trial_id, *[getattr(e, c) for c in EPOCH_COLUMNS[1:]]) for e in result.curve],
            )
            db.execute("INSERT OR REPLACE INTO run_trials VALUES (?, ?, 0)", (run_id, trial.trial_id))
            db.execute("DELETE FROM claims WHERE trial_id = ?", (trial.trial_id,))

    def save_micro(self, run_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store one ``nnbench micro`` run: a row per case with the columns of ``MICRO_COLUMNS``
        (timings in seconds per call; a missing column is stored as NULL)."""
        values = [{"created_at": now(), **row, "run_id": run_id} for row in rows]
        with self._transaction() as db:
            db.executemany(
                f"INSERT INTO micro ({', '.join(MICRO_COLUMNS)}) VALUES ({', '.join('?' * len(MICRO_COLUMNS))})",
                [[row.get(c) for c in MICRO_COLUMNS] for row in values],
            )

    def _transaction(self, check: bool = True) -> _Transaction:
        return _Transaction(self, check)

    def after_commit(self) -> None:
        """Copy what was just committed from the write-ahead log into the main file (so the file
        alone holds every committed trial), and make sure the file is still the one this store
        opened: a store deleted or replaced while a run writes it is written back from the open
        connection, which still holds every row, and the run stops."""
        try:
            self._db.execute("PRAGMA wal_checkpoint(PASSIVE)").fetchall()
        except sqlite3.OperationalError as exc:  # committed, in the log; but the disk will not take more
            raise write_error(self.path, exc) from None
        if _identity(self.path) == self._identity:
            return
        target = self.path if not self.path.exists() else self.path.with_name(
            f"{self.path.stem}-recovered-{datetime.now():%Y%m%d-%H%M%S}{self.path.suffix}")
        with closing(sqlite3.connect(target)) as copy:
            self._db.backup(copy)
        held = self._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        self._db.close()
        self.path, self._db = target, self._connect()
        self._identity = _identity(target)
        raise StoreError(f"the store file was deleted or replaced while this run wrote it; everything it held "
                         f"({held} trials) was written back to {target}, and this run stopped: run the same "
                         f"command with --store {target} to resume")

    # -- reading ---------------------------------------------------------------------------------

    def finished_trial_ids(self, trial_ids: Iterable[str]) -> set[str]:
        """The ids among ``trial_ids`` already stored as finished (``ok`` or ``diverged``)."""
        return set(self.finished_at(trial_ids))

    def outcomes(self, trial_ids: Iterable[str]) -> dict[str, tuple[str, float | None]]:
        """``(status, validation metric)`` of each stored trial among ``trial_ids``; no test metric."""
        found: dict[str, tuple[str, float | None]] = {}
        for chunk in _chunks(list(trial_ids)):
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT trial_id, status, val_metric FROM trials WHERE trial_id IN ({marks})"
            for trial_id, status, val_metric in self._db.execute(query, chunk):
                found[trial_id] = (status, val_metric)
        return found

    def record_race(self, run_id: str, summary: Mapping[str, Any]) -> None:
        """Record (or bring up to date) the account of ``run_id``'s race: JSON-ready, read back as the ``race``
        column of :meth:`runs`."""
        with self._transaction() as db:
            db.execute("INSERT OR REPLACE INTO races VALUES (?, ?)",
                       (run_id, to_json(dict(summary), "the race's account", sort_keys=True)))

    def run_ids(self) -> list[str]:
        return [r[0] for r in self._db.execute("SELECT run_id FROM runs ORDER BY started_at, rowid")]

    def latest_run_id(self) -> str | None:
        ids = self.run_ids()
        return ids[-1] if ids else None

    def resolve_runs(self, run_ids: Sequence[str] | None) -> list[str]:
        """Check ``run_ids`` exist (``None`` or empty: the latest run); a prefix of an id is enough."""
        known = self.run_ids()
        if not known:
            raise StoreError(f"store {self.path} holds no runs yet; start one with `nnbench run`")
        if not run_ids:
            return [known[-1]]
        resolved = []
        for wanted in run_ids:
            matches = [k for k in known if k.startswith(wanted)]
            if len(matches) != 1:
                raise StoreError(
                    f"{'no' if not matches else 'more than one'} run in {self.path} matches {wanted!r}; "
                    f"runs: {', '.join(known[-10:])}"
                )
            resolved.append(matches[0])
        return resolved

    def _frame(self, sql: str, params: Sequence[Any] = ()) -> pd.DataFrame:
        import pandas as pd

        with closing(self._db.execute(sql, params)) as cursor:
            columns = [d[0] for d in cursor.description]
            return pd.DataFrame(cursor.fetchall(), columns=columns)

    def _run_filter(self, run_ids: Sequence[str] | None, column: str) -> tuple[str, list[str]]:
        if run_ids is None:
            return "", []
        return f"WHERE {column} IN ({', '.join('?' * len(run_ids))})", list(run_ids)

    def runs(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """The runs (all when ``None``), oldest first; a run whose process died reads as ``interrupted``
        even where the store is read-only and cannot be marked. ``conflicts`` lists, as JSON, the trials the run
        covers of which a merged store held another copy with other numbers (``trial_id``, the ``run_id`` that
        trained the other copy and the ``differences``, kept number -> other number); ``[]`` for none. ``race``
        is the account of a raced run (JSON: see :meth:`record_race`), else NULL."""
        where, params = self._run_filter(run_ids, "r.run_id")
        frame = self._frame(
            "SELECT r.*, (SELECT summary FROM races WHERE races.run_id = r.run_id) AS race, "
            "(SELECT json_group_array(json_object('trial_id', c.trial_id, 'run_id', c.run_id, "
            "'differences', json(c.differences))) FROM trial_conflicts c JOIN run_trials rt ON rt.trial_id = "
            f"c.trial_id WHERE rt.run_id = r.run_id) AS conflicts FROM runs r {where} ORDER BY r.started_at", params)
        if "process" in frame:
            dead = (frame["status"] == "running") & ~frame["process"].map(is_alive).astype(bool)
            frame.loc[dead, "status"] = "interrupted"
        return frame

    def trials(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per trial covered by ``run_ids`` (all runs when ``None``).

        ``protocol`` says what the trial was for: ``default`` (a grid point as given), ``tuning`` (a
        tuning trial of ``--tune``) or ``tuned`` (the selected setting rerun over the seeds).
        """
        if run_ids is None:
            frame = self._frame("SELECT t.* FROM trials t ORDER BY t.rowid")
        else:
            where, params = self._run_filter(run_ids, "rt.run_id")
            frame = self._frame(
                f"SELECT DISTINCT t.* FROM trials t JOIN run_trials rt ON rt.trial_id = t.trial_id {where} "
                "ORDER BY t.rowid", params)
        # read in Python: SQLite's JSON functions refuse the NaN and Infinity an older release stored
        frame["protocol"] = frame["params"].map(_protocol).astype(object)
        return frame

    def epochs(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Per-epoch curves of the trials covered by ``run_ids``."""
        if run_ids is None:
            return self._frame("SELECT * FROM epochs ORDER BY trial_id, epoch")
        where, params = self._run_filter(run_ids, "rt.run_id")
        return self._frame(
            "SELECT e.* FROM epochs e WHERE e.trial_id IN "
            f"(SELECT rt.trial_id FROM run_trials rt {where}) ORDER BY e.trial_id, e.epoch", params)

    def micro(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """Micro-benchmark rows of ``run_ids`` (every ``nnbench micro`` run when ``None``), oldest first."""
        where, params = self._run_filter(run_ids, "run_id")
        return self._frame(f"SELECT * FROM micro {where} ORDER BY rowid", params)

    def skipped(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        where, params = self._run_filter(run_ids, "run_id")
        return self._frame(f"SELECT * FROM skipped {where}", params)


def to_json(value: Any, what: str, sort_keys: bool = False) -> str:
    """``value`` as strict JSON; a non-finite number (which JSON cannot hold) is a :class:`StoreError`."""
    try:
        return json.dumps(value, default=str, allow_nan=False, sort_keys=sort_keys)
    except ValueError:
        raise StoreError(f"{what} holds a number that is not finite (nan or inf), which a store cannot hold; "
                         "give finite values") from None


_PROTOCOLS = {"final": "tuned", "tune": "tuning"}


def _protocol(params: str | None) -> str:
    """What a trial was for, from its stored hyper-parameters: ``default``, ``tuning`` or ``tuned``."""
    try:
        tuning = json.loads(params or "{}").get("tuning") or {}
    except (ValueError, AttributeError):
        return "default"
    role = tuning.get("role") if isinstance(tuning, dict) else None
    return _PROTOCOLS.get(str(role), "default")


def _chunks(ids: list[str], size: int = 500) -> Iterator[list[str]]:
    """``ids`` in pieces small enough for one SQL statement's parameters."""
    for i in range(0, len(ids), size):
        yield ids[i : i + size]


def _unwritable(path: Path) -> str | None:
    """Why this process cannot write ``path`` or create files next to it (the store's log), or ``None``."""
    import tempfile

    try:
        if path.exists():
            os.close(os.open(path, os.O_WRONLY | os.O_APPEND))
        with tempfile.TemporaryFile(dir=path.parent):
            pass
    except OSError as exc:
        return f"{exc.filename or path}: {exc.strerror or exc}"
    return None


def _identity(path: Path) -> tuple[int, int] | None:
    """The file ``path`` names (device and inode), or ``None`` when there is none."""
    try:
        stat = os.stat(path)
    except OSError:
        return None
    return stat.st_dev, stat.st_ino


def _unquote(default: str | None) -> Any:
    """A column default as PRAGMA table_info reports it, as a Python value."""
    if default is None:
        return None
    if default.startswith("'") and default.endswith("'"):
        return default[1:-1].replace("''", "'")
    try:
        return json.loads(default)
    except ValueError:
        return default


class _Transaction:
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), with SQLite's errors said in one line.

    ``IMMEDIATE`` takes the write lock at the start, so two runs never both read, then write, the
    same rows; a failed write (a full disk, a read-only file) is rolled back where SQLite has not
    already done so, and nothing committed before is touched.
    """

    def __init__(self, store: ResultStore, check: bool = True) -> None:
        self.store, self.db, self.check = store, store._db, check

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise write_error(self.store.path, exc) from None
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
            except sqlite3.OperationalError as error:
                self._rollback()
                raise write_error(self.store.path, error) from None
            if self.check:
                self.store.after_commit()
            return
        self._rollback()
        if isinstance(exc, sqlite3.OperationalError | sqlite3.IntegrityError):
            raise write_error(self.store.path, exc) from None

    def _rollback(self) -> None:
        if self.db.in_transaction:  # SQLite rolls back by itself after a full disk or I/O error
            with suppress(sqlite3.Error):
                self.db.execute("ROLLBACK")


def write_error(path: Path, exc: BaseException) -> StoreError:
    """One line saying why ``path`` could not be written and what to do."""
    text = str(exc)
    if "disk is full" in text or "disk I/O error" in text:
        advice = "free some space (or give another --store), then run the same command to resume"
    elif "readonly" in text or "read-only" in text:
        advice = "make the file and its folder writable, or give another --store"
    elif "locked" in text or "busy" in text:
        advice = "another process holds the store for too long; try again when it is done"
    else:
        advice = "give a writable --store path"
    return StoreError(f"cannot write to store {path}: {text}; nothing stored before was changed; {advice}")
