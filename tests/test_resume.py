"""Killing a run with SIGKILL loses at most the trial in flight; the same command then finishes the grid."""

from __future__ import annotations

import os
import signal
import sqlite3
import subprocess
import sys
import time
from pathlib import Path

COMMAND = [sys.executable, "-m", "nnbench", "run", "--task", "moons,spirals", "--arch", "fnn",
           "--activation", "relu,tanh,gelu", "--optimizer", "sgd,adam", "--seeds", "2", "--epochs", "15",
           "--batch-size", "16", "--quiet"]
TOTAL = 2 * 3 * 2 * 2


def stored(db: Path) -> int:
    if not db.exists():
        return 0
    try:
        with sqlite3.connect(db, timeout=5) as conn:
            return conn.execute("SELECT COUNT(*) FROM trials").fetchone()[0]
    except sqlite3.OperationalError:  # the schema is not there yet
        return 0


def test_sigkill_halfway_then_resume_stores_every_trial_exactly_once(tmp_path: Path) -> None:
    env = {**os.environ, "NNBENCH_PLUGINS": "none"}
    db = tmp_path / "nnbench.db"
    process = subprocess.Popen(COMMAND, cwd=tmp_path, env=env, stdout=subprocess.DEVNULL, stderr=subprocess.PIPE)
    deadline = time.monotonic() + 120
    while stored(db) < TOTAL // 3 and time.monotonic() < deadline and process.poll() is None:
        time.sleep(0.05)
    process.send_signal(signal.SIGKILL)
    process.wait()
    killed_at = stored(db)
    assert 0 < killed_at < TOTAL, f"the kill should land halfway, {killed_at} of {TOTAL} were stored"

    again = subprocess.run(COMMAND, cwd=tmp_path, env=env, capture_output=True, text=True, timeout=300)
    assert again.returncode == 0, again.stderr
    assert f"{TOTAL} trials: {TOTAL - killed_at} to train, {killed_at} already stored" in again.stdout
    with sqlite3.connect(db) as conn:
        rows = conn.execute("SELECT trial_id, COUNT(*) FROM trials GROUP BY trial_id").fetchall()
        epochs = conn.execute("SELECT trial_id, COUNT(*) FROM epochs GROUP BY trial_id").fetchall()
        statuses = {r[0] for r in conn.execute("SELECT status FROM runs")}
    assert len(rows) == TOTAL and all(count == 1 for _, count in rows)
    assert len(epochs) == TOTAL and all(count == 15 for _, count in epochs)  # no half-written curves
    assert statuses == {"died", "finished"}  # the next run marks the killed one as having died
