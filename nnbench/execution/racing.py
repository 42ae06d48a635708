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
from dataclasses import dataclass, field
from typing import Any

import numpy as np

from nnbench.analysis.racing import ALPHA, MIN_SEEDS, Pruning, decide, look_alpha, seed_rungs
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


@dataclass
class Race:
    """The state of one race (see the module docstring): its configurations, rungs and decisions."""

    catalogue: Catalogue
    seeds: int
    configurations: dict[str, Configuration] = field(default_factory=dict)
    rope: Rope = field(default_factory=Rope)

    @classmethod
    def of(cls, trials: Sequence[Trial], seeds: int, catalogue: Catalogue, rope: Rope | None = None) -> Race:
        race = cls(catalogue, seeds, rope=rope or Rope())
        for trial in trials:
            race.configurations.setdefault(trial.configuration_key, Configuration([])).trials.append(trial)
        for configuration in race.configurations.values():
            configuration.trials.sort(key=lambda t: t.seed)
        return race

    @property
    def rungs(self) -> list[int]:
        return seed_rungs(self.seeds)

    def alive(self) -> list[Configuration]:
        return [c for c in self.configurations.values() if c.pruning is None]

    def rung_trials(self, rung: int) -> list[Trial]:
        """The trials the survivors train at rung ``rung`` (0-based): their seeds from the previous rung's count up
        to this one's (at the last, every trial left, such as a tuning protocol's beyond the grid's seeds)."""
        low = 0 if rung == 0 else self.rungs[rung - 1]
        last = rung == len(self.rungs) - 1
        return [t for c in self.alive() for t in (c.trials[low:] if last else c.trials[low:self.rungs[rung]])]

    def judged(self, rung: int) -> list[Trial]:
        """The trials whose scores rung ``rung``'s decision reads: every survivor's first seeds."""
        return [t for c in self.alive() for t in c.trials[:self.rungs[rung]]]

    def decide(self, rung: int, outcomes: Mapping[str, tuple[str, float | None]]) -> list[TrialResult]:
        """Prune after rung ``rung`` (0-based) from the stored ``(status, validation score)`` of the judged trials;
        the results to store for the trials of the configurations pruned now that had not trained (status
        ``pruned``, with the evidence)."""
        seen = self.rungs[rung]
        by_task: dict[str, dict[str, Configuration]] = {}
        for key, configuration in self.configurations.items():
            if configuration.pruning is None:
                by_task.setdefault(configuration.trials[0].task, {})[key] = configuration
        alpha = look_alpha(self.seeds)
        pruned: list[TrialResult] = []
        for task_name, configurations in by_task.items():
            task = self.catalogue.tasks.get(task_name)
            scores = {key: [_score(outcomes.get(t.trial_id)) for t in c.trials[:seen]]
                      for key, c in configurations.items()}
            values = np.array([v for row in scores.values() for v in row], dtype=float)
            width = self.rope.width(task_name, task.metric, values)
            for decision in decide(scores, task.higher_is_better, width, alpha):
                configuration = configurations[decision.configuration]
                configuration.pruning = decision
                best = configurations[decision.best]
                evidence = {"configuration": configuration.label, "rung": rung + 1, "epoch": configuration.epochs,
                            "seeds": decision.seeds, "against": best.label, "against_id": decision.best,
                            "metric": f"val_{task.metric}", "mean_difference": decision.mean_difference,
                            "rope": decision.rope, "p_value": decision.p_value, "alpha": decision.alpha}
                text = f"pruned: worse than {best.label} at epoch {configuration.epochs}, seeds {decision.seeds}"
                pruned += [TrialResult(t, "pruned", metric_name=task.metric, race=evidence, error=text)
                           for t in configuration.trials[seen:]]
        return pruned

    def account(self, rung: int) -> dict[str, Any]:
        """What a run records of its race after rung ``rung`` (0-based): the rungs, how far it got, the
        configurations in all and left, the level and the epochs the grid plans."""
        return {"rungs": self.rungs, "done": rung + 1, "seeds": self.seeds,
                "configurations": len(self.configurations), "alive": len(self.alive()), "alpha": ALPHA,
                "planned_epochs": sum(t.epochs for c in self.configurations.values() for t in c.trials)}

    def state(self, rung: int, epochs_done: int) -> str:
        """The race in one line, after rung ``rung`` (0-based)."""
        total = len(self.configurations)
        left = len(self.alive())
        planned = sum(t.epochs for c in self.configurations.values() for t in c.trials)
        return (f"race: rung {rung + 1} of {len(self.rungs) - 1} ({self.rungs[rung]} of {self.seeds} seeds): "
                f"{left} of {total} configurations go on, {total - left} pruned; {epochs_done:,} of {planned:,} "
                f"planned epochs trained ({epochs_done / max(planned, 1):.0%})")


def _score(outcome: tuple[str, float | None] | None) -> float:
    """A trial's validation score as a race reads it: NaN unless it finished ``ok`` with a finite score."""
    if outcome is None or outcome[0] != "ok" or outcome[1] is None:
        return float("nan")
    return float(outcome[1])
