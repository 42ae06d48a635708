"""The proof a stack must pass before it trains: on the real group, the stacked model computes what each member
computes alone, in evaluation mode and in training mode, forward, loss, gradients and one optimizer step.

:func:`prove_stack` works on copies, with torch's global random stream put back afterwards, so proving changes
nothing of what training then does. It raises :class:`~nnbench.training.stacking.NotStackable` saying, in plain
words, what differs and which component is the likely cause. The trainer caches the verdict per configuration
(:class:`ProofCache`); the conformance checks run the same proof on every component declared vectorizable.
"""

from __future__ import annotations

import copy
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nnbench.training.stacking import NotStackable, StackedForm, StackedModel, stacked_loss
from nnbench.training.stages import hooked_layers

RTOL, ATOL = 1e-4, 1e-5
"""How far a stacked number may be from the member's own: batched kernels round in their own order."""


@dataclass(frozen=True)
class MemberStep:
    """What one member's optimizer step is made of alone: ``make(params, lr, options)`` builds its optimizer
    (the trainer's fused or multi-tensor choice included), ``clip`` is its gradient-norm limit."""

    make: Callable[[list[torch.Tensor], float, Mapping[str, Any]], torch.optim.Optimizer]
    lr: float
    options: Mapping[str, Any]
    clip: float | None


def clip_members(params: Sequence[torch.Tensor], limit: float) -> None:
    """``nn.utils.clip_grad_norm_`` for each member of stacked ``params``: its gradient scaled by its own norm."""
    grads = [p.grad for p in params if p.grad is not None]
    if not grads:
        return
    norms = torch.stack([g.flatten(1).norm(dim=1) for g in grads]).norm(dim=0)  # (members,)
    scale = (limit / (norms + 1e-6)).clamp(max=1.0)
    for g in grads:
        g.mul_(scale.reshape(-1, *([1] * (g.dim() - 1))))


def _close(got: torch.Tensor, expected: torch.Tensor, scale: torch.Tensor | None = None) -> bool:
    if got.shape != expected.shape:
        return False
    atol = ATOL if scale is None else ATOL * max(1.0, float(scale))
    return bool(torch.allclose(got, expected, rtol=RTOL, atol=atol, equal_nan=True))


def prove_stack(members: Sequence[nn.Module], forms: Mapping[type, StackedForm], x: torch.Tensor, y: torch.Tensor,
                criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], steps: Sequence[MemberStep],
                culprits: str = "", hooks_by: Mapping[str, str] | None = None) -> None:
    """Raise :class:`NotStackable` unless the stack of ``members`` computes what each computes alone on the rows
    ``x, y``: outputs in evaluation and training mode, losses, gradients, and the parameters and buffers after one
    step of each member's own optimizer (``steps``, one per member). ``culprits`` names the components that may
    be the cause, for the message; ``hooks_by`` says which component hooked which layer."""
    hooked = sorted(set().union(*(hooked_layers(m) for m in members)))
    if hooked:
        by = sorted({(hooks_by or {}).get(layer, "") for layer in hooked} - {""})
        who = f"{' and '.join(by)} hooks" if by else "hooks on"
        raise NotStackable(f"{who} layer {hooked[0]!r} (hooks run only when a layer is called alone, so a stack "
                           "would skip them)")
    blame = f"; {culprits}" if culprits else ""
    with torch.random.fork_rng(devices=[x.device] if x.device.type == "cuda" else []):
        alone = [copy.deepcopy(m) for m in members]
        try:
            stack = StackedModel([copy.deepcopy(m) for m in members], forms)
        except NotStackable as exc:
            raise NotStackable(f"{exc}{blame}") from None
        stacked_x = x.expand(len(members), *x.shape)
        stacked_y = y.expand(len(members), *y.shape)
        for training in (False, True):
            _compare_forward(stack, alone, stacked_x, stacked_y, criterion, training, blame)
        _compare_step(stack, alone, steps, blame)


def _run_stacked(stack: StackedModel, x: torch.Tensor) -> torch.Tensor:
    try:
        return stack(x)
    except RuntimeError as exc:
        message = str(exc).splitlines()[0]
        if "random" in message.lower():
            raise NotStackable("a layer draws random numbers in training mode (as dropout does), which a stack "
                               "cannot draw as each seed draws them alone") from None
        raise NotStackable(f"the model cannot run stacked ({message})") from None


