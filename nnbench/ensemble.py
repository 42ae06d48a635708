"""Training the seeds of one configuration: together as a stacked ensemble where exact, else one by one."""

from __future__ import annotations

from collections.abc import Callable
from typing import TYPE_CHECKING

from nnbench.grid import Trial
from nnbench.train import EpochRecord, TrialResult, train_trial

if TYPE_CHECKING:
    from nnbench.components import Catalogue


def group_by_seed(trials: list[Trial]) -> list[list[Trial]]:
    """Group trials that differ only by seed, keeping the order of first appearance."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        key = Trial.from_config({**trial.config(), "seed": 0}).trial_id
        groups.setdefault(key, []).append(trial)
    return list(groups.values())


def train_group(
    trials: list[Trial],
    catalogue: Catalogue,
    on_epoch: Callable[[Trial, EpochRecord], None] | None = None,
    vectorize: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[TrialResult]:
    """Train trials that differ only by seed; one result per trial, in the same order."""
    return [train_trial(trial, catalogue, on_epoch) for trial in trials]
