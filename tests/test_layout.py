"""The layout shows the flow: import-linter's contracts hold (layers, no loops, a report without torch, a light
contract), imports inside functions are few and say why, and loading the plugins imports nothing heavy."""

from __future__ import annotations

import ast
import shutil
import subprocess
import sys
import tomllib
from pathlib import Path

ROOT = Path(__file__).parents[1]
PACKAGE = ROOT / "nnbench"
MOST_IMPORTS_IN_FUNCTIONS = 30


def test_the_import_contracts_hold() -> None:
    script = shutil.which("lint-imports")
    assert script, "import-linter's lint-imports is not installed: it comes with nnbench's test extra"
    done = subprocess.run([script, "--no-cache"], cwd=ROOT, capture_output=True, text=True, timeout=300)
    assert done.returncode == 0, done.stdout + done.stderr
    assert "Contracts: 4 kept, 0 broken." in done.stdout


def test_every_part_of_the_package_has_its_place_in_the_layers() -> None:
    config = tomllib.loads((ROOT / "pyproject.toml").read_text())["tool"]["importlinter"]
    (layers,) = [c["layers"] for c in config["contracts"] if c["type"] == "layers"]
    placed = {name.strip() for layer in layers for name in layer.replace("|", ":").split(":")}
    parts = {f"nnbench.{p.stem if p.is_file() else p.name}" for p in PACKAGE.iterdir()
             if (p.suffix == ".py" and p.stem != "__init__") or (p / "__init__.py").is_file()}
    assert parts - placed == set(), "a module or package of nnbench that no layer places"


def imports_in_functions() -> list[tuple[str, int, str]]:
    """Every import of an nnbench module made inside a function: (file, line, the comment that says why)."""
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        lines = path.read_text().splitlines()
        for node in ast.walk(ast.parse(path.read_text())):
            if not isinstance(node, ast.FunctionDef | ast.AsyncFunctionDef):
                continue
            for inner in ast.walk(node):
                names = ([inner.module or ""] if isinstance(inner, ast.ImportFrom)
                         else [a.name for a in inner.names] if isinstance(inner, ast.Import) else [])
                if any(name.startswith("nnbench") for name in names):
                    line = lines[inner.lineno - 1]
                    above = lines[inner.lineno - 2].strip()
                    why = line.partition("#")[2].strip() or (above[1:].strip() if above.startswith("#") else "")
                    found.append((str(path.relative_to(ROOT)), inner.lineno, why))
    return found


def test_imports_inside_functions_are_few_and_each_says_why() -> None:
    found = imports_in_functions()
    assert len(found) <= MOST_IMPORTS_IN_FUNCTIONS, [f"{f}:{n}" for f, n, _ in found]
    unexplained = [f"{f}:{n}" for f, n, why in found if not why]
    assert not unexplained, f"imports inside functions without a one-line reason: {unexplained}"


def test_the_count_of_imports_inside_functions_sees_them() -> None:
    assert any(f == "nnbench/session.py" for f, _, _ in imports_in_functions())  # the pre-flight checks' torch


def test_importing_the_contract_and_loading_the_plugins_import_no_torch_or_pandas() -> None:
    script = """
import sys
import nnbench, nnbench.contract.domain, nnbench.contract.hookspecs
from nnbench.session import Session
session = Session()
session.domain.kind("norm"); list(session.catalogue.executors)
heavy = [m for m in ("torch", "pandas", "matplotlib", "seaborn", "scipy") if m in sys.modules]
assert not heavy, heavy
"""
    done = subprocess.run([sys.executable, "-c", script], capture_output=True, text=True, timeout=120,
                          env={"NNBENCH_PLUGINS": "none", "PATH": ""})
    assert done.returncode == 0, done.stderr


KEYWORDS = {"none", "default", "cpu", "sigmoid", "step", "group"}
"""Words that mean something of their own in the contract, besides naming a built-in component: no component
(``none``, ``default``), the device torch calls ``cpu``, a loss's ``sigmoid`` head, a training ``step``, a seed
``group``."""


def test_no_module_outside_builtin_names_a_built_in_component() -> None:
    from nnbench.contract.specs import STAGES
    from nnbench.contract.trial import CONSTANT_SCHEDULE
    from nnbench.loading.catalogue import collect_catalogue
    from nnbench.loading.plugins import make_plugin_manager

    catalogue = collect_catalogue(make_plugin_manager(load_entry_points=False))
    names = {entry.spec.name for record in catalogue.domain.kinds
             for entry in catalogue.registry(record.name).entries()}
    # the schedule of a trial that names none, declared once in the contract; the stages, the contract's own words
    # (a "batch" stage beside the built-in "batch" norm)
    names -= KEYWORDS | {CONSTANT_SCHEDULE} | set(STAGES)
    assert {"fnn", "relu", "adam", "digits", "cross_entropy", "inline"} <= names
    found = []
    for path in sorted(PACKAGE.rglob("*.py")):
        if "builtin" in path.relative_to(PACKAGE).parts:
            continue
        tree = ast.parse(path.read_text())
        documentation = {id(node.body[0].value) for node in ast.walk(tree)
                         if isinstance(node, ast.Module | ast.ClassDef | ast.FunctionDef | ast.AsyncFunctionDef)
                         and node.body and isinstance(node.body[0], ast.Expr)}
        for node in ast.walk(tree):
            if isinstance(node, ast.Constant) and isinstance(node.value, str) and id(node) not in documentation \
                    and node.value in names:
                found.append(f"{path.relative_to(ROOT)}:{node.lineno}: {node.value!r}")
    assert not found, found