def _compare_forward(stack: StackedModel, alone: list[nn.Module], x: torch.Tensor, y: torch.Tensor,
                     criterion: Callable[[torch.Tensor, torch.Tensor], torch.Tensor], training: bool,
                     blame: str) -> None:
    mode = "training" if training else "evaluation"
    stack.train(training)
    for member in alone:
        member.train(training)
    with torch.set_grad_enabled(training):
        got = _run_stacked(stack, x)
        expected = torch.stack([m(x[k]) for k, m in enumerate(alone)])
        if not _close(got.detach(), expected.detach()):
            raise NotStackable(f"in {mode} mode the stacked outputs differ from each seed's own{blame}")
        if not training:
            return
        got_losses = stacked_loss(criterion)(got, y)
        expected_losses = torch.stack([criterion(expected[k], y[k]) for k in range(len(alone))])
        if not _close(got_losses.detach(), expected_losses.detach()):
            raise NotStackable(f"the stacked loss differs from each seed's own{blame}")
        got_losses.sum().backward()
        expected_losses.sum().backward()
    for name, stacked in stack.params.items():
        own = [dict(m.named_parameters())[name].grad for m in alone]
        if stacked.grad is None and all(g is None for g in own):
            continue
        zeros = [torch.zeros_like(p) for p in (dict(m.named_parameters())[name] for m in alone)]
        own_grad = torch.stack([(g if g is not None else z) for g, z in zip(own, zeros, strict=True)])
        if name in stack.transposed:
            own_grad = own_grad.transpose(1, 2)
        grad = stacked.grad if stacked.grad is not None else torch.zeros_like(stacked)
        if not _close(grad, own_grad, own_grad.abs().max()):
            raise NotStackable(f"in training mode the stacked gradients of {name!r} differ from each seed's "
                               f"own{blame}")


def _compare_step(stack: StackedModel, alone: list[nn.Module], steps: Sequence[MemberStep], blame: str) -> None:
    """One optimizer step each, from the members' own gradients (so only the step itself is compared)."""
    with torch.no_grad():
        for name, stacked in stack.params.items():
            weights = [dict(m.named_parameters())[name] for m in alone]
            grads = torch.stack([p.grad if p.grad is not None else torch.zeros_like(p) for p in weights])
            # laid out as the stacked weights are: torch's fused optimizers read a gradient in its weight's
            # strides, and a member's convolution may keep its weights channels-last
            stacked.grad = torch.empty_like(stacked).copy_(grads.transpose(1, 2) if name in stack.transposed else grads)
    first = steps[0]
    optimizer = first.make(list(stack.params.values()), first.lr, first.options)
    if first.clip is not None:
        clip_members(list(stack.params.values()), first.clip)
    optimizer.step()
    for member, step in zip(alone, steps, strict=True):
        if step.clip is not None:
            nn.utils.clip_grad_norm_(member.parameters(), step.clip)
        step.make(list(member.parameters()), step.lr, step.options).step()
    for name, stacked in stack.params.items():
        after = torch.stack([dict(m.named_parameters())[name].detach() for m in alone])
        if name in stack.transposed:
            after = after.transpose(1, 2)
        if not _close(stacked.detach(), after):
            raise NotStackable(f"after one optimizer step the stacked weights {name!r} differ from each seed's own "
                               f"(do the seeds differ in learning rate, clipping or optimizer settings?){blame}")
    for name, stacked in stack.buffers.items():
        buffers = torch.stack([dict(m.named_buffers())[name] for m in alone])
        if stacked.dtype.is_floating_point and not _close(stacked, buffers):
            raise NotStackable(f"after a training step the stacked buffer {name!r} differs from each seed's own{blame}")


class ProofCache:
    """Verdicts of proofs already made in this process, by configuration signature: ``None`` for a stack proven
    exact, else why it is not."""

    def __init__(self) -> None:
        self.verdicts: dict[str, str | None] = {}

    def prove(self, signature: str, proof: Callable[[], None]) -> None:
        """Run ``proof`` once per ``signature``; raise :class:`NotStackable` (again) when it failed."""
        if signature not in self.verdicts:
            try:
                proof()
            except NotStackable as exc:
                self.verdicts[signature] = str(exc)
            else:
                self.verdicts[signature] = None
        reason = self.verdicts[signature]
        if reason is not None:
            raise NotStackable(reason)


PROOFS = ProofCache()
"""The process's proofs: a worker proves each configuration once, however many of its seed groups it trains."""
