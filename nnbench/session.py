"""The composition root: one session's plugins, domain and catalogue, and the run sequence.

A :class:`Session` makes the one plugin manager of a process's session (the command line and
``nnbench.run`` both start one), derives the domain (kinds and axes) and the catalogue from it, and
runs grids: :meth:`Session.run` is the sequence ``nnbench run`` and ``nnbench.run()`` share (check
and plan the grid before any store is opened, resume from the store, train, store every result as
it arrives). The session is the only writer of the store: executors hand results back and it
commits each one.
"""

from __future__ import annotations

import contextlib
import dataclasses
import json
import math
import os
import secrets
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from datetime import datetime
from pathlib import Path
from typing import Any

from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import Skipped, Trial, TrialResult
from nnbench.execution.environment import environment
from nnbench.execution.executors import ExecutorOptions, GridStopped
from nnbench.execution.scheduling import CostModel, Workers
from nnbench.execution.worker import reads_every_epoch
from nnbench.loading.catalogue import Catalogue, collect_catalogue
from nnbench.loading.plugins import (
    BUILTIN_PLUGINS,
    LifecycleHooks,
    PluginManager,
    make_plugin_manager,
    watch_interrupts,
)
from nnbench.machine import usable_cores
from nnbench.planning.csvtask import register_csv_tasks
from nnbench.planning.grid import GridSpec, expand_grid
from nnbench.planning.gridfile import build_grid, load_grid_file
from nnbench.planning.objects import PLUGIN_NAME as OBJECTS_PLUGIN
from nnbench.planning.objects import SessionComponents, adopt
from nnbench.planning.tuning import (
    check_tunable,
    configuration_key,
    final_trials,
    role_of,
    select_best,
    tuning_trials,
)
from nnbench.storage.store import ResultStore, StoreError
from nnbench.training.calibration import StackingChoices

COUNTED_AS_FAILURES = ("failed", "timeout")
MAX_THREADS_PER_CORE = 4  # past this, torch's thread pool only costs (and 100,000 threads cannot start)
WAIT_SECONDS = 0.5  # how often a run looks again at trials another run is training


@dataclass
class Plan:
    """An expanded grid: the trials to train, those already stored, and the skipped combinations.

    With tuning, ``trials`` holds the untuned defaults and the tuning trials; the final reruns are
    known only once the tuning trials are done (see :meth:`Session.execute`).
    """

    grid: GridSpec
    trials: list[Trial]
    todo: list[Trial]
    reused: list[Trial]
    skipped: list[Skipped]
    targets: dict[str, float | None] = field(default_factory=dict)
    notes: list[str] = field(default_factory=list)  # what the user should know about how the grid reads


AUTO = "auto"


def _count(value: int | str | None, flag: str) -> int | None:
    """A worker count as given (``auto`` or ``None``: decided for the grid), checked."""
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


@dataclass
class RunOptions:
    """How to execute a plan (not part of any trial's identity).

    ``workers`` (``None`` or ``"auto"``: one per core, in this process for a grid too small to pay
    for workers; ``1``: in this process) are the worker processes for CPU trials, ``per_device``
    (``None``: measured) those for each accelerator. ``executor`` ``None`` means this machine:
    ``inline`` or ``processes`` as ``workers`` decides.
    """

    executor: str | None = None
    workers: int | str | None = None
    per_device: int | str | None = None
    # One torch thread per process: small models gain little from intra-op threads, and under
    # load two threads per process ran a grid 10x slower here than one. Use --workers for cores.
    threads: int = 1
    timeout: float | None = None
    max_failures: int | None = None  # stop once more trials than this failed or timed out
    vectorize: bool = True
    download: bool = False
    extra: dict[str, Any] = field(default_factory=dict)  # the executor's own options (Ray's address)

    def validate(self) -> None:
        self.workers = _count(self.workers, "--workers")
        self.per_device = _count(self.per_device, "--per-device")
        cores = os.cpu_count() or 1
        if self.threads < 1 or self.threads > MAX_THREADS_PER_CORE * cores:
            raise NNBenchError(f"--threads must be between 1 and {MAX_THREADS_PER_CORE * cores} "
                               f"({MAX_THREADS_PER_CORE} per core of the {cores} here), not {self.threads}; use "
                               "--workers for more cores")
        if self.timeout is not None and not (self.timeout > 0 and math.isfinite(self.timeout)):
            raise NNBenchError(f"--timeout must be a finite number of seconds > 0, not {self.timeout}")
        if self.max_failures is not None and self.max_failures < 0:
            raise NNBenchError(f"--max-failures must be >= 0, not {self.max_failures}")

    def executor_name(self) -> str:
        """The executor whose options apply: ``processes`` for this machine (it takes no options of its
        own, as ``inline`` does not)."""
        return self.executor or "processes"

    def may_use_workers(self) -> bool:
        """Whether this run may start local worker processes (so their server can start early)."""
        if self.executor == "processes":
            return True
        if self.executor == "inline":
            return bool(self.timeout) or (isinstance(self.workers, int) and self.workers > 1)
        return self.executor is None and (self.workers != 1 or bool(self.timeout))


