"""Training the seeds of one configuration: together as a stacked ensemble where exact, else one by one.

Trials that differ only by seed are trained as one :class:`~nnbench.training.stacking.StackedModel`: each
member is built from its own seed exactly as it would be alone, draws its own batches from its
own seeded permutation, and the members' losses are summed, so each gets exactly its own
gradient; an element-wise optimizer over the stacked parameters then updates each member as it
would alone. Every seed's curve equals its curve alone up to float rounding (batched kernels may
round differently in the last bits).

Where that cannot hold, the group is trained one by one and ``log`` says why: an optimizer whose
update is not element-wise (LBFGS, per-tensor norms), a component whose spec does not declare
``vectorizable`` (the built-in CNN and recurrent networks: stacking them is not faster), dropout
(alone, each seed draws its masks from its own random stream), or a model whose stacked outputs
do not match its members'.

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
from typing import TYPE_CHECKING

import torch
from torch import nn

from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.training.stacking import NotStackable, StackedModel, stacked_loss
from nnbench.training.trainer import (
    EVAL_CHUNK,
    Evaluator,
    add_epoch,
    build_model,
    check_components,
    finish,
    make_optimizer,
    set_up,
    synchronize,
    train_trial,
)

if TYPE_CHECKING:
    from nnbench.loading.catalogue import Catalogue

OnEpoch = Callable[[Trial, EpochRecord], None]


def group_by_seed(trials: list[Trial]) -> list[list[Trial]]:
    """Group trials that differ only by seed, keeping the order of first appearance."""
    groups: dict[str, list[Trial]] = {}
    for trial in trials:
        groups.setdefault(_without_seed(trial), []).append(trial)
    return list(groups.values())


def _without_seed(trial: Trial) -> str:
    return Trial.from_config({**trial.config(), "seed": 0}).trial_id


def train_group(
    trials: list[Trial],
    catalogue: Catalogue,
    on_epoch: OnEpoch | None = None,
    vectorize: bool = True,
    log: Callable[[str], None] | None = None,
) -> list[TrialResult]:
    """Train trials that differ only by seed; one result per trial, in the same order.

    With ``vectorize`` (the default) the seeds train together as one stacked ensemble wherever
    that reproduces training them alone; otherwise, and for a group of one, one after another.
    ``log(message)`` hears why a group of several seeds was trained one by one.
    """
    if len({_without_seed(t) for t in trials}) > 1:
        raise ValueError("train_group needs trials that differ only by seed; group them with group_by_seed")

    def one_by_one(reason: str | None) -> list[TrialResult]:
        if reason and log is not None:
            first = trials[0]
            log(f"fell back to one-by-one training for {first.task} {first.label()} ({len(trials)} seeds) "
                f"because {reason}")
        return [train_trial(trial, catalogue, on_epoch) for trial in trials]

    if not vectorize or len(trials) < 2:
        return one_by_one(None)
    reason = unstackable_reason(trials[0], catalogue)
    if reason:
        return one_by_one(reason)
    try:
        ensemble = SeedEnsemble(trials, catalogue)
    except NotStackable as exc:
        return one_by_one(str(exc))
    except Exception as exc:
        return one_by_one(f"setting up the stacked ensemble failed ({type(exc).__name__}: {exc})")
    try:
        return ensemble.train(on_epoch)
    except Exception as exc:  # e.g. out of memory with many seeds on a GPU
        return one_by_one(f"stacked training failed ({type(exc).__name__}: {exc}); every seed was trained again")


def unstackable_reason(trial: Trial, catalogue: Catalogue) -> str | None:
    """Why the specs of ``trial``'s components do not allow training its seeds stacked, or ``None``."""
    if (trial.schedule, trial.clip, trial.patience) != ("constant", None, None):
        return "the stacked trainer does not apply learning-rate schedules, clipping or early stopping yet"
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


class SeedEnsemble:
    """The seeds of one configuration, built and checked as they would be alone, stacked as one model."""

    def __init__(self, trials: list[Trial], catalogue: Catalogue) -> None:
        self.trials = trials
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

    def _probe(self, members: list[nn.Module]) -> None:
        """Check on a few training rows that the stack computes what its members compute."""
        x, y = self.setup.x[:8], self.setup.y[:8]
        stacked_x = x.expand(len(members), *x.shape)
        stacked_y = y.expand(len(members), *y.shape)
        try:
            with torch.no_grad():
                got = self.model(stacked_x)
                got_loss = self.loss(got, stacked_y)
        except RuntimeError as exc:
            raise NotStackable(f"the model cannot run stacked ({str(exc).splitlines()[0]})") from None
        with torch.no_grad():
            expected = torch.stack([m(x) for m in members])
            expected_loss = torch.stack([self.setup.criterion(out, y) for out in expected])
        if got.shape != expected.shape or not torch.allclose(got, expected, rtol=1e-4, atol=1e-5):
            raise NotStackable("the stacked model's outputs differ from its members' outputs")
        if got_loss.shape != expected_loss.shape or not torch.allclose(got_loss, expected_loss, rtol=1e-4, atol=1e-5):
            raise NotStackable("the stacked loss differs from the members' losses")

    def train(self, on_epoch: OnEpoch | None) -> list[TrialResult]:
        """Train every member for the trials' epochs (or until it diverges); one result per trial."""
        setup, trials = self.setup, self.trials
        device, x, y, n = setup.device, setup.x, setup.y, len(setup.x)
        batch_size, epochs = trials[0].batch_size, trials[0].epochs
        shuffles = [torch.Generator().manual_seed(t.seed) for t in trials]
        results = [TrialResult(t, "ok", metric_name=setup.task.metric, n_params=self.n_params) for t in trials]
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
                losses = self.loss(self.model(x[idx]), y[idx])
                self.optimizer.zero_grad(set_to_none=True)
                losses.sum().backward()
                self.optimizer.step()
                total += losses.detach() * idx.shape[1]
            synchronize(device)
            elapsed = time.perf_counter() - start
            train_losses = [value / n for value in total.tolist()]
            tests, vals = self._score(setup.evaluate), self._score(setup.validate)
            staying = []
            for k, i in enumerate(active):
                finite = math.isfinite(train_losses[k])
                record = add_epoch(results[i], epoch, train_losses[k], elapsed / len(active),
                                   tests[k] if finite else {}, vals[k] if finite else {})
                if on_epoch is not None:
                    on_epoch(trials[i], record)
                if results[i].status != "diverged":
                    staying.append(k)
            if not staying:
                break
            if len(staying) < len(active):
                self._keep(staying)
                active = [active[k] for k in staying]
        return [finish(result, n, device) for result in results]

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
