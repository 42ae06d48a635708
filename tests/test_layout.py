"""The layout shows the flow: no import cycles, a contract that imports nothing heavy, a report without torch."""

from __future__ import annotations

import ast
import subprocess
import sys
from pathlib import Path

PACKAGE = Path(__file__).parents[1] / "nnbench"


def module_imports() -> dict[str, set[str]]:
    """Each nnbench module and the nnbench modules it imports when it is imported (not inside functions,
    not for type checking only)."""
    graph: dict[str, set[str]] = {}
    for path in PACKAGE.rglob("*.py"):
        parts = path.relative_to(PACKAGE.parent).with_suffix("").parts
        name = ".".join(parts[:-1] if parts[-1] == "__init__" else parts)
        found: set[str] = set()
        for node in ast.parse(path.read_text()).body:
            if isinstance(node, ast.If) and "TYPE_CHECKING" in ast.unparse(node.test):
                continue
            if isinstance(node, ast.ImportFrom) and node.module and node.module.startswith("nnbench"):
                found.add(node.module)
                found |= {f"{node.module}.{a.name}" for a in node.names
                          if (PACKAGE.parent / f"{node.module}.{a.name}".replace(".", "/")).with_suffix(".py").exists()}
            elif isinstance(node, ast.Import):
                found |= {a.name for a in node.names if a.name.startswith("nnbench")}
        graph[name] = found
    return graph


def test_no_module_imports_itself_through_others() -> None:
    graph = module_imports()
    cycles = []

    def visit(name: str, path: list[str]) -> None:
        for dependency in graph.get(name, ()):
            if dependency in path:
                cycles.append(" -> ".join([*path[path.index(dependency):], dependency]))
            elif dependency not in seen:
                seen.add(dependency)
                visit(dependency, [*path, dependency])

    for start in graph:
        seen = {start}
        visit(start, [start])
    assert not cycles, cycles


def test_the_contract_imports_only_itself() -> None:
    graph = module_imports()
    outside = {f"{m} -> {d}" for m, deps in graph.items() if m.startswith("nnbench.contract")
               for d in deps if not d.startswith("nnbench.contract")}
    assert not outside


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
