"""docs/architecture.md's "To add X, touch these files" table stays true where a test can see it."""

from __future__ import annotations

import ast
import re
from pathlib import Path

from test_migrations import NEW_AXIS, NEW_MIGRATION

ROOT = Path(__file__).parents[1]
DOC = (ROOT / "docs" / "architecture.md").read_text()
EXTRAS = ROOT / "plugins" / "nnbench-extras"


def rows() -> dict[str, tuple[str, int]]:
    """The table's rows: what to add -> (its files, as written, and how many)."""
    table = DOC[DOC.index("## To add X, touch these files"):].split("\n\n")[1]
    found = {}
    for line in table.splitlines()[2:]:
        what, files, count = (cell.strip() for cell in line.strip("|").split("|"))
        found[what] = (files, int(count))
    return found


def parts_of(files: str) -> list[str]:
    """The files of a row: its cell split at commas outside backticks and parentheses."""
    parts, depth, quoted, current = [], 0, False, ""
    for char in files:
        quoted ^= char == "`"
        depth += (char == "(") - (char == ")") if not quoted else 0
        if char == "," and depth == 0 and not quoted:
            parts.append(current.strip())
            current = ""
        else:
            current += char
    return [part for part in [*parts, current.strip()] if part]


def named_files(files: str) -> list[str]:
    return re.findall(r"`((?:nnbench|docs|plugins|tests)/[\w/.]+)`", files)


def test_every_row_counts_the_files_it_names() -> None:
    table = rows()
    assert {"a core trial axis", "an executor, as a plugin", "a run option", "a command"} <= set(table)
    for what, (files, count) in table.items():
        parts = parts_of(files)
        assert len(parts) == count, f"{what}: {count} files said, {len(parts)} named: {files}"
        for path in named_files(files):
            assert (ROOT / path).exists(), f"{what}: {path} does not exist"


def test_a_core_axis_needs_exactly_the_field_and_the_migration_for_the_store() -> None:
    files, _ = rows()["a core trial axis"]
    named = named_files(files)
    assert named[:2] == ["nnbench/contract/trial.py", "nnbench/storage/migrations.py"]
    # the scratch copy of the package that test_migrations opens every earlier store with changes these two only
    assert "precision: str = axis(" in NEW_AXIS and "add_axis_column(db, \"precision\")" in NEW_MIGRATION


def test_the_worked_example_executor_is_written_against_the_contract_alone() -> None:
    files, count = rows()["an executor, as a plugin"]
    assert "nnbench/contract/executor.py" in named_files(files) and count == 3
    module = EXTRAS / "src" / "nnbench_extras" / "pool.py"
    imported = {node.module for node in ast.walk(ast.parse(module.read_text()))
                if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nnbench")}
    assert imported and all(name.startswith("nnbench.contract.") for name in imported), imported
    plugin = (EXTRAS / "src" / "nnbench_extras" / "plugin.py").read_text()
    tests = (EXTRAS / "tests" / "test_extras.py").read_text()
    assert "def register_executors" in plugin and "PoolExecutor" in plugin
    assert 'check_executor("pool"' in tests


def test_a_run_option_is_one_row_that_the_command_line_and_the_python_api_both_take() -> None:
    from click.testing import CliRunner

    import nnbench
    from nnbench.cli import cli
    from nnbench.contract.run_options import RUN_OPTIONS

    help_text = CliRunner().invoke(cli, ["run", "--help"]).output
    documentation = nnbench.run.__doc__ or ""
    for option in RUN_OPTIONS:
        assert option.flag in help_text, option.flag
        assert f"    {option.name}: " in documentation, option.name
