"""The run sequence: plan -> resume -> execute -> store, which ``nnbench run`` and ``nnbench.run()`` share.

A :class:`Session` makes the one plugin manager of a process's session, derives the domain (kinds and axes) and the
catalogue from it, and runs grids: :meth:`Session.run` checks and plans the grid before any store is opened, resumes
from the store, has the planner make a work plan (:mod:`nnbench.execution.planner`) and the chosen executor train
it, and stores every result as it arrives through the run's sink (:mod:`nnbench.storing`), which alone writes the
store and tells the run's observer (:mod:`nnbench.observer`).
"""

from __future__ import annotations

import contextlib
import dataclasses
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, cast

from nnbench.analysis.rope import Rope
from nnbench.contract.errors import NNBenchError
from nnbench.contract.executor import ExecutorLost, GridStopped, WorkPlan
from nnbench.contract.run_options import RunOptions
from nnbench.contract.specs import Device
from nnbench.contract.trial import Skipped, Trial, TrialResult
from nnbench.execution.costs import CostModel
from nnbench.execution.environment import environment
from nnbench.execution.forecast import Forecast
from nnbench.execution.job import ItemTraining
from nnbench.execution.launching import prestart
from nnbench.execution.messages import pack_plugins
from nnbench.execution.planner import LocalExecutors, WorkQueue, choose_workers, plan_work, work_items
from nnbench.execution.racing import Race, check_race
from nnbench.loading.catalogue import Catalogue, collect_catalogue
from nnbench.loading.plugins import (
    BUILTIN_PLUGINS,
    LifecycleHooks,
    PluginManager,
    make_plugin_manager,
    watch_interrupts,
)
from nnbench.observer import RunObserver
from nnbench.planning.csvtask import register_csv_tasks
from nnbench.planning.devices import resolve_devices
from nnbench.planning.grid import GridSpec, expand_grid
from nnbench.planning.gridfile import build_grid, load_grid_file
from nnbench.planning.objects import PLUGIN_NAME as OBJECTS_PLUGIN
from nnbench.planning.objects import SessionComponents, adopt
from nnbench.planning.tuning import check_tunable, final_trials, role_of, select_best, tuning_key, tuning_trials
from nnbench.storage.store import ResultStore, StoreError, new_run_id
from nnbench.storing import COUNTED_AS_FAILURES, StoringSink


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


@dataclass
class RunOutcome:
    """What a finished, stopped or interrupted run leaves: its id, its store and this run's results."""

    run_id: str
    store_path: Path
    plan: Plan
    results: list[TrialResult] = field(default_factory=list)
    status: str = "running"
    log: list[str] = field(default_factory=list)


