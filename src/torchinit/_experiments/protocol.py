"""One training run: initialize a fresh model with a scheme, train it, measure it.

The default configuration is the protocol of the widely cited comparison of weight
initializations (the Udacity "weight initialization" notebook): Adam with learning rate 1e-3,
2 epochs, batches of 100, an 80/20 split of the training set, validation accuracy, the training
loss of the last batch and the loss curve over the first 100 batches.

Batches index the dataset tensors directly (no DataLoader); validation runs under
``torch.no_grad`` in large chunks.
"""

from __future__ import annotations

import math
import time
from collections.abc import Callable
from dataclasses import asdict, dataclass
from typing import Any

import torch
import torch.nn.functional as F
from torch import nn

from ..errors import ConfigError
from .datasets import Split
from .schemes import Scheme

__all__ = ["TrainConfig", "RunResult", "train_run", "steps_per_run", "learning_rate",
           "schedule_factor"]

OPTIMIZERS = ("adam", "sgd")
SCHEDULES = ("constant", "linear")
LSUV_BATCH = 256
"""Training examples LSUV measures the layers' outputs on (the first of the run's order)."""
_EVAL_CHUNK = 8192


@dataclass(frozen=True)
class TrainConfig:
    """How each run trains.

    Attributes:
        epochs: Passes over the training part.
        batch_size: Examples per step (the last batch of an epoch may be smaller).
        optimizer: ``"adam"`` or ``"sgd"`` (with ``momentum``).
        lr: Learning rate.
        momentum: SGD momentum.
        schedule: ``"constant"`` learning rate, or ``"linear"``: after step ``t`` of ``T`` it is
            ``lr * (1 - t / T)``, reaching 0 at the end of the run.
        val_fraction: Share of the dataset held out for validation.
        curve_steps: Record the loss of this many first steps (``None``: every step).
        standardize: Shift and scale the pixels by the training part's mean and std.
    """

    epochs: int = 2
    batch_size: int = 100
    optimizer: str = "adam"
    lr: float = 1e-3
    momentum: float = 0.9
    schedule: str = "constant"
    val_fraction: float = 0.2
    curve_steps: int | None = 100
    standardize: bool = False

    def __post_init__(self) -> None:
        for name in ("epochs", "batch_size"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 1:
                raise ConfigError(f"{name} must be an int >= 1, got {value!r}")
        if self.optimizer not in OPTIMIZERS:
            raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {self.optimizer!r}")
        if self.schedule not in SCHEDULES:
            raise ConfigError(f"schedule must be one of {SCHEDULES}, got {self.schedule!r}")
        if not (math.isfinite(self.lr) and self.lr > 0):
            raise ConfigError(f"lr must be a positive number, got {self.lr!r}")
        if not 0.0 <= self.momentum < 1.0:
            raise ConfigError(f"momentum must be in [0, 1), got {self.momentum!r}")
        if not 0.0 < self.val_fraction < 1.0:
            raise ConfigError(f"val_fraction must be in (0, 1), got {self.val_fraction!r}")

    def to_dict(self) -> dict[str, Any]:
        return asdict(self)


@dataclass(frozen=True)
class RunResult:
    """What one run measured.

    Attributes:
        seed: The run's seed (initialization, dropout and batch order).
        val_accuracy: Share of validation examples classified right.
        last_loss: Training loss of the last batch (NaN when training diverged).
        curve: Training loss of the first ``curve_steps`` steps.
        class_accuracy: Validation accuracy per class, in label order (NaN for a class with
            no validation example).
        seconds: Wall time of the run (initialization, training, validation).
        diverged_at: The step whose loss was NaN, where training stopped, or ``None``.
    """

    seed: int
    val_accuracy: float
    last_loss: float
    curve: tuple[float, ...]
    class_accuracy: tuple[float, ...]
    seconds: float
    diverged_at: int | None = None


def steps_per_run(n_train: int, config: TrainConfig) -> int:
    """Optimizer steps of one run over ``n_train`` training examples."""
    return config.epochs * math.ceil(n_train / config.batch_size)


def schedule_factor(config: TrainConfig, step: int, total: int) -> float:
    """The factor ``config.schedule`` multiplies every learning rate by after ``step`` of
    ``total`` steps."""
    if config.schedule == "linear":
        return 1.0 - step / total
    return 1.0


def learning_rate(config: TrainConfig, step: int, total: int) -> float:
    """The learning rate after ``step`` of ``total`` steps under ``config.schedule``."""
    return config.lr * schedule_factor(config, step, total)


def _optimizer(model: nn.Module, scheme: Scheme, config: TrainConfig) -> torch.optim.Optimizer:
    groups = scheme.optimizer_groups(model, config.lr)
    if config.optimizer == "adam":
        return torch.optim.Adam(groups, lr=config.lr)
    return torch.optim.SGD(groups, lr=config.lr, momentum=config.momentum)


def _evaluate(model: nn.Module, split: Split, classes: int) -> tuple[float, tuple[float, ...]]:
    model.eval()
    with torch.no_grad():
        predicted = torch.cat([model(split.val_x[i:i + _EVAL_CHUNK]).argmax(dim=1)
                               for i in range(0, len(split.val_y), _EVAL_CHUNK)])
    right = predicted == split.val_y
    counts = torch.bincount(split.val_y, minlength=classes).double()
    hits = torch.bincount(split.val_y[right], minlength=classes).double()
    per_class = torch.where(counts > 0, hits / counts.clamp(min=1), torch.nan)
    return float(right.double().mean()), tuple(float(a) for a in per_class)


def train_run(build: Callable[[], nn.Module], scheme: Scheme, split: Split, config: TrainConfig,
              seed: int, classes: int = 10,
              on_step: Callable[[int], None] | None = None) -> RunResult:
    """Build a model, initialize it with ``scheme`` and ``seed``, train and validate it.

    ``torch.manual_seed(seed)`` is set before the model is built (dropout draws from it); the
    batch order comes from its own ``torch.Generator`` seeded with ``seed``; the scheme is
    applied with ``seed``. Two runs with the same arguments give the same numbers. The
    optimizer's parameter groups come from :meth:`Scheme.optimizer_groups` (one group, or a
    parametrization's per-group learning rates); the schedule scales each group's own rate.

    Args:
        build: Makes the model (called once, after seeding).
        scheme: The initialization.
        split: Training and validation tensors.
        config: How to train.
        seed: The run's seed.
        classes: Number of classes (for the per-class accuracy).
        on_step: Called with the number of steps done since its last call (progress).

    Returns:
        The :class:`RunResult`.
    """
    start = time.perf_counter()
    torch.manual_seed(seed)
    order = torch.Generator().manual_seed(seed)
    model = build()
    n_train = len(split.train_y)
    first = torch.randperm(n_train, generator=order)
    scheme.initialize(model, seed, split.train_x[first[:LSUV_BATCH]])
    optimizer = _optimizer(model, scheme, config)
    initial_lrs = [group["lr"] for group in optimizer.param_groups]
    total = steps_per_run(n_train, config)
    curve: list[float] = []
    loss_value, step, diverged_at = math.nan, 0, None
    model.train()
    for epoch in range(config.epochs):
        permutation = first if epoch == 0 else torch.randperm(n_train, generator=order)
        for begin in range(0, n_train, config.batch_size):
            batch = permutation[begin:begin + config.batch_size]
            loss = F.cross_entropy(model(split.train_x[batch]), split.train_y[batch])
            loss_value, step = loss.item(), step + 1
            if config.curve_steps is None or len(curve) < config.curve_steps:
                curve.append(loss_value)
            if math.isnan(loss_value):
                diverged_at = step
                break
            optimizer.zero_grad(set_to_none=True)
            loss.backward()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
            optimizer.step()
            if config.schedule != "constant":
                factor = schedule_factor(config, step, total)
                for group, initial in zip(optimizer.param_groups, initial_lrs):
                    group["lr"] = initial * factor
            if on_step is not None:
                on_step(1)
        if diverged_at is not None:
            break
    if on_step is not None and diverged_at is not None:
        on_step(total - diverged_at + 1)  # the steps left out count as done
    accuracy, per_class = _evaluate(model, split, classes)
    return RunResult(seed, accuracy, loss_value, tuple(curve), per_class,
                     time.perf_counter() - start, diverged_at)
