"""A plugin, installed for subprocesses only, that records every trained epoch: proof of what was trained.

``event_env(folder)`` writes a distribution with an ``nnbench`` entry point into ``folder`` and returns
the environment that makes ``nnbench`` (and its worker processes) load it; every epoch any process
trains is appended to ``folder / "events.txt"`` as ``PID TRIAL_ID EPOCH``. Counting these lines
checks "trained once" by what was trained, which a count of stored rows per primary key never can.
"""

from __future__ import annotations

import os
import time
from collections import Counter
from pathlib import Path

PLUGIN = '''
import os

import nnbench


@nnbench.hookimpl
def after_epoch(trial, record):
    line = f"{os.getpid()} {trial.trial_id} {record.epoch}\\n".encode()
    fd = os.open(os.environ["NNBENCH_TEST_EVENTS"], os.O_WRONLY | os.O_APPEND | os.O_CREAT)
    try:
        os.write(fd, line)  # one write of a short line in append mode: never interleaved
    finally:
        os.close(fd)
'''


def event_env(folder: Path, **extra: str) -> dict[str, str]:
    """The environment of a subprocess that records its training events in ``folder / events.txt``."""
    site = folder / "event-plugin"
    info = site / "nnbench_training_events-1.0.dist-info"
    info.mkdir(parents=True, exist_ok=True)
    (site / "nnbench_training_events.py").write_text(PLUGIN)
    (info / "METADATA").write_text("Metadata-Version: 2.1\nName: nnbench-training-events\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text("[nnbench]\ntraining_events = nnbench_training_events\n")
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    return {**os.environ, "PYTHONPATH": path, "NNBENCH_PLUGINS": "training_events",
            "NNBENCH_TEST_EVENTS": str(folder / "events.txt"), **extra}


def events(folder: Path) -> list[tuple[int, str, int]]:
    """Every recorded ``(pid, trial_id, epoch)``, in the order they happened."""
    path = folder / "events.txt"
    if not path.exists():
        return []
    return [(int(p), t, int(e)) for p, t, e in (line.split() for line in path.read_text().splitlines())]


def settled_events(folder: Path, quiet: float = 1.5, limit: float = 15.0) -> list[tuple[int, str, int]]:
    """The recorded events once no process has added one for ``quiet`` seconds (or after ``limit``
    seconds): what processes that outlive their parent for a while finish writing."""
    path = folder / "events.txt"
    deadline, size = time.monotonic() + limit, -1
    while time.monotonic() < deadline and size != (size := path.stat().st_size if path.exists() else 0):
        time.sleep(quiet)
    return events(folder)


def completions(folder: Path, epochs: int) -> Counter[str]:
    """How many times each trial was trained through its last epoch."""
    return Counter(trial for _, trial, epoch in events(folder) if epoch == epochs)
