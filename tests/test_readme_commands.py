"""The README's commands, as written: CI runs its test command, the default grid plans, and a small
grid trains, reports and exports through the installed ``nnbench`` script."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

ROOT = Path(__file__).parents[1]
README = (ROOT / "README.md").read_text()


def bash_blocks(text: str) -> list[str]:
    return re.findall(r"```bash\n(.*?)```", text, flags=re.DOTALL)


def after(heading_text: str) -> str:
    """The first bash block after the line holding ``heading_text``."""
    return bash_blocks(README[README.index(heading_text):])[0].strip()


def test_ci_runs_the_readme_test_command_and_fails_without_the_example_plugin() -> None:
    command = after("Install and run the tests")
    ci = (ROOT / ".ci" / "run").read_text()
    assert command.startswith("python3 -m pip install") and command.endswith("python3 -m pytest")
    # .ci/run runs the same steps (quietly: pip's -q), installs every plugin, and nothing skips a plugin's tests
    assert command.replace("pip install ", "pip install -q ") in ci
    for plugin in sorted(p.parent for p in (ROOT / "plugins").glob("*/pyproject.toml")):
        assert f"./plugins/{plugin.name}" in command
        for test in (plugin / "tests").glob("*.py"):
            assert "importorskip" not in test.read_text() and "skipif" not in test.read_text(), test
    assert "set -euo pipefail" in ci


def nnbench_script() -> str:
    script = shutil.which("nnbench")
    assert script, "the nnbench script is not installed on PATH: run the README's install command"
    return script


def run_readme_command(line: str, cwd: Path, timeout: int = 300) -> subprocess.CompletedProcess[str]:
    words = line.split("#")[0].split()
    assert words[0] == "nnbench"
    env = {**os.environ, "NNBENCH_PLUGINS": "none"}
    return subprocess.run([nnbench_script(), *words[1:]], cwd=cwd, env=env, capture_output=True, text=True,
                          timeout=timeout)


def test_the_default_grid_of_the_readme_plans(tmp_path: Path) -> None:
    command = after("Install and run the default grid")
    assert command.endswith("&& nnbench run")
    plan = run_readme_command("nnbench run --dry-run", tmp_path)
    assert plan.returncode == 0, plan.stderr
    counts = re.search(r"^(\d+) trials: \1 to train, 0 already stored", plan.stdout, flags=re.MULTILINE)
    assert counts and int(counts.group(1)) > 50
    assert not (tmp_path / "nnbench.db").exists()


def test_a_small_grid_trains_reports_and_exports_through_the_installed_script(tmp_path: Path) -> None:
    quick = after("## Quick start").splitlines()
    run = run_readme_command("nnbench run --task moons --arch fnn --activation relu,tanh --optimizer adam "
                             "--seeds 2 --epochs 2", tmp_path)
    assert run.returncode == 0, run.stderr
    assert "4 trials: 4 to train" in run.stdout and "moons — test accuracy" in run.stdout
    for line in quick:
        if line.startswith(("nnbench report", "nnbench export", "nnbench list optimizers")):
            result = run_readme_command(line, tmp_path)
            assert result.returncode == 0, (line, result.stderr)
    assert (tmp_path / "results.csv").read_text().count("\n") == 5  # a header and four trials
    assert list((tmp_path / "reports").glob("*/index.html"))
