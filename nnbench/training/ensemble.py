"""Training the seeds of one configuration: together as a stacked ensemble where exact and faster, else one by one.

Trials that differ only by seed can train as one :class:`~nnbench.training.stacking.StackedModel`: each
member is built from its own seed exactly as it would be alone, draws its own batches from its
own seeded permutation, and the members' losses are summed, so each gets exactly its own
gradient; an element-wise optimizer over the stacked parameters then updates each member as it
would alone. Every seed's curve equals its curve alone up to float rounding (batched kernels may
round differently in the last bits). Learning-rate schedules, gradient clipping and early stopping
apply per member as alone: the schedule runs once for the stack (its members share their
configuration, so every step's rate is the same for each of them), each member's gradient is
clipped by its own norm, and a member whose patience runs out leaves the stack.

Whether the stack is also faster is measured before the group trains (see
:mod:`nnbench.training.calibration`); the choice is kept for the run. Where stacking cannot hold,
the group is trained one by one and ``log`` says why: an optimizer whose update is not element-wise
(LBFGS), a component whose spec does not declare ``vectorizable``, a loss-stage component (it wraps
the criterion around the whole model), dropout (alone, each seed draws its masks from its own random
stream), or a model whose stacked outputs do not match its members'.

A member whose loss stops being finite is recorded as ``diverged`` at that epoch, as it would be
alone, and removed from the stack with its optimizer state; the others go on. Its NaN never
reaches them: every stacked operation keeps members apart, and the gradient of the summed loss
is 1 for each member's term whatever that term's value. Timing: each epoch's wall-clock time (training
steps only, as alone) is shared equally among the members trained in it, so a member's
``epoch_time``, ``train_time`` and ``throughput`` are its share of the group's, and the members'
``train_time`` add up to the group's. ``peak_memory`` (CUDA) is the whole group's peak.

Should stacked training fail part way (out of memory with many seeds, say), the group is trained
again one by one, and ``on_epoch`` hears the epochs already reported a second time.
"""

from __future__ import annotations

import functools
import math
import time
from collections.abc import Callable
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.training.calibration import StackingChoice, StackingChoices, calibration_key, measure_stacking
from nnbench.training.stacking import NotStackable, StackedModel, stacked_loss
from nnbench.training.trainer import (
    EVAL_CHUNK,
    EarlyStopping,
    Evaluator,
    add_epoch,
    build_model,
    check_components,
    finish,
    make_optimizer,
    make_schedule,
    score_test_now,
    set_up,
    synchronize,
    train_trial,
)

if TYPE_CHECKING:
    from nnbench.loading.catalogue import Catalogue

OnEpoch = Callable[[Trial, EpochRecord], None]
TrialsHook = Callable[[list[Trial]], None]
Release = Callable[[list[Trial], StackingChoice], None]


