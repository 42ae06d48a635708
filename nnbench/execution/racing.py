"""A race over a batch of trials, run where the evidence is pooled: the driver, between rungs.

Every configuration (a trial without its seed) of a batch first trains the seeds of the first rung
(:func:`~nnbench.analysis.racing.seed_rungs`); once they are stored, the race reads every seed's validation score
from the store and prunes, task by task, the configurations their paired seeds show worse than the best beyond the
ROPE (:func:`~nnbench.analysis.racing.decide`). The seeds a pruned configuration has not trained are stored as
``pruned`` with the evidence; the survivors train the next rung's seeds, up to all of them. Racing never changes how
a trial trains (its id, its seed, its epochs): it only decides which trials start, so a survivor stores exactly
the numbers it stores without a race, and whatever executor trains the rungs (this process, workers, Ray) keeps
its meaning.

Resuming replays the race from the store: the trials a rung needs that are stored are not trained again, and the
same scores make the same decisions.
"""

from __future__ import annotations

from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import Any

import numpy as np

from nnbench.analysis.racing import MIN_SEEDS, Pruning, Rung, decide, epoch_rung, look_alpha, rungs
from nnbench.analysis.rope import Rope
from nnbench.contract.errors import NNBenchError
from nnbench.contract.trial import Trial, TrialResult
from nnbench.loading.catalogue import Catalogue

NO_VALIDATION = "none"
"""The value of the grid's ``validation`` axis that holds no validation data back."""


def check_race(trials: Sequence[Trial], seeds: int, validation: Iterable[Any] = ()) -> None:
    """Raise :class:`NNBenchError` with one line when a race cannot run over ``trials``: too few seeds, a task
    with no two configurations to compare, or no validation data to decide on."""
    if seeds < MIN_SEEDS:
        raise NNBenchError(f"--race needs --seeds {MIN_SEEDS} or more, not {seeds}: it decides on the paired seeds "
                           "of a first rung and saves the seeds after it; run without --race, or with more seeds")
    if NO_VALIDATION in [str(value) for value in validation]:
        raise NNBenchError("--race decides on validation data, and --validation none holds none back; use "
                           "--validation split (or task), or run without --race")
    by_task: dict[str, set[str]] = {}
    for trial in trials:
        by_task.setdefault(trial.task, set()).add(trial.configuration_key)
    if not any(len(keys) > 1 for keys in by_task.values()):
        raise NNBenchError("--race compares the configurations of a task, and no task of this grid has two; add "
                           "values to an axis (--activation relu,gelu), or run without --race")


@dataclass
class Configuration:
    """One configuration of a race: its trials by seed, and whether (and why) it was pruned."""

    trials: list[Trial]
    pruning: Pruning | None = None

    @property
    def label(self) -> str:
        return self.trials[0].label()

    @property
    def epochs(self) -> int:
        return self.trials[0].epochs


Evidence = dict[str, tuple[str, list[float | None]]]
"""A trial's ``(status, validation curve)`` as a rung reads it: from the store or from a partial rung's results."""


