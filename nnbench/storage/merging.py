"""Merging stores and bundles into one store, in one transaction.

Every source is checked before the target is opened (a file that is neither a store nor a bundle, a truncated
bundle, one from a newer nnbench or schema: one line, and the target is not touched), and everything is
merged inside one ``BEGIN IMMEDIATE`` transaction of the target, so a merge that fails or is interrupted leaves
the target as it was.

For each trial of a source:

- absent from the target: added, with its curve and its runs;
- present with the same numbers (status, final metrics, curve; never timings, which differ between machines):
  kept once, the source's runs covering it too;
- present, finished on one side only (``ok`` or ``diverged``) and failed or timed out on the other: the finished
  result is kept, as a resumed run would keep it;
- present, finished on both sides with other numbers: the target's row stays in ``trials`` and the source's
  copy is kept in ``trial_conflicts`` with what differs (migration ``m003``), flagged in the merge's summary
  and in the report. Nondeterminism across machines is a finding, not something to overwrite.

A trial's id is the hash of everything that determines its numbers, its components' code included, so trials
whose code differs never meet here: they stay apart as different trials.
"""

from __future__ import annotations

import hashlib
import json
import os
import secrets
import sqlite3
from collections.abc import Iterator, Sequence
from contextlib import ExitStack, contextmanager
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nnbench.contract.axes import Axis, short_label
from nnbench.contract.release import VERSION
from nnbench.contract.trial import TRIAL_AXES
from nnbench.storage.bundle import file_kind, open_bundle
from nnbench.storage.migrations import MIGRATIONS, applied
from nnbench.storage.provenance import Hardware, hardware
from nnbench.storage.store import EPOCH_COLUMNS, FINISHED, ResultStore, StoreError, now, to_json

NUMBERS = ("status", "metric_name", "metric", "train_loss", "test_loss", "val_loss", "val_metric", "accuracy", "rmse",
           "r2", "n_params", "epochs_run", "best_epoch")
"""What makes two results of one trial the same: its outcome, never where, when or how fast it trained."""
CURVE_NUMBERS = tuple(c for c in EPOCH_COLUMNS if c not in ("trial_id", "epoch", "epoch_time"))
CHUNK = 500


@dataclass(frozen=True)
class Conflict:
    """A trial a source holds with other numbers than the target: both are kept, this one in ``trial_conflicts``."""

    trial_id: str
    task: str
    label: str
    seed: int
    run_id: str
    differences: dict[str, Any]

    def describe(self, source: str) -> str:
        shown = [f"{name} {values[0]!r} here, {values[1]!r} in {source}"
                 for name, values in self.differences.items() if name != "epochs"]
        if "epochs" in self.differences:
            shown.append(f"the curve differs at epochs {', '.join(map(str, self.differences['epochs'][:5]))}")
        return f"trial {self.trial_id} ({self.task} {self.label} seed {self.seed}): {'; '.join(shown)}"


@dataclass
class SourceSummary:
    """What merging one source did."""

    source: Path
    kind: str
    runs: list[str] = field(default_factory=list)
    added: int = 0
    same: int = 0
    finished_there: int = 0  # stored here as failed or timed out, finished in the source: the source's kept
    unfinished_there: int = 0  # failed or timed out in the source, finished here: this store's kept
    conflicts: list[Conflict] = field(default_factory=list)
    flagged_before: int = 0  # other numbers already kept from an earlier merge
    running: list[str] = field(default_factory=list)  # runs still running in the source when it was read
    hardware: list[Hardware] = field(default_factory=list)

    def describe(self) -> str:
        parts = [f"{self.added} new trials", f"{self.same} already here with the same numbers"]
        if self.finished_there:
            parts.append(f"{self.finished_there} finished there that failed here (the finished results kept)")
        if self.unfinished_there:
            parts.append(f"{self.unfinished_there} failed there that finished here (left as they were)")
        if self.conflicts:
            parts.append(f"{len(self.conflicts)} with other numbers, kept from both sides and flagged")
        if self.flagged_before:
            parts.append(f"{self.flagged_before} with other numbers flagged at an earlier merge")
        runs = f"{len(self.runs)} run{'s' * (len(self.runs) != 1)}"
        return f"merged {self.source} ({self.kind}, {runs}): " + ", ".join(parts)


@dataclass
class MergeOutcome:
    """What a merge did: one summary per source, and the machines the target's trials now come from."""

    target: Path
    sources: list[SourceSummary]
    trials: int
    runs: int
    hardware: list[Hardware]