@dataclass
class RunOutcome:
    """What a finished, stopped or interrupted run leaves: its id, its store and this run's results."""

    run_id: str
    store_path: Path
    plan: Plan
    results: list[TrialResult] = field(default_factory=list)
    status: str = "running"
    log: list[str] = field(default_factory=list)


def check_overrides(trials: Sequence[Trial], catalogue: Catalogue,
                    overrides: Mapping[str, Mapping[str, Any]]) -> None:
    """Build once each model, optimizer, schedule and loss-stage component whose hyper-parameters the
    user overrode (a schedule is stepped, a criterion evaluated), so a bad value is one clear error
    before anything is stored rather than a column of failed trials. Components left at their
    defaults are not run here: a plugin that crashes or hangs must do so in a worker."""
    import torch

    from nnbench.training.trainer import build_model, choose_view, make_schedule

    models: dict[str, Trial] = {}
    optimizers: dict[str, Trial] = {}
    schedules: dict[str, Trial] = {}
    for trial in trials:
        overridden = [axis for axis in ("arch", *trial.components)
                      if trial.value(axis) in overrides.get(axis, {})]
        if overridden and any(catalogue.domain.kind(a).stage in ("core", "build", "model", "loss")
                              for a in overridden):
            models.setdefault(json.dumps([trial.task, trial.arch, trial.activation, trial.loss,
                                          trial.components, trial.params], sort_keys=True, default=str), trial)
        given_as_object = catalogue.optimizers.plugin_of(trial.optimizer) == OBJECTS_PLUGIN
        if trial.optimizer in overrides.get("optimizer", {}) or given_as_object:
            optimizers.setdefault(json.dumps([trial.optimizer, trial.params.get("optimizer")], sort_keys=True,
                                             default=str), trial)
        if trial.schedule in overrides.get("schedule", {}):
            schedules.setdefault(json.dumps([trial.schedule, trial.params.get("schedule")], sort_keys=True,
                                            default=str), trial)
    for trial in models.values():
        task = catalogue.tasks.get(trial.task)
        try:
            view = choose_view(task, catalogue.architectures.get(trial.arch).modalities)
            model = build_model(trial, catalogue, task, view)
            _check_training_criterion(trial, catalogue, task, view, model)
        except Exception as exc:
            given = "".join(f" and {k} {v!r} with {dict(trial.params.get(k, {}))}" for k, v in trial.components.items())
            raise NNBenchError(
                f"architecture {trial.arch!r} cannot be built for task {trial.task!r} with "
                f"{dict(trial.params.get('arch', {}))}{given}: {type(exc).__name__}: {exc}"
            ) from None
    for trial in optimizers.values():
        spec = catalogue.optimizers.get(trial.optimizer)
        try:
            spec.factory([torch.zeros(1, requires_grad=True)], lr=trial.lr, **dict(trial.params.get("optimizer", {})))
        except Exception as exc:
            raise NNBenchError(
                f"optimizer {trial.optimizer!r} rejects its hyper-parameters "
                f"{dict(trial.params.get('optimizer', {}))}: {type(exc).__name__}: {exc}"
            ) from None
    for trial in schedules.values():
        probe = torch.optim.SGD([torch.zeros(1, requires_grad=True)], lr=trial.lr)
        try:
            schedule = make_schedule(trial, catalogue, probe, 10)
            for _ in range(10):  # a bad value often shows only once the rate is computed
                probe.step()
                if schedule is not None:
                    schedule.step()
            rates = [group["lr"] for group in probe.param_groups]
            if not all(isinstance(r, int | float) and math.isfinite(r) and r >= 0 for r in rates):
                raise ValueError(f"it set the learning rate to {rates[0]!r}")
        except Exception as exc:
            raise NNBenchError(
                f"schedule {trial.schedule!r} rejects its hyper-parameters "
                f"{dict(trial.params.get('schedule', {}))}: {type(exc).__name__}: {exc}"
            ) from None


