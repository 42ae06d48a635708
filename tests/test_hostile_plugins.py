"""Plugins that end the process or never return: named, skipped or stopped, never a silent success.

Each plugin is installed for real (a module and its distribution's entry point on the import path of a
``nnbench`` process started here), because ``os._exit`` ends whatever process it runs in."""

from __future__ import annotations

import os
import posix
import sqlite3
import subprocess
import sys
from pathlib import Path
from typing import Any

import pytest
from click.testing import CliRunner

from nnbench import hookimpl
from nnbench.cli import cli
from nnbench.loading import plugins
from nnbench.loading.exits import PluginExit, exits_guarded
from nnbench.loading.plugins import PluginLoadWarning, make_plugin_manager

GRID = ["--task", "moons", "--arch", "fnn", "--activation", "relu", "--optimizer", "adam", "--seeds", "2",
        "--epochs", "2", "--no-report"]
GOOD = """
from torch import nn
from nnbench import Activation, hookimpl

@hookimpl
def register_activations(register):
    register(Activation("good_act", nn.Tanh, "from a plugin that behaves"))
"""
EXITS = "import os\nos._exit(0)\n"
SLEEPS = "import time\ntime.sleep(10 ** 6)\n"
SPINS = "while True:\n    pass\n"


def install(site: Path, name: str, source: str) -> None:
    """Install module ``name`` with ``source`` as the ``nnbench`` entry point of distribution ``name``."""
    info = site / f"{name}-1.0.dist-info"
    info.mkdir(parents=True)
    (site / f"{name}.py").write_text(source)
    (info / "METADATA").write_text(f"Metadata-Version: 2.1\nName: {name}\nVersion: 1.0\n")
    (info / "entry_points.txt").write_text(f"[nnbench]\n{name} = {name}\n")


def nnbench(folder: Path, site: Path, *args: str, plugins: str = "all", timeout: float = 120,
            **env: str) -> subprocess.CompletedProcess[str]:
    """``nnbench ARGS`` in a process of its own, with the plugins installed in ``site``."""
    path = os.pathsep.join(p for p in (str(site), os.environ.get("PYTHONPATH", "")) if p)
    environment = {**os.environ, "PYTHONPATH": path, "NNBENCH_PLUGINS": plugins, "NNBENCH_PLUGIN_TIMEOUT": "3",
                   **env}
    return subprocess.run([sys.executable, "-m", "nnbench", *args], cwd=folder, env=environment,
                          capture_output=True, text=True, timeout=timeout)


@pytest.fixture
def no_real_exit(monkeypatch: pytest.MonkeyPatch) -> None:
    """``os._exit`` in this (the test's) process raises instead of ending it, should the guard fail: a test
    process ended with status 0 would pass unseen."""

    def would_end(status: int) -> None:
        raise AssertionError(f"os._exit({status}) would have ended the process")

    from nnbench.loading import exits

    for module in (os, posix):
        monkeypatch.setattr(module, "_exit", would_end)
    monkeypatch.setattr(exits, "_exit_process", would_end)


def warnings_of(stderr: str) -> list[str]:
    return [line for line in stderr.splitlines() if line.startswith("warning: plugin")]


def test_plugins_that_exit_or_hang_at_import_are_named_and_skipped_and_remembered(tmp_path: Path) -> None:
    site = tmp_path / "site"
    for name, source in (("exits_at_import", EXITS), ("sleeps_at_import", SLEEPS), ("spins_at_import", SPINS),
                         ("good_plugin", GOOD)):
        install(site, name, source)
    plugins_and = "exits_at_import,sleeps_at_import,spins_at_import,good_plugin"
    first = nnbench(tmp_path, site, "list", "activations", plugins=plugins_and)
    assert first.returncode == 0, first.stderr
    assert "good_act" in first.stdout and "relu" in first.stdout  # the rest of the command did its work
    named = sorted(warnings_of(first.stderr))
    assert len(named) == 3, first.stderr
    assert named[0] == ("warning: plugin 'exits_at_import' (distribution exits_at_import 1.0, entry point "
                        "exits_at_import) was skipped: its import ended the process (exit status 0)")
    for line, name in zip(named[1:], ("sleeps_at_import", "spins_at_import"), strict=True):
        assert line == (f"warning: plugin '{name}' (distribution {name} 1.0, entry point {name}) was skipped: its "
                        "import did not finish within 3 s (NNBENCH_PLUGIN_TIMEOUT sets the limit)")
    # Every later command knows the verdicts without importing them again, and does its work.
    for command in (["plugins"], ["run", *GRID, "-q"]):
        later = nnbench(tmp_path, site, *command, plugins=plugins_and)
        assert later.returncode == 0, later.stderr
        remembered = warnings_of(later.stderr)
        assert len(remembered) == 3 and all("remembered from an earlier check" in line for line in remembered)
    assert "good_plugin  (entry point, good_plugin 1.0)" in nnbench(tmp_path, site, "plugins",
                                                                    plugins=plugins_and).stdout
    with sqlite3.connect(tmp_path / "nnbench.db") as db:
        assert db.execute("SELECT status, COUNT(*) FROM trials GROUP BY 1").fetchall() == [("ok", 2)]
        assert db.execute("SELECT status FROM runs").fetchall() == [("finished",)]