def merge(target: Path, sources: Sequence[Path], axes: Sequence[Axis] = ()) -> MergeOutcome:
    """Merge ``sources`` (stores or bundles) into the store ``target`` (created when absent), all in one
    transaction. Raises :class:`StoreError` with one line, before the target changes, for a source that cannot
    be merged or a target that cannot be written."""
    target = Path(target)
    if not sources:
        raise StoreError("give at least one store or bundle to merge")
    created = not target.exists()
    with ExitStack() as stack:
        opened = [(path, kind, *stack.enter_context(_open_source(path, kind)))
                  for path, kind in _check_sources(sources, target)]
        store = stack.enter_context(ResultStore(target, axes=axes))
        try:
            with store._transaction() as db:
                summaries = [_merge_one(db, source, path, kind, manifest) for path, kind, source, manifest in opened]
        except BaseException:
            if created:  # the merge made the target: nothing of it stays
                store.close()
                for suffix in ("", "-wal", "-shm"):
                    Path(f"{target}{suffix}").unlink(missing_ok=True)
            raise
        store._column_defaults = None  # the merge may have added the columns of a plugin's kinds
        trials = store._db.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
        runs = store._db.execute("SELECT COUNT(*) FROM runs").fetchone()[0]
        machines = _trial_hardware(store._db)
    return MergeOutcome(target, summaries, trials, runs, machines)


def _check_sources(sources: Sequence[Path], target: Path) -> list[tuple[Path, str]]:
    checked = []
    for path in map(Path, sources):
        if not path.is_file():
            raise StoreError(f"cannot merge {path}: {'it is a folder' if path.is_dir() else 'no such file'}; give "
                             "nnbench stores or bundles (`nnbench export --bundle`)")
        if target.exists() and os.path.samefile(path, target):
            raise StoreError(f"cannot merge {path} into itself: it is the --store target")
        kind = file_kind(path)
        if kind is None:
            raise StoreError(f"{path} is neither an nnbench store nor a bundle; give a store (an SQLite file "
                             "written by `nnbench run`) or a bundle written by `nnbench export --bundle`")
        checked.append((path, kind))
    return checked


@contextmanager
def _open_source(path: Path, kind: str) -> Iterator[tuple[ResultStore, dict[str, Any] | None]]:
    """The source's store opened for reading (a bundle's extracted and checked first), with the bundle's manifest."""
    with ExitStack() as stack:
        manifest = None
        store_path = path
        if kind == "bundle":
            bundle = stack.enter_context(open_bundle(path))
            manifest, store_path = bundle.manifest, bundle.store_path
        try:
            store = stack.enter_context(ResultStore(store_path, readonly=True))
        except StoreError as exc:
            raise StoreError(f"cannot merge {path}: {exc}") from None
        known = {m.__name__ for m in MIGRATIONS}
        newer = [name for name in applied(store._db) if name not in known]
        if newer:
            raise StoreError(f"cannot merge {path}: it was written by a newer nnbench (it holds the migration "
                             f"{newer[0]!r}); upgrade nnbench to merge it")
        yield store, manifest


def _merge_one(db: sqlite3.Connection, source: ResultStore, path: Path, kind: str,
               manifest: dict[str, Any] | None) -> SourceSummary:
    """Merge one source inside the target's transaction ``db``."""
    src = source._db
    summary = SourceSummary(path, kind)
    columns = _add_missing_columns(db, src)
    new_runs = _merge_runs(db, src, summary)
    merge_id = _record_merge(db, src, path, kind, manifest, summary)
    for chunk in _chunked(src, f"SELECT {', '.join(columns)} FROM trials ORDER BY rowid", columns):
        ids = [row["trial_id"] for row in chunk]
        marks = ", ".join("?" * len(ids))
        present = {r[0] for r in db.execute(f"SELECT trial_id FROM trials WHERE trial_id IN ({marks})", ids)}
        fresh = [row for row in chunk if row["trial_id"] not in present]
        _insert_trials(db, src, fresh, columns)
        summary.added += len(fresh)
        for row in chunk:
            if row["trial_id"] in present:
                _merge_present(db, src, row, columns, merge_id, summary)
    _merge_copies(db, src, merge_id, summary)
    db.executemany("INSERT OR IGNORE INTO run_trials VALUES (?, ?, ?)",
                   src.execute("SELECT run_id, trial_id, reused FROM run_trials").fetchall())
    raced = "m005_races" in applied(src)  # a store from before racing has no races table
    for run_id in new_runs:
        db.executemany("INSERT INTO skipped VALUES (?, ?, ?)",
                       src.execute("SELECT run_id, combination, reason FROM skipped WHERE run_id = ?", (run_id,)))
        if raced:  # a raced run's account (its rungs and planned epochs) travels with it
            db.executemany("INSERT OR REPLACE INTO races VALUES (?, ?)",
                           src.execute("SELECT run_id, summary FROM races WHERE run_id = ?", (run_id,)))
    db.execute("UPDATE merges SET summary = ? WHERE merge_id = ?", (to_json(_counts(summary), "a merge"), merge_id))
    return summary