def _check_training_criterion(trial: Trial, catalogue: Catalogue, task: Any, view: Any, model: Any) -> None:
    """Evaluate the training criterion (loss-stage components included) once on a tiny batch."""
    import torch

    from nnbench.training.stages import training_criterion
    from nnbench.training.trainer import to_view

    if not any(catalogue.domain.kind(kind).stage == "loss" for kind in trial.components):
        return
    loss = catalogue.losses.get(trial.loss)
    x = to_view(torch.zeros(2, *task.input_shape), task.modality, view)
    y = torch.zeros(2, dtype=torch.int64) if task.kind != "regression" else torch.zeros(2, task.output_dim)
    criterion = training_criterion(loss.factory(), model, trial, catalogue)
    value = criterion(model(x), loss.encode_target(y, task))
    if not (isinstance(value, torch.Tensor) and value.numel() == 1 and torch.isfinite(value).all()):
        raise ValueError(f"the training criterion returned {value!r}, not a finite scalar")


def check_object_architectures(trials: Sequence[Trial], catalogue: Catalogue) -> None:
    """Build each architecture given as an object once per task and loss and run it on two training
    samples, so that a model that cannot read the task's inputs, or whose output does not fit the loss,
    is one clear error before anything is stored."""
    import torch

    from nnbench.training.trainer import build_model, choose_view, set_up

    seen: set[tuple[str, str, str]] = set()
    for trial in trials:
        key = (trial.arch, trial.task, trial.loss)
        if key in seen or catalogue.architectures.plugin_of(trial.arch) != OBJECTS_PLUGIN:
            continue
        seen.add(key)
        task = catalogue.tasks.get(trial.task)
        outputs = catalogue.losses.get(trial.loss).outputs(task)
        view = choose_view(task, catalogue.architectures.get(trial.arch).modalities)
        where = f"architecture {trial.arch!r} on task {trial.task!r} ({view} inputs of shape {task.input_shape})"
        try:
            model = build_model(trial, catalogue, task, view)
            with torch.no_grad():
                out = model(set_up(trial, catalogue).x[:2])
        except Exception as exc:
            raise NNBenchError(f"{where} fails: {type(exc).__name__}: {exc}") from None
        if not isinstance(out, torch.Tensor) or tuple(out.shape) != (2, outputs):
            got = tuple(out.shape) if isinstance(out, torch.Tensor) else type(out).__name__
            raise NNBenchError(f"{where} returns {got} for a batch of 2, but loss {trial.loss!r} needs (2, {outputs}): "
                               "give it the build arguments (input_spec, outputs, activation) so it can fit any task, "
                               "or choose a task and loss it fits")


def new_run_id() -> str:
    """A sortable, unique run id such as ``20261129-061530-3fa2``."""
    return f"{datetime.now():%Y%m%d-%H%M%S}-{secrets.token_hex(2)}"


class RunObserver:
    """What the run sequence tells whoever started it; every method does nothing by default."""

    def planned(self, plan: Plan) -> None:
        """The grid is expanded and checked against the store; training is about to start."""

    def started(self, trials: list[Trial]) -> None:
        """A work unit (one trial, or seeds of one configuration trained together) starts training."""

    def result(self, result: TrialResult) -> None:
        """A trial's result was stored."""

    def log(self, message: str) -> None:
        """Something the user should know (a fallback, the end of tuning)."""

    def training_location(self, in_process: bool) -> None:
        """Trials are about to train in this process (``in_process``), or in others (workers, a cluster)
        while this one mostly waits, with time for other work that slows no timed training. Called as
        each executor starts."""

    def finished(self, outcome: RunOutcome, store: ResultStore) -> None:
        """The run ended without an exception (finished, or stopped by the failure budget); ``store``
        is still open, for reading what the run stored."""

    def close(self) -> None:
        """The run ended, however it ended."""