class Session:
    """One session: its plugin manager (made here, once), the domain and catalogue derived from it,
    and the runs made with them."""

    def __init__(self, pm: PluginManager | None = None) -> None:
        self.pm = pm or make_plugin_manager()
        self.catalogue: Catalogue = collect_catalogue(self.pm)
        self.domain = self.catalogue.domain
        self.objects = SessionComponents()
        self.notes: list[str] = []
        self._remote: dict[tuple[str, str], list[Device] | None] = {}  # executor and options -> devices there

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

    def executor_name(self, options: RunOptions) -> str:
        """The executor that trains ``options``' trials and whose own options apply: this machine's with workers
        unless ``--executor`` names another."""
        return options.executor or LocalExecutors.of(self.catalogue).workers

    def remote_devices(self, options: RunOptions | None,
                       log: Callable[[str], None] | None = None) -> list[Device] | None:
        """The devices where ``options``' executor trains its trials when that is not this machine (a cluster's,
        asked of it once per session: it may connect and wait for nodes, telling ``log``); ``None``: this
        machine's."""
        if options is None:
            return None
        spec = self.catalogue.executors.get(self.executor_name(options))
        if spec.devices is None:
            return None
        own = {o.name: options.extra.get(o.name) for o in spec.options}
        key = (spec.name, repr(sorted(own.items())))
        if key not in self._remote:
            found = spec.devices(own, log or self.notes.append)
            self._remote[key] = None if found is None else list(found)
        return self._remote[key]

    def resolve_devices(self, wanted: Sequence[str], options: RunOptions | None = None) -> list[str]:
        """Turn ``auto``, ``all``, kinds and names into the devices trials ask for, against the devices where
        ``options``' executor trains them (this machine's, unless it says otherwise), or explain (see
        :mod:`nnbench.planning.devices`)."""
        remote = self.remote_devices(options)
        if remote is None:
            return resolve_devices(wanted, list(self.catalogue.devices))
        return resolve_devices(wanted, [d.name for d in remote], indices=False,
                               where=f"on the {self.executor_name(options) if options else ''} executor's machines")

    def plan(self, grid: GridSpec, store: ResultStore | None, force: bool = False,
             options: RunOptions | None = None) -> Plan:
        """Expand and check ``grid`` (every check that can fail before anything is trained), its devices
        resolved where ``options``' executor trains; the trials ``store`` already holds are marked reused."""
        grid = grid.with_values("device", self.resolve_devices(grid["device"], options))
        task_params = register_csv_tasks(self.catalogue, grid["task"], grid.target, grid.kind)
        trials, skipped = expand_grid(grid, self.catalogue, task_params)
        if grid.overrides or self.pm.is_registered(self.objects):
            from nnbench.training.preflight import check_object_architectures, check_overrides  # torch: only here

            check_overrides(trials, self.catalogue, grid.overrides)
            check_object_architectures(trials, self.catalogue)
        if grid.tune:
            check_tunable(grid, self.catalogue)
            trials += tuning_trials(trials, grid, self.catalogue)
        if options is not None and options.race:
            validation = grid.to_dict().get("validation") or ()
            check_race(trials, grid.seeds, [validation] if isinstance(validation, str) else validation)
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

    def check_options(self, options: RunOptions) -> None:
        """Every problem with the executor-specific ``options`` (an unknown executor included, or one that cannot
        run here) before anything starts; the rest were checked when ``options`` was made."""
        spec = self.catalogue.executors.get(self.executor_name(options))
        unknown = sorted(set(options.extra) - {o.name for e in self.catalogue.executors.entries()
                                               for o in e.spec.options})
        if unknown:
            raise NNBenchError(f"no executor takes the option {unknown[0]!r}")
        given = sorted(k for k, v in options.extra.items() if v is not None and k not in {o.name for o in spec.options})
        if given:
            raise NNBenchError(f"--{given[0].replace('_', '-')} is an option of another executor, not of "
                               f"{spec.name!r}")
        if spec.check is not None:
            spec.check({o.name: options.extra.get(o.name) for o in spec.options})

    def dry_run(self, grid: GridSpec, store_path: str | Path, force: bool = False,
                options: RunOptions | None = None) -> Plan:
        """The plan of ``grid`` against the store at ``store_path`` (read only; absent: nothing stored), its devices
        resolved where ``options``' executor trains."""
        plan = self.plan(grid, None, force, options)
        if Path(store_path).exists():
            with ResultStore(store_path, readonly=True) as results:
                plan = self.resume(plan, results, force)
        return plan

    def run(self, grid: GridSpec, store_path: str | Path, options: RunOptions | None = None, *,
            force: bool = False, observer: RunObserver | None = None,
            rope: Mapping[str, float] | None = None) -> RunOutcome:
        """The run sequence: check the options, plan the grid (all before the store is opened or
        created), resume from the store, train what is left and store each result. ``rope``: the half-widths
        of practical equivalence a race decides with (``--rope``; default: each metric's).

        Ctrl-C (``KeyboardInterrupt``), SIGTERM or SIGHUP (:class:`~nnbench.loading.plugins.SignalStop`) marks the
        run interrupted and propagates; every finished trial stays stored.
        """
        options = options or RunOptions()
        observer = observer or RunObserver()
        self.check_options(options)
        self.remote_devices(options, observer.log)  # a cluster's: asked (and waited for) before anything is stored
        if LocalExecutors.of(self.catalogue).may_start_workers(options):
            prestart()  # the workers' server imports torch while the grid is planned
        plan = self.plan(grid, None, force, options)
        # a stop signal (SIGTERM, SIGHUP) ends the run as Ctrl-C does, from the moment it may be stored
        with watch_interrupts(), ResultStore(store_path, axes=self.domain.axes) as results:
            for run_id in results.ended_runs:
                observer.log(f"run {run_id} in {results.path} ended without finishing (its process is gone): "
                             "marked interrupted; its finished trials stay stored")
            plan = self.resume(plan, results, force)
            observer.planned(plan)
            try:
                outcome = self.execute(plan, results, options, observer, rope)
            finally:
                observer.close()
            observer.finished(outcome, results)
            return outcome

    def execute(self, plan: Plan, store: ResultStore, options: RunOptions, observer: RunObserver,
                rope: Mapping[str, float] | None = None) -> RunOutcome:
        """Train ``plan.todo`` as the planner plans it, storing each result as soon as it arrives.

        Each item is claimed in the store just before it trains, so a trial that another live run
        on the same store is training is not trained twice: this run waits for it and covers its
        result (or trains it after all, should that run end without storing it). Ctrl-C
        (``KeyboardInterrupt``) marks the run interrupted and propagates; every finished trial
        stays stored and the next run of the same grid resumes from there. A lifecycle hook that
        raises is named once and disabled; the run goes on.
        """
        hooks = LifecycleHooks(self.pm)  # warns with a PluginHookWarning: one line on the command line
        self.prepare_tasks(plan.todo, options.download)
        outcome = RunOutcome(new_run_id(), store.path, plan)
        sink = StoringSink(store, outcome, self.catalogue, options.max_failures, observer, hooks)
        sink.replacing = store.finished_at(t.trial_id for t in plan.todo)  # --force retrains these
        work = _Work(self, store, options, sink, CostModel(self.catalogue, store.epoch_times()), hooks)
        race = Race.of(plan.trials, plan.grid.seeds, self.catalogue, Rope(rope or {})) if options.race else None
        if race is not None:
            work.options = work.sized_for(plan.todo)
        waiting = set(plan.todo)
        first = work.plan(plan.todo if race is None else [t for t in race.rung_trials(0) if t in waiting])
        workers = _workers_record(first, LocalExecutors.of(self.catalogue))
        remote = self.remote_devices(options)
        store.start_run(outcome.run_id, {**plan.grid.to_dict(), "executor": first.executor,
                                         "workers": workers, "timeout": options.timeout,
                                         "targets": plan.targets, "references": self._references(plan),
                                         "race": options.race},
                        environment({e.spec.name: e.spec.description for e in self.catalogue.devices.entries()},
                                    options.threads, {d.name: d.description for d in remote or ()}),
                        len(plan.trials), plan.skipped)
        store.link_trials(outcome.run_id, [t.trial_id for t in plan.reused])
        try:
            with watch_interrupts():
                hooks("before_run", run_id=outcome.run_id, trials=plan.todo)
                if race is None:
                    work.train(first)
                else:
                    work.race(race, first, plan.todo)
                if plan.grid.tune:
                    finals = self._final_trials(plan, store)
                    todo, reused = self._split_stored(finals, store, force=False)
                    outcome.plan.trials.extend(finals)
                    outcome.plan.reused.extend(reused)
                    store.link_trials(outcome.run_id, [t.trial_id for t in reused])
                    sink.log(f"tuning done: {len(finals)} final trials of the best settings, {len(todo)} to train")
                    work.train(work.plan(todo))
            outcome.status = "finished"
        except GridStopped:
            outcome.status = "stopped"
        except BaseException as exc:  # Ctrl-C, a broken executor: stored trials stay, the run says why it ended
            outcome.status = "interrupted" if isinstance(exc, (KeyboardInterrupt, ExecutorLost)) else "failed"
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
            by_configuration.setdefault(tuning_key(trial), []).append(trial)
        finals = []
        for candidates in by_configuration.values():
            higher = self.catalogue.tasks.get(candidates[0].task).higher_is_better
            best = select_best([(t, *outcomes.get(t.trial_id, ("missing", None))) for t in candidates], higher)
            if best is not None:
                finals += final_trials(best, plan.grid.seeds)
        return finals



