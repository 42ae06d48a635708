"""The signature and docstring of ``nnbench.run``, made from a session's axes and executors: every kind, those of the
plugins installed included, and every executor's own options. ``nnbench.run`` asks for them only when they are read
(``help(nnbench.run)``, ``nnbench.run?``), so ``import nnbench`` loads no plugin."""

from __future__ import annotations

import inspect
from typing import Any

from nnbench.contract.paths import DEFAULT_STORE
from nnbench.contract.run_options import RUN_OPTIONS

GRID_OPTIONS = {
    "tune": "hyper-parameters to tune on validation data (``['lr']``, ``'lr,momentum'``)",
    "budget": "tuning trials per configuration, with ``tune``",
    "target_metric": "validation target for time-to-target: a number, or ``{task: number}``",
    "target": "the column to predict, for ``csv:PATH`` tasks",
    "kind": "``binary``, ``multiclass`` or ``regression`` for ``csv:PATH`` tasks (inferred when omitted)",
}

CALL_OPTIONS = (
    ("store", DEFAULT_STORE, "the results database (SQLite)"),
    ("force", False, "retrain trials that are already stored"),
    ("dry_run", False, "plan only: return the planned trials (with their state) without training"),
    ("quiet", False, "print nothing (no plan, progress bar or leaderboard)"),
    ("rope", None, "the half-width of practical equivalence a race (``race=True``) decides with: a number for "
                   "every task (``0.01``), or by task or metric (``{'moons': 0.01}``, ``{'accuracy': 0.01}``); "
                   "None: each metric's default"),
)

INTRODUCTION = """\
Run a grid and return one row per trial of it (reused trials included) as a DataFrame.

The same sequence as ``nnbench run``: the grid is checked and planned before any store is opened,
trials already in ``store`` are reused, the rest are trained and stored one by one; the plan, a
progress bar with the time left and what is training, and a leaderboard per task are printed.

Every axis takes names (a list, or comma-separated text; wildcards and ``'all'``), Python objects
(a class or function defined in the notebook, a torch class, a spec) or a mapping
``{name: object}``, mixed freely; a mapping's value may be a name too (``{'relu': 'ReLU'}``). A name
you give your own object is yours in the call even where a built-in has it (``arch={'cnn': MyCNN}``
is shown as ``cnn (yours)``); torch's own class of a built-in (``torch.optim.RMSprop``) is the
built-in. An optimizer's required arguments come with ``functools.partial(MyOptimizer, lr=0.01,
beta=0.9)`` (or ``lr=...`` for the learning rate); see :mod:`nnbench.planning.converters` for what
each kind accepts. Unset axes take the default grid's values.

In a notebook, an error of bad input is one line: ``%tb`` shows its traceback."""


def signature_and_doc(session: Any) -> tuple[inspect.Signature, str]:
    """``nnbench.run``'s signature and docstring for ``session`` (a :class:`nnbench.session.Session`)."""
    keyword = inspect.Parameter.KEYWORD_ONLY
    parameters = [inspect.Parameter("grid_file", inspect.Parameter.POSITIONAL_OR_KEYWORD, default=None)]
    lines = [INTRODUCTION, "", "Axes:"]
    for ax in session.domain.axes:
        shown = (repr(ax.default[0]) if ax.count else repr(list(ax.default))) if ax.default else \
            "the default grid's (``nnbench run --dry-run`` lists it)"
        record = session.domain.kind_of(ax.name)
        added = record is not None and record.stage != "core" and not record.plugin.startswith("nnbench.builtin")
        origin = f" A kind of plugin {record.plugin!r}." if added and record is not None else ""
        parameters.append(inspect.Parameter(ax.grid_key, keyword, default=None))
        lines.append(f"    {ax.grid_key}: {ax.help} Default: {shown}.{origin}")
    lines += ["", "Grid settings:"]
    for name, text in GRID_OPTIONS.items():
        parameters.append(inspect.Parameter(name, keyword, default=None))
        lines.append(f"    {name}: {text}.")
    parameters.append(inspect.Parameter("set_params", keyword, default=()))
    lines.append("    set_params: hyper-parameter overrides, ``['arch.fnn.hidden=[128,128]']``.")
    lines += ["", "Running:"]
    for option in RUN_OPTIONS:
        parameters.append(inspect.Parameter(option.name, keyword, default=option.default))
        lines.append(f"    {option.name}: {option.help} Default: {option.default!r}.")
    for name, default, text in CALL_OPTIONS:
        parameters.append(inspect.Parameter(name, keyword, default=default))
        lines.append(f"    {name}: {text}. Default: {default!r}.")
    executor_options: dict[str, tuple[list[str], str]] = {}  # option -> the executors taking it, its help
    for entry in session.catalogue.executors.entries():
        for option in entry.spec.options:
            executor_options.setdefault(option.name, ([], option.help))[0].append(entry.spec.name)
    if executor_options:
        lines += ["", "Executor options (with ``executor=``):"]
        for name, (executors, text) in executor_options.items():
            parameters.append(inspect.Parameter(name, keyword, default=None))
            lines.append(f"    {name}: {text} (executor {', '.join(executors)}).")
    lines += ["", "Returns one row per trial of the run (with ``dry_run``: per planned trial)."]
    return inspect.Signature(parameters), "\n".join(lines)