class Session:
    """One session: its plugin manager (made here, once), the domain and catalogue derived from it,
    and the runs made with them."""

    def __init__(self, pm: PluginManager | None = None) -> None:
        self.pm = pm or make_plugin_manager()
        self.catalogue: Catalogue = collect_catalogue(self.pm)
        self.domain = self.catalogue.domain
        self.objects = SessionComponents()
        self.notes: list[str] = []

    def adopt(self, values: Mapping[str, Any]) -> dict[str, Any]:
        """``values`` (grid key -> what was given) with every object (a class, a function, a spec) replaced by
        the name of its component. The components are registered by this session's in-process plugin, which
        worker processes receive by value (see :mod:`nnbench.planning.objects`)."""
        names, found = adopt(values, self.domain, self.catalogue)
        if found:
            for kind, specs in found.specs.items():
                for spec in specs:
                    self.objects.add(kind, spec, found.identities[(kind, spec.name)])
            if not self.pm.is_registered(self.objects):
                self.pm.register(self.objects, name=OBJECTS_PLUGIN)
            self.catalogue = Catalogue(self.domain, self.pm)  # registries filled again, with the new components
        self.notes += [note for note in found.notes if note not in self.notes]
        return names

    def grid(self, grid_file: str | Path | None = None, assignments: Sequence[str] = (), **flags: Any) -> GridSpec:
        """A grid from a grid file, ``--set`` assignments and flags, over this session's axes."""
        file_values = load_grid_file(grid_file, self.domain) if grid_file else None
        return build_grid(file_values, list(assignments), domain=self.domain, **flags)

    def resolve_devices(self, wanted: Sequence[str]) -> list[str]:
        """Turn ``auto``, ``all``, ``cuda`` and names into devices present here, or explain."""
        present = list(self.catalogue.devices)
        resolved: list[str] = []
        for name in wanted:
            if name == "all":
                resolved += present
            elif name == "auto":
                resolved.append(next((d for d in present if d != "cpu"), "cpu"))
            elif name in present:
                resolved.append(name)
            elif name == "cuda" and "cuda:0" in present:
                resolved.append("cuda:0")
            else:
                raise NNBenchError(
                    f"device {name!r} is not available; devices here: {', '.join(present)} "
                    "(or auto, all)"
                )
        return list(dict.fromkeys(resolved))

    def plan(self, grid: GridSpec, store: ResultStore | None, force: bool = False) -> Plan:
        """Expand and check ``grid`` (every check that can fail before anything is trained); the
        trials ``store`` already holds are marked reused."""
        grid = grid.with_values("device", self.resolve_devices(grid["device"]))
        task_params = register_csv_tasks(self.catalogue, grid["task"], grid.target, grid.kind)
        trials, skipped = expand_grid(grid, self.catalogue, task_params)
        check_overrides(trials, self.catalogue, grid.overrides)
        check_object_architectures(trials, self.catalogue)
        if grid.tune:
            check_tunable(grid, self.catalogue)
            trials += tuning_trials(trials, grid, self.catalogue)
        todo, reused = self._split_stored(trials, store, force)
        tasks = list(dict.fromkeys(t.task for t in trials))
        unknown = sorted(set(grid.target_metric) - set(tasks) - {"*"})
        if unknown:
            raise NNBenchError(f"--target-metric names task {unknown[0]!r}, which is not in the grid; "
                               f"tasks: {', '.join(tasks)}")
        if (grid.target or grid.kind) and not any(name.startswith("csv:") for name in tasks):
            raise NNBenchError("--target and --kind describe csv:PATH tasks, and the grid has none; "
                               "add --task csv:FILE or drop them")
        default_target = grid.target_metric.get("*")
        targets = {name: grid.target_metric.get(name, default_target or self.catalogue.tasks.get(name).target)
                   for name in dict.fromkeys(t.task for t in trials)}
        return Plan(grid, trials, todo, reused, skipped, targets, [*self.notes, *self._own_nonlinearities(grid)])

    def _own_nonlinearities(self, grid: GridSpec) -> list[str]:
        """A note per architecture of the grid that ignores the activation axis, when the axis varies."""
        activations = grid["activation"]
        if len(activations) < 2:
            return []
        return [f"architecture {name!r} builds its own nonlinearities: the activation axis does not apply to it "
                f"(its trials are not repeated for the {len(activations)} activations)"
                for name in dict.fromkeys(grid["arch"])
                if name in self.catalogue.architectures and not self.catalogue.architectures.get(name).takes_activation
                and self.catalogue.architectures.plugin_of(name) != OBJECTS_PLUGIN]

    def resume(self, plan: Plan, store: ResultStore, force: bool = False) -> Plan:
        """``plan`` with the trials ``store`` already holds moved from ``todo`` to ``reused``."""
        todo, reused = self._split_stored(plan.trials, store, force)
        return dataclasses.replace(plan, todo=todo, reused=reused)

    @staticmethod
    def _split_stored(trials: list[Trial], store: ResultStore | None, force: bool) -> tuple[list[Trial], list[Trial]]:
        done = store.finished_trial_ids(t.trial_id for t in trials) if store and not force else set()
        return [t for t in trials if t.trial_id not in done], [t for t in trials if t.trial_id in done]

    def prepare_tasks(self, trials: Sequence[Trial], download: bool) -> None:
        """Make sure every task's data are present before any trial starts."""
        for name in dict.fromkeys(t.task for t in trials):
            task = self.catalogue.tasks.get(name)
            if task.prepare is not None:
                task.prepare(download)

    def _extra_plugins(self) -> list[tuple[str, Any]]:
        """Plugins registered in this process only (not built in, not entry points), with their names."""
        origins = getattr(self.pm, "origins", {})
        return [(name, p) for name, p in self.pm.list_name_plugin()
                if p is not None and name not in origins and name not in BUILTIN_PLUGINS]

    def execute(
        self,
        plan: Plan,
        store: ResultStore,
        options: RunOptions | None = None,
        on_result: Callable[[TrialResult], None] | None = None,
        on_log: Callable[[str], None] | None = None,
        on_start: Callable[[list[Trial]], None] | None = None,
        on_location: Callable[[bool], None] | None = None,
    ) -> RunOutcome:
        """Train ``plan.todo`` with the chosen executor, storing each result as soon as it arrives.

        Each unit is claimed in the store just before it trains, so a trial that another live run
        on the same store is training is not trained twice: this run waits for it and covers its
        result (or trains it after all, should that run end without storing it). Ctrl-C
        (``KeyboardInterrupt``) marks the run interrupted and propagates; every finished trial
        stays stored and the next run of the same grid resumes from there. A lifecycle hook that
        raises is named once and disabled; the run goes on.
        """
        options = options or RunOptions()
        options.validate()
        from nnbench.execution.scheduling import CostModel
        from nnbench.training.calibration import StackingChoices

        hooks = LifecycleHooks(self.pm)  # warns with a PluginHookWarning: one line on the command line
        self.prepare_tasks(plan.todo, options.download)
        outcome = RunOutcome(new_run_id(), store.path, plan)
        sink = _StoringSink(self, store, outcome, options.max_failures, on_result, on_log, hooks, on_start,
                            on_location)
        sink.replacing = store.finished_at(t.trial_id for t in plan.todo)  # --force retrains these
        context = _Execution(self, store, options, sink, StackingChoices(), CostModel(self.catalogue,
                                                                                     store.epoch_times()))
        first = context.decide(plan.todo)
        store.start_run(outcome.run_id, {**plan.grid.to_dict(), "executor": first.executor,
                                         "workers": first.description(), "timeout": options.timeout,
                                         "targets": plan.targets, "references": self._references(plan)},
                        environment({e.spec.name: e.spec.description for e in self.catalogue.devices.entries()},
                                    options.threads), len(plan.trials), plan.skipped)
        store.link_trials(outcome.run_id, [t.trial_id for t in plan.reused])

        def train(trials: list[Trial], decision: _Decision | None = None) -> None:
            """Train ``trials``, then those that another run was training and left to this one."""
            context.train(trials, decision or context.decide(trials))
            while sink.elsewhere:
                freed = sink.settle_elsewhere()
                if freed:
                    context.train(freed, context.decide(freed))

        try:
            with watch_interrupts():
                hooks("before_run", run_id=outcome.run_id, trials=plan.todo)
                train(plan.todo, first)
                if plan.grid.tune:
                    finals = self._final_trials(plan, store)
                    todo, reused = self._split_stored(finals, store, force=False)
                    store.link_trials(outcome.run_id, [t.trial_id for t in reused])
                    sink.log(f"tuning done: {len(finals)} final trials of the best settings, {len(todo)} to train")
                    train(todo)
            outcome.status = "finished"
        except GridStopped:
            outcome.status = "stopped"
        except BaseException as exc:  # Ctrl-C, a broken executor: stored trials stay, the run says why it ended
            outcome.status = "interrupted" if isinstance(exc, KeyboardInterrupt) else "failed"
            with contextlib.suppress(StoreError):  # unwritable: the run reads as interrupted once this process ends
                store.finish_run(outcome.run_id, outcome.status)
            raise
        store.finish_run(outcome.run_id, outcome.status)
        hooks("after_run", run_id=outcome.run_id, results=outcome.results)
        return outcome

    def _references(self, plan: Plan) -> dict[str, list[float]]:
        """Each task's reference scores (trivial, perfect), recorded with the run for the report's scale."""
        tasks = (self.catalogue.tasks.get(name) for name in plan.targets)
        return {task.name: list(pair) for task in tasks if (pair := task.reference_scores) is not None}

    def _final_trials(self, plan: Plan, store: ResultStore) -> list[Trial]:
        """Select each configuration's best tuning trial on validation data; rerun it over the seeds."""
        tuning = [t for t in plan.trials if role_of(t) == "tune"]
        outcomes = store.outcomes([t.trial_id for t in tuning])
        by_configuration: dict[str, list[Trial]] = {}
        for trial in tuning:
            by_configuration.setdefault(configuration_key(trial), []).append(trial)
        finals = []
        for candidates in by_configuration.values():
            higher = self.catalogue.tasks.get(candidates[0].task).higher_is_better
            best = select_best([(t, *outcomes.get(t.trial_id, ("missing", None))) for t in candidates], higher)
            if best is not None:
                finals += final_trials(best, plan.grid.seeds)
        return finals

    def check_options(self, options: RunOptions) -> None:
        """Every problem with ``options`` (an unknown executor included) before anything starts."""
        options.validate()
        spec = self.catalogue.executors.get(options.executor_name())
        unknown = sorted(set(options.extra) - {o.name for e in self.catalogue.executors.entries()
                                               for o in e.spec.options})
        if unknown:
            raise NNBenchError(f"no executor takes the option {unknown[0]!r}")
        given = sorted(k for k, v in options.extra.items() if v is not None and k not in {o.name for o in spec.options})
        if given:
            raise NNBenchError(f"--{given[0].replace('_', '-')} is an option of another executor, not of "
                               f"{spec.name!r}")

    def dry_run(self, grid: GridSpec, store_path: str | Path, force: bool = False) -> Plan:
        """The plan of ``grid`` against the store at ``store_path`` (read only; absent: nothing stored)."""
        plan = self.plan(grid, None, force)
        if Path(store_path).exists():
            with ResultStore(store_path, readonly=True) as results:
                plan = self.resume(plan, results, force)
        return plan

    def run(self, grid: GridSpec, store_path: str | Path, options: RunOptions | None = None, *,
            force: bool = False, observer: RunObserver | None = None) -> RunOutcome:
        """The run sequence: check the options, plan the grid (all before the store is opened or
        created), resume from the store, train what is left and store each result.

        Ctrl-C (``KeyboardInterrupt``) marks the run interrupted and propagates; every finished
        trial stays stored.
        """
        options = options or RunOptions()
        observer = observer or RunObserver()
        self.check_options(options)
        if options.may_use_workers():
            from nnbench.execution.launching import prestart

            prestart()  # the workers' server imports torch while the grid is planned
        plan = self.plan(grid, None, force)
        with ResultStore(store_path, axes=self.domain.axes) as results:
            for run_id in results.ended_runs:
                observer.log(f"run {run_id} in {results.path} ended without finishing (its process is gone): "
                             "marked interrupted; its finished trials stay stored")
            plan = self.resume(plan, results, force)
            observer.planned(plan)
            try:
                outcome = self.execute(plan, results, options, on_result=observer.result, on_log=observer.log,
                                       on_start=observer.started, on_location=observer.training_location)
            finally:
                observer.close()
            observer.finished(outcome, results)
            return outcome


