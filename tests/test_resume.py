"""Killing a run with SIGKILL loses at most the unit in flight; the main file alone holds what was
committed; the killed run reads as interrupted; the same command then trains only what is missing."""

from __future__ import annotations

import shutil
import signal
import sqlite3
import subprocess
import sys
import time
from collections import Counter
from pathlib import Path

from training_events import completions, event_env, settled_events

from nnbench.storage.store import ResultStore

EPOCHS = 12
COMMAND = [sys.executable, "-m", "nnbench", "run", "--task", "moons,spirals", "--arch", "fnn",
           "--activation", "relu,tanh,gelu", "--optimizer", "sgd,adam", "--seeds", "2", "--epochs", str(EPOCHS),
           "--batch-size", "16", "--workers", "2", "--quiet", "--no-report"]
WORKERS = 2
# The largest unit a worker trains at once: the activations and seeds of one task and optimizer stack together.
UNIT = 3 * 2
TOTAL = 2 * 3 * 2 * 2


def stored(db: Path) -> set[str]:
    if not db.exists():
        return set()
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return {r[0] for r in conn.execute("SELECT trial_id FROM trials")}
    except sqlite3.OperationalError:  # the schema is not there yet
        return set()


def test_sigkill_halfway_then_resume_trains_each_finished_trial_once(tmp_path: Path) -> None:
    env = event_env(tmp_path)
    db = tmp_path / "nnbench.db"
    process = subprocess.Popen(COMMAND, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while len(stored(db)) < TOTAL // 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    first = stored(db)
    assert 0 < len(first) < TOTAL, f"the kill should land halfway, {len(first)} of {TOTAL} were stored"
    # What the killed run trained but did not store: at most the one unit each worker held. Its workers
    # finish that unit or notice their parent is gone, then exit: wait until they have stopped writing.
    unstored = Counter(pid for pid, trial, epoch in settled_events(tmp_path) if epoch == EPOCHS and trial not in first)
    assert len(unstored) <= WORKERS and all(count <= UNIT for count in unstored.values()), unstored

    # Copying the main file alone (what users do) keeps every committed trial: each commit is
    # checkpointed at once, so at most the commit the kill interrupted is missing from it.
    alone = tmp_path / "copy" / "nnbench.db"
    alone.parent.mkdir()
    shutil.copyfile(db, alone)
    assert len(stored(alone)) >= len(first) - 1
    with ResultStore(db, readonly=True) as store:
        assert list(store.runs()["status"]) == ["interrupted"]  # its process is gone, though never marked

    again = subprocess.run(COMMAND, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{TOTAL} trials: {TOTAL - len(first)} to train, {len(first)} already stored" in again.stdout
    trained = completions(tmp_path, EPOCHS)
    assert set(trained) == stored(db) and len(trained) == TOTAL
    assert all(trained[t] == 1 for t in first), "a trial stored before the kill was trained again"
    # trained again: only the units in flight, one per worker
    assert sum(count - 1 for count in trained.values()) <= WORKERS * UNIT
    with sqlite3.connect(db) as conn:
        epochs = conn.execute("SELECT trial_id, COUNT(*) FROM epochs GROUP BY trial_id").fetchall()
        statuses = [r[0] for r in conn.execute("SELECT status FROM runs ORDER BY started_at")]
    assert len(epochs) == TOTAL and all(count == EPOCHS for _, count in epochs)  # no half-written curves
    assert statuses == ["interrupted", "finished"]  # opening the store marked the killed run