def group_by_seed(trials: list[Trial]) -> list[list[Trial]]:
    """Group trials that differ only by seed, keeping the order of first appearance."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(_without_seed(trial), []).append(trial)
    return list(groups.values())


def _without_seed(trial: Trial) -> str:
    return Trial.from_config({**trial.config(), "seed": 0}).trial_id


def stack_groups(trials: list[Trial], catalogue: Catalogue) -> list[list[Trial]]:
    """Group trials that can train as one stack, keeping the order of first appearance: those that
    differ only by seed, or by seed and a parameter-free element-wise activation of the built-in ones
    (each run of members with the same activation applies its own). Within a group, trials with the
    same activation are side by side."""
    keys = _StackKeys(catalogue)
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(keys(trial), []).append(trial)
    order = {name: i for i, name in enumerate(dict.fromkeys(t.activation for t in trials))}
    return [sorted(group, key=lambda t: order[t.activation]) for group in groups.values()]


class _StackKeys:
    """What trials that can stack together have in common, as a key."""

    def __init__(self, catalogue: Catalogue) -> None:
        self.catalogue = catalogue
        self.mixable: dict[str, bool] = {}

    def __call__(self, trial: Trial) -> str:
        name = trial.activation
        # A model with nonlinearities of its own is given no activation (see trainer.build_model)
        takes_activation = self.catalogue.architectures.get(trial.arch).takes_activation
        if takes_activation and name not in self.mixable:
            self.mixable[name] = self._mixable(name)
        mixed = takes_activation and self.mixable[name]
        return Trial.from_config({**trial.config(), "seed": 0, "activation": "*" if mixed else name}).trial_id

    def _mixable(self, name: str) -> bool:
        from nnbench.loading.plugins import BUILTIN_PLUGINS
        from nnbench.training.stacking import ELEMENTWISE

        registry = self.catalogue.activations
        spec = registry.get(name)
        if not spec.vectorizable or registry.plugin_of(name) not in BUILTIN_PLUGINS:
            return False  # a plugin's activation is built only in workers, and stacks with its own seeds
        module = spec.factory()
        return type(module) in ELEMENTWISE and not any(True for _ in module.parameters())


def train_group(
    trials: list[Trial],
    catalogue: Catalogue,
    on_epoch: OnEpoch | None = None,
    vectorize: bool = True,
    log: Callable[[str], None] | None = None,
    *,
    choices: StackingChoices | None = None,
    on_start: TrialsHook | None = None,
    release: Release | None = None,
    test_each_epoch: bool = False,
) -> list[TrialResult]:
    """Train trials that differ only by seed (or by seed and a built-in parameter-free activation, see
    :func:`stack_groups`); one result per trial, in the same order.

    With ``vectorize`` (the default) the seeds train together as one stacked ensemble wherever
    that reproduces training them alone and, as measured before they train, is faster; otherwise,
    and for a group of one, one after another. ``choices`` keeps the measured choices (a fresh one
    measures every group); ``log(message)`` hears each new choice, and why a group of several seeds
    trains one by one. ``on_start(trials)`` is called as training of those trials starts (the stack
    at once, or each trial one by one), after any calibration. ``release``, when given, takes the
    trials that a group training one by one need not train here (all but the first) and the choice
    behind it, so that a caller with idle workers trains them elsewhere; they get no result from this
    call. Each result's ``training`` records how it was trained (see :meth:`StackingChoice.record`).
    """
    if len({_StackKeys(catalogue)(t) for t in trials}) > 1:
        raise ValueError("train_group needs trials that differ only by seed (and a built-in parameter-free "
                         "activation); group them with stack_groups")

    def say(message: str) -> None:
        if log is not None:
            log(message)

    def one_by_one(choice: StackingChoice, group: list[Trial]) -> list[TrialResult]:
        if release is not None and len(group) > 1:
            release(group[1:], choice)
            group = group[:1]
        results = []
        for trial in group:
            if on_start is not None:
                on_start([trial])
            result = train_trial(trial, catalogue, on_epoch, test_each_epoch)
            result.training = choice.record(1)
            results.append(result)
        return results

    def fall_back(reason: str) -> list[TrialResult]:
        first = trials[0]
        say(f"fell back to one-by-one training for {first.task} {first.label()} ({len(trials)} trials) "
            f"because {reason}")
        return one_by_one(StackingChoice(False, reason=reason), trials)

    if not vectorize or len(trials) < 2:
        return one_by_one(StackingChoice(False, reason=None if vectorize else "stacking was turned off"), trials)
    reason = group_reason(trials, catalogue)
    if reason:
        return fall_back(reason)
    choices = choices if choices is not None else StackingChoices()
    key = calibration_key(trials, catalogue)
    choice = choices.get(key)
    try:
        if choice is None:
            ratio = calibrate(trials, catalogue)
            choice = StackingChoice(ratio > 1.0, ratio)
            if choices.put(key, choice):
                say(choice.describe(trials[0], len(trials)))
        if not choice.stacked:
            return one_by_one(choice, trials)
        ensemble = SeedEnsemble(trials, catalogue)
    except NotStackable as exc:
        return fall_back(str(exc))
    except Exception as exc:
        return fall_back(f"setting up the stacked ensemble failed ({type(exc).__name__}: {exc})")
    if on_start is not None:
        on_start(list(trials))
    try:
        results = ensemble.train(on_epoch, test_each_epoch)
    except Exception as exc:  # e.g. out of memory with many seeds on a GPU
        return fall_back(f"stacked training failed ({type(exc).__name__}: {exc}); every seed was trained again")
    for result in results:
        result.training = choice.record(len(trials))
    return results


def calibrate(trials: list[Trial], catalogue: Catalogue) -> float:
    """The measured speed of training ``trials`` stacked against one by one (see
    :func:`~nnbench.training.calibration.measure_stacking`), on their device, with throwaway models:
    nothing of the measurement reaches the trials' training."""
    ensemble = SeedEnsemble(trials, catalogue)
    setup, first = ensemble.setup, trials[0]
    single = build_model(first, catalogue, setup.task, setup.view).to(setup.device)
    optimizer = make_optimizer(setup.optimizer, single.parameters(), first.lr, ensemble.options)
    generator = torch.Generator().manual_seed(first.seed)
    n, size = len(setup.x), min(first.batch_size, len(setup.x))
    stacked_idx = torch.stack([torch.randperm(n, generator=generator)[:size] for _ in trials]).to(setup.device)
    single_idx = stacked_idx[0]

    def single_step() -> None:
        value = setup.criterion(single(setup.x[single_idx]), setup.y[single_idx])
        optimizer.zero_grad(set_to_none=True)
        value.backward()
        if first.clip is not None:
            nn.utils.clip_grad_norm_(single.parameters(), first.clip)
        optimizer.step()

    return measure_stacking(lambda: ensemble.step(stacked_idx), single_step, len(trials),
                            lambda: synchronize(setup.device))


