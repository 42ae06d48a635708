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

Axes that neither the file nor a flag sets come from :data:`nnbench.grid.DEFAULT_GRID`; flags
override the file.
"""

from __future__ import annotations

import re
import tomllib
from collections.abc import Mapping
from pathlib import Path
from typing import Any

from nnbench.grid import DEFAULT_GRID, PARAM_KINDS, GridError, GridSpec

BARE_WORD = re.compile(r"[A-Za-z_][A-Za-z0-9_.\-]*")
LIST_AXES = ("task", "arch", "activation", "loss", "optimizer", "lr", "device", "schedule", "clip")
SCALAR_AXES = ("seeds", "epochs", "batch_size")
OPTIONAL_KEYS = ("patience", "tune", "budget", "target_metric", "target", "kind")
FILE_KEYS = ("grid", "exclude", *PARAM_KINDS)


def load_grid_file(path: str | Path) -> dict[str, Any]:
    """Read a grid file into the keyword form of :func:`build_grid` (``task=[...]``, ``exclude=...``)."""
    path = Path(path)
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
    unknown = sorted(set(data) - set(FILE_KEYS))
    if unknown:
        raise GridError(
            f"grid file {path}: unknown top-level key {unknown[0]!r}; expected {', '.join(FILE_KEYS)} "
            "(axes such as task and arch go in a [grid] table)"
        )
    grid = data.get("grid", {})
    if not isinstance(grid, dict):
        raise GridError(f"grid file {path}: 'grid' must be a table ([grid]), not {type(grid).__name__}")
    bad = sorted(set(grid) - set(LIST_AXES) - set(SCALAR_AXES) - set(OPTIONAL_KEYS) - {"exclude"})
    if bad:
        raise GridError(
            f"grid file {path}: unknown axis {bad[0]!r} in [grid]; axes: {', '.join(LIST_AXES + SCALAR_AXES)}"
        )
    values: dict[str, Any] = {k: v for k, v in grid.items() if k != "exclude"}
    exclude = data.get("exclude", grid.get("exclude", []))
    if not isinstance(exclude, list) or not all(isinstance(e, dict) for e in exclude):
        raise GridError(f"grid file {path}: exclude must be a list of tables, e.g. [{{arch = \"cnn\"}}]")
    values["exclude"] = exclude
    overrides: dict[str, dict[str, dict[str, Any]]] = {}
    for kind in PARAM_KINDS:
        section = data.get(kind, {})
        if not isinstance(section, dict) or not all(isinstance(v, dict) for v in section.values()):
            raise GridError(
                f"grid file {path}: top-level {kind!r} must hold [{kind}.NAME] tables of hyper-parameters; "
                f"to choose which {kind}s to run, put `{kind} = [...]` in the [grid] table"
            )
        if section:
            overrides[kind] = section
    values["overrides"] = overrides
    return values


def parse_assignment(text: str) -> tuple[str, str, str, Any]:
    """Parse ``--set arch.fnn.hidden=[128,128]`` into ``("arch", "fnn", "hidden", [128, 128])``."""
    key, sep, raw = text.partition("=")
    parts = key.strip().split(".")
    if not sep or len(parts) != 3 or parts[0] not in PARAM_KINDS or not all(parts):
        raise GridError(
            f"--set {text!r} must look like KIND.NAME.PARAM=VALUE with KIND one of "
            f"{', '.join(PARAM_KINDS)}, e.g. arch.fnn.hidden=[128,128]"
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
    return parts[0], parts[1], parts[2], value


def _as_list(axis: str, value: Any) -> list[Any]:
    if isinstance(value, str):
        items: list[Any] = [v.strip() for v in value.split(",") if v.strip()]
    elif isinstance(value, list | tuple):
        items = list(value)
    else:
        items = [value]
    if axis == "lr":
        return [_parse_number(v, "default", "learning rates") for v in items]
    if axis == "clip":
        return [_parse_number(v, "none", "gradient clipping limits") for v in items]
    for item in items:
        if not isinstance(item, str):
            raise GridError(f"the {axis} axis takes names, not {item!r}")
    return items


def _parse_number(value: Any, keyword: str, what: str) -> float | str:
    if value == keyword:
        return keyword
    if isinstance(value, bool):
        raise GridError(f"{what} must be numbers > 0 or {keyword!r}, not {value!r}")
    try:
        return float(value)
    except (TypeError, ValueError):
        raise GridError(f"{what} must be numbers > 0 or {keyword!r}, not {value!r}") from None


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
    return targets


def _as_int(axis: str, value: Any) -> int:
    if isinstance(value, bool):
        raise GridError(f"{axis} must be an integer >= 1, not {value!r}")
    try:
        number = int(value)
    except (TypeError, ValueError, OverflowError):
        raise GridError(f"{axis} must be an integer >= 1, not {value!r}") from None
    if number != value and not isinstance(value, str):
        raise GridError(f"{axis} must be an integer >= 1, not {value!r}")
    return number


def build_grid(
    file_values: Mapping[str, Any] | None = None,
    assignments: tuple[str, ...] | list[str] = (),
    **flags: Any,
) -> GridSpec:
    """Merge the defaults, a grid file's values and flags (``None`` flags are unset) into a spec."""
    merged: dict[str, Any] = dict(DEFAULT_GRID)
    merged.update(file_values or {})
    merged.update({k: v for k, v in flags.items() if v is not None})
    unknown = sorted(set(merged) - set(LIST_AXES) - set(SCALAR_AXES) - set(OPTIONAL_KEYS) - {"exclude", "overrides"})
    if unknown:
        raise GridError(f"unknown grid axis {unknown[0]!r}; axes: {', '.join(LIST_AXES + SCALAR_AXES)}")
    overrides: dict[str, dict[str, dict[str, Any]]] = {
        kind: {name: dict(params) for name, params in per.items()}
        for kind, per in dict(merged.get("overrides", {})).items()
    }
    for text in assignments:
        kind, name, param, value = parse_assignment(text)
        overrides.setdefault(kind, {}).setdefault(name, {})[param] = value
    return GridSpec(
        **{axis: _as_list(axis, merged[axis]) for axis in LIST_AXES},
        seeds=_as_int("seeds", merged["seeds"]),
        epochs=_as_int("epochs", merged["epochs"]),
        batch_size=_as_int("batch size", merged["batch_size"]),
        exclude=list(merged.get("exclude", [])),
        overrides=overrides,
        patience=None if merged.get("patience") is None else _as_int("patience", merged["patience"]),
        tune=_as_list("tune", merged.get("tune", [])),
        budget=None if merged.get("budget") is None else _as_int("budget", merged["budget"]),
        target_metric=parse_targets(merged.get("target_metric") or {}),
        target=merged.get("target"),
        kind=merged.get("kind"),
    )