def test_a_plugin_changed_after_its_verdict_is_checked_again(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, "fixed_later", EXITS)
    broken = nnbench(tmp_path, site, "list", "activations", plugins="fixed_later")
    assert warnings_of(broken.stderr)[0].endswith("its import ended the process (exit status 0)")
    (site / "fixed_later.py").write_text(GOOD.replace("good_act", "fixed_act"))
    fixed = nnbench(tmp_path, site, "list", "activations", plugins="fixed_later")
    assert fixed.returncode == 0 and not warnings_of(fixed.stderr) and "fixed_act" in fixed.stdout


def test_a_bad_import_time_limit_is_one_line(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, "good_plugin", GOOD)
    for value in ("0", "-1", "soon", "inf"):
        done = nnbench(tmp_path, site, "list", "activations", NNBENCH_PLUGIN_TIMEOUT=value)
        assert done.returncode == 1
        assert done.stderr.strip() == f"Error: NNBENCH_PLUGIN_TIMEOUT must be a number of seconds > 0, not {value!r}"


class ExitsWhenLoaded:
    """An entry point whose import calls ``os._exit`` in this process (a verdict the child could not see)."""

    name, value, group = "exits_here", "exits_here_module", "nnbench"
    dist = type("Dist", (), {"name": "exits-here", "version": "2.0"})()

    def load(self) -> Any:
        os._exit(0)