def _add_missing_columns(db: sqlite3.Connection, src: sqlite3.Connection) -> list[str]:
    """Give the target's ``trials`` the columns of plugin kinds it lacks (as the source declares them, so its
    rows keep their values and the target's read as the kind's default); return the source's columns."""
    have = {r[1] for r in db.execute("PRAGMA table_info(trials)")}
    columns = []
    for _, name, sql_type, not_null, default, _ in src.execute("PRAGMA table_info(trials)"):
        columns.append(name)
        if name in have:
            continue
        if not name.isidentifier():
            raise StoreError(f"the source's column {name!r} cannot become a column of the target store")
        definition = f"{name} {sql_type}" + (f" NOT NULL DEFAULT {default}" if not_null and default is not None
                                             else f" DEFAULT {default}" if default is not None else "")
        db.execute(f"ALTER TABLE trials ADD COLUMN {definition}")
    return columns


def _merge_runs(db: sqlite3.Connection, src: sqlite3.Connection, summary: SourceSummary) -> list[str]:
    """Add the source's runs the target lacks; a run the target holds unfinished takes the source's end. Return
    the runs added."""
    columns = [r[1] for r in src.execute("PRAGMA table_info(runs)")]
    added = []
    for values in src.execute(f"SELECT {', '.join(columns)} FROM runs ORDER BY started_at, rowid").fetchall():
        run = dict(zip(columns, values, strict=True))
        summary.runs.append(run["run_id"])
        machine = hardware(run["environment"])
        if machine not in summary.hardware:
            summary.hardware.append(machine)
        if run["status"] == "running":
            summary.running.append(run["run_id"])
        held = db.execute("SELECT finished_at FROM runs WHERE run_id = ?", (run["run_id"],)).fetchone()
        if held is None:
            db.execute(f"INSERT INTO runs ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})", values)
            added.append(run["run_id"])
        elif held[0] is None and run["finished_at"] is not None:
            db.execute("UPDATE runs SET status = ?, finished_at = ?, n_trials = ? WHERE run_id = ?",
                       (run["status"], run["finished_at"], run["n_trials"], run["run_id"]))
    return added


def _record_merge(db: sqlite3.Connection, src: sqlite3.Connection, path: Path, kind: str,
                  manifest: dict[str, Any] | None, summary: SourceSummary) -> str:
    merge_id = f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(3)}"
    written_by = manifest.get("nnbench") if manifest else None
    db.execute("INSERT INTO merges VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
               (merge_id, now(), str(path.resolve()), kind, written_by or VERSION,
                to_json(applied(src), "a schema"), to_json(summary.runs, "the runs"), "{}"))
    db.executemany("INSERT OR IGNORE INTO merges VALUES (?, ?, ?, ?, ?, ?, ?, ?)",
                   src.execute("SELECT * FROM merges").fetchall())  # the merges its flagged copies came from
    return merge_id


def _chunked(src: sqlite3.Connection, sql: str, columns: list[str]) -> Iterator[list[dict[str, Any]]]:
    cursor = src.execute(sql)
    while rows := cursor.fetchmany(CHUNK):
        yield [dict(zip(columns, row, strict=True)) for row in rows]


def _epochs(db: sqlite3.Connection, trial_id: str) -> list[dict[str, Any]]:
    rows = db.execute(f"SELECT {', '.join(EPOCH_COLUMNS)} FROM epochs WHERE trial_id = ? ORDER BY epoch",
                      (trial_id,)).fetchall()
    return [dict(zip(EPOCH_COLUMNS, row, strict=True)) for row in rows]


def _insert_trials(db: sqlite3.Connection, src: sqlite3.Connection, rows: list[dict[str, Any]],
                   columns: list[str], replace: bool = False) -> None:
    if not rows:
        return
    verb = "INSERT OR REPLACE" if replace else "INSERT"
    db.executemany(f"{verb} INTO trials ({', '.join(columns)}) VALUES ({', '.join('?' * len(columns))})",
                   [[row[c] for c in columns] for row in rows])
    for row in rows:
        db.execute("DELETE FROM epochs WHERE trial_id = ?", (row["trial_id"],))
        db.executemany(f"INSERT INTO epochs VALUES ({', '.join('?' * len(EPOCH_COLUMNS))})",
                       [[e[c] for c in EPOCH_COLUMNS] for e in _epochs(src, row["trial_id"])])