@dataclass
class Race:
    """The state of one race (see the module docstring): its configurations, rungs and decisions."""

    catalogue: Catalogue
    seeds: int
    configurations: dict[str, Configuration] = field(default_factory=dict)
    rope: Rope = field(default_factory=Rope)
    rungs: list[Rung] = field(default_factory=list)
    discarded_epochs: int = 0  # trained at the epoch rung by survivors, which then train again in full

    @classmethod
    def of(cls, trials: Sequence[Trial], seeds: int, catalogue: Catalogue, rope: Rope | None = None) -> Race:
        race = cls(catalogue, seeds, rope=rope or Rope())
        for trial in trials:
            race.configurations.setdefault(trial.configuration_key, Configuration([])).trials.append(trial)
        for configuration in race.configurations.values():
            configuration.trials.sort(key=lambda t: t.seed)
        race.rungs = rungs(seeds, max((t.epochs for t in trials), default=1))
        return race

    def alive(self) -> list[Configuration]:
        return [c for c in self.configurations.values() if c.pruning is None]

    def seen(self, rung: int) -> int:
        """How many seeds of each configuration rung ``rung`` (0-based) has read."""
        return self.rungs[rung].seeds

    def rung_trials(self, rung: int) -> list[Trial]:
        """The trials the survivors train at rung ``rung`` (0-based): at a partial rung, the first seeds of the
        configurations with an epoch rung; then the first seeds in full; then the seeds from the previous rung's
        count up to this one's (at the last, every trial left, such as a tuning protocol's)."""
        this = self.rungs[rung]
        if this.partial:
            return [t for c in self.alive() if epoch_rung(c.epochs) is not None for t in c.trials[:this.seeds]]
        low = 0 if rung == 0 or self.rungs[rung - 1].partial else self.rungs[rung - 1].seeds
        last = rung == len(self.rungs) - 1
        return [t for c in self.alive() for t in (c.trials[low:] if last else c.trials[low:this.seeds])]

    def judged(self, rung: int) -> list[Trial]:
        """The trials whose scores rung ``rung``'s decision reads."""
        this = self.rungs[rung]
        return [t for c in self.alive() if not this.partial or epoch_rung(c.epochs) is not None
                for t in c.trials[:this.seeds]]

    def decide(self, rung: int, evidence: Evidence) -> list[tuple[Configuration, dict[str, Any]]]:
        """The configurations to prune after rung ``rung`` (0-based), each with its evidence, from ``evidence``
        (every judged trial's status and validation curve: at a partial rung its first epochs)."""
        this = self.rungs[rung]
        by_task: dict[str, dict[str, Configuration]] = {}
        for key, configuration in self.configurations.items():
            if configuration.pruning is None and (not this.partial or epoch_rung(configuration.epochs) is not None):
                by_task.setdefault(configuration.trials[0].task, {})[key] = configuration
        alpha = look_alpha(len(self.rungs) - 1)
        pruned = []
        for task_name, configurations in by_task.items():
            task = self.catalogue.tasks.get(task_name)
            scores = {key: [_score(evidence.get(t.trial_id), epoch_rung(t.epochs) if this.partial else None)
                            for t in c.trials[:this.seeds]] for key, c in configurations.items()}
            values = np.array([v for row in scores.values() for v in row], dtype=float)
            width = self.rope.width(task_name, task.metric, values)
            for decision in decide(scores, task.higher_is_better, width, alpha):
                configuration = configurations[decision.configuration]
                configuration.pruning = decision
                best = configurations[decision.best]
                epoch = epoch_rung(configuration.epochs) if this.partial else configuration.epochs
                pruned.append((configuration, {
                    "configuration": configuration.label, "rung": rung + 1, "epoch": epoch, "seeds": decision.seeds,
                    "against": best.label, "against_id": decision.best, "metric": f"val_{task.metric}",
                    "mean_difference": decision.mean_difference, "rope": decision.rope, "p_value": decision.p_value,
                    "alpha": decision.alpha}))
        return pruned

    def account(self, rung: int) -> dict[str, Any]:
        """What a run records of its race after rung ``rung`` (0-based): the rungs, how far it got, the
        configurations left, the epochs the grid plans and the epoch-rung epochs no stored trial keeps."""
        return {"rungs": [{"seeds": r.seeds, "partial": r.partial} for r in self.rungs], "done": rung + 1,
                "seeds": self.seeds, "configurations": len(self.configurations), "alive": len(self.alive()),
                "alpha": look_alpha(len(self.rungs) - 1) * (len(self.rungs) - 1),
                "planned_epochs": sum(t.epochs for c in self.configurations.values() for t in c.trials),
                "discarded_epochs": self.discarded_epochs}

    def state(self, rung: int, epochs_done: int) -> str:
        """The race in one line, after rung ``rung`` (0-based)."""
        total = len(self.configurations)
        left = len(self.alive())
        planned = sum(t.epochs for c in self.configurations.values() for t in c.trials)
        this = self.rungs[rung]
        where = f"epoch rung, {this.seeds} seeds" if this.partial else f"{this.seeds} of {self.seeds} seeds"
        return (f"race: rung {rung + 1} of {len(self.rungs) - 1} ({where}): {left} of {total} configurations go on, "
                f"{total - left} pruned; {epochs_done:,} of {planned:,} planned epochs trained "
                f"({epochs_done / max(planned, 1):.0%})")


def pruned_results(configuration: Configuration, evidence: dict[str, Any],
                   partial: Mapping[str, TrialResult]) -> list[TrialResult]:
    """The results to store for a pruned configuration: status ``pruned`` with ``evidence``, each with the curve it
    trained at a partial rung (``partial``: by trial id), else none."""
    text = f"pruned: worse than {evidence['against']} at epoch {evidence['epoch']}, seeds {evidence['seeds']}"
    out = []
    for trial in configuration.trials:
        trained = partial.get(trial.trial_id)
        result = TrialResult(trial, "pruned", race=evidence, error=text)
        if trained is not None:
            result = replace(trained, status="pruned", race=evidence, error=text, metric=None, test_loss=None,
                             accuracy=None, rmse=None, r2=None)
        out.append(result)
    return out


def _score(outcome: tuple[str, list[float | None]] | None, epoch: int | None) -> float:
    """A trial's validation score as a rung reads it: at ``epoch`` (or its last epoch, when it stopped before), or
    the score it keeps (``epoch`` ``None``); NaN unless it finished ``ok`` with a finite score."""
    if outcome is None or outcome[0] not in (("ok",) if epoch is None else ("ok", "pruned")) or not outcome[1]:
        return float("nan")
    curve = outcome[1]
    value = curve[-1] if epoch is None else curve[min(epoch, len(curve)) - 1]
    return float("nan") if value is None else float(value)
