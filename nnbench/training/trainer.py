"""Training one trial: build the model from its seed, train with mini-batches, measure held-out data.

The step loop is built to cost little more than its arithmetic:

- Small data sets live on the trial's device for the whole run and batches are index slices of a
  seeded permutation; losses are summed on the device and read once per epoch, so the step loop
  never waits for the host.
- Optimizers take torch's multi-tensor paths when their factory offers them and the grid does not
  choose: ``fused=True`` where the device has a fused kernel, else ``foreach=True`` (fused Adam
  trains the digits MLP about 1.35x faster than either other path). The update rule is the same;
  only float rounding can differ from torch's one-tensor-at-a-time loop. On CPU the results are
  bit-identical for sgd, rmsprop, adadelta and adamax, and differ in the last bits (relative 1e-7
  after a few epochs) for momentum, nesterov, adam, adamw and adagrad (fused) and nadam and
  radam (foreach).
- The trainer keeps the process's torch thread count, which executors set (``--threads``, default
  1): small models run fastest on one thread, and convolution results depend on the count.

The same trial and seed give identical numbers on CPU.
"""

from __future__ import annotations

import inspect
import math
import time
import traceback
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from nnbench.contract.specs import InputSpec, Loss, Modality, Optimizer, Task, TaskData
from nnbench.contract.trial import EpochRecord, Trial, TrialResult
from nnbench.loading.catalogue import Catalogue
from nnbench.training.stages import apply_to_model, build_keywords, training_criterion

EVAL_CHUNK = 4096


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
    return task.view_for(accepted)


