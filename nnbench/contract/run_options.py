"""How a run executes, declared once: the table of run options and the validated :class:`RunOptions`.

``nnbench run``'s flags, ``nnbench.run``'s keywords and their help are derived from :data:`RUN_OPTIONS`;
:class:`RunOptions` is checked and normalised once, when it is made, and read as it is everywhere after.
None of these options is part of a trial's identity.
"""

from __future__ import annotations

import math
import os
from collections.abc import Callable, Mapping
from dataclasses import dataclass, field, fields
from typing import Any, Literal

from nnbench.contract.errors import NNBenchError

AUTO = "auto"
MAX_THREADS_PER_CORE = 4  # past this, torch's thread pool only costs (and 100,000 threads cannot start)


def _count(flag: str) -> Callable[[Any], int | None]:
    """A whole number >= 1, or ``auto``/``None`` (decided for the grid)."""

    def parse(value: Any) -> int | None:
        if value is None or value == AUTO:
            return None
        if isinstance(value, bool) or not isinstance(value, int):
            try:
                value = int(str(value))
            except ValueError:
                raise NNBenchError(f"{flag} must be a whole number >= 1 or auto, not {value!r}") from None
        if value < 1:
            raise NNBenchError(f"{flag} must be a whole number >= 1 or auto, not {value}")
        return value

    return parse


def _threads(value: Any) -> int:
    cores = os.cpu_count() or 1
    most = MAX_THREADS_PER_CORE * cores
    if isinstance(value, bool) or not isinstance(value, int) or not 1 <= value <= most:
        raise NNBenchError(f"--threads must be between 1 and {most} ({MAX_THREADS_PER_CORE} per core of the {cores} "
                           f"here), not {value}; use --workers for more cores")
    return value


def _seconds(value: Any) -> float | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int | float) or not (value > 0 and math.isfinite(value)):
        raise NNBenchError(f"--timeout must be a finite number of seconds > 0, not {value}")
    return float(value)


def _budget(value: Any) -> int | None:
    if value is None:
        return None
    if isinstance(value, bool) or not isinstance(value, int) or value < 0:
        raise NNBenchError(f"--max-failures must be a whole number >= 0, not {value}")
    return value


def _name(value: Any) -> str | None:
    if value is None:
        return None
    if not isinstance(value, str) or not value:
        raise NNBenchError(f"--executor must be the name of an executor, not {value!r}")
    return value


def _switch(flag: str) -> Callable[[Any], bool]:
    def parse(value: Any) -> bool:
        if not isinstance(value, bool):
            raise NNBenchError(f"{flag} is true or false, not {value!r}")
        return value

    return parse


@dataclass(frozen=True)
class RunOption:
    """One run option: its keyword in ``nnbench.run`` (and field of :class:`RunOptions`), its help, its
    default and how a given value is checked.

    ``cli`` says how the command line takes it: ``value`` (``--timeout 30``), ``flag`` (``--download``) or
    ``negated`` (``--no-vectorize`` sets it false).
    """

    name: str
    help: str
    default: Any
    parse: Callable[[Any], Any]
    cli: Literal["value", "flag", "negated"] = "value"
    metavar: str | None = None
    value_type: type | None = None

    @property
    def flag(self) -> str:
        prefix = "--no-" if self.cli == "negated" else "--"
        return prefix + self.name.replace("_", "-")


RUN_OPTIONS: tuple[RunOption, ...] = (
    RunOption("workers", "Worker processes for CPU trials: auto is one per core (in this process for a grid too "
                         "small to pay for workers), 1 trains in this process.", AUTO, _count("--workers"),
              metavar="N|auto"),
    RunOption("per_device", "Trials training at once on each accelerator: auto measures what the device keeps busy.",
              AUTO, _count("--per-device"), metavar="N|auto"),
    RunOption("threads", "Torch threads per training process (more cores are better used through --workers).", 1,
              _threads, value_type=int),
    RunOption("executor", "inline, processes, ray, or one a plugin registers (default: this machine, in worker "
                          "processes or this one as --workers says; inline becomes processes with --workers > 1 or "
                          "--timeout).", None, _name),
    RunOption("timeout", "Stop a trial after this many seconds of training (status timeout).", None, _seconds,
              value_type=float),
    RunOption("max_failures", "Stop the grid once more trials than this failed or timed out.", None, _budget,
              value_type=int),
    RunOption("fail_fast", "Stop the grid at the first failed or timed-out trial.", False, _switch("--fail-fast"),
              cli="flag"),
    RunOption("vectorize", "Train the seeds of a configuration as one stacked ensemble where that is exact "
                           "(--no-vectorize: one by one).", True, _switch("--no-vectorize"), cli="negated"),
    RunOption("race", "Race the configurations: each starts with a few seeds, and one that its paired seeds show "
                      "worse than the best on validation data, beyond the ROPE, stops (status pruned); the rest go "
                      "on to every seed (docs/racing.md).", False, _switch("--race"), cli="flag"),
    RunOption("download", "Download data sets that tasks need and are missing.", False, _switch("--download"),
              cli="flag"),
)
"""Every run option, in the order ``nnbench run --help`` and ``help(nnbench.run)`` show them."""


@dataclass(frozen=True)
class RunOptions:
    """How to execute a run, checked once (:data:`RUN_OPTIONS` says what each means).

    ``workers`` and ``per_device`` are ``None`` for ``auto``; ``max_failures`` is ``0`` with ``fail_fast``;
    ``extra`` holds the executor's own options (Ray's ``address``), by name.
    """

    workers: int | None = None
    per_device: int | None = None
    threads: int = 1
    executor: str | None = None
    timeout: float | None = None
    max_failures: int | None = None
    fail_fast: bool = False
    vectorize: bool = True
    race: bool = False
    download: bool = False
    extra: Mapping[str, Any] = field(default_factory=dict)

    def __post_init__(self) -> None:
        for option in RUN_OPTIONS:
            object.__setattr__(self, option.name, option.parse(getattr(self, option.name)))
        if self.fail_fast:
            object.__setattr__(self, "max_failures", 0)
        object.__setattr__(self, "extra", dict(self.extra))

    @classmethod
    def from_values(cls, values: Mapping[str, Any], extra: Mapping[str, Any] | None = None) -> RunOptions:
        """The options among ``values`` (unset ones, or ``None``, take their defaults)."""
        names = {f.name for f in fields(cls)} - {"extra"}
        return cls(**{k: v for k, v in values.items() if k in names and v is not None}, extra=dict(extra or {}))
