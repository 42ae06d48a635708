"""Training one work item: the seeds of one configuration together as a stacked ensemble, or one by one.

Trials that differ only by seed can train as one :class:`~nnbench.training.stacking.StackedModel`: each
member is built from its own seed exactly as it would be alone, draws its own batches from its
own seeded permutation, and the members' losses are summed, so each gets exactly its own
gradient; an element-wise optimizer over the stacked parameters then updates each member as it
would alone. Every seed's curve equals its curve alone up to float rounding (batched kernels may
round differently in the last bits). Learning-rate schedules, gradient clipping and early stopping
apply per member as alone: the schedule runs once for the stack (its members share their
configuration, so every step's rate is the same for each of them), each member's gradient is
clipped by its own norm, and a member whose patience runs out leaves the stack.

Whether a group trains stacked is the planner's decision, from the components' declarations
(:mod:`nnbench.execution.stacks`). Before the stack trains, it is proven on the real group: should the
stacked model not compute what its members compute (dropout, whose masks each seed draws from its own
random stream; a layer that breaks when stacked; outputs that differ), the group trains one by one and
each result's ``training`` record says why.

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
from collections.abc import Callable, Sequence
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.training.placement import placed, trained_where
from nnbench.training.proof import PROOFS, MemberStep, clip_members, prove_stack
from nnbench.training.stacked_networks import STACKED_FORMS
from nnbench.training.stacking import NotStackable, StackedModel, stacked_loss
from nnbench.training.stages import BatchStage, batch_loss, staged
from nnbench.training.trainer import (
    EVAL_CHUNK,
    EarlyStopping,
    Evaluator,
    TimeLimit,
    TrialTimeout,
    add_epoch,
    build_model,
    check_components,
    epoch_order,
    finish,
    make_optimizer,
    make_schedule,
    recorded_loss,
    score_test_now,
    set_up,
    synchronize,
    timed_out,
    train_trial,
)

if TYPE_CHECKING:
    from nnbench.loading.catalogue import Catalogue

OnEpoch = Callable[[Trial, EpochRecord], None]


def train_placed(device: str, trials: Sequence[Trial], catalogue: Catalogue, **options: Any) -> list[TrialResult]:
    """:func:`train_item` (``options`` are its own) with ``device`` current (one device, or a kind: this process's
    current device of it); each result records the node and the device that trained it."""
    with placed(device) as name:
        results = train_item(trials, catalogue, **options)
        where = trained_where(name)
    for result in results:
        result.training = {**(result.training or {}), **where}
    return results


def train_item(trials: Sequence[Trial], catalogue: Catalogue, *, stacked: bool, reason: str | None = None,
               on_epoch: OnEpoch | None = None, test_each_epoch: bool = False, timeout: float | None = None,
               threads: int | None = None) -> list[TrialResult]:
    """Train the trials of one work item and return one result per trial, in order; never raises for a problem
    inside a trial.

    ``stacked``: the trials (seeds of one configuration, see :mod:`nnbench.execution.stacks`) train as one
    :class:`SeedEnsemble`, once it proves on their first batches that it computes what each member computes
    alone; otherwise, or when the proof fails, one by one (``reason`` says why, in their ``training`` record).
    ``timeout`` limits each trial's training to that many seconds (a stack: that many per member). ``threads``:
    train on that many torch threads, giving the process its own setting back afterwards (a notebook's)."""
    previous = torch.get_num_threads()
    torch.set_num_threads(threads or previous)
    try:
        return _train_item(list(trials), catalogue, stacked, reason, on_epoch, test_each_epoch, timeout)
    finally:
        torch.set_num_threads(previous)


def _train_item(trials: list[Trial], catalogue: Catalogue, stacked: bool, reason: str | None,
                on_epoch: OnEpoch | None, test_each_epoch: bool, timeout: float | None) -> list[TrialResult]:
    if not stacked or len(trials) < 2:
        return _one_by_one(trials, catalogue, reason, on_epoch, test_each_epoch, timeout)
    _check_stack(trials, catalogue)
    try:
        ensemble = SeedEnsemble(trials, catalogue)
    except NotStackable as exc:
        return _one_by_one(trials, catalogue, str(exc), on_epoch, test_each_epoch, timeout)
    except Exception as exc:
        return _one_by_one(trials, catalogue, f"setting up the stacked ensemble failed ({type(exc).__name__}: {exc})",
                           on_epoch, test_each_epoch, timeout)
    limit = TimeLimit(timeout * len(trials) if timeout else None)
    try:
        results = ensemble.train(on_epoch, test_each_epoch, limit)
    except TrialTimeout:
        return [timed_out(t, timeout, len(trials)) for t in trials]
    except Exception as exc:  # e.g. out of memory with many seeds on a GPU
        return _one_by_one(trials, catalogue, f"stacked training failed ({type(exc).__name__}: {exc}); every seed "
                           "was trained again", on_epoch, test_each_epoch, timeout)
    for result in results:
        result.training = {**(result.training or {}), "mode": "stacked", "members": len(trials)}
    return results


def _one_by_one(trials: list[Trial], catalogue: Catalogue, reason: str | None, on_epoch: OnEpoch | None,
                test_each_epoch: bool, timeout: float | None) -> list[TrialResult]:
    results = []
    for trial in trials:
        result = train_trial(trial, catalogue, on_epoch, test_each_epoch, timeout)
        result.training = {**(result.training or {}), "mode": "one_by_one", "members": 1,
                           **({"reason": reason} if reason else {})}
        results.append(result)
    return results


def _check_stack(trials: list[Trial], catalogue: Catalogue) -> None:
    """Trials of one stack differ only by seed, or by seed and element-wise activations."""
    shapes = {t.key_without("seed", "activation") for t in trials}
    mixed = {t.activation for t in trials}
    if len(shapes) > 1 or (len(mixed) > 1 and not all(catalogue.activations.get(a).elementwise for a in mixed)):
        raise ValueError("one stack holds trials that differ only by seed (and element-wise activations); "
                         "group them with nnbench.execution.stacks.stack_groups")


def _is_setting(value: Any) -> bool:
    """A hyper-parameter a schedule may change: a number or a tuple of numbers, not a flag."""
    if isinstance(value, tuple):
        return all(_is_setting(v) for v in value)
    return isinstance(value, (int, float)) and not isinstance(value, bool)


def proof_signature(trials: list[Trial]) -> str:
    """What a stack's proof depends on: the configuration without its seed, and the members' activations."""
    return trials[0].key_without("seed", "activation") + "|" + ",".join(sorted({t.activation for t in trials}))


def culprits(trial: Trial, catalogue: Catalogue, activations: set[str]) -> str:
    """Which components declared that they stack and may not (those from plugins first): for a failed proof."""
    named: list[tuple[str, str]] = []
    for kind, name in sorted(trial.components.items()):
        if catalogue.domain.kind(kind).stage in ("build", "model", "batch"):
            named.append((kind, name))
    if catalogue.architectures.get(trial.arch).takes_activation:
        named += [("activation", a) for a in sorted(activations)]
    named.append(("architecture", trial.arch))
    described = [(catalogue.registry(kind).plugin_of(name), f"{kind} {name!r}") for kind, name in named]
    theirs = [f"{what} (plugin {plugin!r})" for plugin, what in described if not plugin.startswith("nnbench.")]
    chosen = theirs or [f"{what} (plugin {plugin!r})" for plugin, what in described]
    if len(chosen) == 1:
        return f"{chosen[0]} declares vectorizable=True but does not compute alike stacked"
    return "one of these declares vectorizable=True but does not compute alike stacked: " + ", ".join(chosen)


class SeedEnsemble:
    """The seeds of one configuration, built and checked as they would be alone, stacked as one model."""

    def __init__(self, trials: list[Trial], catalogue: Catalogue) -> None:
        self.trials, self.catalogue = trials, catalogue
        first = trials[0]
        self.setup = setup = set_up(first, catalogue)
        if setup.optimizer.needs_closure:
            raise NotStackable(f"optimizer {first.optimizer!r} re-evaluates the loss of the whole model in each step")
        if any(True for t in trials for _ in staged(t, catalogue, "loss")):
            raise NotStackable("a loss-stage component wraps each model's own criterion, which a stack does not do")
        if any(True for t in trials for _ in staged(t, catalogue, "training")):
            raise NotStackable("a training-stage component follows each model's own steps, which a stack does not do")
        members: list[nn.Module] = []
        hooks_by: dict[str, str] = {}
        for trial in trials:
            member = build_model(trial, catalogue, setup.task, setup.view, setup.contexts(trial),
                                 hooks_by).to(setup.device)
            check_components(trial, catalogue, member, setup.x, setup.loss.outputs(setup.task))
            members.append(member)
        if any(isinstance(m, nn.modules.dropout._DropoutNd) and m.p > 0 for m in members[0].modules()):
            raise NotStackable("the model uses dropout, whose random masks cannot match those drawn alone")
        self.n_params = sum(p.numel() for p in members[0].parameters())
        forms = {**STACKED_FORMS, **catalogue.architectures.get(first.arch).stacked_forms}
        PROOFS.prove(proof_signature(trials), lambda: self._prove(members, forms, hooks_by))
        self.model = StackedModel(members, forms)
        self.loss = stacked_loss(setup.criterion)
        self.batches = [BatchStage(t, catalogue, setup.contexts(t)) for t in trials]
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

    def _prove(self, members: list[nn.Module], forms: dict[type, Any], hooks_by: dict[str, str]) -> None:
        """Prove on the group's first training rows that the stack computes what its members compute."""
        setup, trials = self.setup, self.trials
        rows = min(len(setup.x), trials[0].batch_size, 64)
        steps = [MemberStep(functools.partial(make_optimizer, setup.optimizer), t.lr, t.params.get("optimizer", {}),
                            t.clip) for t in trials]
        prove_stack(members, forms, setup.x[:rows], setup.y[:rows], setup.criterion, steps,
                    culprits(trials[0], self.catalogue, {t.activation for t in trials}), hooks_by)

    def _sync_hyper_parameters(self) -> None:
        """Give the stack's optimizer the hyper-parameters the schedule set (numbers: the rate, momentum,
        betas; never the choice of kernel)."""
        if self.schedule is None:
            return
        settings = {k: v for k, v in self.proxy.param_groups[0].items()
                    if k != "params" and _is_setting(v)}
        for group in self.optimizer.param_groups:
            group.update(settings)

    def step(self, idx: torch.Tensor, members: list[int]) -> torch.Tensor:
        """One optimizer step of every member on its own rows ``idx`` (``(members, batch)``); returns each
        member's loss, still on the device. ``members``: the trials (by position) still in the stack."""
        setup = self.setup
        if any(self.batches[i] for i in members):
            losses = self._transformed_losses(idx, members)
        else:
            losses = self.loss(self.model(setup.x[idx]), setup.y[idx])
        self.optimizer.zero_grad(set_to_none=True)
        losses.sum().backward()
        if self.clip is not None:
            clip_members(list(self.model.params.values()), self.clip)
        self.optimizer.step()
        if self.schedule is not None:
            self.proxy.step()  # its stand-in has no gradient: a no-op that keeps the schedule's bookkeeping right
            self.schedule.step()
            self._sync_hyper_parameters()
        return losses.detach()

    def _transformed_losses(self, idx: torch.Tensor, members: list[int]) -> torch.Tensor:
        """Each member's loss on its own batch after its own batch stage (its transforms draw from its own
        generators, as alone)."""
        setup = self.setup
        inputs, targets, adapters = [], [], []
        for k, i in enumerate(members):
            xb, yb, adapter = self.batches[i](setup.x[idx[k]], setup.y[idx[k]]) if self.batches[i] else (
                setup.x[idx[k]], setup.y[idx[k]], None)
            inputs.append(xb)
            targets.append(yb)
            adapters.append(adapter)
        outputs = self.model(torch.stack(inputs))
        if all(a is None for a in adapters):
            return self.loss(outputs, torch.stack(targets))
        return torch.stack([batch_loss(outputs[k], targets[k], self.setup.criterion, adapters[k])
                            for k in range(len(members))])

    def train(self, on_epoch: OnEpoch | None, test_each_epoch: bool = False,
              limit: TimeLimit | None = None) -> list[TrialResult]:
        """Train every member for the trials' epochs (or until it diverges or its patience runs out);
        one result per trial. ``limit`` stops the whole stack (:class:`TrialTimeout`) once it has passed."""
        limit = limit or TimeLimit(None)
        setup, trials = self.setup, self.trials
        device, n = setup.device, len(setup.x)
        batch_size, epochs = trials[0].batch_size, trials[0].epochs
        shuffles = [torch.Generator().manual_seed(t.seed) for t in trials]
        first = trials[0]
        results = [TrialResult(t, "ok", metric_name=setup.task.metric, n_params=self.n_params) for t in trials]
        stoppers = [EarlyStopping(t.patience, setup.task.higher_is_better) for t in trials]
        active = list(range(len(trials)))  # trials[active[k]] is the stack's member k
        if device.type == "cuda":
            torch.cuda.reset_peak_memory_stats(device)
        self.model.train()
        for epoch in range(1, epochs + 1):
            synchronize(device)
            start = time.perf_counter()
            orders = torch.stack([epoch_order(first, n, shuffles[i]) for i in active]).to(device)
            total = torch.zeros(len(active), device=device)
            for i in range(0, n, batch_size):
                idx = orders[:, i : i + batch_size]
                total += self.step(idx, active) * idx.shape[1]
                limit.check()
            synchronize(device)
            elapsed = time.perf_counter() - start
            for i in active:
                if self.batches[i]:
                    self.batches[i].check()
            train_losses = [value / n for value in total.tolist()]
            vals = self._score(setup.validate) if setup.validate is not None else [{} for _ in active]
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
        for result, batches in zip(results, self.batches, strict=True):
            recorded_loss(result, batches)
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
