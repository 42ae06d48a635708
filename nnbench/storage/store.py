"""The embedded SQLite results store.

Tables: ``runs`` (grid and environment of each ``nnbench run``), ``trials`` (one row per trial id,
with its configuration, status and final metrics), ``epochs`` (per-epoch curves), ``run_trials``
(which trials each run covered, including ones reused from earlier runs), ``skipped``
(combinations a run did not train, with the reason), ``micro`` (``nnbench micro`` timings, one
row per component, device and shape, under run ids of their own) and ``started`` (the trials a
run has begun and not yet stored, so that the next run knows which trial was in training when a
process died). Each finished trial is written in one transaction, so a killed process loses at
most the trials it was still training.
"""

from __future__ import annotations

import json
import sqlite3
from collections.abc import Callable, Iterable, Mapping, Sequence
from contextlib import closing
from datetime import UTC, datetime
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnbench.contract.axes import UNSET, Axis
from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import TRIAL_AXES

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.contract.trial import Skipped, TrialResult

SCHEMA_VERSION = 1
DEFAULT_STORE = "nnbench.db"
FINISHED = ("ok", "diverged")  # statuses a resumed run does not train again

RESULT_COLUMNS = (
    ("status", "TEXT NOT NULL"), ("metric_name", "TEXT"), ("metric", "REAL"), ("train_loss", "REAL"),
    ("test_loss", "REAL"), ("val_loss", "REAL"), ("val_metric", "REAL"), ("accuracy", "REAL"), ("rmse", "REAL"),
    ("r2", "REAL"), ("n_params", "INTEGER"), ("train_time", "REAL"), ("throughput", "REAL"),
    ("peak_memory", "INTEGER"), ("epochs_run", "INTEGER"), ("best_epoch", "INTEGER"), ("error", "TEXT"),
    ("finished_at", "TEXT NOT NULL"), ("training", "TEXT"),
)
"""What the ``trials`` table holds besides a trial's axes: its outcome. ``training`` (JSON, NULL in rows
stored before it was recorded) says how the trial was trained: see ``TrialResult.training``."""
ADDED_RESULT_COLUMNS = ("training",)
"""Result columns added after the first schema: a store that lacks them gets them when opened for writing."""


def axis_column(ax: Axis) -> str:
    """The column definition of a trial axis: typed as its values, NULL only where ``none`` means NULL."""
    return f"{ax.name} {ax.sql_type}" + ("" if ax.nullable else " NOT NULL")


TRIAL_COLUMNS = ("trial_id", "run_id", *(ax.name for ax in TRIAL_AXES), "params", *(c for c, _ in RESULT_COLUMNS))
"""The columns of every store; a kind that a plugin declares adds one of its own (:meth:`ResultStore.add_axes`)."""
NON_AXIS_COLUMNS = frozenset({"trial_id", "run_id", "params", *(c for c, _ in RESULT_COLUMNS)})
MICRO_COLUMNS = (
    "run_id", "created_at", "kind", "name", "plugin", "device", "shape", "size", "status", "error", "rounds",
    "iterations", "min", "max", "mean", "median", "stddev", "iqr", "ops",
)
EPOCH_COLUMNS = ("trial_id", "epoch", "train_loss", "test_loss", "metric", "val_loss", "val_metric", "accuracy",
                 "rmse", "r2", "epoch_time")

_TRIAL_TABLE = ",\n    ".join([
    "trial_id TEXT PRIMARY KEY", "run_id TEXT NOT NULL REFERENCES runs(run_id)",
    *(axis_column(ax) for ax in TRIAL_AXES), "params TEXT NOT NULL", *(f"{c} {t}" for c, t in RESULT_COLUMNS)])

SCHEMA = f"""
CREATE TABLE IF NOT EXISTS meta (key TEXT PRIMARY KEY, value TEXT NOT NULL);
CREATE TABLE IF NOT EXISTS runs (
    run_id TEXT PRIMARY KEY, started_at TEXT NOT NULL, finished_at TEXT, status TEXT NOT NULL,
    grid TEXT NOT NULL, environment TEXT NOT NULL, n_trials INTEGER, n_skipped INTEGER
);
CREATE TABLE IF NOT EXISTS trials (
    {_TRIAL_TABLE}
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
CREATE TABLE IF NOT EXISTS started (
    trial_id TEXT PRIMARY KEY, run_id TEXT NOT NULL, in_process INTEGER NOT NULL, started_at TEXT NOT NULL
);
CREATE TABLE IF NOT EXISTS micro (
    run_id TEXT NOT NULL, created_at TEXT NOT NULL, kind TEXT NOT NULL, name TEXT NOT NULL, plugin TEXT,
    device TEXT NOT NULL, shape TEXT NOT NULL, size INTEGER, status TEXT NOT NULL, error TEXT, rounds INTEGER,
    iterations INTEGER, min REAL, max REAL, mean REAL, median REAL, stddev REAL, iqr REAL, ops REAL
);
INSERT OR IGNORE INTO meta VALUES ('schema_version', '{SCHEMA_VERSION}');
"""