def _workers_record(plan: WorkPlan, local: LocalExecutors) -> Any:
    """How a run records its workers: 1 in this process, the counts for local workers, none for others."""
    if plan.executor == local.here:
        return 1
    if plan.executor == local.workers:
        return {"cpu": plan.workers, "per_device": plan.per_device or "auto"}
    return None


@dataclass
class _Work:
    """One run's batches of work: each planned once (the grid, then a tuning protocol's final trials) and given to
    its executor; the cost estimates are kept across them."""

    session: Session
    store: ResultStore
    options: RunOptions
    sink: StoringSink
    cost: CostModel
    hooks: LifecycleHooks

    def plan(self, trials: list[Trial]) -> WorkPlan:
        """The work plan of ``trials`` (the planner runs once per batch); its notes are told."""
        session = self.session
        unsendable: list[str] = []
        job = ItemTraining(tuple(pack_plugins(session._extra_plugins(), unsendable)), self.options.threads,
                           self.options.timeout, bool(session.pm.hook.after_epoch.get_hookimpls()),
                           here=(self.hooks, session.catalogue), unsent=tuple(unsendable))
        plan = plan_work(trials, session.catalogue, self.options, self.cost, job, isolated=self.isolated(trials))
        # a run that trains here sends only the trials that failed before to a worker, where such a trial fails
        # saying why; one that trains everything in workers stops here
        if unsendable and plan.executor != LocalExecutors.of(session.catalogue).here:
            raise NNBenchError(f"{unsendable[0]}, and this run trains in worker processes: make it picklable "
                               "(define it at module level, hold no locks, open files or connections), or train in "
                               "this process (workers=1); nothing was trained")
        queue = cast(WorkQueue, plan.items)
        for note in plan.notes:
            self.sink.log(note)
        self.sink.said |= {item.reason for item in queue if item.reason}  # the planner's notes told those
        self.sink.listeners = [queue.learn]
        self.sink.observer.scheduled(Forecast(queue, self.cost, plan.workers))
        return plan

    def sized_for(self, trials: list[Trial]) -> RunOptions:
        """The run's options with the local executor and workers that the planner chooses for all of ``trials``: a
        race trains each rung where the whole grid would train, not in this process because one rung is small."""
        local = LocalExecutors.of(self.session.catalogue)
        items, _ = work_items(trials, self.session.catalogue, self.options.vectorize, self.cost)
        chosen = choose_workers(self.options, items, local)
        if chosen.executor not in (local.here, local.workers):
            return self.options
        return dataclasses.replace(self.options, executor=chosen.executor, workers=max(1, chosen.cpu))

    def train(self, plan: WorkPlan) -> None:
        """Train ``plan``, then the trials that another run was training and left to this one."""
        self.session.catalogue.executors.get(plan.executor).factory().run(plan, self.sink)
        while self.sink.elsewhere:
            freed = self.sink.settle_elsewhere()
            if freed:
                self.train(self.plan(freed))

    def race(self, race: Race, first: WorkPlan, todo: list[Trial]) -> None:
        """Train ``race``'s rungs (the first planned as ``first``), deciding after each from every seed's stored
        validation score, and store the trials of each configuration it prunes as ``pruned`` with the evidence
        (see :mod:`nnbench.execution.racing`)."""
        waiting = {t.trial_id for t in todo}
        for rung in range(len(race.rungs)):
            self.train(first if rung == 0 else self.plan([t for t in race.rung_trials(rung) if t.trial_id in waiting]))
            if rung < len(race.rungs) - 1:
                outcomes = self.store.outcomes(t.trial_id for t in race.judged(rung))
                pruned = race.decide(rung, outcomes)
                stored = self.store.outcomes(r.trial.trial_id for r in pruned)  # a resumed race's, as they were
                self.sink.pruned([r for r in pruned if r.trial.trial_id not in stored])
                self.store.link_trials(self.sink.outcome.run_id, list(stored))
                self.sink.log(race.state(rung, sum(len(r.curve) for r in self.sink.outcome.results)))
            self.store.record_race(self.sink.outcome.run_id, race.account(rung))

    def isolated(self, trials: list[Trial]) -> set[str]:
        """The trials to keep out of this process: stored as failed or timed out, or in training when the process
        of an earlier run died (each named)."""
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
