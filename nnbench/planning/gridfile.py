"""Reading a grid from a TOML file and command-line values into a :class:`GridSpec`.

A grid file looks like::

    [grid]
    task = ["digits", "spirals"]
    arch = ["fnn", "cnn"]
    activation = ["relu", "tanh"]
    optimizer = ["sgd", "adam"]
    lr = [0.1, 0.01]          # or "default": each optimizer's own
    seeds = 3
    epochs = 20
    batch_size = 64

    exclude = [{arch = "cnn", optimizer = "adadelta"}]

    [arch.fnn]
    hidden = [128, 128]

Axes that neither the file nor a flag sets come from the default grid
(:func:`nnbench.planning.grid.default_grid`); flags override the file. The axes, their keys and their
values come from the session's :class:`~nnbench.contract.domain.Domain`: a kind that a plugin adds
is a key like any other (``initializer = ["default", "xavier_uniform"]``, ``[norm.batch]``).
"""

from __future__ import annotations

import math
import re
import tomllib
from collections.abc import Mapping
from functools import cache
from pathlib import Path
from typing import Any

from nnbench.contract.axes import Axis
from nnbench.contract.domain import Domain
from nnbench.loading.catalogue import collect_catalogue
from nnbench.loading.plugins import make_plugin_manager
from nnbench.planning.csvtask import join_csv_paths
from nnbench.planning.grid import GridError, GridSpec, default_grid, value_problem

BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
OPTION_KEYS = ("tune", "budget", "target_metric", "target", "kind", "max_trials")
"""Grid keys that are settings of the run, not axes."""


def _domain(domain: Domain | None) -> Domain:
    """``domain``, else the built-in plugins' (their kinds and default grid)."""
    return domain if domain is not None else builtin_domain()


@cache
def builtin_domain() -> Domain:
    return collect_catalogue(make_plugin_manager(load_entry_points=False)).domain


def axis_keys(domain: Domain) -> list[str]:
    return [ax.grid_key for ax in domain.axes]


def load_grid_file(path: str | Path, domain: Domain | None = None) -> dict[str, Any]:
    """Read a grid file into the keyword form of :func:`build_grid` (``task=[...]``, ``exclude=...``)."""
    domain = _domain(domain)
    path = Path(path)
    param_keys = list(domain.param_axes)
    file_keys = ("grid", "exclude", *param_keys)
    try:
        text = path.read_text(encoding="utf-8")
    except OSError as exc:
        raise GridError(f"cannot read grid file {path}: {exc.strerror or exc}") from None
    except UnicodeDecodeError as exc:
        raise GridError(f"grid file {path} is not UTF-8 text (byte {exc.start}); save it as UTF-8 TOML") from None
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as exc:
        raise GridError(f"grid file {path} is not valid TOML: {exc}") from None
    except RecursionError:
        raise GridError(f"grid file {path} nests tables or lists too deeply to be a grid") from None
    problem = value_problem(data)
    if problem:
        raise GridError(f"grid file {path} {problem}; a grid holds names and finite numbers")
    unknown = sorted(set(data) - set(file_keys))
    if unknown:
        raise GridError(
            f"grid file {path}: unknown top-level key {unknown[0]!r}; expected {', '.join(file_keys)} "
            "(axes such as task and arch go in a [grid] table)"
        )
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise GridError(f"grid file {path}: 'grid' must be a table ([grid]), not {type(grid).__name__}")
    bad = sorted(set(grid) - set(axis_keys(domain)) - set(OPTION_KEYS) - {"exclude"})
    if bad:
        raise GridError(f"grid file {path}: unknown axis {bad[0]!r} in [grid]; axes: {', '.join(axis_keys(domain))}")
    values: dict[str, Any] = {k: v for k, v in grid.items() if k != "exclude"}
    exclude = data.get("exclude", grid.get("exclude", []))
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise GridError(f"grid file {path}: exclude must be a list of tables, e.g. [{{arch = \"cnn\"}}]")
    values["exclude"] = exclude
    overrides: dict[str, dict[str, dict[str, Any]]] = {}
    for key in param_keys:
        section = data.get(key, {})
        if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
            raise GridError(
                f"grid file {path}: top-level {key!r} must hold [{key}.NAME] tables of hyper-parameters; "
                f"to choose which {key}s to run, put `{key} = [...]` in the [grid] table"
            )
        if section:
            overrides[key] = section
    values["overrides"] = overrides
    return values


def parse_assignment(text: str, domain: Domain | None = None) -> tuple[str, str, str, Any]:
    """Parse ``--set arch.fnn.hidden=[128,128]`` into ``("arch", "fnn", "hidden", [128, 128])``."""
    param_keys = list(_domain(domain).param_axes)
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 3 or parts[0] not in param_keys or not all(parts):
        raise GridError(
            f"--set {text!r} must look like KIND.NAME.PARAM=VALUE with KIND one of "
            f"{', '.join(param_keys)}, e.g. arch.fnn.hidden=[128,128]"
        )
    try:
        value = tomllib.loads(f"v = {raw.strip()}")["v"]
    except tomllib.TOMLDecodeError:
        if not BARE_WORD.fullmatch(raw.strip()):
            raise GridError(
                f"--set {text!r}: {raw.strip()!r} is not a value; write a TOML value such as 3, 0.5, true, "
                "[128, 128] or \"text\" (a bare word such as tanh is read as text)"
            ) from None
        value = raw.strip()
    except RecursionError:
        raise GridError(f"--set {_shorten(text)}: the value nests lists or tables too deeply") from None
    problem = value_problem(value)
    if problem:
        raise GridError(f"--set {_shorten(text)}: the value {problem}; give a finite number, a name or a short list")
    return parts[0], parts[1], parts[2], value


