"""What a trial axis is: one row of the domain's declaration, from which the grid, the grid file, the
command line, the store and the analysis are derived.

A core axis is declared where the trial is, as a field of :class:`nnbench.contract.trial.Trial`
made with :func:`axis`; each kind of component that a plugin adds gets an axis of its own
(:meth:`Axis.for_kind`).
"""

from __future__ import annotations

import dataclasses
import math
from collections.abc import Mapping, Sequence
from dataclasses import dataclass
from typing import Any, Literal

Role = Literal["task", "config", "seed"]


class _Unset:
    """Marks an axis whose every value takes part in the trial id."""

    def __repr__(self) -> str:
        return "UNSET"


UNSET: Any = _Unset()
NAMES_HELP = "Comma-separated names; wildcards and 'all' allowed."
SQL_TYPES = {str: "TEXT", float: "REAL", int: "INTEGER"}


@dataclass(frozen=True)
class Axis:
    """One trial axis.

    :param name: the trial field and the store column (``lr``).
    :param kind: the component kind whose names the axis takes (``architecture``), or ``None`` for an
        axis of numbers.
    :param value_type: ``str`` for names, else ``float`` or ``int``.
    :param help: the command line's help for the axis.
    :param default: the default grid's values.
    :param grid_key: the key in a grid file and in ``nnbench.run``, and the flag (``--grid-key``);
        the name when empty.
    :param role: ``task`` and ``seed`` are what blocks and repeats are made of; every other axis is
        part of a trial's ``config``uration.
    :param keyword: a word that stands in for a value: ``default`` (each task's own loss, each
        optimizer's own learning rate) or ``none`` (``None``: no clipping, no early stopping).
    :param noun: how errors speak of the axis's values (``learning rates``).
    :param effect: the axis's place among the axes of analysis (effect plots, interactions, rank
        tests); 0 when it is not one.
    :param neutral: a value that is left out of the trial id, so that trials stored before the axis
        existed keep their ids; axes of the first trial format have none.
    :param label: how the value reads in a trial's short name (a format string; empty: not shown).
    :param label_unless: a value that is not shown in the short name.
    :param count: the grid gives how many values (``seeds 3``: seeds 0, 1, 2).
    :param choices: the only values the axis takes (a protocol's words: ``split``, ``task``, ``none``).
    """

    name: str
    kind: str | None = None
    value_type: type = str
    help: str = ""
    default: tuple[Any, ...] = ()
    grid_key: str = ""
    role: Role = "config"
    keyword: str | None = None
    noun: str = ""
    effect: int = 0
    neutral: Any = UNSET
    label: str = ""
    label_unless: Any = UNSET
    count: bool = False
    choices: tuple[Any, ...] = ()

    def __post_init__(self) -> None:
        if not self.grid_key:
            object.__setattr__(self, "grid_key", self.name)
        if not self.noun:
            object.__setattr__(self, "noun", self.name.replace("_", " "))

    @property
    def flag(self) -> str:
        """The command-line flag: ``--batch-size``."""
        return "--" + self.grid_key.replace("_", "-")

    @property
    def nullable(self) -> bool:
        """Whether the keyword stands for ``None`` (the store column may then be NULL)."""
        return self.keyword == "none"

    @property
    def sql_type(self) -> str:
        return SQL_TYPES[self.value_type]

    def in_id(self, value: Any) -> bool:
        """Whether ``value`` takes part in the trial id."""
        return self.neutral is UNSET or value != self.neutral

    def shows(self, value: Any) -> bool:
        """Whether ``value`` appears in a trial's short name."""
        return bool(self.label) and (self.label_unless is UNSET or value != self.label_unless) and self.in_id(value)

    def problem(self, value: Any) -> str | None:
        """Why ``value`` (already parsed, keywords resolved or kept) is not a valid value, or ``None``."""
        if self.keyword is not None and value == self.keyword:
            return None
        if self.choices:
            return None if value in self.choices else f"must be one of {', '.join(map(str, self.choices))}"
        if self.value_type is str:
            return None if isinstance(value, str) and value else "must be names"
        if isinstance(value, bool) or not isinstance(value, int | float):
            return "must be numbers" if self.value_type is float else "must be an integer >= 1"
        if self.value_type is float:
            return None if math.isfinite(value) and value > 0 else "must be finite numbers > 0"
        return None if math.isfinite(value) and value == int(value) and value >= 1 else "must be an integer >= 1"

    @classmethod
    def for_kind(cls, kind: str, plural: str, default: str, description: str, effect: int) -> Axis:
        """The axis of a kind of component that a plugin declares: its default component is neutral."""
        what = f": {description}" if description else ""
        return cls(kind, kind=kind, help=f"{plural.capitalize()}{what} (default {default!r}). {NAMES_HELP}",
                   default=(default,), effect=effect, neutral=default, label=f" {kind}={{}}")


YOURS = " (yours)"
"""What follows the name of a component the user gave under a name another component has (``cnn (yours)``), in
every listing and report; its code identity ends with it too, so that the store keeps the two apart."""


def marked_yours(values: Mapping[str, Any], code: Mapping[str, Any]) -> dict[str, Any]:
    """``values`` (axis -> name) with :data:`YOURS` after each name whose code identity (``code``: axis -> code,
    as a trial's ``params["code"]`` holds them) says it is the user's own component under another's name."""
    return {axis: f"{value}{YOURS}" if isinstance(value, str) and str(code.get(axis, "")).endswith(YOURS) else value
            for axis, value in values.items()}


def short_label(values: Mapping[str, Any], axes: Sequence[Axis]) -> str:
    """A configuration's short name from ``values`` (a trial's, or a row of a results table): each
    axis's label where the value shows (``fnn/relu/cross_entropy/adam@0.001+cosine clip 1``)."""
    parts = []
    for ax in axes:
        if ax.name not in values:
            continue
        value = values[ax.name]
        if ax.nullable and (value is None or value == ax.keyword or value != value):  # NaN reads as none
            value = None
        if value is not None and ax.shows(value):
            parts.append(ax.label.format(value))
    return "".join(parts)


def axis(*, field_default: Any = dataclasses.MISSING, **spec: Any) -> Any:
    """A :class:`~nnbench.contract.trial.Trial` field that is a trial axis (see :class:`Axis`).

    ``field_default`` is the field's default when a trial is built without it.
    """
    return dataclasses.field(default=field_default, metadata={"axis": spec})


def field_axes(cls: type) -> tuple[Axis, ...]:
    """The axes declared as fields of the dataclass ``cls``, in field order."""
    found = []
    for f in dataclasses.fields(cls):
        if "axis" in f.metadata:
            value_type = {"str": str, "float": float, "int": int}[str(f.type).split(" ")[0]]
            found.append(Axis(f.name, value_type=value_type, **f.metadata["axis"]))
    return tuple(found)
