"""Training one trial: build the model from its seed, train with mini-batches, measure held-out data.

Small data sets live on the trial's device for the whole run and batches are index slices of a
seeded permutation; losses are summed on the device and read once per epoch, so the step loop never
waits for the host. The same trial and seed give identical numbers on CPU.
"""

from __future__ import annotations

import math
import time
import traceback
from collections.abc import Callable
from dataclasses import asdict, dataclass, field
from typing import Any

import torch
from torch import nn

from nnbench.components import Catalogue, InputSpec, Loss, Modality, Task, TaskData
from nnbench.grid import Trial

EVAL_CHUNK = 4096


@dataclass(frozen=True)
class EpochRecord:
    """One epoch of one trial. ``metric`` is the task's primary metric on the test split,
    ``val_metric`` the same metric on the validation split."""

    epoch: int
    train_loss: float
    test_loss: float
    metric: float
    epoch_time: float
    val_loss: float | None = None
    val_metric: float | None = None
    accuracy: float | None = None
    rmse: float | None = None
    r2: float | None = None


@dataclass
class TrialResult:
    """What training a trial produced. ``status`` is ``ok``, ``diverged`` or ``failed``."""

    trial: Trial
    status: str
    metric_name: str = ""
    metric: float | None = None
    train_loss: float | None = None
    test_loss: float | None = None
    val_loss: float | None = None
    val_metric: float | None = None
    accuracy: float | None = None
    rmse: float | None = None
    r2: float | None = None
    n_params: int | None = None
    train_time: float = 0.0
    throughput: float | None = None
    peak_memory: int | None = None
    error: str | None = None
    curve: list[EpochRecord] = field(default_factory=list)

    def summary(self) -> dict[str, Any]:
        """Flat, JSON-ready fields (no curve, no trial)."""
        out = asdict(self)
        out.pop("trial")
        out.pop("curve")
        return out


def to_view(x: torch.Tensor, native: Modality, view: Modality) -> torch.Tensor:
    """Reinterpret a batch of inputs as another modality (an image ``(C, H, W)`` as ``H`` rows)."""
    if native == view:
        return x
    if native == "image" and view == "sequence":
        n, c, h, w = x.shape
        return x.permute(0, 2, 1, 3).reshape(n, h, c * w)
    if view == "vector":
        return x.reshape(x.shape[0], -1)
    raise ValueError(f"cannot read {native} inputs as {view}")


def choose_view(task: Task, accepted: tuple[Modality, ...]) -> Modality:
    """The task's own modality when the architecture reads it, else the first alternative it reads."""
    for view in task.all_views:
        if view in accepted:
            return view
    raise ValueError(f"task {task.name} offers {task.all_views}; the architecture reads {accepted}")


def build_model(trial: Trial, catalogue: Catalogue, task: Task, view: Modality) -> nn.Module:
    """Seeded model for ``trial``: the architecture, plus the head its loss needs."""
    arch = catalogue.architectures.get(trial.arch)
    loss = catalogue.losses.get(trial.loss)
    activation = catalogue.activations.get(trial.activation)
    sample = to_view(torch.zeros(1, *task.input_shape), task.modality, view)
    torch.manual_seed(trial.seed)
    model = arch.build(InputSpec(view, tuple(sample.shape[1:])), loss.outputs(task), activation.factory,
                       **dict(trial.params.get("arch", {})))
    if loss.head == "sigmoid":
        model = nn.Sequential(model, nn.Sigmoid())
    elif loss.head == "log_softmax":
        model = nn.Sequential(model, nn.LogSoftmax(dim=-1))
    return model


class ComponentError(Exception):
    """A component broke its contract (wrong output shape or dtype); the message names it and its plugin."""


def check_components(trial: Trial, catalogue: Catalogue, model: nn.Module, x: torch.Tensor,
                     outputs: int) -> None:
    """Fail early, naming the culprit, when the activation or the model returns the wrong thing."""
    activation = catalogue.activations.get(trial.activation)
    probe = torch.linspace(-2, 2, 12, device=x.device).reshape(3, 4)
    got = activation.factory().to(x.device)(probe)
    if not isinstance(got, torch.Tensor) or got.shape != probe.shape or not got.is_floating_point():
        raise ComponentError(
            f"activation {trial.activation!r} (plugin {catalogue.activations.plugin_of(trial.activation)!r}) must "
            f"return a floating tensor of its input's shape {tuple(probe.shape)}, but returned "
            f"{_describe(got)}"
        )
    with torch.no_grad():
        out = model(x[:2])
    expected = (min(2, len(x)), outputs)
    if not isinstance(out, torch.Tensor) or tuple(out.shape) != expected or not out.is_floating_point():
        raise ComponentError(
            f"architecture {trial.arch!r} (plugin {catalogue.architectures.plugin_of(trial.arch)!r}) must return "
            f"a floating tensor of shape {expected} (batch, outputs the loss {trial.loss!r} needs) for this "
            f"batch, but returned {_describe(out)}"
        )


def _describe(value: object) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {value.dtype} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


def synchronize(device: torch.device) -> None:
    """Wait for queued device work, so the clock measures finished work."""
    if device.type == "cuda":
        torch.cuda.synchronize(device)
    elif device.type == "mps":
        torch.mps.synchronize()


