"""What a run tells the person who started it, on a terminal or in a notebook: the plan (trials,
skipped combinations, notes), a progress bar naming the trial being trained, and at the end a
leaderboard per task, the trials that did not finish ok and the report. ``nnbench run`` and
``nnbench.run()`` print the same things."""

from __future__ import annotations

import importlib
import os
import sys
import threading
from collections.abc import Callable, Mapping, Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from nnbench.contract import metrics
from nnbench.contract.axes import marked_yours, short_label
from nnbench.observer import RunObserver

if TYPE_CHECKING:
    import pandas as pd

    from nnbench.contract.domain import Domain
    from nnbench.contract.trial import Trial, TrialResult
    from nnbench.execution.forecast import Forecast
    from nnbench.session import Plan, RunOutcome
    from nnbench.storage.store import ResultStore

Echo = Callable[..., None]

SUMMARY_MODULES = ("multiprocessing.connection", "pandas", "scipy.stats", "matplotlib",
                   "matplotlib.backends.backend_agg", "matplotlib.backends.backend_svg", "seaborn", "jinja2",
                   "nnbench.analysis.verdicts", "nnbench.reporting")
"""What the summary and the report import: about 2 s that a run would otherwise spend after its last trial."""


def import_in_background(modules: Sequence[str]) -> threading.Thread | None:
    """Import ``modules`` in a daemon thread at the lowest CPU priority, so that the trials training
    in other processes meanwhile keep the cores; returns the thread (to join before the modules are
    used), or None where a thread's priority cannot be lowered alone (outside Linux) and the modules
    are left to be imported when used. A module that fails to import is left to fail, and be
    reported, where it is used."""
    if sys.platform != "linux":  # elsewhere setpriority would lower the whole process, workers' parent
        return None

    def work() -> None:
        os.setpriority(os.PRIO_PROCESS, threading.get_native_id(), 19)  # Linux: this thread only
        for name in modules:
            try:
                importlib.import_module(name)
            except Exception:  # imported again where used, which says what is wrong
                continue

    thread = threading.Thread(target=work, name="nnbench-summary-imports", daemon=True)
    thread.start()
    return thread


BAR_FORMAT = "{l_bar}{bar}| {n_fmt}/{total_fmt} trials [{elapsed}{postfix}]"
WIDGET_HINT = ("progress shows as text here; with ipywidgets installed (pip install ipywidgets) it shows as a "
               "progress bar widget")
_told: set[str] = set()  # what this process has said once already


def progress_bar(total: int, notebook: bool, echo: Echo | None = None) -> Any:
    """tqdm's bar: its notebook front end in Jupyter (where ipywidgets is installed; else text, saying once how to
    get the widget), else text on stderr when stderr is a terminal.

    The bar starts no monitor thread (tqdm's, which would outlive it): it is refreshed at every trial
    anyway, and a process running no other thread may fork the report's figure sections."""
    from tqdm import tqdm

    if notebook:
        try:
            import ipywidgets  # noqa: F401  (the notebook bar needs it)
            from tqdm.notebook import tqdm as notebook_tqdm

            return _without_monitor(notebook_tqdm)(total=total, unit="trial", bar_format=BAR_FORMAT)
        except ImportError:
            if echo is not None and WIDGET_HINT not in _told:
                _told.add(WIDGET_HINT)
                echo(f"note: {WIDGET_HINT}")
            return _without_monitor(tqdm)(total=total, unit="trial", bar_format=BAR_FORMAT, file=sys.stderr,
                                          ncols=120)
    # disable=None: no bar when stderr is not a terminal (a log file, a CI job)
    return _without_monitor(tqdm)(total=total, unit="trial", bar_format=BAR_FORMAT, dynamic_ncols=True,
                                  file=sys.stderr, disable=None)


def _without_monitor(bar: type) -> type:
    """``bar``'s class as one that starts no monitor thread (tqdm reads ``monitor_interval`` per class)."""
    return type(bar.__name__, (bar,), {"monitor_interval": 0})


