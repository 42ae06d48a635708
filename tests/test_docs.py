"""docs/plugins.md documents every hook (and its parameters) and every field of every spec type.

Hooks and spec types are discovered, not listed here: a hook added to nnbench.contract.hookspecs, a spec
type added to nnbench.contract.specs or a field added to one fails this test until it is documented.
"""

from __future__ import annotations

import dataclasses
import inspect
import re
from pathlib import Path

import pytest

from nnbench.contract import hookspecs
from nnbench.contract import specs as components
from nnbench.contract.section import ReportSection

DOC = Path(__file__).parents[1] / "docs" / "plugins.md"

HOOKS = sorted(name for name, function in inspect.getmembers(hookspecs, inspect.isfunction)
               if hasattr(function, f"{hookspecs.PROJECT}_spec"))
SPEC_TYPES = sorted(
    {cls for _, cls in inspect.getmembers(components, inspect.isclass)
     if dataclasses.is_dataclass(cls) and cls.__module__ == components.__name__} | {ReportSection},
    key=lambda cls: cls.__name__,
)


def sections() -> dict[str, str]:
    """Each heading of the page (its text) with the body up to the next heading of any level."""
    parts = re.split(r"^(#{1,6} .*)$", DOC.read_text(), flags=re.MULTILINE)
    return {parts[i].lstrip("#").strip(): parts[i + 1] for i in range(1, len(parts), 2)}


def section_about(name: str) -> str:
    """The body of the heading that is exactly ``name`` in backticks."""
    found = sections().get(f"`{name}`")
    assert found is not None, f"docs/plugins.md has no heading `{name}`: document it"
    return found


def test_discovery_finds_the_contract() -> None:
    assert {"register_activations", "register_tasks", "after_epoch", "report_sections"} <= set(HOOKS)
    assert {components.Activation, components.Task, components.TaskData, components.InputSpec} <= set(SPEC_TYPES)


@pytest.mark.parametrize("hook", HOOKS)
def test_every_hook_and_its_parameters_are_documented(hook: str) -> None:
    body = section_about(hook)
    for parameter in inspect.signature(getattr(hookspecs, hook)).parameters:
        assert re.search(rf"\b{parameter}\b", body), f"the section on {hook} does not explain `{parameter}`"


@pytest.mark.parametrize("spec_type", SPEC_TYPES, ids=lambda cls: cls.__name__)
def test_every_spec_field_is_documented(spec_type: type) -> None:
    body = section_about(spec_type.__name__)
    documented = set(re.findall(r"^\| `(\w+)` \|", body, flags=re.MULTILINE))
    missing = [f.name for f in dataclasses.fields(spec_type) if f.name not in documented]
    assert not missing, f"docs/plugins.md's table for {spec_type.__name__} lacks the fields {missing}"