class Evaluator:
    """Held-out loss and metrics of a model on one task's test data."""

    def __init__(self, task: Task, loss: Loss, criterion: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.task, self.loss, self.criterion = task, loss, criterion
        self.x, self.y, self.y_encoded = x, y, loss.encode_target(y, task)

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        outputs = torch.cat([model(self.x[i : i + EVAL_CHUNK]) for i in range(0, len(self.x), EVAL_CHUNK)])
        model.train(was_training)
        result = {"test_loss": float(self.criterion(outputs, self.y_encoded))}
        if self.task.kind == "regression":
            err = (outputs.float() - self.y) ** 2
            rmse = float(err.mean().sqrt())
            total = ((self.y - self.y.mean(dim=0)) ** 2).sum(dim=0)
            r2 = float((1 - err.sum(dim=0) / total).mean())
            result.update(metric=rmse, rmse=rmse, r2=r2)
        else:
            result["accuracy"] = result["metric"] = float((self.predict(outputs) == self.y).float().mean())
        return result

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        if outputs.shape[-1] == 1:  # one output: a logit, or a probability behind a sigmoid head
            threshold = 0.5 if self.loss.head == "sigmoid" else 0.0
            return (outputs[:, 0] > threshold).long()
        return outputs.argmax(dim=-1)


def train_trial(
    trial: Trial,
    catalogue: Catalogue,
    on_epoch: Callable[[Trial, EpochRecord], None] | None = None,
) -> TrialResult:
    """Train ``trial`` and return its result; never raises for a problem inside the trial."""
    task = catalogue.tasks.get(trial.task)
    try:
        return _train(trial, catalogue, task, on_epoch)
    except Exception:
        return TrialResult(trial, "failed", metric_name=task.metric, error=traceback.format_exc())


def _load(task: Task, view: Modality, device: torch.device) -> TaskData:
    data = task.load()
    return TaskData(
        to_view(data.x_train, task.modality, view).to(device),
        data.y_train.to(device),
        to_view(data.x_val, task.modality, view).to(device),
        data.y_val.to(device),
        to_view(data.x_test, task.modality, view).to(device),
        data.y_test.to(device),
    )


def _train(
    trial: Trial, catalogue: Catalogue, task: Task, on_epoch: Callable[[Trial, EpochRecord], None] | None
) -> TrialResult:
    device = torch.device(trial.device)
    arch = catalogue.architectures.get(trial.arch)
    loss = catalogue.losses.get(trial.loss)
    opt_spec = catalogue.optimizers.get(trial.optimizer)
    view = choose_view(task, arch.modalities)
    data = _load(task, view, device)
    model = build_model(trial, catalogue, task, view).to(device)
    check_components(trial, catalogue, model, data.x_train, loss.outputs(task))
    criterion = loss.factory()
    optimizer = opt_spec.factory(model.parameters(), lr=trial.lr, **dict(trial.params.get("optimizer", {})))
    evaluate = Evaluator(task, loss, criterion, data.x_test, data.y_test)
    validate = Evaluator(task, loss, criterion, data.x_val, data.y_val)
    x, y = data.x_train, loss.encode_target(data.y_train, task)
    n = len(x)
    shuffle = torch.Generator().manual_seed(trial.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    result = TrialResult(trial, "ok", metric_name=task.metric,
                         n_params=sum(p.numel() for p in model.parameters()))
    model.train()
    for epoch in range(1, trial.epochs + 1):
        synchronize(device)
        start = time.perf_counter()
        order = torch.randperm(n, generator=shuffle).to(device)
        total = torch.zeros((), device=device)
        for i in range(0, n, trial.batch_size):
            idx = order[i : i + trial.batch_size]
            xb, yb = x[idx], y[idx]
            if opt_spec.needs_closure:
                def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                    optimizer.zero_grad(set_to_none=True)
                    value = criterion(model(xb), yb)
                    value.backward()
                    return value

                # LBFGS returns the loss of its first evaluation, before it moved the weights.
                batch_loss = optimizer.step(closure)  # type: ignore[arg-type]
            else:
                batch_loss = criterion(model(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                batch_loss.backward()
                optimizer.step()
            total += batch_loss.detach() * len(idx)  # type: ignore[attr-defined]
        synchronize(device)
        elapsed = time.perf_counter() - start
        result.train_time += elapsed
        train_loss = float(total) / n
        finite = math.isfinite(train_loss)
        scores = evaluate(model) if finite else {}
        val = validate(model) if finite else {}
        record = EpochRecord(epoch, train_loss, scores.get("test_loss", math.nan), scores.get("metric", math.nan),
                             elapsed, val.get("test_loss", math.nan), val.get("metric", math.nan),
                             scores.get("accuracy"), scores.get("rmse"), scores.get("r2"))
        result.curve.append(record)
        if on_epoch is not None:
            on_epoch(trial, record)
        if not (math.isfinite(record.train_loss) and math.isfinite(record.test_loss)):
            result.status = "diverged"
            result.error = f"non-finite loss at epoch {epoch} (train {train_loss}, test {record.test_loss})"
            break

    last = result.curve[-1]
    result.train_loss, result.test_loss, result.metric = last.train_loss, last.test_loss, last.metric
    result.val_loss, result.val_metric = last.val_loss, last.val_metric
    result.accuracy, result.rmse, result.r2 = last.accuracy, last.rmse, last.r2
    result.throughput = n * len(result.curve) / result.train_time if result.train_time > 0 else None
    if device.type == "cuda":
        result.peak_memory = int(torch.cuda.max_memory_allocated(device))
    return result
