"""Result bundles: chosen runs of a store in one file that describes itself, to carry to another machine and merge.

A bundle is a zip archive of two members: ``manifest.json`` (what the bundle holds: its format, the nnbench
release and the store schema, as the list of applied migrations, that wrote it; each run with its environment
and hardware; the code identities of its components; counts; the checksum of the data) and ``results.db``, a
store holding the chosen runs, every trial they cover with its curve, and the runs that trained the trials they
reused (with those trials only). Reading one checks all of that before anything is merged: a truncated or
damaged bundle, or one from a newer nnbench or schema, is one line saying so.
"""

from __future__ import annotations

import hashlib
import json
import os
import shutil
import sqlite3
import tempfile
import zipfile
from collections.abc import Iterator, Sequence
from contextlib import closing, contextmanager
from dataclasses import dataclass
from datetime import UTC, datetime
from pathlib import Path
from typing import Any

from nnbench.contract.release import VERSION
from nnbench.storage.migrations import MIGRATIONS, applied
from nnbench.storage.provenance import hardware
from nnbench.storage.store import ResultStore, StoreError

FORMAT = "nnbench-bundle"
FORMAT_VERSION = 1
"""The layout of the archive; a reader refuses a bundle of a later layout."""
MANIFEST = "manifest.json"
DATA = "results.db"
SQLITE_MAGIC = b"SQLite format 3\x00"
ZIP_MAGIC = b"PK\x03\x04"


def file_kind(path: Path) -> str | None:
    """``store`` for an SQLite file, ``bundle`` for a zip archive, ``None`` for anything else (by its first
    bytes: the name says nothing)."""
    try:
        with path.open("rb") as file:
            head = file.read(len(SQLITE_MAGIC))
    except OSError:
        return None
    if head.startswith(SQLITE_MAGIC):
        return "store"
    return "bundle" if head.startswith(ZIP_MAGIC) else None


@dataclass(frozen=True)
class Bundle:
    """A bundle that passed every check: its manifest and its store, extracted to ``store_path``."""

    path: Path
    manifest: dict[str, Any]
    store_path: Path


def write_bundle(store: ResultStore, run_ids: Sequence[str], path: Path) -> dict[str, Any]:
    """Write the runs ``run_ids`` of ``store`` to the bundle ``path`` (replacing it only once it is whole) and
    return its manifest."""
    path = Path(path)
    if path.is_dir():
        raise StoreError(f"cannot write the bundle to {path}: it is a folder; give a file name such as "
                         f"{path / 'results.zip'}")
    if not path.parent.is_dir():
        raise StoreError(f"cannot write the bundle {path}: folder {path.parent} does not exist")
    with tempfile.TemporaryDirectory(prefix="nnbench-bundle-") as scratch:
        data = Path(scratch) / DATA
        with closing(sqlite3.connect(data, isolation_level=None)) as copy:
            store._db.backup(copy)  # the store as it reads, migrated where it is from an earlier release
            chosen = _keep_only(copy, run_ids)
            manifest = _manifest(copy, chosen, store.path)
            copy.execute("VACUUM")
        manifest["data"] = {"file": DATA, "bytes": data.stat().st_size, "sha256": _sha256(data)}
        partial = path.with_name(path.name + ".partial")
        try:
            with zipfile.ZipFile(partial, "w", compression=zipfile.ZIP_DEFLATED) as archive:
                archive.writestr(MANIFEST, json.dumps(manifest, indent=2, sort_keys=True))
                archive.write(data, DATA)
            os.replace(partial, path)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            raise StoreError(f"cannot write the bundle {path}: {exc.strerror or exc}") from None
    return manifest


def _keep_only(db: sqlite3.Connection, run_ids: Sequence[str]) -> list[str]:
    """Delete from the copy ``db`` everything but the runs ``run_ids``, the trials they cover, and the runs that
    trained those trials (with those trials only); return the chosen runs."""
    db.execute("CREATE TEMP TABLE chosen (run_id TEXT PRIMARY KEY)")
    db.executemany("INSERT OR IGNORE INTO chosen VALUES (?)", [(r,) for r in run_ids])
    db.execute("CREATE TEMP TABLE kept_trials AS SELECT DISTINCT trial_id FROM run_trials WHERE run_id IN "
               "(SELECT run_id FROM chosen)")
    db.execute("CREATE TEMP TABLE kept_runs AS SELECT run_id FROM chosen UNION SELECT run_id FROM trials WHERE "
               "trial_id IN (SELECT trial_id FROM kept_trials) UNION SELECT run_id FROM trial_conflicts WHERE "
               "trial_id IN (SELECT trial_id FROM kept_trials)")
    db.execute("BEGIN")
    for statement in (
        "DELETE FROM run_trials WHERE trial_id NOT IN (SELECT trial_id FROM kept_trials) OR run_id NOT IN "
        "(SELECT run_id FROM kept_runs)",
        "DELETE FROM epochs WHERE trial_id NOT IN (SELECT trial_id FROM kept_trials)",
        "DELETE FROM trial_conflicts WHERE trial_id NOT IN (SELECT trial_id FROM kept_trials)",
        "DELETE FROM trials WHERE trial_id NOT IN (SELECT trial_id FROM kept_trials)",
        "DELETE FROM skipped WHERE run_id NOT IN (SELECT run_id FROM chosen)",
        "DELETE FROM runs WHERE run_id NOT IN (SELECT run_id FROM kept_runs)",
        "DELETE FROM merges WHERE merge_id NOT IN (SELECT merge_id FROM trial_conflicts)",
        "DELETE FROM micro",  # timings of components on the machine that measured them: they stay there
        "DELETE FROM claims",
    ):
        db.execute(statement)
    db.execute("COMMIT")
    return list(dict.fromkeys(run_ids))