def numbers_of(row: dict[str, Any], epochs: list[dict[str, Any]]) -> tuple[Any, ...]:
    """What two results of one trial must share to be the same result (see :data:`NUMBERS`)."""
    return (tuple(row.get(c) for c in NUMBERS),
            tuple(tuple(e.get(c) for c in ("epoch", *CURVE_NUMBERS)) for e in epochs))


def copy_id(numbers: tuple[Any, ...]) -> str:
    """A short stable hash of a copy's numbers (two copies with the same numbers are one)."""
    return hashlib.sha256(json.dumps(numbers, default=str).encode()).hexdigest()[:16]


def _differences(kept: tuple[Any, ...], other: tuple[Any, ...]) -> dict[str, Any]:
    found: dict[str, Any] = {name: [a, b] for name, a, b in zip(NUMBERS, kept[0], other[0], strict=True) if a != b}
    ours, theirs = {e[0]: e for e in kept[1]}, {e[0]: e for e in other[1]}
    epochs = sorted(e for e in set(ours) | set(theirs) if ours.get(e) != theirs.get(e))
    if epochs:
        found["epochs"] = epochs
    return found


def _merge_present(db: sqlite3.Connection, src: sqlite3.Connection, row: dict[str, Any], columns: list[str],
                   merge_id: str, summary: SourceSummary) -> None:
    """A trial both sides hold: the same result, a finished one for a failed one, or another result, flagged."""
    trial_id = row["trial_id"]
    held = dict(zip(NUMBERS, db.execute(f"SELECT {', '.join(NUMBERS)} FROM trials WHERE trial_id = ?",
                                        (trial_id,)).fetchone(), strict=True))
    kept, other = numbers_of(held, _epochs(db, trial_id)), numbers_of(row, _epochs(src, trial_id))
    if kept == other:
        summary.same += 1
    elif held["status"] not in FINISHED and row["status"] in FINISHED:
        _insert_trials(db, src, [row], columns, replace=True)
        summary.finished_there += 1
    elif row["status"] not in FINISHED:
        summary.unfinished_there += 1
    else:
        _flag(db, row, _epochs(src, trial_id), kept, other, merge_id, summary)


def _flag(db: sqlite3.Connection, row: dict[str, Any], epochs: list[dict[str, Any]], kept: tuple[Any, ...],
          other: tuple[Any, ...], merge_id: str, summary: SourceSummary) -> None:
    """Keep ``row`` (with ``epochs``) as another copy of a trial the target holds, unless it is kept already."""
    copy = copy_id(other)
    known = db.execute("SELECT 1 FROM trial_conflicts WHERE trial_id = ? AND copy = ?", (row["trial_id"], copy))
    if known.fetchone() is not None:
        summary.flagged_before += 1
        return
    differences = _differences(kept, other)
    db.execute("INSERT INTO trial_conflicts VALUES (?, ?, ?, ?, ?, ?, ?)",
               (row["trial_id"], copy, row["run_id"], merge_id, to_json(row, "a trial"), to_json(epochs, "a curve"),
                to_json(differences, "what differs")))
    summary.conflicts.append(Conflict(row["trial_id"], str(row.get("task")), _label(row), int(row.get("seed") or 0),
                                      row["run_id"], differences))


def _merge_copies(db: sqlite3.Connection, src: sqlite3.Connection, merge_id: str, summary: SourceSummary) -> None:
    """The copies the source kept from its own merges: each is flagged here too, unless it is this store's result."""
    for trial_id, trial, epochs in src.execute("SELECT trial_id, trial, epochs FROM trial_conflicts").fetchall():
        held = db.execute(f"SELECT {', '.join(NUMBERS)} FROM trials WHERE trial_id = ?", (trial_id,)).fetchone()
        if held is None:
            continue
        row, curve = json.loads(trial), json.loads(epochs)
        kept = numbers_of(dict(zip(NUMBERS, held, strict=True)), _epochs(db, trial_id))
        other = numbers_of(row, curve)
        if kept != other:
            _flag(db, row, curve, kept, other, merge_id, summary)


def _label(row: dict[str, Any]) -> str:
    return short_label(row, TRIAL_AXES)


def _counts(summary: SourceSummary) -> dict[str, Any]:
    return {"added": summary.added, "same": summary.same, "finished_there": summary.finished_there,
            "unfinished_there": summary.unfinished_there, "conflicts": [c.trial_id for c in summary.conflicts],
            "hardware": [h.to_dict() for h in summary.hardware], "running": summary.running}


def _trial_hardware(db: sqlite3.Connection) -> list[Hardware]:
    """The machines that trained the trials of the store ``db``."""
    machines: list[Hardware] = []
    for (environment,) in db.execute("SELECT environment FROM runs WHERE run_id IN (SELECT run_id FROM trials)"):
        machine = hardware(environment)
        if machine not in machines:
            machines.append(machine)
    return machines