def build_model(trial: Trial, catalogue: Catalogue, task: Task, view: Modality) -> nn.Module:
    """Seeded model for ``trial``: the architecture (given the ``build``-stage components, then changed
    by the ``model``-stage ones), plus the head its loss needs."""
    arch = catalogue.architectures.get(trial.arch)
    loss = catalogue.losses.get(trial.loss)
    activation = catalogue.activations.get(trial.activation).factory if arch.takes_activation else None
    sample = to_view(torch.zeros(1, *task.input_shape), task.modality, view)
    torch.manual_seed(trial.seed)
    model = arch.build(InputSpec(view, tuple(sample.shape[1:])), loss.outputs(task), activation,
                       **dict(trial.params.get("arch", {})), **build_keywords(trial, catalogue))
    model = apply_to_model(model, trial, catalogue)
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
    if catalogue.architectures.get(trial.arch).takes_activation:
        activation = catalogue.activations.get(trial.activation)
        probe = torch.linspace(-2, 2, 12, device=x.device).reshape(3, 4)
        got = activation.factory().to(x.device)(probe)
        if not isinstance(got, torch.Tensor) or got.shape != probe.shape or not got.is_floating_point():
            raise ComponentError(
                f"activation {trial.activation!r} (plugin {catalogue.activations.plugin_of(trial.activation)!r}) "
                f"must return a floating tensor of its input's shape {tuple(probe.shape)}, but returned "
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


def _takes_keyword(factory: Callable[..., Any], name: str) -> bool:
    try:
        parameter = inspect.signature(factory).parameters.get(name)
    except (TypeError, ValueError):
        return False
    return parameter is not None and parameter.kind in (parameter.KEYWORD_ONLY, parameter.POSITIONAL_OR_KEYWORD)


def make_optimizer(spec: Optimizer, params: Iterable[torch.Tensor], lr: float,
                   options: Mapping[str, Any]) -> torch.optim.Optimizer:
    """``spec``'s optimizer over ``params``, on torch's fused or multi-tensor path when it has one.

    ``options`` are the trial's optimizer hyper-parameters; when they set ``fused`` or ``foreach``
    themselves, that choice stands. Otherwise the first of ``fused=True`` and ``foreach=True`` that
    the factory accepts for these parameters' device is used.
    """
    params = list(params)
    kwargs = dict(options)
    if not {"fused", "foreach"} & set(kwargs):
        for flag in ("fused", "foreach"):
            if _takes_keyword(spec.factory, flag):
                try:
                    return spec.factory(params, lr=lr, **kwargs, **{flag: True})
                except (RuntimeError, ValueError, TypeError):  # no such kernel for this device or dtype
                    continue
    return spec.factory(params, lr=lr, **kwargs)


class Evaluator:
    """Held-out loss and metrics of a model on one task's held-out split."""

    def __init__(self, task: Task, loss: Loss, criterion: nn.Module, x: torch.Tensor, y: torch.Tensor) -> None:
        self.task, self.loss, self.criterion = task, loss, criterion
        self.x, self.y, self.y_encoded = x, y, loss.encode_target(y, task)

    @torch.no_grad()
    def __call__(self, model: nn.Module) -> dict[str, float]:
        was_training = model.training
        model.eval()
        outputs = torch.cat([model(self.x[i : i + EVAL_CHUNK]) for i in range(0, len(self.x), EVAL_CHUNK)])
        model.train(was_training)
        return {name: float(value) for name, value in self.scores(outputs).items()}

    @torch.no_grad()
    def scores(self, outputs: torch.Tensor) -> dict[str, torch.Tensor]:
        """Loss and metrics of ``outputs`` (one model's outputs on this split) as 0-d tensors, so a
        caller scoring many models reads them from the device at once. Outputs of another shape
        than (rows, the loss's head width) are a :class:`ComponentError`: a model that changed its
        output width while training must not be scored through broadcasting."""
        expected = (len(self.x), self.loss.outputs(self.task))
        if tuple(outputs.shape) != expected:
            raise ComponentError(f"the model returned outputs of shape {tuple(outputs.shape)} on held-out data, not "
                                 f"{expected} (rows, outputs the loss {self.loss.name!r} needs): it changed its "
                                 "output width during training")
        result = {"test_loss": self.criterion(outputs, self.y_encoded)}
        if self.task.kind == "regression":
            err = (outputs.float() - self.y) ** 2
            rmse = err.mean().sqrt()
            total = ((self.y - self.y.mean(dim=0)) ** 2).sum(dim=0)
            r2 = (1 - err.sum(dim=0) / total).mean()
            result.update(metric=rmse, rmse=rmse, r2=r2)
        else:
            result["accuracy"] = result["metric"] = (self.predict(outputs) == self.y).float().mean()
        return result

    def predict(self, outputs: torch.Tensor) -> torch.Tensor:
        if outputs.shape[-1] == 1:  # one output: a logit, or a probability behind a sigmoid head
            threshold = 0.5 if self.loss.head == "sigmoid" else 0.0
            return (outputs[:, 0] > threshold).long()
        return outputs.argmax(dim=-1)


class TrialTimeout(Exception):
    """Training ran past its time limit."""


class TimeLimit:
    """A trial's time limit, counted from when this is made (``seconds`` ``None``: no limit); :meth:`check`
    raises :class:`TrialTimeout` once it has passed. The trainers check it after every step, so a trial is
    stopped where it trains, whichever executor runs it and however long it waited to start."""

    def __init__(self, seconds: float | None) -> None:
        self.end = None if seconds is None else time.perf_counter() + seconds

    def check(self) -> None:
        if self.end is not None and time.perf_counter() > self.end:
            raise TrialTimeout


def timed_out(trial: Trial, timeout: float | None, members: int = 1) -> TrialResult:
    """The result of a trial stopped at its time limit (``members``: trials of its stack, which share it)."""
    share = f" ({members} trials stacked: {(timeout or 0) * members:g} s)" if members > 1 else ""
    return TrialResult(trial, "timeout", error=f"ran past --timeout {timeout:g} s per trial{share} and was stopped")


def train_trial(
    trial: Trial,
    catalogue: Catalogue,
    on_epoch: Callable[[Trial, EpochRecord], None] | None = None,
    test_each_epoch: bool = False,
    timeout: float | None = None,
) -> TrialResult:
    """Train ``trial`` and return its result; never raises for a problem inside the trial.

    The validation split is scored after every epoch; the test split only where the trial's final
    numbers may come from (see :func:`score_test_now`), or after every epoch with ``test_each_epoch``
    (for whoever reads each epoch's test numbers, such as an ``after_epoch`` hook). ``timeout`` stops the
    trial (status ``timeout``) once it has trained that many seconds.
    """
    task = catalogue.tasks.get(trial.task)
    try:
        return _train(trial, catalogue, on_epoch, test_each_epoch, TimeLimit(timeout))
    except TrialTimeout:
        return timed_out(trial, timeout)
    except Exception:
        return TrialResult(trial, "failed", metric_name=task.metric, error=traceback.format_exc())


@dataclass(frozen=True)
class TrialSetup:
    """What a trial's configuration fixes before its model is built: components, the training data
    on the device, criterion and held-out evaluators. The seeds of one configuration share it."""

    task: Task
    loss: Loss
    optimizer: Optimizer
    view: Modality
    device: torch.device
    criterion: nn.Module
    x: torch.Tensor
    y: torch.Tensor
    evaluate: Evaluator
    validate: Evaluator


def set_up(trial: Trial, catalogue: Catalogue) -> TrialSetup:
    """Load ``trial``'s data onto its device and build its criterion and evaluators."""
    task = catalogue.tasks.get(trial.task)
    arch = catalogue.architectures.get(trial.arch)
    loss = catalogue.losses.get(trial.loss)
    device = torch.device(trial.device)
    view = choose_view(task, arch.modalities)
    data = _load(task, view, device)
    criterion = loss.factory()
    return TrialSetup(task, loss, catalogue.optimizers.get(trial.optimizer), view, device, criterion,
                      data.x_train, loss.encode_target(data.y_train, task),
                      Evaluator(task, loss, criterion, data.x_test, data.y_test),
                      Evaluator(task, loss, criterion, data.x_val, data.y_val))


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


def add_epoch(result: TrialResult, epoch: int, train_loss: float, elapsed: float,
              test: Mapping[str, float], val: Mapping[str, float]) -> EpochRecord:
    """Append one epoch to ``result`` (``test``/``val``: scores, empty when not measured, as for an
    epoch whose training loss is not finite) and mark the result diverged when a loss is not finite:
    the training loss, or the test loss where it was measured, else the validation loss."""
    record = EpochRecord(epoch, train_loss, test.get("test_loss", math.nan), test.get("metric", math.nan),
                         elapsed, val.get("test_loss", math.nan), val.get("metric", math.nan),
                         test.get("accuracy"), test.get("rmse"), test.get("r2"))
    result.train_time += elapsed
    result.curve.append(record)
    held_out = record.test_loss if test else record.val_loss
    if not (math.isfinite(record.train_loss) and held_out is not None and math.isfinite(held_out)):
        result.status = "diverged"
        shown = f"test {record.test_loss}" if test else f"validation {record.val_loss}"
        result.error = f"non-finite loss at epoch {epoch} (train {train_loss}, {shown})"
    return record


def finish(result: TrialResult, n_train: int, device: torch.device, chosen: EpochRecord | None = None) -> TrialResult:
    """Copy the chosen epoch's numbers (default: the last) into ``result``; compute throughput and
    peak memory."""
    last = chosen or result.curve[-1]
    result.train_loss, result.test_loss, result.metric = last.train_loss, last.test_loss, last.metric
    result.val_loss, result.val_metric = last.val_loss, last.val_metric
    result.accuracy, result.rmse, result.r2 = last.accuracy, last.rmse, last.r2
    result.best_epoch = last.epoch
    result.throughput = n_train * len(result.curve) / result.train_time if result.train_time > 0 else None
    if device.type == "cuda":
        result.peak_memory = int(torch.cuda.max_memory_allocated(device))
    return result


class EarlyStopping:
    """Tracks the best validation metric; says when ``patience`` epochs passed without a better one."""

    def __init__(self, patience: int | None, higher_is_better: bool) -> None:
        self.patience, self.higher = patience, higher_is_better
        self.best: EpochRecord | None = None
        self.best_value = -math.inf if higher_is_better else math.inf
        self.waited = 0

    def improves(self, value: float | None) -> bool:
        """Whether an epoch with validation metric ``value`` would be the best so far."""
        return value is not None and math.isfinite(value) and (
            value > self.best_value if self.higher else value < self.best_value)

    def needs_test(self, value: float | None) -> bool:
        """Whether the epoch with validation metric ``value`` may give the trial its final numbers: it is
        the best so far, or training stops after it."""
        return self.patience is not None and (self.improves(value) or self.waited + 1 >= self.patience)

    def update(self, record: EpochRecord) -> bool:
        """Record an epoch; ``True`` when training should stop."""
        if self.improves(record.val_metric):
            self.best, self.best_value, self.waited = record, record.val_metric, 0  # type: ignore[assignment]
        else:
            self.waited += 1
        return self.patience is not None and self.waited >= self.patience

    def chosen(self) -> EpochRecord | None:
        """The epoch whose numbers the trial keeps: the best one under early stopping, else the last."""
        return self.best if self.patience is not None else None


def score_test_now(epoch: int, epochs: int, stopping: EarlyStopping, val: Mapping[str, float],
                   every_epoch: bool) -> bool:
    """Whether to measure the test split after ``epoch``: when something reads every epoch's test
    numbers (``every_epoch``), at the last epoch, and at epochs that may give the trial its final
    numbers under early stopping. Validation data are measured after every epoch."""
    return every_epoch or epoch == epochs or stopping.needs_test(val.get("metric"))


def make_schedule(trial: Trial, catalogue: Catalogue, optimizer: torch.optim.Optimizer, steps: int) -> Any:
    """The trial's learning-rate schedule over ``steps`` optimizer steps."""
    spec = catalogue.schedules.get(trial.schedule)
    return spec.factory(optimizer, steps, **dict(trial.params.get("schedule", {})))


def _train(trial: Trial, catalogue: Catalogue, on_epoch: Callable[[Trial, EpochRecord], None] | None,
           test_each_epoch: bool, limit: TimeLimit) -> TrialResult:
    setup = set_up(trial, catalogue)
    device, x, y = setup.device, setup.x, setup.y
    model = build_model(trial, catalogue, setup.task, setup.view).to(device)
    criterion = training_criterion(setup.criterion, model, trial, catalogue)
    check_components(trial, catalogue, model, x, setup.loss.outputs(setup.task))
    optimizer = make_optimizer(setup.optimizer, model.parameters(), trial.lr, trial.params.get("optimizer", {}))
    n = len(x)
    schedule = make_schedule(trial, catalogue, optimizer, trial.epochs * math.ceil(n / trial.batch_size))
    stopping = EarlyStopping(trial.patience, setup.task.higher_is_better)
    shuffle = torch.Generator().manual_seed(trial.seed)
    if device.type == "cuda":
        torch.cuda.reset_peak_memory_stats(device)

    def backward(value: torch.Tensor) -> None:
        value.backward()
        if trial.clip is not None:
            nn.utils.clip_grad_norm_(model.parameters(), trial.clip)

    result = TrialResult(trial, "ok", metric_name=setup.task.metric,
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
            if setup.optimizer.needs_closure:
                def closure(xb: torch.Tensor = xb, yb: torch.Tensor = yb) -> torch.Tensor:
                    optimizer.zero_grad(set_to_none=True)
                    value = criterion(model(xb), yb)
                    backward(value)
                    return value

                # LBFGS returns the loss of its first evaluation, before it moved the weights.
                batch_loss: Any = optimizer.step(closure)  # type: ignore[arg-type]
            else:
                value = criterion(model(xb), yb)
                optimizer.zero_grad(set_to_none=True)
                backward(value)
                batch_loss = value
                optimizer.step()
            if schedule is not None:
                schedule.step()
            total += batch_loss.detach() * len(idx)
            limit.check()
        synchronize(device)
        elapsed = time.perf_counter() - start
        train_loss = float(total) / n
        val = setup.validate(model) if math.isfinite(train_loss) else {}
        test = setup.evaluate(model) if val and score_test_now(epoch, trial.epochs, stopping, val,
                                                               test_each_epoch) else {}
        record = add_epoch(result, epoch, train_loss, elapsed, test, val)
        if on_epoch is not None:
            on_epoch(trial, record)
        if result.status == "diverged" or stopping.update(record):
            break
    # With early stopping the trial's numbers are its best validation epoch's (the weights it
    # would keep); the test split was measured there, never consulted.
    return finish(result, n, device, stopping.chosen())