def _manifest(db: sqlite3.Connection, chosen: list[str], source: Path) -> dict[str, Any]:
    runs = []
    for run_id, status, started, finished, environment in db.execute(
            "SELECT run_id, status, started_at, finished_at, environment FROM runs ORDER BY started_at, rowid"):
        env = json.loads(environment) if environment else {}
        count = db.execute("SELECT COUNT(*) FROM run_trials WHERE run_id = ?", (run_id,)).fetchone()[0]
        runs.append({"run_id": run_id, "chosen": run_id in chosen, "status": status, "started_at": started,
                     "finished_at": finished, "trials": count, "hardware": hardware(env).to_dict(),
                     "environment": {k: env.get(k) for k in ("nnbench", "torch", "python", "platform", "git_commit")}})
    code: dict[str, set[str]] = {}
    for (params,) in db.execute("SELECT params FROM trials"):
        try:
            versions = json.loads(params or "{}").get("code") or {}
        except (ValueError, AttributeError):
            continue
        for axis, version in versions.items():
            code.setdefault(axis, set()).add(str(version))
    count = {table: db.execute(f"SELECT COUNT(*) FROM {table}").fetchone()[0]
             for table in ("runs", "trials", "epochs", "run_trials", "skipped", "trial_conflicts")}
    return {"format": FORMAT, "format_version": FORMAT_VERSION, "nnbench": VERSION,
            "created_at": datetime.now(UTC).isoformat(timespec="seconds"), "source": str(source),
            "schema": applied(db), "runs": runs, "counts": count,
            "code": {axis: sorted(versions) for axis, versions in sorted(code.items())},
            "merge": "nnbench merge BUNDLE --store TARGET merges it into a store"}


@contextmanager
def open_bundle(path: Path) -> Iterator[Bundle]:
    """Check the bundle ``path`` and extract its store to a temporary folder, removed on leaving; raise
    :class:`StoreError` with one line saying what is wrong (not a bundle, truncated or damaged, from a newer
    nnbench or store schema)."""
    path = Path(path)
    scratch = Path(tempfile.mkdtemp(prefix="nnbench-merge-"))
    try:
        manifest = _read_manifest(path)
        store_path = scratch / DATA
        try:
            with zipfile.ZipFile(path) as archive, archive.open(DATA) as member, store_path.open("wb") as out:
                shutil.copyfileobj(member, out)
        except (zipfile.BadZipFile, KeyError, OSError, EOFError) as exc:
            raise StoreError(f"bundle {path} is truncated or damaged ({exc}); write it again with "
                             "`nnbench export --bundle`") from None
        data = manifest.get("data") or {}
        if store_path.stat().st_size != data.get("bytes") or _sha256(store_path) != data.get("sha256"):
            raise StoreError(f"bundle {path} is damaged: its results do not match the checksum its manifest "
                             "records; write it again with `nnbench export --bundle`")
        yield Bundle(path, manifest, store_path)
    finally:
        shutil.rmtree(scratch, ignore_errors=True)


def _read_manifest(path: Path) -> dict[str, Any]:
    try:
        with zipfile.ZipFile(path) as archive:
            names = archive.namelist()
            if MANIFEST not in names or DATA not in names:
                raise StoreError(f"{path} is a zip archive but not an nnbench bundle (it lacks {MANIFEST} or "
                                 f"{DATA}); give a bundle written by `nnbench export --bundle` or a store")
            manifest = json.loads(archive.read(MANIFEST))
    except (zipfile.BadZipFile, EOFError, OSError) as exc:
        raise StoreError(f"bundle {path} is truncated or damaged ({exc}); write it again with "
                         "`nnbench export --bundle`") from None
    except ValueError:
        raise StoreError(f"bundle {path} has a manifest that is not JSON, so it is damaged; write it again with "
                         "`nnbench export --bundle`") from None
    if not isinstance(manifest, dict) or manifest.get("format") != FORMAT:
        raise StoreError(f"{path} is a zip archive but not an nnbench bundle; give a bundle written by "
                         "`nnbench export --bundle` or a store")
    written_by = str(manifest.get("nnbench", "?"))
    if not isinstance(manifest.get("format_version"), int) or manifest["format_version"] > FORMAT_VERSION:
        raise StoreError(f"bundle {path} was written by nnbench {written_by} in bundle format "
                         f"{manifest.get('format_version')!r}, newer than this nnbench {VERSION} reads "
                         f"({FORMAT_VERSION}); upgrade nnbench to merge it")
    if _release(written_by) > _release(VERSION):
        raise StoreError(f"bundle {path} was written by nnbench {written_by}, newer than this nnbench {VERSION}; "
                         "upgrade nnbench to merge it")
    known = {m.__name__ for m in MIGRATIONS}
    unknown = [name for name in manifest.get("schema") or [] if name not in known]
    if unknown:
        raise StoreError(f"bundle {path} holds a store of a newer schema (migration {unknown[0]!r}, which this "
                         f"nnbench {VERSION} does not know); upgrade nnbench to merge it")
    return manifest


def _release(version: str) -> tuple[int, ...]:
    """The release numbers of a version (``0.1.0rc1`` -> ``(0, 1, 0)``); what cannot be read counts as newest."""
    from packaging.version import InvalidVersion, Version

    try:
        return Version(version).release
    except InvalidVersion:
        return (10**9,)


def _sha256(path: Path) -> str:
    digest = hashlib.sha256()
    with path.open("rb") as file:
        for block in iter(lambda: file.read(1 << 20), b""):
            digest.update(block)
    return digest.hexdigest()