class ConsoleProgress(RunObserver):
    """The run's observer on a terminal or in a notebook: the plan, then a tqdm bar advanced per stored
    result and naming what is being trained, with messages printed above it (each once); at the end, the
    leaderboard, failures and report.

    ``echo`` prints a line (``click.echo`` on the command line, ``print`` in Python). ``bar`` shows the
    progress bar, ``messages`` what the run says meanwhile (default: as ``bar``; a trial that was in
    training when a process died, a run found ended), ``plan`` the plan, ``summary`` the leaderboard
    and what follows it.
    """

    def __init__(self, domain: Domain, pm: Any, echo: Echo, *, bar: bool = True, messages: bool | None = None,
                 plan: bool = True, summary: bool = True, report_dir: Path | None = None, notebook: bool = False,
                 rope: dict[str, float] | None = None) -> None:
        self.domain, self.pm, self.echo, self.rope = domain, pm, echo, rope or {}
        self.show_bar, self.show_plan, self.summary = bar, plan, summary
        self.quiet = not (bar if messages is None else messages)  # no messages
        self.report_dir, self.notebook = report_dir, notebook
        self.repeats: dict[str, int] = {}
        self.bar: Any = None
        self.training: dict[str, str] = {}  # trial id -> what the bar names while it trains
        self.imports: threading.Thread | None = None
        self.forecast: Forecast | None = None
        self.expected: set[str] = set()  # the trials the bar counts

    def training_location(self, in_process: bool) -> None:
        """While other processes train, import what the summary and the report will need; finish that
        before training here, where a second thread would take time from the timed steps."""
        if in_process:
            if self.imports is not None:
                self.imports.join()
        elif self.summary and self.imports is None:
            self.imports = import_in_background(SUMMARY_MODULES)

    def planned(self, plan: Plan) -> None:
        if self.show_plan:
            print_plan(plan, self.echo, list_trials=False)
        self.expected = {t.trial_id for t in plan.todo}
        if self.show_bar and plan.todo:
            self.bar = progress_bar(len(plan.todo), self.notebook, self.echo)

    def scheduled(self, forecast: Forecast) -> None:
        self.forecast = forecast
        self.expected |= forecast.trial_ids  # a tuning protocol's final trials join the bar when planned
        if self.bar is not None and len(self.expected) != self.bar.total:
            self.bar.total = len(self.expected)
        self._show()

    def started(self, trials: list[Trial]) -> None:
        if self.forecast is not None:
            self.forecast.started(trials)
        what = training_label(trials, self.domain)
        self.training.update({t.trial_id: what for t in trials})
        self._show()

    def result(self, result: TrialResult) -> None:
        if self.forecast is not None:
            self.forecast.finished(result)
        self.training.pop(result.trial.trial_id, None)
        if self.bar is not None:
            self.bar.update(1)
        self._show()

    def _show(self) -> None:
        if self.bar is None:
            return
        parts = [] if self.forecast is None else [f"about {format_duration(self.forecast.seconds_left())} left"]
        names = list(dict.fromkeys(self.training.values()))
        if names:
            parts.append(f"training {names[-1]}" + (f" (+{len(names) - 1} more)" if len(names) > 1 else ""))
        self.bar.set_postfix_str(", ".join(parts), refresh=True)

    def log(self, message: str) -> None:
        self.repeats[message] = self.repeats.get(message, -1) + 1
        if not self.quiet and not self.repeats[message]:
            if self.bar is not None:
                self.bar.write(message, file=sys.stderr)
            else:
                self.echo(message, err=True)

    def close(self) -> None:
        if self.bar is not None:
            self.bar.close()
        repeated = sum(self.repeats.values())
        if repeated and not self.quiet:
            self.echo(f"({repeated} more messages like the ones above were not repeated)", err=True)

    def finished(self, outcome: RunOutcome, store: ResultStore) -> None:
        """The leaderboard per task, the trials that did not finish ok, and the report."""
        if not self.summary:
            return
        if self.imports is not None:
            self.imports.join()  # at full speed now: nothing trains any more
        # pandas and scipy: imported in the background while workers trained, or now (SUMMARY_MODULES)
        from nnbench.analysis import frames, race_frames, verdicts

        everything = store.trials([outcome.run_id])
        frame = race_frames.finished_configurations(everything)  # a race's verdicts: over what finished
        tried = frame[frame["protocol"] != "tuning"]  # tuning trials are the search, not the answer
        print_leaderboard(frames.leaderboard(tried), self.domain, self.echo)
        print_failures(frame, self.domain, self.echo)
        spent = race_frames.compute_spent(everything)
        print_race(race_frames.pruned_configurations(everything), spent, self.echo)
        # Read as the report reads the run (variants apart), so the two agree and share their evidence.
        said = verdicts.findings(frames.with_variants(frame), self.rope)
        if said:
            self.echo("\nfindings:")
            for verdict in said:
                self.echo(f"  - {verdict}")
        trained = sum(r.status != "pruned" for r in outcome.results)
        pruned = f"{len(outcome.results) - trained} pruned, " if len(outcome.results) > trained else ""
        self.echo(f"run {outcome.run_id}: {trained} trained, {pruned}{len(outcome.plan.reused)} reused, "
                  f"stored in {store.path}")
        if self.report_dir is not None:
            from nnbench.reporting import write_run_report  # as above

            path = write_run_report(store, [outcome.run_id], self.report_dir / outcome.run_id, self.pm, self.rope)
            self.echo(f"report: {path}")


def format_duration(seconds: float) -> str:
    """``00:42``, ``03:14``, ``1:02:03``: a duration as the bar writes its elapsed time."""
    whole = max(0, round(seconds))
    hours, rest = divmod(whole, 3600)
    return f"{hours}:{rest // 60:02d}:{rest % 60:02d}" if hours else f"{rest // 60:02d}:{rest % 60:02d}"