def _shorten(text: str, width: int = 60) -> str:
    """``text`` quoted, cut to ``width`` characters so that an error stays one readable line."""
    return repr(text if len(text) <= width else text[: width - 3] + "...")


def as_values(ax: Axis, value: Any) -> list[Any]:
    """One axis's values from a flag (comma-separated text), a TOML value or a Python value."""
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
        if ax.kind == "task":
            items = join_csv_paths(items)
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    if ax.value_type is str:
        for item in items:
            if not isinstance(item, str):
                raise GridError(f"the {ax.grid_key} axis takes names, not {item!r}")
        return items
    return [_parse_number(ax, v) for v in items]


def _parse_number(ax: Axis, value: Any) -> Any:
    if ax.keyword is not None and value == ax.keyword:
        return ax.keyword
    keyword = f" or {ax.keyword!r}" if ax.keyword else ""
    if ax.value_type is int:
        return _as_int(ax.noun, value, keyword)
    if isinstance(value, bool):
        raise GridError(f"{ax.noun} must be numbers > 0{keyword}, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GridError(f"{ax.noun} must be numbers > 0{keyword}, not {value!r}") from None


def parse_targets(value: Any) -> dict[str, float]:
    """``0.9`` (every task) or ``digits=0.95,spirals=0.9`` (per task) -> ``{"*": 0.9}`` / per task."""
    if isinstance(value, dict):
        items = list(value.items())
    elif isinstance(value, int | float) and not isinstance(value, bool):
        items = [("*", value)]
    else:
        items = [(part.split("=", 1)[0], part.split("=", 1)[1]) if "=" in part else ("*", part)
                 for part in str(value).split(",") if part.strip()]
    targets = {}
    for task, number in items:
        try:
            targets[str(task).strip()] = float(number)
        except (TypeError, ValueError):
            raise GridError(f"--target-metric takes a number or TASK=NUMBER pairs, not {value!r}") from None
        if not math.isfinite(targets[str(task).strip()]):
            raise GridError(f"--target-metric must be finite numbers (a validation metric to reach), not {number!r}")
    return targets


def _as_int(what: str, value: Any, keyword: str = "") -> int:
    if isinstance(value, bool):
        raise GridError(f"{what} must be an integer >= 1{keyword}, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise GridError(f"{what} must be an integer >= 1{keyword}, not {value!r}") from None
    if number != value and not isinstance(value, str):
        raise GridError(f"{what} must be an integer >= 1{keyword}, not {value!r}")
    return number


def build_grid(
    file_values: Mapping[str, Any] | None = None,
    assignments: tuple[str, ...] | list[str] = (),
    *,
    domain: Domain | None = None,
    **flags: Any,
) -> GridSpec:
    """Merge the defaults, a grid file's values and flags (``None`` flags are unset) into a spec.

    ``domain`` says which axes there are (default: the core axes, without any plugin's kinds).
    """
    domain = _domain(domain)
    merged: dict[str, Any] = default_grid(domain)
    merged.update(file_values or {})
    merged.update({k: v for k, v in flags.items() if v is not None})
    keys = axis_keys(domain)
    unknown = sorted(set(merged) - set(keys) - set(OPTION_KEYS) - {"exclude", "overrides"})
    if unknown:
        raise GridError(f"unknown grid axis {unknown[0]!r}; axes: {', '.join(keys)}")
    overrides: dict[str, dict[str, dict[str, Any]]] = {
        kind: {name: dict(params) for name, params in per.items()}
        for kind, per in dict(merged.get("overrides", {})).items()
    }
    for text in assignments:
        kind, name, param, value = parse_assignment(text, domain)
        overrides.setdefault(kind, {}).setdefault(name, {})[param] = value
    seeds_axis = next(ax for ax in domain.axes if ax.count)
    return GridSpec(
        values={ax.name: as_values(ax, merged[ax.grid_key]) for ax in domain.axes if not ax.count},
        seeds=_as_int(seeds_axis.noun, merged[seeds_axis.grid_key]),
        exclude=list(merged.get("exclude", [])),
        overrides=overrides,
        tune=[str(v) for v in as_values(Axis("tune", noun="tuned names"), merged.get("tune", []))],
        budget=None if merged.get("budget") is None else _as_int("budget", merged["budget"]),
        target_metric=parse_targets(merged.get("target_metric") or {}),
        target=merged.get("target"),
        kind=merged.get("kind"),
        max_trials=None if merged.get("max_trials") is None else _as_int("max_trials", merged["max_trials"]),
    )
