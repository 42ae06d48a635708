"""A full disk, a read-only store, a store deleted mid-run: one clear line, a non-zero exit, nothing
stored lost, the run marked."""

from __future__ import annotations

import os
import sqlite3
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nnbench import hookimpl
from nnbench.cli import cli
from nnbench.storage.store import ResultStore

SMALL = ["--task", "moons", "--arch", "fnn", "--activation", "relu,tanh", "--optimizer", "adam", "--seeds", "2",
         "--epochs", "2", "--quiet", "--no-report"]
MORE = ["--task", "moons,circles,spirals", "--arch", "fnn", "--activation", "relu,tanh,gelu,elu", "--optimizer",
        "adam,sgd", "--seeds", "2", "--epochs", "30", "--quiet", "--no-report", "--no-vectorize"]


@pytest.fixture
def runner(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> CliRunner:
    monkeypatch.chdir(tmp_path)
    return CliRunner()


def rows(path: Path) -> tuple[set[str], list[str]]:
    with sqlite3.connect(path) as db:
        return ({r[0] for r in db.execute("SELECT trial_id FROM trials")},
                [r[0] for r in db.execute("SELECT status FROM runs ORDER BY started_at")])


def one_line_error(output: str) -> str:
    lines = [line for line in output.splitlines() if line.startswith("Error:")]
    assert len(lines) == 1 and "Traceback" not in output, output
    return lines[0]


def test_a_full_disk_stops_the_run_with_one_line_and_keeps_every_stored_trial(
        runner: CliRunner, tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    assert runner.invoke(cli, ["run", *SMALL], catch_exceptions=False).exit_code == 0
    before, _ = rows(tmp_path / "nnbench.db")
    pages = sqlite3.connect(tmp_path / "nnbench.db").execute("PRAGMA page_count").fetchone()[0]
    connect = ResultStore._connect

    def nearly_full(self: ResultStore) -> sqlite3.Connection:
        db = connect(self)
        db.execute(f"PRAGMA max_page_count = {pages + 6}")  # the disk takes a few more pages, then no more
        return db

    monkeypatch.setattr(ResultStore, "_connect", nearly_full)
    result = runner.invoke(cli, ["run", *MORE], catch_exceptions=False)
    assert result.exit_code == 1
    line = one_line_error(result.output)
    assert "database or disk is full" in line and "run the same command to resume" in line
    after, statuses = rows(tmp_path / "nnbench.db")
    assert before < after  # what fitted is stored, what was stored before is still there
    assert statuses == ["finished", "failed"]  # as the README says: a full disk ends the run failed
    monkeypatch.setattr(ResultStore, "_connect", connect)
    again = runner.invoke(cli, ["run", *MORE], catch_exceptions=False)
    assert again.exit_code == 0 and f"{len(after) - len(before)} already stored" in again.output


class DeletesTheStore:
    """Deletes the store (and its log) after the first trial is stored."""

    def __init__(self, path: Path) -> None:
        self.path, self.done = path, False

    @hookimpl
    def after_trial(self, trial: Any, result: Any) -> None:
        if not self.done:
            self.done = True
            for suffix in ("", "-wal", "-shm"):
                Path(f"{self.path}{suffix}").unlink(missing_ok=True)


def test_a_store_deleted_mid_run_is_written_back_and_the_run_stops(
        runner: CliRunner, tmp_path: Path, nnbench_plugin: Any) -> None:
    assert runner.invoke(cli, ["run", *SMALL], catch_exceptions=False).exit_code == 0
    before, _ = rows(tmp_path / "nnbench.db")
    nnbench_plugin(DeletesTheStore(tmp_path / "nnbench.db"))
    result = runner.invoke(cli, ["run", *MORE], catch_exceptions=False)
    assert result.exit_code == 1
    assert "deleted or replaced while this run wrote it" in one_line_error(result.output)
    after, statuses = rows(tmp_path / "nnbench.db")
    assert before < after and statuses == ["finished", "failed"]


def make_unwritable(path: Path, unwritable: bool) -> None:
    """Make ``path`` (a file or folder) unwritable for this process, or writable again: without
    write permission, or immutable when running as root (root writes any file it may not)."""
    if os.geteuid() == 0:
        subprocess.run(["chattr", "+i" if unwritable else "-i", str(path)], check=True)
    else:
        path.chmod((0o555 if path.is_dir() else 0o444) if unwritable else 0o755)


@pytest.fixture
def read_only_store(tmp_path: Path, store_writer: Any, trial_result: Any) -> Iterator[Path]:
    """A store in a folder, neither of which this process can write."""
    folder = tmp_path / "readonly"
    folder.mkdir()
    store_writer(folder / "nnbench.db", [trial_result(seed=s) for s in range(2)]).close()
    for path in (folder / "nnbench.db", folder):
        make_unwritable(path, True)
    try:
        yield folder / "nnbench.db"
    finally:
        for path in (folder, folder / "nnbench.db"):
            make_unwritable(path, False)


def test_a_read_only_store_is_one_clear_line_and_stays_as_it_was(runner: CliRunner, read_only_store: Path) -> None:
    before = read_only_store.read_bytes()
    result = runner.invoke(cli, ["run", *SMALL, "--store", str(read_only_store)], catch_exceptions=False)
    assert result.exit_code == 1
    line = one_line_error(result.output)
    assert "it is read-only (" in line and "make the file and its folder writable, or give another --store" in line
    export = runner.invoke(cli, ["export", "--store", str(read_only_store), "-o", "rows.csv"], catch_exceptions=False)
    assert export.exit_code == 0 and "wrote 2 rows" in export.output
    assert read_only_store.read_bytes() == before


DISK_SCRIPT = """
set -u
mount -t tmpfs -o size=1300k nnbench-test "$DISK" || exit 97
cd "$DISK"
status=0
"$PYTHON" -m nnbench run "$@" > "$OUT/stdout" 2> "$OUT/stderr" || status=$?
cp -a "$DISK"/. "$OUT/disk/"
exit $status
"""


def test_a_disk_that_fills_up_for_real_ends_the_run_failed_with_its_claims_released(tmp_path: Path) -> None:
    """A small file system of its own (in a mount namespace of the test's own): when SQLite cannot write a page
    more, the space the run set aside lets it store that it failed."""
    disk, out = tmp_path / "disk", tmp_path / "out"
    disk.mkdir()
    (out / "disk").mkdir(parents=True)
    env = {**os.environ, "DISK": str(disk), "OUT": str(out), "PYTHON": sys.executable, "NNBENCH_PLUGINS": "none"}
    try:
        done = subprocess.run(["unshare", "--user", "--map-root-user", "--mount", "sh", "-c", DISK_SCRIPT, "sh",
                               *MORE], env=env, capture_output=True, text=True, timeout=300)
    except FileNotFoundError:
        pytest.skip("no unshare here to make a small file system of the test's own")
    if done.returncode == 97 or "unshare failed" in done.stderr:
        pytest.skip(f"this system lets no test mount a small file system of its own: {done.stderr.strip()}")
    stderr = (out / "stderr").read_text()
    assert done.returncode == 1, stderr
    line = one_line_error(stderr)
    assert line == ("Error: cannot write to store nnbench.db: database or disk is full; nothing stored before was "
                    "changed; free some space (or give another --store), then run the same command to resume")
    # the store closed whole: no log, and no space set aside left behind
    assert sorted(p.name for p in (out / "disk").iterdir() if p.name.startswith("nnbench.db")) == ["nnbench.db"]
    kept, statuses = rows(out / "disk" / "nnbench.db")
    assert statuses == ["failed"] and len(kept) >= 1
    with sqlite3.connect(out / "disk" / "nnbench.db") as db:
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)
    # On a disk with room, the same command goes on from there.
    resumed = subprocess.run([sys.executable, "-m", "nnbench", "run", *MORE, "--dry-run"], cwd=out / "disk",
                             env=env, capture_output=True, text=True, timeout=120)
    assert resumed.returncode == 0, resumed.stderr
    assert f"48 trials: {48 - len(kept)} to train, {len(kept)} already stored" in resumed.stdout