def group_reason(trials: list[Trial], catalogue: Catalogue) -> str | None:
    """Why a stack group cannot train stacked (see :func:`unstackable_reason`, for each of its activations)."""
    for trial in {t.activation: t for t in trials}.values():
        reason = unstackable_reason(trial, catalogue)
        if reason:
            return reason
    return None


def unstackable_reason(trial: Trial, catalogue: Catalogue) -> str | None:
    """Why the specs of ``trial``'s components do not allow training its seeds stacked, or ``None``."""
    optimizer = catalogue.optimizers.get(trial.optimizer)
    if optimizer.needs_closure:
        return f"optimizer {trial.optimizer!r} re-evaluates the loss of the whole model in each step"
    takes_activation = catalogue.architectures.get(trial.arch).takes_activation
    for kind, name in (("optimizer", trial.optimizer), ("architecture", trial.arch),
                       *((("activation", trial.activation),) if takes_activation else ()), ("loss", trial.loss),
                       *sorted(trial.components.items())):
        if catalogue.domain.kind(kind).stage == "loss":
            return f"{kind} {name!r} wraps the loss, which the stacked trainer does not do"
        if not catalogue.registry(kind).get(name).vectorizable:
            plugin = catalogue.registry(kind).plugin_of(name)
            return f"{kind} {name!r} (plugin {plugin!r}) does not declare vectorizable=True"
    return None


