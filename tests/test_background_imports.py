"""While workers train, the parent imports what its summary and report need, at the lowest priority,
and never while trials train in the parent itself."""

from __future__ import annotations

import os
import subprocess
import sys
import textwrap
import threading
from collections.abc import Iterator
from pathlib import Path
from typing import Any

import pytest

from nnbench.progress import SUMMARY_MODULES, ConsoleProgress, import_in_background
from nnbench.session import RunObserver, RunOptions, Session

linux_only = pytest.mark.skipif(sys.platform != "linux", reason="a thread's own priority is set on Linux only")


@pytest.fixture
def modules(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Iterator[Path]:
    """A folder on the import path for modules made by the test (forgotten again afterwards)."""
    monkeypatch.syspath_prepend(str(tmp_path))
    before = set(sys.modules)
    yield tmp_path
    for name in set(sys.modules) - before:
        del sys.modules[name]


@linux_only
def test_modules_are_imported_by_a_thread_of_the_lowest_priority(modules: Path) -> None:
    (modules / "probe_priority.py").write_text(textwrap.dedent("""
        import os, threading
        NICE = os.getpriority(os.PRIO_PROCESS, threading.get_native_id())
        THREAD = threading.current_thread().name
    """))
    (modules / "probe_broken.py").write_text("raise ImportError('this module never imports')\n")
    (modules / "probe_after.py").write_text("VALUE = 1\n")
    thread = import_in_background(["probe_broken", "probe_priority", "probe_after"])
    assert thread is not None
    thread.join(timeout=30)
    assert not thread.is_alive()
    priority = sys.modules["probe_priority"]
    assert priority.NICE == 19 and thread.name == priority.THREAD
    assert "probe_broken" not in sys.modules and sys.modules["probe_after"].VALUE == 1  # one failure stops nothing
    assert os.getpriority(os.PRIO_PROCESS, threading.get_native_id()) < 19  # the calling thread keeps its own


def test_outside_linux_nothing_is_imported_early(modules: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    (modules / "probe_elsewhere.py").write_text("VALUE = 1\n")
    monkeypatch.setattr(sys, "platform", "darwin")
    assert import_in_background(["probe_elsewhere"]) is None
    assert "probe_elsewhere" not in sys.modules


class Locations(RunObserver):
    def __init__(self) -> None:
        self.seen: list[Any] = []

    def training_location(self, in_process: bool) -> None:
        self.seen.append(in_process)

    def started(self, trials: list[Any]) -> None:
        self.seen.append("started")


@pytest.mark.parametrize(("workers", "expected"), [(1, [True, "started", "started"]),
                                                   (2, [False, "started", "started"])])
def test_the_observer_hears_where_trials_train_before_they_start(tmp_path: Path, workers: int,
                                                                 expected: list[Any]) -> None:
    session = Session()
    grid = session.grid(task="moons", arch="fnn", activation="relu", optimizer="adam", seeds=2, epochs=1)
    observer = Locations()
    session.run(grid, tmp_path / "where.db", RunOptions(workers=workers, vectorize=False), observer=observer)
    assert observer.seen == expected


class Joined:
    def __init__(self) -> None:
        self.joined = 0

    def join(self) -> None:
        self.joined += 1


def console(summary: bool = True) -> ConsoleProgress:
    return ConsoleProgress(Session().domain, None, lambda *a, **k: None, bar=False, plan=False, summary=summary)


@linux_only
def test_the_console_imports_while_workers_train_and_finishes_before_training_here(
        monkeypatch: pytest.MonkeyPatch) -> None:
    started: list[tuple[str, ...]] = []
    pending = Joined()

    def fake_start(names: tuple[str, ...]) -> Joined:
        started.append(names)
        return pending

    monkeypatch.setattr("nnbench.progress.import_in_background", fake_start)
    progress = console()
    progress.training_location(False)
    progress.training_location(False)  # a second executor elsewhere: the imports started once
    assert started == [SUMMARY_MODULES] and pending.joined == 0
    progress.training_location(True)  # trials train here next: no thread may compete with them
    assert pending.joined == 1
    quiet = console(summary=False)  # no summary, nothing to import for
    quiet.training_location(False)
    assert started == [SUMMARY_MODULES]


def test_the_summary_modules_leave_nothing_for_the_summary_and_report_to_import() -> None:
    probe = textwrap.dedent("""
        import importlib, pkgutil, sys
        import nnbench.analysis, nnbench.reporting
        from nnbench.progress import SUMMARY_MODULES
        for name in SUMMARY_MODULES:
            importlib.import_module(name)
        before = {name.partition(".")[0] for name in sys.modules}
        for package in (nnbench.analysis, nnbench.reporting):
            for module in pkgutil.walk_packages(package.__path__, package.__name__ + "."):
                importlib.import_module(module.name)
        print(sorted({name.partition(".")[0] for name in sys.modules} - before))
    """)
    out = subprocess.run([sys.executable, "-c", probe], capture_output=True, text=True, check=True).stdout
    assert out == "[]\n"  # no library is left to import after the last trial