class StoreError(NNBenchError):
    """The store cannot be opened, written or understood."""


def now() -> str:
    return datetime.now(UTC).isoformat(timespec="seconds")


class ResultStore:
    """A results database at ``path`` (created on first use)."""

    def __init__(self, path: str | Path = DEFAULT_STORE, *, readonly: bool = False) -> None:
        """Open (or create) the store; ``readonly`` opens an existing store for reading only, so
        reports and exports work on a store in a read-only place and never change it."""
        self.path = Path(path)
        self._column_defaults: dict[str, Any] | None = None
        if self.path.is_dir():
            raise StoreError(
                f"store path {self.path} is a folder; give a file path such as {self.path / DEFAULT_STORE}"
            )
        if readonly and not self.path.is_file():
            raise StoreError(f"store {self.path} does not exist; run `nnbench run` first or pass --store")
        if not self.path.parent.exists():
            raise StoreError(f"cannot create store {self.path}: folder {self.path.parent} does not exist")
        try:
            if readonly:
                self._db = self._connect_readonly()
                self._check_schema(readonly=True)
                return
            self._db = sqlite3.connect(self.path, timeout=30, isolation_level=None)
            self._db.execute("PRAGMA foreign_keys = ON")
            self._check_schema()
            self._db.execute("PRAGMA journal_mode = WAL")
            self._db.executescript(SCHEMA)
            self._add_result_columns()
        except sqlite3.DatabaseError as exc:
            raise StoreError(
                f"cannot use {self.path} as a results store: {exc}; give a writable path (--store) to a "
                "new file or an existing nnbench store"
            ) from None

    def _connect_readonly(self) -> sqlite3.Connection:
        uri = self.path.resolve().as_uri()
        try:
            db = sqlite3.connect(f"{uri}?mode=ro", uri=True, timeout=30, isolation_level=None)
            db.execute("SELECT 1 FROM sqlite_master").fetchall()
            return db
        except sqlite3.OperationalError:
            # A WAL store in a read-only folder cannot get its shared-memory file: read the file as
            # it stands (a store closed cleanly holds everything in the file itself).
            return sqlite3.connect(f"{uri}?immutable=1", uri=True, isolation_level=None)

    def _check_schema(self, readonly: bool = False) -> None:
        tables = {r[0] for r in self._db.execute("SELECT name FROM sqlite_master WHERE type='table'")}
        if not tables:
            if readonly:
                raise StoreError(f"{self.path} is empty, not an nnbench store; run `nnbench run` first")
            return
        if "meta" not in tables:
            raise StoreError(f"{self.path} is an SQLite database but not an nnbench store (no meta table)")
        row = self._db.execute("SELECT value FROM meta WHERE key='schema_version'").fetchone()
        version = int(row[0]) if row else None
        if version != SCHEMA_VERSION:
            raise StoreError(
                f"{self.path} has store schema version {version}, but this nnbench reads version "
                f"{SCHEMA_VERSION}; use the nnbench release that wrote it, or a new --store path"
            )

    def _add_result_columns(self) -> None:
        """Give a store written before a result column existed that column (its older rows read NULL)."""
        present = {row[1] for row in self._db.execute("PRAGMA table_info(trials)")}
        kinds = dict(RESULT_COLUMNS)
        missing = [c for c in ADDED_RESULT_COLUMNS if c not in present]
        if missing:
            with self._transaction() as db:
                for column in missing:
                    db.execute(f"ALTER TABLE trials ADD COLUMN {column} {kinds[column]}")

    def close(self) -> None:
        self._db.close()

    def __enter__(self) -> ResultStore:
        return self

    def __exit__(self, *exc: object) -> None:
        self.close()

    # -- writing ---------------------------------------------------------------------------------

    def start_run(self, run_id: str, grid: dict[str, Any], environment: dict[str, Any],
                  n_trials: int, skipped: Sequence[Skipped]) -> None:
        with self._transaction() as db:
            db.execute(
                "INSERT INTO runs VALUES (?, ?, NULL, 'running', ?, ?, ?, ?)",
                (run_id, now(), json.dumps(grid, default=str), json.dumps(environment, default=str),
                 n_trials, len(skipped)),
            )
            db.executemany(
                "INSERT INTO skipped VALUES (?, ?, ?)",
                [(run_id, json.dumps(dict(s.combination), default=str), s.reason) for s in skipped],
            )

    def finish_run(self, run_id: str, status: str = "finished") -> None:
        with self._transaction() as db:
            db.execute("DELETE FROM started WHERE run_id = ?", (run_id,))
            # the trial count grows when a tuning protocol adds its final reruns
            db.execute("UPDATE runs SET finished_at = ?, status = ?, n_trials = (SELECT COUNT(*) FROM run_trials "
                       "WHERE run_id = ?) WHERE run_id = ?", (now(), status, run_id, run_id))

    def link_trials(self, run_id: str, trial_ids: Iterable[str]) -> None:
        """Record that ``run_id`` covers already-stored trials it did not train again."""
        with self._transaction() as db:
            db.executemany("INSERT OR IGNORE INTO run_trials VALUES (?, ?, 1)", [(run_id, t) for t in trial_ids])

    def mark_started(self, run_id: str, trial_ids: Iterable[str], in_process: bool) -> None:
        """Record that ``run_id`` begins training ``trial_ids`` (``in_process``: in the run's own process,
        so a crash of the trial ends the run); storing a trial's result clears its mark."""
        stamp = now()
        with self._transaction() as db:
            db.executemany("INSERT OR REPLACE INTO started VALUES (?, ?, ?, ?)",
                           [(t, run_id, int(in_process), stamp) for t in trial_ids])

    def close_dead_runs(self, host: str, alive: Callable[[int], bool]) -> list[str]:
        """Mark ``died`` every run still ``running`` whose process, on ``host``, is gone (``alive(pid)`` is
        false): killed, or crashed by a trial. Returns their ids."""
        rows = self._db.execute(
            "SELECT run_id, json_extract(environment, '$.pid') FROM runs WHERE status = 'running' AND "
            "json_extract(environment, '$.host') = ?", (host,)).fetchall()
        dead = [run_id for run_id, pid in rows if isinstance(pid, int) and not alive(pid)]
        if dead:
            with self._transaction() as db:
                db.executemany("UPDATE runs SET status = 'died' WHERE run_id = ?", [(r,) for r in dead])
        return dead

    def crashed_trials(self, trial_ids: Iterable[str]) -> dict[str, str]:
        """Among ``trial_ids``, those that were in training in the process of a run that died (see
        :meth:`close_dead_runs`) and have no result since, each with that run's id."""
        ids = list(trial_ids)
        found: dict[str, str] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            found.update(self._db.execute(
                "SELECT s.trial_id, s.run_id FROM started s JOIN runs r ON r.run_id = s.run_id WHERE "
                f"s.in_process = 1 AND r.status = 'died' AND s.trial_id IN ({', '.join('?' * len(chunk))})",
                chunk).fetchall())
        return found

    def epoch_times(self) -> list[tuple[str, str, str, int, str, float, float]]:
        """Timings of stored trials that finished ok, per kind of trial: ``(task, arch, arch params as
        JSON, batch size, device, mean seconds per epoch, mean training samples)``, for
        estimating how long similar trials take."""
        return self._db.execute(
            "SELECT task, arch, COALESCE(json_extract(params, '$.arch'), '{}'), batch_size, device, "
            "AVG(train_time / epochs_run), AVG(throughput * train_time / epochs_run) FROM trials "
            "WHERE status = 'ok' AND epochs_run > 0 AND train_time > 0 GROUP BY 1, 2, 3, 4, 5").fetchall()

    def add_axes(self, axes: Sequence[Axis]) -> None:
        """Give the ``trials`` table a column for every axis among ``axes`` it lacks (a kind a plugin
        declared): rows stored before read as the axis's neutral value, so nothing is lost and every
        stored trial id stays what it was."""
        missing = [ax for ax in axes if ax.name not in self._columns()]
        if not missing:
            return
        with self._transaction() as db:
            for ax in missing:
                if not ax.name.isidentifier() or ax.neutral is UNSET:
                    raise StoreError(f"the axis {ax.name!r} cannot become a column of store {self.path}")
                db.execute(f"ALTER TABLE trials ADD COLUMN {ax.name} {ax.sql_type} NOT NULL DEFAULT "
                           f"{_sql_literal(ax.neutral)}")
        self._column_defaults = None

    def _columns(self) -> dict[str, Any]:
        """Every column of ``trials`` with its default value (plugin kinds' columns have their neutral one)."""
        if self._column_defaults is None:
            rows = self._db.execute("PRAGMA table_info(trials)").fetchall()
            self._column_defaults = {row[1]: _unquote(row[4]) for row in rows}
        return self._column_defaults

    def save_result(self, run_id: str, result: TrialResult) -> None:
        """Store one finished trial and its curve atomically, replacing an earlier try of it."""
        trial = result.trial
        row = {**trial.config(), **result.summary(), "trial_id": trial.trial_id, "run_id": run_id,
               "epochs_run": len(result.curve), "finished_at": now()}
        row["params"] = json.dumps(row["params"], sort_keys=True, default=str)
        row["training"] = None if result.training is None else json.dumps(result.training, sort_keys=True)
        columns = self._columns()
        unknown = sorted(set(trial.components) - set(columns))
        if unknown:
            raise StoreError(f"store {self.path} has no column for the kind {unknown[0]!r}; add_axes first")
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
            db.execute("DELETE FROM started WHERE trial_id = ?", (trial.trial_id,))

    def save_micro(self, run_id: str, rows: Sequence[Mapping[str, Any]]) -> None:
        """Store one ``nnbench micro`` run: a row per case with the columns of ``MICRO_COLUMNS``
        (timings in seconds per call; a missing column is stored as NULL)."""
        values = [{"created_at": now(), **row, "run_id": run_id} for row in rows]
        with self._transaction() as db:
            db.executemany(
                f"INSERT INTO micro ({', '.join(MICRO_COLUMNS)}) VALUES ({', '.join('?' * len(MICRO_COLUMNS))})",
                [[row.get(c) for c in MICRO_COLUMNS] for row in values],
            )

    def _transaction(self) -> _Transaction:
        return _Transaction(self._db, self.path)

    # -- reading ---------------------------------------------------------------------------------

    def finished_trial_ids(self, trial_ids: Iterable[str]) -> set[str]:
        """The ids among ``trial_ids`` already stored as finished (``ok`` or ``diverged``)."""
        ids = list(trial_ids)
        found: set[str] = set()
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            found.update(r[0] for r in self._db.execute(
                f"SELECT trial_id FROM trials WHERE status IN {FINISHED} AND trial_id IN "
                f"({', '.join('?' * len(chunk))})", chunk))
        return found

    def outcomes(self, trial_ids: Iterable[str]) -> dict[str, tuple[str, float | None]]:
        """``(status, validation metric)`` of each stored trial among ``trial_ids``; no test metric."""
        ids = list(trial_ids)
        found: dict[str, tuple[str, float | None]] = {}
        for i in range(0, len(ids), 500):
            chunk = ids[i : i + 500]
            marks = ", ".join("?" * len(chunk))
            query = f"SELECT trial_id, status, val_metric FROM trials WHERE trial_id IN ({marks})"
            for trial_id, status, val_metric in self._db.execute(query, chunk):
                found[trial_id] = (status, val_metric)
        return found

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
        where, params = self._run_filter(run_ids, "run_id")
        return self._frame(f"SELECT * FROM runs {where} ORDER BY started_at", params)

    def trials(self, run_ids: Sequence[str] | None = None) -> pd.DataFrame:
        """One row per trial covered by ``run_ids`` (all runs when ``None``).

        ``protocol`` says what the trial was for: ``default`` (a grid point as given), ``tuning`` (a
        tuning trial of ``--tune``) or ``tuned`` (the selected setting rerun over the seeds).
        """
        protocol = ("CASE json_extract(t.params, '$.tuning.role') WHEN 'final' THEN 'tuned' "
                    "WHEN 'tune' THEN 'tuning' ELSE 'default' END AS protocol")
        if run_ids is None:
            return self._frame(f"SELECT t.*, {protocol} FROM trials t ORDER BY t.rowid")
        where, params = self._run_filter(run_ids, "rt.run_id")
        return self._frame(
            f"SELECT DISTINCT t.*, {protocol} FROM trials t JOIN run_trials rt ON rt.trial_id = t.trial_id {where} "
            "ORDER BY t.rowid", params)

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


def _sql_literal(value: Any) -> str:
    if isinstance(value, str):
        return "'" + value.replace("'", "''") + "'"
    return repr(value)


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
    """``BEGIN IMMEDIATE`` ... ``COMMIT`` (``ROLLBACK`` on error), translating write errors."""

    def __init__(self, db: sqlite3.Connection, path: Path) -> None:
        self.db, self.path = db, path

    def __enter__(self) -> sqlite3.Connection:
        try:
            self.db.execute("BEGIN IMMEDIATE")
        except sqlite3.OperationalError as exc:
            raise StoreError(f"cannot write to store {self.path}: {exc}") from None
        return self.db

    def __exit__(self, exc_type: object, exc: object, tb: object) -> None:
        if exc_type is None:
            try:
                self.db.execute("COMMIT")
                return
            except sqlite3.OperationalError as error:
                self.db.execute("ROLLBACK")
                raise StoreError(f"cannot write to store {self.path}: {error}") from None
        self.db.execute("ROLLBACK")