@pytest.mark.usefixtures("no_real_exit")
def test_an_entry_point_that_calls_os_exit_in_this_process_is_named_and_skipped(
        monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(plugins, "entry_points", lambda group: [ExitsWhenLoaded()])
    monkeypatch.setenv("NNBENCH_PLUGINS", "all")
    with pytest.warns(PluginLoadWarning, match=r"'exits_here' \(distribution exits-here 2.0, entry point "
                                               r"exits_here_module\) failed to load and was skipped: it called "
                                               r"os._exit\(0\)"):
        pm = make_plugin_manager()
    assert "exits_here" not in {info.name for info in pm.describe()}
    assert os._exit.__name__ == "would_end"  # the one before is back once the plugins are loaded


class ExitsInHook:
    """Calls ``os._exit(0)`` in one lifecycle hook, as a tracker that gives up would."""

    def __init__(self, hook: str) -> None:
        self.hook = hook

    def _maybe_exit(self, hook: str) -> None:
        if hook == self.hook:
            os._exit(0)

    @hookimpl
    def before_run(self, run_id: str, trials: list[Any]) -> None:
        self._maybe_exit("before_run")

    @hookimpl
    def after_epoch(self, trial: Any, record: Any) -> None:
        self._maybe_exit("after_epoch")

    @hookimpl
    def after_trial(self, trial: Any, result: Any) -> None:
        self._maybe_exit("after_trial")

    @hookimpl
    def after_run(self, run_id: str, results: list[Any]) -> None:
        self._maybe_exit("after_run")


@pytest.mark.usefixtures("no_real_exit")
@pytest.mark.parametrize(("hook", "stored_as"), [("before_run", "failed"), ("after_epoch", "failed"),
                                                 ("after_trial", "failed"), ("after_run", "finished")])
def test_a_lifecycle_hook_that_calls_os_exit_ends_the_run_named_and_never_as_a_success(
        nnbench_plugin: Any, tmp_path: Path, monkeypatch: pytest.MonkeyPatch, hook: str, stored_as: str) -> None:
    monkeypatch.chdir(tmp_path)
    nnbench_plugin(ExitsInHook(hook), name="gives-up")
    result = CliRunner().invoke(cli, ["run", *GRID, "--workers", "1", "-q"], catch_exceptions=False)
    assert result.exit_code == 1
    (line,) = [line for line in result.output.splitlines() if line.startswith("Error:")]
    assert line == (f"Error: plugin 'gives-up' in its {hook} hook called os._exit(0): the run stopped there (stored "
                    f"as {stored_as}); its finished trials are stored in nnbench.db, and the same command resumes the "
                    "rest")
    with sqlite3.connect(tmp_path / "nnbench.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [(stored_as,)]
        assert db.execute("SELECT COUNT(*) FROM claims").fetchone() == (0,)  # nothing left claimed


def test_an_after_trial_exit_in_a_run_with_workers_ends_it_named_and_the_next_run_resumes(tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, "tracker", "import os\nfrom nnbench import hookimpl\n\n@hookimpl\ndef after_trial(trial, result):\n"
                             "    os._exit(0)\n")
    grid = [*GRID[:-5], "--seeds", "3", "--epochs", "2", "--no-report", "--no-vectorize", "-q"]
    stopped = nnbench(tmp_path, site, "run", *grid, "--workers", "2", plugins="tracker")
    assert stopped.returncode == 1, stopped.stderr
    assert ("Error: plugin 'tracker' in its after_trial hook called os._exit(0): the run stopped there (stored as "
            "failed)") in stopped.stderr
    with sqlite3.connect(tmp_path / "nnbench.db") as db:
        assert db.execute("SELECT status FROM runs").fetchall() == [("failed",)]
        kept = db.execute("SELECT COUNT(*) FROM trials WHERE status = 'ok'").fetchone()[0]
    assert kept >= 1
    resumed = nnbench(tmp_path, site, "run", *grid, "--workers", "2", plugins="none")
    assert resumed.returncode == 0, resumed.stderr
    assert f"3 trials: {3 - kept} to train, {kept} already stored" in resumed.stdout


def test_a_component_that_calls_os_exit_0_in_this_process_ends_nnbench_with_a_failure_and_quiet_still_names_it(
        tmp_path: Path) -> None:
    site = tmp_path / "site"
    install(site, "exiting_arch", "import os\nfrom nnbench import Architecture, hookimpl\n\n"
                                  "def build(spec, outputs, activation):\n    os._exit(0)\n\n"
                                  "@hookimpl\ndef register_architectures(register):\n"
                                  "    register(Architecture('exit0', build, ('vector',), 'ends the process'))\n")
    grid = ["--task", "moons", "--arch", "exit0", "--activation", "relu", "--optimizer", "adam", "--seeds", "1",
            "--epochs", "1", "--no-report", "--workers", "1", "-q"]
    first = nnbench(tmp_path, site, "run", *grid, plugins="exiting_arch")
    assert first.returncode == 1  # never 0: the run did not finish
    assert ("error: exiting_arch called os._exit(0) while nnbench was running in this process; nnbench stops with "
            "status 1") in first.stderr
    again = nnbench(tmp_path, site, "run", *grid, plugins="exiting_arch")
    assert again.returncode == 0, again.stderr
    named = [line for line in again.stderr.splitlines() if "was in training when the process of run" in line]
    assert len(named) == 1 and "(moons exit0/relu/cross_entropy/adam@0.001 seed 0)" in named[0]  # -q shows it
    with sqlite3.connect(tmp_path / "nnbench.db") as db:
        assert db.execute("SELECT status, error FROM trials").fetchall() == [
            ("failed", "the worker process exited with status 0")]


def test_the_guard_leaves_children_and_unguarded_code_alone() -> None:
    from nnbench.loading import exits

    with exits_guarded():
        child = os.fork()
        if child == 0:
            try:
                os._exit(7)  # a child's exit is its own, status and all
            finally:
                exits._exit_process(9)  # never this test's code again in the child
        _, status = os.waitpid(child, 0)
    assert os.waitstatus_to_exitcode(status) == 7
    assert os._exit.__name__ == "_exit"


@pytest.mark.usefixtures("no_real_exit")
def test_named_plugin_code_that_calls_os_exit_raises_where_the_guard_is_in_force() -> None:
    from nnbench.loading.exits import exits_named

    with exits_guarded(), exits_named("plugin 'x' in its after_trial hook"), pytest.raises(PluginExit) as info:
        os._exit(3)
    assert (info.value.code, info.value.where) == (3, "plugin 'x' in its after_trial hook")
    assert str(info.value) == "plugin 'x' in its after_trial hook called os._exit(3)"
