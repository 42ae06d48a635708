"""One ``nnbench run``: expand the grid, skip what is stored, train the rest, store every result.

The runner is shared by the CLI and the Python API; it prints nothing itself except through the
``echo`` callable and the progress bar it is given.
"""

from __future__ import annotations

import dataclasses
import secrets
from collections.abc import Callable, Iterator, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

import pandas as pd

from nnbench.components import Catalogue
from nnbench.config import build_grid, load_grid_file
from nnbench.environment import available_devices, environment
from nnbench.errors import NNBenchError
from nnbench.grid import GridSpec, Skipped, Trial, expand_grid
from nnbench.plugins import PluginManager, collect_catalogue, make_plugin_manager
from nnbench.store import DEFAULT_STORE, ResultStore
from nnbench.train import TrialResult, train_trial


@dataclass
class Plan:
    """An expanded grid: the trials to train, those already stored, and the skipped combinations."""

    grid: GridSpec
    trials: list[Trial]
    todo: list[Trial]
    reused: list[Trial]
    skipped: list[Skipped]


@dataclass
class RunOutcome:
    """What a finished (or interrupted) run leaves: its id, its store and this run's results."""

    run_id: str
    store_path: Path
    plan: Plan
    results: list[TrialResult] = field(default_factory=list)
    interrupted: bool = False


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261129-061530-3fa2``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


def check_device(device: str) -> str:
    """The canonical name of ``device`` (``cuda`` -> ``cuda:0``), or an error listing those present."""
    import torch

    try:
        wanted = torch.device(device)
    except RuntimeError:
        raise NNBenchError(f"unknown device {device!r}; devices here: {', '.join(available_devices())}") from None
    present = available_devices()
    name = str(wanted) if wanted.index is not None or wanted.type in ("cpu", "mps") else f"{wanted.type}:0"
    if name not in present:
        raise NNBenchError(f"device {device!r} is not available; devices here: {', '.join(present)}")
    return name


class Session:
    """Plugins and registries loaded once, and the runs made with them."""

    def __init__(self, pm: PluginManager | None = None) -> None:
        self.pm = pm or make_plugin_manager()
        self.catalogue: Catalogue = collect_catalogue(self.pm)

    def plan(self, grid: GridSpec, store: ResultStore | None, force: bool = False) -> Plan:
        grid = dataclasses.replace(grid, device=check_device(grid.device))
        trials, skipped = expand_grid(grid, self.catalogue)
        done = store.finished_trial_ids(t.trial_id for t in trials) if store and not force else set()
        todo = [t for t in trials if t.trial_id not in done]
        reused = [t for t in trials if t.trial_id in done]
        return Plan(grid, trials, todo, reused, skipped)

    def execute(
        self,
        plan: Plan,
        store: ResultStore,
        progress: Callable[[Sequence[Trial]], Iterator[Trial]] | None = None,
        download: bool = False,
    ) -> RunOutcome:
        """Train ``plan.todo`` in this process, storing each result as soon as it is known.

        Tasks that need data files are prepared first (fetched only when ``download`` is set).
        Ctrl-C stops after marking the run interrupted; every finished trial stays stored and the
        next run of the same grid resumes from there.
        """
        self.prepare_tasks(plan.todo, download)
        run_id = new_run_id()
        outcome = RunOutcome(run_id, store.path, plan)
        store.start_run(run_id, plan.grid.to_dict(), environment(), len(plan.trials), plan.skipped)
        store.link_trials(run_id, [t.trial_id for t in plan.reused])
        self.pm.hook.before_run(run_id=run_id, trials=plan.todo)
        trials = progress(plan.todo) if progress else iter(plan.todo)
        try:
            for trial in trials:
                result = train_trial(trial, self.catalogue, self._after_epoch)
                store.save_result(run_id, result)
                outcome.results.append(result)
                self.pm.hook.after_trial(trial=trial, result=result)
        except KeyboardInterrupt:
            outcome.interrupted = True
            store.finish_run(run_id, "interrupted")
            raise
        store.finish_run(run_id, "finished")
        self.pm.hook.after_run(run_id=run_id, results=outcome.results)
        return outcome

    def prepare_tasks(self, trials: Sequence[Trial], download: bool) -> None:
        """Make sure every task's data are present before any trial starts."""
        for name in dict.fromkeys(t.task for t in trials):
            task = self.catalogue.tasks.get(name)
            if task.prepare is not None:
                task.prepare(download)

    def _after_epoch(self, trial: Trial, record: Any) -> None:
        self.pm.hook.after_epoch(trial=trial, record=record)


def run_from_python(
    grid_file: str | Path | None = None,
    *,
    store: str | Path = DEFAULT_STORE,
    force: bool = False,
    set_params: Sequence[str] = (),
    **axes: Any,
) -> pd.DataFrame:
    """``nnbench.run``: run a grid and return one row per trial of it (reused trials included)."""
    file_values = load_grid_file(grid_file) if grid_file else None
    grid = build_grid(file_values, list(set_params), **axes)
    session = Session()
    with ResultStore(store) as results:
        plan = session.plan(grid, results, force)
        outcome = session.execute(plan, results)
        return results.trials([outcome.run_id])
