"""Several copies of one model, their parameters stacked along a new leading dimension, run as one.

:class:`StackedModel` reads inputs of shape ``(members, batch, ...)`` and returns
``(members, batch, outputs)``; member ``k`` sees only its own slice and its own parameters, so the
sum of the members' losses gives each member exactly its own gradient. Layers torch already
batches are run directly (``nn.Linear`` becomes one ``baddbmm``, element-wise activations apply
to the whole stack), module classes with a stacked form of their own (torch's convolution and recurrent
layers in :mod:`nnbench.training.stacked_networks`, an architecture's own networks through
``Architecture.stacked_forms``) run it, and any other layer runs under ``torch.func.vmap`` over
``functional_call``, which is exact but slower. :func:`stacked_loss` does the same for criteria.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from typing import TypeGuard, TypeVar

import torch
from torch import nn
from torch.func import functional_call, vmap
from torch.nn import functional as F

Layer = Callable[[torch.Tensor], torch.Tensor]
StackedForm = Callable[["StackedModel", nn.Module, str], Layer]
"""``form(stack, module, prefix)``: the layer computing ``module`` (a member's submodule named ``prefix``) for every
member of ``stack``."""
M = TypeVar("M", bound=nn.Module)
Criterion = Callable[[torch.Tensor, torch.Tensor], torch.Tensor]
"""A loss as the trainer calls it: ``(outputs, targets)`` to a scalar (or one per member, stacked)."""

ELEMENTWISE: tuple[type[nn.Module], ...] = (
    nn.ReLU, nn.ReLU6, nn.LeakyReLU, nn.ELU, nn.CELU, nn.SELU, nn.GELU, nn.SiLU, nn.Mish, nn.Softplus, nn.Tanh,
    nn.Sigmoid, nn.Hardswish, nn.Hardsigmoid, nn.Hardtanh, nn.Softsign, nn.Tanhshrink, nn.Identity,
)
"""Parameter-free modules whose output entries each depend on one input entry: they apply to a
stack of members as they apply to one member."""


class NotStackable(Exception):
    """These models cannot be trained as one stack; the message says why."""


def _exactly(module: nn.Module, kind: type[M]) -> TypeGuard[M]:
    """``module`` is a ``kind`` itself, not a subclass that may compute something else."""
    return type(module) is kind


def _shift(dim: int) -> int:
    """A member's dimension ``dim`` in the stacked tensor, which has one more leading dimension."""
    return dim + 1 if dim >= 0 else dim


def linear(x: torch.Tensor, weight: torch.Tensor, bias: torch.Tensor | None) -> torch.Tensor:
    """Each member's ``nn.Linear`` as one batched matrix multiply; ``weight`` is ``(members, in, out)``."""
    flat = x.reshape(x.shape[0], -1, x.shape[-1])
    out = torch.bmm(flat, weight) if bias is None else torch.baddbmm(bias.unsqueeze(1), flat, weight)
    return out.reshape(*x.shape[:-1], weight.shape[2])


def prelu(x: torch.Tensor, weight: torch.Tensor) -> torch.Tensor:
    """Each member's ``nn.PReLU`` on ``(members, batch, features)`` inputs; ``weight`` is ``(members,
    1)`` or ``(members, features)``."""
    slope = weight.reshape(weight.shape[0], *([1] * (x.dim() - 2)), weight.shape[1])
    if x.dim() > 3 and weight.shape[1] > 1:  # per-channel slopes: channels are a member's first dimension
        slope = weight.reshape(weight.shape[0], 1, weight.shape[1], *([1] * (x.dim() - 3)))
    return torch.where(x > 0, x, slope * x)


def parameter_free(module: nn.Module) -> bool:
    return not any(True for _ in module.parameters())


def _alike(one: nn.Module, other: nn.Module) -> bool:
    return type(one) is type(other) and one.extra_repr() == other.extra_repr()


class StackedModel:
    """``members`` (identical architectures, different weights) as one model over stacked inputs; ``forms`` maps
    module classes to their stacked forms (torch's, :data:`~nnbench.training.stacked_networks.STACKED_FORMS`, and
    the architecture's own).

    ``params`` maps each parameter name of a member to the stacked leaf tensor to optimize; it is
    the only copy of the weights, and :meth:`keep` replaces it with a subset of the members. Members
    may differ in their parameter-free element-wise layers (the activation under test): each run of
    members with alike layers applies its own to its part of the stack.
    """

    def __init__(self, members: list[nn.Module], forms: Mapping[type, StackedForm] | None = None) -> None:
        self.template = members[0]
        self.forms = dict(forms or {})
        self.members = members
        self.active = list(range(len(members)))  # the members (by position in ``members``) still stacked
        self._runs: dict[tuple[str, tuple[int, ...]], list[tuple[int, int, nn.Module]]] = {}
        # Linear weights are stored transposed, (members, in, out): the batched matmul's backward
        # is 3x slower on a transposed view on CPU. Element-wise optimizers do not mind the layout.
        self.transposed: set[str] = set()
        self.layers = self.plan(self.template, "")
        names = [name for name, _ in self.template.named_parameters()]
        buffer_names = [name for name, _ in self.template.named_buffers()]
        per_member = [(dict(m.named_parameters()), dict(m.named_buffers())) for m in members]
        if any(sorted(p) != sorted(names) or sorted(b) != sorted(buffer_names) for p, b in per_member):
            raise NotStackable("the seeds built models with different parameters")
        with torch.no_grad():
            self.params = {n: torch.stack([p[n].t() if n in self.transposed else p[n] for p, _ in per_member])
                           .contiguous().requires_grad_() for n in names}
            self.buffers = {n: torch.stack([b[n] for _, b in per_member]) for n in buffer_names}
        self.size = len(members)

    def __call__(self, x: torch.Tensor) -> torch.Tensor:
        for layer in self.layers:
            x = layer(x)
        return x

    def train(self, mode: bool = True) -> None:
        self.template.train(mode)

    def keep(self, index: torch.Tensor) -> None:
        """Keep only the members at positions ``index`` (new leaf tensors; gradients are dropped)."""
        with torch.no_grad():
            self.params = {n: p[index].clone().requires_grad_() for n, p in self.params.items()}
            self.buffers = {n: b[index].clone() for n, b in self.buffers.items()}
        self.active = [self.active[i] for i in index.tolist()]
        self.size = len(index)

    def runs(self, prefix: str) -> list[tuple[int, int, nn.Module]]:
        """Consecutive stack positions ``[start, end)`` whose members have alike layers at ``prefix``,
        each with one of those layers."""
        key = (prefix, tuple(self.active))
        if key not in self._runs:
            layers = [self.members[i].get_submodule(prefix.rstrip(".")) for i in self.active]
            runs, start = [], 0
            for k in range(1, len(layers) + 1):
                if k == len(layers) or not _alike(layers[k], layers[start]):
                    runs.append((start, k, layers[start]))
                    start = k
            self._runs[key] = runs
        return self._runs[key]

    def elementwise(self, module: nn.Module, prefix: str, grouped: bool = False) -> Layer:
        """A parameter-free element-wise layer (``module``, the template's) for the whole stack: the
        layer itself when every member has one alike, else each run of members' own layer on its part (any
        parameter-free layer, as its activation declares: the proof before training checks the outputs).
        ``grouped``: inputs hold the members' channels side by side, ``(batch, members * channels, ...)``."""
        layers = [m.get_submodule(prefix.rstrip(".")) for m in self.members]
        if all(_alike(layer, module) for layer in layers):
            return module
        if not all(parameter_free(layer) for layer in layers):
            raise NotStackable(f"the seeds built different layers at {prefix.rstrip('.') or 'the top'}")
        if grouped:
            def by_channels(x: torch.Tensor) -> torch.Tensor:
                width = x.shape[1] // len(self.active)
                return torch.cat([layer(x[:, a * width : b * width]) for a, b, layer in self.runs(prefix)], dim=1)

            return by_channels
        return lambda x: torch.cat([layer(x[a:b]) for a, b, layer in self.runs(prefix)], dim=0)

    def alike_at(self, module: nn.Module, prefix: str) -> bool:
        """Whether every member has a layer alike ``module`` at ``prefix``."""
        return all(_alike(m.get_submodule(prefix.rstrip(".")), module) for m in self.members)

    @property
    def training(self) -> bool:
        return self.template.training

    def plan(self, module: nn.Module, prefix: str) -> list[Layer]:
        """The layers that compute ``module`` (a member's submodule named ``prefix``) for the whole
        stack, on inputs of shape ``(members, batch, ...)``. Stacked forms call it for their parts,
        and mark in :attr:`transposed` the ``nn.Linear``-like weights they read as ``(members, in, out)``."""
        form = self.forms.get(type(module))
        if form is not None:
            return [form(self, module, prefix)]
        if _exactly(module, nn.Sequential):
            return [layer for name, child in module.named_children() for layer in self.plan(child, f"{prefix}{name}.")]
        if _exactly(module, nn.Linear):
            self.transposed.add(f"{prefix}weight")
            return [lambda x: linear(x, self.params[f"{prefix}weight"], self.params.get(f"{prefix}bias"))]
        if type(module) in ELEMENTWISE or (parameter_free(module) and not self.alike_at(module, prefix)):
            return [self.elementwise(module, prefix)]
        if _exactly(module, nn.PReLU):
            return [lambda x: prelu(x, self.params[f"{prefix}weight"])]
        if _exactly(module, nn.Softmax) and module.dim is not None:
            softmax_dim = _shift(module.dim)
            return [lambda x: F.softmax(x, dim=softmax_dim)]
        if _exactly(module, nn.LogSoftmax) and module.dim is not None:
            log_softmax_dim = _shift(module.dim)
            return [lambda x: F.log_softmax(x, dim=log_softmax_dim)]
        if _exactly(module, nn.Flatten):
            start, end = _shift(module.start_dim), _shift(module.end_dim)
            return [lambda x: x.flatten(start, end)]
        if _exactly(module, nn.Dropout) and module.p == 0:
            return []
        return [self.vmapped(module, prefix)]

    def vmapped(self, module: nn.Module, prefix: str) -> Layer:
        names = [name for name, _ in module.named_parameters()]
        buffer_names = [name for name, _ in module.named_buffers()]

        def member(params: dict[str, torch.Tensor], buffers: dict[str, torch.Tensor], x: torch.Tensor) -> torch.Tensor:
            return functional_call(module, (params, buffers), (x,))

        # randomness="error": a layer drawing random numbers (dropout) cannot match training alone.
        batched = vmap(member, randomness="error")

        def layer(x: torch.Tensor) -> torch.Tensor:
            return batched({n: self.params[prefix + n] for n in names},
                           {n: self.buffers[prefix + n] for n in buffer_names}, x)

        return layer


def unreduced(criterion: nn.Module) -> Criterion | None:
    """The per-sample terms of a mean-reduced torch criterion, or ``None`` for any other criterion."""
    c = criterion
    if getattr(c, "reduction", None) != "mean" or getattr(c, "weight", None) is not None:
        return None
    if _exactly(c, nn.CrossEntropyLoss):
        smoothing = c.label_smoothing
        return lambda o, y: F.cross_entropy(o, y, reduction="none", label_smoothing=smoothing)
    if _exactly(c, nn.NLLLoss):
        return lambda o, y: F.nll_loss(o, y, reduction="none")
    if _exactly(c, nn.MultiMarginLoss):
        p, margin = c.p, c.margin
        return lambda o, y: F.multi_margin_loss(o, y, p=p, margin=margin, reduction="none")
    if _exactly(c, nn.MSELoss):
        return lambda o, y: F.mse_loss(o, y, reduction="none")
    if _exactly(c, nn.L1Loss):
        return lambda o, y: F.l1_loss(o, y, reduction="none")
    if _exactly(c, nn.HuberLoss):
        delta = c.delta
        return lambda o, y: F.huber_loss(o, y, reduction="none", delta=delta)
    if _exactly(c, nn.SmoothL1Loss):
        beta = c.beta
        return lambda o, y: F.smooth_l1_loss(o, y, reduction="none", beta=beta)
    if _exactly(c, nn.BCELoss):
        return lambda o, y: F.binary_cross_entropy(o, y, reduction="none")
    if _exactly(c, nn.BCEWithLogitsLoss) and c.pos_weight is None:
        return lambda o, y: F.binary_cross_entropy_with_logits(o, y, reduction="none")
    return None


def stacked_loss(criterion: Criterion) -> Criterion:
    """``(outputs, targets)`` stacked per member -> each member's loss, shape ``(members,)``.

    Known mean-reduced torch criteria compute unreduced terms for the whole stack at once and
    average each member's; any other criterion runs under ``torch.func.vmap``.
    """
    terms = unreduced(criterion) if isinstance(criterion, nn.Module) else None
    if terms is None:
        return vmap(criterion, randomness="error")

    def loss(outputs: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
        members = outputs.shape[0]
        values = terms(outputs.flatten(0, 1), targets.flatten(0, 1))
        return values.reshape(members, -1).mean(dim=1)

    return loss