@dataclass(frozen=True)
class _Decision:
    """Which executor trains a batch of trials, with how many workers, and what to tell the user."""

    executor: str
    workers: Workers | None  # None: an executor that is not this machine's (Ray, a plugin's)

    def description(self) -> Any:
        if self.workers is None or self.workers.inline:
            return None if self.workers is None else 1
        return {"cpu": self.workers.cpu, "per_device": self.workers.per_device or "auto"}


@dataclass
class _Execution:
    """One run's training: the executor chosen for each batch of trials (the grid, then a tuning
    protocol's final trials), its stacking choices and cost estimates kept across them."""

    session: Session
    store: ResultStore
    options: RunOptions
    sink: _StoringSink
    choices: StackingChoices
    cost: CostModel

    def units(self, trials: list[Trial]) -> list[list[Trial]]:
        from nnbench.training.ensemble import stack_groups

        units = stack_groups(trials, self.session.catalogue) if self.options.vectorize else [[t] for t in trials]
        return sorted(units, key=lambda unit: -len(unit) * self.cost.seconds(unit[0]))  # longest first

    def decide(self, trials: list[Trial]) -> _Decision:
        """The executor for ``trials``: the one asked for, or this machine's cores as ``--workers`` says."""
        from nnbench.execution.scheduling import fill_workers, is_accelerator, plan_items, resolve_workers

        options = self.options
        if options.executor not in (None, "inline", "processes"):
            return _Decision(str(options.executor), None)
        catalogue = self.session.catalogue
        requested = _count(options.workers, "--workers")
        if options.executor == "inline":
            requested = requested or 1
        items = plan_items(self.units(trials), catalogue, self.choices, options.vectorize, self.cost)
        cpu_items = fill_workers([i for i in items if not is_accelerator(i.device)],
                                 requested or max(1, usable_cores() // options.threads), catalogue, self.choices,
                                 self.cost)
        items = cpu_items + [i for i in items if is_accelerator(i.device)]
        workers = resolve_workers(requested, _count(options.per_device, "--per-device"), items, options.threads,
                                  options.timeout)
        if options.executor == "processes" and workers.inline:
            wanted = requested or max(1, usable_cores() // options.threads)
            workers = dataclasses.replace(workers, inline=False, cpu=max(1, min(len(items), wanted)))
        return _Decision("inline" if workers.inline else "processes", workers)

    def executor(self, decision: _Decision, workers: int | None = None) -> Any:
        options, catalogue = self.options, self.session.catalogue
        spec = catalogue.executors.get(decision.executor)
        if workers is None:
            workers = decision.workers.cpu if decision.workers else _count(options.workers, "--workers")
        return spec.factory(ExecutorOptions(
            workers=max(1, workers or usable_cores()), per_device=_count(options.per_device, "--per-device"),
            threads=options.threads, timeout=options.timeout, vectorize=options.vectorize,
            extra={o.name: options.extra.get(o.name) for o in spec.options},
            extra_plugins=self.session._extra_plugins(), catalogue=catalogue,
            on_epoch=lambda trial, record: self.sink.hooks("after_epoch", trial=trial, record=record),
            test_each_epoch=reads_every_epoch(self.session.pm), choices=self.choices, cost=self.cost,
        ))

    def train(self, trials: list[Trial], decision: _Decision) -> None:
        """Train ``trials`` as decided. In this process, trials that failed before or were in training
        when an earlier run's process died train first in a worker process, where a crash costs them alone."""
        for note in decision.workers.notes if decision.workers else ():
            self.sink.log(note)
        if decision.executor == "inline":
            risky = self.risky(trials)
            if risky:
                self.sink.trains_in_process(False)
                self.executor(_Decision("processes", decision.workers), workers=1).run(
                    self.units([t for t in trials if t.trial_id in risky]), self.sink)
                trials = [t for t in trials if t.trial_id not in risky]
        self.sink.trains_in_process(decision.executor == "inline")
        self.executor(decision).run(self.units(trials), self.sink)

    def risky(self, trials: list[Trial]) -> set[str]:
        """The trials to keep out of this process: stored as failed or timed out, or in training when
        the process of an earlier run died (each named)."""
        ids = [t.trial_id for t in trials]
        crashed = self.store.crashed_trials(ids)
        by_id = {t.trial_id: t for t in trials}
        for trial_id, run_id in crashed.items():
            trial = by_id[trial_id]
            self.sink.log(f"trial {trial_id} ({trial.task} {trial.label()} seed {trial.seed}) was in training when "
                          f"the process of run {run_id} died; it trains in a worker process now, where a crash "
                          "costs it alone")
        failed = {t for t, (status, _) in self.store.outcomes(ids).items() if status in COUNTED_AS_FAILURES}
        return set(crashed) | failed


class _StoringSink:
    """Claims each unit before it trains, commits each result, calls ``after_trial``, and stops the
    grid past the failure budget. Trials that another live run is training wait in ``elsewhere``."""

    def __init__(self, session: Session, store: ResultStore, outcome: RunOutcome, max_failures: int | None,
                 on_result: Callable[[TrialResult], None] | None, on_log: Callable[[str], None] | None,
                 hooks: LifecycleHooks | None = None, on_start: Callable[[list[Trial]], None] | None = None,
                 on_location: Callable[[bool], None] | None = None) -> None:
        self.session, self.store, self.outcome = session, store, outcome
        self.max_failures, self.on_result, self.on_log, self.on_start = max_failures, on_result, on_log, on_start
        self.on_location = on_location
        self.hooks = hooks or LifecycleHooks(session.pm)
        self.failures = 0
        self.replacing: dict[str, str] = {}  # finished trials this run retrains (--force), as stored
        self.elsewhere: dict[str, Trial] = {}
        self.in_process = True  # whether the executor now running trains in this process

    def trains_in_process(self, in_process: bool) -> None:
        """Note, and tell whoever started the run, where the executor about to run trains."""
        self.in_process = in_process
        if self.on_location is not None:
            self.on_location(in_process)

    def claim(self, trials: Sequence[Trial]) -> list[Trial]:
        """The trials of a unit this run may train now; those another live run trains are set aside,
        and those another run stored since this one planned are covered as reused."""
        mine = self.store.claim(self.outcome.run_id, trials, self.replacing, in_process=self.in_process)
        if mine and self.on_start:
            self.on_start(mine)
        if len(mine) < len(trials):
            chosen = {t.trial_id for t in mine}
            rest = [t for t in trials if t.trial_id not in chosen]
            busy = self.store.claimed_elsewhere(self.outcome.run_id, [t.trial_id for t in rest])
            self._cover([t for t in rest if t.trial_id not in busy])
            if busy and not self.elsewhere:
                self.log(f"{len(busy)} trials are being trained by another run on {self.store.path}; this run "
                         "trains the others and then waits for them")
            self.elsewhere.update({t.trial_id: t for t in rest if t.trial_id in busy})
        return mine

    def settle_elsewhere(self) -> list[Trial]:
        """Wait until some trial that another run was training is stored (covered here as reused) or
        released (returned, to be trained by this run)."""
        while True:
            waiting = list(self.elsewhere.values())
            busy = self.store.claimed_elsewhere(self.outcome.run_id, [t.trial_id for t in waiting])
            done = self.store.finished_at(t.trial_id for t in waiting if t.trial_id not in busy)
            settled = [t for t in waiting if t.trial_id not in busy]
            if settled:
                for trial in settled:
                    del self.elsewhere[trial.trial_id]
                self._cover([t for t in settled if t.trial_id in done and self.replacing.get(t.trial_id)
                             != done[t.trial_id]])
                return [t for t in settled if t.trial_id not in done
                        or self.replacing.get(t.trial_id) == done[t.trial_id]]
            time.sleep(WAIT_SECONDS)

    def _cover(self, trials: list[Trial]) -> None:
        if trials:
            self.store.link_trials(self.outcome.run_id, [t.trial_id for t in trials])
            self.outcome.plan.reused.extend(trials)

    def result(self, result: TrialResult) -> None:
        if not result.metric_name:
            result.metric_name = self.session.catalogue.tasks.get(result.trial.task).metric
        self.store.save_result(self.outcome.run_id, result)
        self.outcome.results.append(result)
        self.hooks("after_trial", trial=result.trial, result=result)
        if self.on_result:
            self.on_result(result)
        self.failures += result.status in COUNTED_AS_FAILURES
        if self.max_failures is not None and self.failures > self.max_failures:
            raise GridStopped(f"{self.failures} trials failed or timed out (--max-failures {self.max_failures})")

    def log(self, message: str) -> None:
        self.outcome.log.append(message)
        if self.on_log:
            self.on_log(message)