def training_label(trials: Sequence[Trial], domain: Domain) -> str:
    """What a work item trains, as a user names it: ``digits fnn/relu/adam@0.001, 3 seeds``; for the trials of
    several configurations trained at once, what they share and what differs: ``digits fnn/adam@0.001 with
    activations relu, tanh and gelu, 3 seeds each``."""
    first = trials[0]
    configurations: dict[str, list[Trial]] = {}
    for trial in trials:
        configurations.setdefault(trial.configuration_key, []).append(trial)
    counts = {len(seeds) for seeds in configurations.values()}
    seeds = f"seed {first.seed}" if len(trials) == 1 else f"{max(counts)} seeds"
    if len(configurations) == 1:
        return f"{first.task} {first.label()}, {seeds}"
    axes = [ax for ax in domain.axes if ax.role == "config"]
    values = [marked_yours({ax.name: t.value(ax.name) for ax in axes}, t.params.get("code", {}))
              for t in (group[0] for group in configurations.values())]
    differing = [ax for ax in axes if len({str(v[ax.name]) for v in values}) > 1]
    shared = short_label({k: v for k, v in values[0].items() if k not in {ax.name for ax in differing}}, axes)
    parts = []
    for ax in differing:
        record = domain.kind_of(ax.name)
        names = [str(v) for v in dict.fromkeys(v[ax.name] for v in values)]
        listed = ", ".join(names[:-1]) + f" and {names[-1]}"
        parts.append(f"{record.plural if record is not None else ax.noun} {listed}")
    seeds = f"{max(counts)} seeds each" if len(counts) == 1 else f"up to {max(counts)} seeds each"
    return f"{first.task} {shared} with {'; '.join(parts)}, {seeds}"


def print_plan(plan: Plan, echo: Echo, list_trials: bool) -> None:
    """The plan's skipped combinations by reason, its notes, (its trials,) and its counts."""
    for note in plan.notes:
        echo(f"note: {note}")
    if plan.skipped:
        reasons: dict[str, int] = {}
        for s in plan.skipped:
            reasons[s.reason] = reasons.get(s.reason, 0) + 1
        echo(f"skipped {len(plan.skipped)} combinations:")
        for reason, count in sorted(reasons.items(), key=lambda kv: -kv[1]):
            echo(f"  {count:>4} x {reason}")
    if list_trials:
        stored = {t.trial_id for t in plan.reused}
        for t in plan.trials:
            state = "stored" if t.trial_id in stored else "to train"
            echo(f"{t.trial_id}  {t.task:<14} {t.label():<45} seed {t.seed}  {t.device}  [{state}]")
    echo(f"{len(plan.trials)} trials: {len(plan.todo)} to train, {len(plan.reused)} already stored, "
               f"{len(plan.skipped)} combinations skipped")


def row_label(row: Any, domain: Domain) -> str:
    """A results row's configuration, as ``nnbench run`` names it."""
    values = row._asdict() if hasattr(row, "_asdict") else dict(row)
    return short_label(values, domain.axes)


def print_leaderboard(board: pd.DataFrame, domain: Domain, echo: Echo, top: int = 10) -> None:
    for task, part in board.groupby("task", sort=False):
        metric = part["metric_name"].iloc[0]
        arrow = metrics.metric(metric).direction
        echo(f"\n{task} — test {metric} ({arrow}), mean ± std over seeds")
        for row in part.head(top).itertuples():
            std = f"{row.std:.4f}" if row.std == row.std else "n/a"
            score = f"{row.mean:.4f} ± {std}" if row.mean == row.mean else "no successful seed"
            config = row_label(row, domain)
            if getattr(row, "protocol", "default") == "tuned":
                config += " (tuned)"
            if getattr(row, "variant", ""):
                config += f" [{row.variant}]"
            extra = f"  ({row.failed} failed/diverged)" if row.failed else ""
            echo(f"  {row.rank:>3}. {config:<45} {score}  n={row.seeds}{extra}")
        if len(part) > top:
            echo(f"  ... {len(part) - top} more configurations")


def print_race(pruned: pd.DataFrame, spent: Mapping[str, float], echo: Echo, top: int = 10) -> None:
    """The configurations a race pruned (:func:`~nnbench.analysis.race_frames.pruned_configurations`), each with
    its evidence, and the compute it spent."""
    if pruned.empty:
        return
    plural = "s" if len(pruned) != 1 else ""
    echo(f"\nrace: {len(pruned)} configuration{plural} pruned, {spent['trained_epochs']:,.0f} of "
         f"{spent['planned_epochs']:,.0f} planned epochs trained ({spent['share']:.0%}):")
    for line in pruned["text"].head(top):
        echo(f"  {line}")
    if len(pruned) > top:
        echo(f"  ... {len(pruned) - top} more (the report's race section lists them all)")


def print_failures(frame: pd.DataFrame, domain: Domain, echo: Echo) -> None:
    bad = frame[frame["status"] != "ok"]
    if bad.empty:
        return
    echo(f"\n{len(bad)} trials did not finish ok:")
    for row in bad.head(20).itertuples():
        last_line = (row.error or "").strip().splitlines()[-1:] or [""]
        echo(f"  {row.status:<8} {row.task} {row_label(row, domain)} seed {row.seed}: {last_line[0][:160]}")
