"""Which trials train together, and whether as one stack: decided from the components' declarations alone.

Trials that differ only by seed form a group (so do seeds that differ only in parameter-free element-wise
activations, each member applying its own: ``Activation.elementwise``). A group trains as one stack when every
component declares ``vectorizable``, no loss-stage component wraps the criterion, no optimizer re-evaluates the
loss, and the group has at least as many seeds as its architecture's ``stacks_from`` asks on the device type;
otherwise its trials train one by one. Nothing here is measured, so the same grid always makes the same stacks,
whatever the workers and the machine's load: a trial's numbers depend on the stack it trains in (batched kernels
round in their own order), and a choice that flipped with load would change stored numbers. Each stack is still
proven exact on its first batches before it trains (:mod:`nnbench.training.ensemble`); how each trial was
trained is recorded with it.
"""

from __future__ import annotations

from dataclasses import dataclass

from nnbench.contract.trial import Trial
from nnbench.loading.catalogue import Catalogue

TURNED_OFF = "stacking was turned off"


@dataclass(frozen=True)
class Stacking:
    """Whether a group trains as one stack, and why not (``reason``) when it could have."""

    stacked: bool
    reason: str | None = None


def group_by_seed(trials: list[Trial]) -> list[list[Trial]]:
    """Trials that differ only by seed, grouped, in the order of first appearance."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(trial.configuration_key, []).append(trial)
    return list(groups.values())


def stack_groups(trials: list[Trial], catalogue: Catalogue) -> list[list[Trial]]:
    """Groups of trials that can share one stack, in the order of first appearance: those that differ only by
    seed, or by seed and an element-wise activation (``Activation.elementwise``); within a group, trials with
    the same activation are side by side."""
    mixable: dict[str, bool] = {}
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        takes_activation = catalogue.architectures.get(trial.arch).takes_activation
        if takes_activation and trial.activation not in mixable:
            spec = catalogue.activations.get(trial.activation)
            mixable[trial.activation] = spec.vectorizable and spec.elementwise
        mixed = takes_activation and mixable[trial.activation]
        groups.setdefault(trial.key_without("seed", "activation") if mixed else trial.configuration_key,
                          []).append(trial)
    order = {name: i for i, name in enumerate(dict.fromkeys(t.activation for t in trials))}
    return [sorted(group, key=lambda t: order[t.activation]) for group in groups.values()]


def stacking(group: list[Trial], catalogue: Catalogue, vectorize: bool = True) -> Stacking:
    """Whether ``group`` (one of :func:`stack_groups`) trains as one stack."""
    if len(group) < 2:
        return Stacking(False)
    if not vectorize:
        return Stacking(False, TURNED_OFF)
    for trial in {t.activation: t for t in group}.values():
        reason = unstackable_reason(trial, catalogue)
        if reason:
            return Stacking(False, reason)
    first = group[0]
    device_type = first.device.split(":")[0]
    least = max(2, catalogue.architectures.get(first.arch).stacks_from.get(device_type, 2))
    if len(group) < least:
        return Stacking(False, f"architecture {first.arch!r} trains faster stacked only from {least} seeds on "
                               f"{device_type}")
    return Stacking(True)


def unstackable_reason(trial: Trial, catalogue: Catalogue) -> str | None:
    """Why the specs of ``trial``'s components do not allow training its seeds stacked, or ``None``."""
    optimizer = catalogue.optimizers.get(trial.optimizer)
    if optimizer.needs_closure:
        return f"optimizer {trial.optimizer!r} re-evaluates the loss of the whole model in each step"
    takes_activation = catalogue.architectures.get(trial.arch).takes_activation
    for kind, name in (("optimizer", trial.optimizer), ("architecture", trial.arch),
                       *((("activation", trial.activation),) if takes_activation else ()), ("loss", trial.loss),
                       *sorted(trial.components.items())):
        stage = catalogue.domain.kind(kind).stage
        if stage == "loss":
            return f"{kind} {name!r} wraps the loss, which the stacked trainer does not do"
        if stage == "training":
            return f"{kind} {name!r} acts on each seed's own training loop (after steps, epochs), which a stack shares"
        if not catalogue.registry(kind).get(name).vectorizable:
            plugin = catalogue.registry(kind).plugin_of(name)
            return f"{kind} {name!r} (plugin {plugin!r}) does not declare vectorizable=True"
    return None