def _is_setting(value: Any) -> bool:
    """A hyper-parameter a schedule may change: a number or a tuple of numbers, not a flag."""
    if isinstance(value, tuple):
        return all(_is_setting(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


class SeedEnsemble:
    """The seeds of one configuration, built and checked as they would be alone, stacked as one model."""

    def __init__(self, trials: list[Trial], catalogue: Catalogue) -> None:
        self.trials, self.catalogue = trials, catalogue
        first = trials[0]
        self.setup = setup = set_up(first, catalogue)
        members: list[nn.Module] = []
        for trial in trials:
            member = build_model(trial, catalogue, setup.task, setup.view).to(setup.device)
            check_components(trial, catalogue, member, setup.x, setup.loss.outputs(setup.task))
            members.append(member)
        if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in members[0].modules()):
            raise NotStackable("the model uses dropout, whose random masks cannot match those drawn alone")
        self.n_params = sum(p.numel() for p in members[0].parameters())
        self.model = StackedModel(members)
        self.loss = stacked_loss(setup.criterion)
        self._probe(members)
        self.options = first.params.get("optimizer", {})
        self.optimizer = make_optimizer(setup.optimizer, self.model.params.values(), first.lr, self.options)
        self.clip = first.clip
        # The schedule drives an optimizer of its own over a stand-in parameter; its hyper-parameters
        # are copied to the stack's optimizer after every step, so the schedule survives members
        # leaving the stack (which replaces that optimizer).
        stand_in = torch.zeros(1, device=setup.device, requires_grad=True)
        self.proxy = make_optimizer(setup.optimizer, [stand_in], first.lr, self.options)
        steps = first.epochs * math.ceil(len(setup.x) / first.batch_size)
        self.schedule = make_schedule(first, catalogue, self.proxy, steps)
        self._sync_hyper_parameters()

    def _probe(self, members: list[nn.Module]) -> None:
        """Check on a few training rows that the stack computes what its members compute."""
        x, y = self.setup.x[:8], self.setup.y[:8]
        stacked_x = x.expand(len(members), *x.shape)
        stacked_y = y.expand(len(members), *y.shape)
        try:
            with torch.no_grad():
                self.model.train(False)  # no batch statistics may change here
                got = self.model(stacked_x)
                got_loss = self.loss(got, stacked_y)
        except RuntimeError as exc:
            raise NotStackable(f"the model cannot run stacked ({str(exc).splitlines()[0]})") from None
        finally:
            self.model.train(True)
        with torch.no_grad():
            for member in members:
                member.eval()
            expected = torch.stack([m(x) for m in members])
            expected_loss = torch.stack([self.setup.criterion(out, y) for out in expected])
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise NotStackable("the stacked model's outputs differ from its members' outputs")
        if got_loss.shape != expected_loss.shape or not torch.allclose(got_loss, expected_loss, rtol=1e-4, atol=1e-5):
            raise NotStackable("the stacked loss differs from the members' losses")

    def _sync_hyper_parameters(self) -> None:
        """Give the stack's optimizer the hyper-parameters the schedule set (numbers: the rate, momentum,
        betas; never the choice of kernel)."""
        if self.schedule is None:
            return
        settings = {k: v for k, v in self.proxy.param_groups[0].items()
                    if k != "params" and _is_setting(v)}
        for group in self.optimizer.param_groups:
            group.update(settings)

    def step(self, idx: torch.Tensor) -> torch.Tensor:
        """One optimizer step of every member on its own rows ``idx`` (``(members, batch)``); returns each
        member's loss, still on the device."""
        setup = self.setup
        losses = self.loss(self.model(setup.x[idx]), setup.y[idx])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if self.clip is not None:
            self._clip(self.clip)
        self.optimizer.step()
        if self.schedule is not None:
            self.proxy.step()  # its stand-in has no gradient: a no-op that keeps the schedule's bookkeeping right
            self.schedule.step()
            self._sync_hyper_parameters()
        return losses.detach()

    def _clip(self, limit: float) -> None:
        """``nn.utils.clip_grad_norm_`` for each member: its gradient scaled by its own total norm."""
        grads = [p.grad for p in self.model.params.values() if p.grad is not None]
        if not grads:
            return
        norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (members,)
        scale = (limit / (norms + 1e-6)).clamp(max=1.0)
        for g in grads:
            g.mul_(scale.reshape(-1, *([1] * (g.dim() - 1))))

    def train(self, on_epoch: OnEpoch | None, test_each_epoch: bool = False) -> list[TrialResult]:
        """Train every member for the trials' epochs (or until it diverges or its patience runs out);
        one result per trial."""
        setup, trials = self.setup, self.trials
        device, n = setup.device, len(setup.x)
        batch_size, epochs = trials[0].batch_size, trials[0].epochs
        shuffles = [torch.Generator().manual_seed(t.seed) for t in trials]
        results = [TrialResult(t, "ok", metric_name=setup.task.metric, n_params=self.n_params) for t in trials]
        stoppers = [EarlyStopping(t.patience, setup.task.higher_is_better) for t in trials]
        active = list(range(len(trials)))  # trials[active[k]] is the stack's member k
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.model.train()
        for epoch in range(1, epochs + 1):
            synchronize(device)
            start = time.perf_counter()
            orders = torch.stack([torch.randperm(n, generator=shuffles[i]) for i in active]).to(device)
            total = torch.zeros(len(active), device=device)
            for i in range(0, n, batch_size):
                idx = orders[:, i : i + batch_size]
                total += self.step(idx) * idx.shape[1]
            synchronize(device)
            elapsed = time.perf_counter() - start
            train_losses = [value / n for value in total.tolist()]
            vals = self._score(setup.validate)
            tested = [k for k, i in enumerate(active) if math.isfinite(train_losses[k])
                      and score_test_now(epoch, epochs, stoppers[i], vals[k], test_each_epoch)]
            tests = self._score(setup.evaluate) if tested else []
            staying = []
            for k, i in enumerate(active):
                finite = math.isfinite(train_losses[k])
                record = add_epoch(results[i], epoch, train_losses[k], elapsed / len(active),
                                   tests[k] if k in tested else {}, vals[k] if finite else {})
                if on_epoch is not None:
                    on_epoch(trials[i], record)
                if results[i].status != "diverged" and not stoppers[i].update(record):
                    staying.append(k)
            if not staying:
                break
            if len(staying) < len(active):
                self._keep(staying)
                active = [active[k] for k in staying]
        return [finish(result, n, device, stopper.chosen()) for result, stopper in zip(results, stoppers, strict=True)]

    @torch.no_grad()
    def _score(self, evaluator: Evaluator) -> list[dict[str, float]]:
        """Each member's held-out scores, read from the device at once."""
        self.model.train(False)
        size = self.model.size
        outputs = torch.cat([self.model(chunk.expand(size, *chunk.shape))
                             for chunk in evaluator.x.split(EVAL_CHUNK)], dim=1)
        self.model.train(True)
        scores = [evaluator.scores(out) for out in outputs]
        names = list(scores[0])
        values = [s[name] for s in scores for name in names]
        dtype = functools.reduce(torch.promote_types, (v.dtype for v in values))
        flat = torch.stack([v.to(dtype) for v in values]).tolist()  # the one read from the device
        return [dict(zip(names, flat[k * len(names) : (k + 1) * len(names)], strict=True))
                for k in range(len(scores))]

    def _keep(self, positions: list[int]) -> None:
        """Drop the members not at ``positions``, carrying the optimizer state of those that stay."""
        index = torch.tensor(positions, device=self.setup.device)
        before = list(self.model.params.values())
        self.model.keep(index)
        after = list(self.model.params.values())
        optimizer = make_optimizer(self.setup.optimizer, after, self.trials[0].lr, self.options)
        for old, new in zip(before, after, strict=True):
            state = self.optimizer.state.get(old)
            if state:  # entries shaped like the parameter are per member; the rest (step counts) are shared
                optimizer.state[new] = {
                    key: value[index].clone() if isinstance(value, torch.Tensor) and value.shape == old.shape
                    else value
                    for key, value in state.items()
                }
        self.optimizer = optimizer
        self._sync_hyper_parameters()
