r"""μTransfer: the learning rate tuned at one width is the best at every width under μP, and
moves with width under the standard parametrization.

Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao (2022), "Tensor Programs
V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", Figures 1 and 3: the
training loss against the learning rate (log scale), one curve per width. Under the standard
parametrization (SP) the curves' minima drift to smaller learning rates as the network widens;
under μP they line up, and a wider network is never worse.

Here each width :math:`w` is the MLP 784 -> w -> w -> 10 with ReLU
(:func:`~torchinit._experiments.models.deep_mlp` with 3 layers), trained with every learning
rate of a log grid:

* SP: PyTorch's default initialization (the ``torch`` preset) and one learning rate for every
  parameter;
* μP: ``ti.mup`` relative to the base width (128 by default), whose optimizer groups
  (``ti.param_groups(model, plan=plan, lr=lr)``) carry Table 3's per-layer learning rates:
  with Adam, the hidden and output weights' learning rate is divided by ``w / base``.

Every run of a seed sees the same batches in the same order, whatever its width, learning rate
and parametrization, and starts from the initialization the seed draws; the grid's curves
differ only by what they vary. A run's loss is its *final training loss*: the mean training
loss over the last 10% of its steps (:func:`~torchinit._experiments.stats.final_loss`), so that
one noisy batch does not decide the best learning rate; a run whose loss becomes NaN has none.
With several seeds a grid point's loss is the mean over the seeds.
"""

from __future__ import annotations

import json
import math
import platform
import re
import textwrap
import time
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace
from functools import partial
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import __version__
from ..errors import ConfigError
from .._progress import Progress
from ..width import mup
from .datasets import Dataset
from .models import deep_mlp
from .protocol import RunResult, TrainConfig, steps_per_run, train_run
from .results import format_loss, json_number, markdown_table, text_table
from .runner import Outputs, plot_notes, training_split, write_results
from .schemes import SCHEMES, Scheme
from .stats import FINAL_SHARE, final_loss

__all__ = ["EXPERIMENT", "PARAMETRIZATIONS", "DEFAULT_WIDTHS", "DEFAULT_LRS", "BASE_WIDTH",
           "TRANSFER_CONFIG", "DEFAULT_SEEDS", "transfer_model",
           "transfer_schemes", "parse_lrs", "lr_label", "run_transfer", "GridPoint", "Best",
           "Transfer", "write_transfer"]

EXPERIMENT = "mup"
"""The experiment's name for ``torchinit compare --experiment``."""
PARAMETRIZATIONS = ("sp", "mup")
"""The two parametrizations compared: standard (PyTorch's default, one learning rate) and μP."""
LABELS = {"sp": "SP", "mup": "μP"}
DEFAULT_WIDTHS = (128, 256, 512, 1024, 2048)
"""The hidden widths trained."""
BASE_WIDTH = 128
"""The width μP is relative to: at it, μP's learning-rate multipliers are all 1."""
DEFAULT_LRS = tuple(2.0 ** k for k in range(-14, -3))
"""The learning rates tried: 2^-14 .. 2^-4, a factor 2 apart (Adam)."""
TRANSFER_CONFIG = TrainConfig(epochs=1, batch_size=128, optimizer="adam", curve_steps=None,
                              standardize=True)
"""How each run trains: one epoch (no example is seen twice, so the training loss also
estimates the loss on new data), Adam with a constant learning rate, batches of 128,
standardized pixels, an 80/20 split; the loss of every step recorded. On MNIST that is 375
steps, on the embedded dataset 75."""
DEFAULT_SEEDS = 1
"""Seeds when none are asked for: the same batches for every run make one seed's argmin stable
(see ``docs/experiments.md`` for the spread over seeds)."""
_POWER = re.compile(r"^2\^(-?\d+)$")
_RANGE = re.compile(r"^2\^(-?\d+)\.\.2\^(-?\d+)$")


def transfer_model(width: int) -> nn.Sequential:
    """The MLP of width ``width``: 784 -> width -> width -> 10, ReLU (``fc1``..``fc3``)."""
    return deep_mlp(3, width, "relu")


def transfer_schemes(base_width: int = BASE_WIDTH, optimizer: str = "adam",
                     build: Callable[[int], nn.Module] = transfer_model) -> dict[str, Scheme]:
    """The two schemes compared, by parametrization: ``"sp"`` (the ``torch-default`` scheme) and
    ``"mup"`` (``ti.mup`` relative to ``build(base_width)``, with its per-group learning rates
    for ``optimizer``, Table 3's ``"adam"`` or ``"sgd"`` column). ``build(2 * base_width)`` is
    the delta that says which fans grow, so the base width itself is under μP too.

    Raises:
        ConfigError: for a base width that is not an int >= 1 or an optimizer μP lacks.
    """
    _check_width(base_width, "base width")
    plan = mup(partial(build, base_width), optimizer=optimizer,  # type: ignore[arg-type]
               delta=partial(build, 2 * base_width))
    return {"sp": SCHEMES["torch-default"],
            "mup": Scheme("mup", "μP", f"ti.mup relative to width {base_width} ({optimizer}):"
                          " Table 3's init and per-layer learning rates", plan,
                          optimizer_scales=True)}


def _check_width(width: Any, what: str) -> int:
    if isinstance(width, bool) or not isinstance(width, int) or width < 1:
        raise ConfigError(f"{what} must be an int >= 1, got {width!r}")
    return width


def parse_lrs(text: str) -> tuple[float, ...]:
    """Learning rates from a comma-separated list of numbers (``1e-3``), powers of two
    (``2^-10``) and ranges of powers of two (``2^-14..2^-4``: every power in between), in
    increasing order.

    Raises:
        ConfigError: for an item that is none of these, a rate that is not finite and > 0, a
            rate given twice or an empty list.
    """
    rates: list[float] = []
    for item in (part.strip() for part in text.split(",")):
        if not item:
            continue
        power, span = _POWER.match(item), _RANGE.match(item)
        if span:
            low, high = sorted((int(span.group(1)), int(span.group(2))))
            rates += [2.0 ** k for k in range(low, high + 1)]
            continue
        try:
            rate = 2.0 ** int(power.group(1)) if power else float(item)
        except (ValueError, OverflowError):
            rate = math.nan
        if not (math.isfinite(rate) and rate > 0):
            raise ConfigError(f"learning rate {item!r} in {text!r} is not a number > 0; give"
                              " numbers (1e-3), powers of two (2^-10) or a range (2^-14..2^-4)")
        rates.append(rate)
    return _check_lrs(rates)


def _check_lrs(rates: Sequence[float]) -> tuple[float, ...]:
    if not rates:
        raise ConfigError("no learning rate given; e.g. 2^-14..2^-4")
    for rate in rates:
        if isinstance(rate, bool) or not isinstance(rate, (int, float)) or not (
                math.isfinite(rate) and rate > 0):
            raise ConfigError(f"learning rates must be finite numbers > 0, got {rate!r}")
    ordered = sorted(float(r) for r in rates)
    twice = [a for a, b in zip(ordered, ordered[1:]) if a == b]
    if twice:
        raise ConfigError(f"learning rate {lr_label(twice[0])} is given twice")
    return tuple(ordered)


def lr_label(lr: float) -> str:
    """``2^-10`` for a power of two, else ``%g``."""
    exponent = math.log2(lr)
    return f"2^{int(exponent)}" if exponent == int(exponent) else f"{lr:g}"


@dataclass(frozen=True)
class GridPoint:
    """The runs of one parametrization, width and learning rate (one per seed)."""

    parametrization: str
    width: int
    lr: float
    runs: tuple[RunResult, ...]

    def losses(self) -> list[float]:
        """Each run's final training loss (NaN for a run that diverged)."""
        return [final_loss(run.curve) for run in self.runs]

    def loss(self) -> float:
        """The mean final training loss over the seeds; NaN if a run diverged."""
        losses = self.losses()
        return math.fsum(losses) / len(losses)

    def to_dict(self) -> dict[str, Any]:
        return {"parametrization": self.parametrization, "width": self.width, "lr": self.lr,
                "loss": json_number(self.loss()),
                "runs": [{"seed": r.seed, "final_loss": json_number(loss),
                          "last_loss": json_number(r.last_loss), "val_accuracy": r.val_accuracy,
                          "seconds": r.seconds, "diverged_at": r.diverged_at}
                         for r, loss in zip(self.runs, self.losses())]}


@dataclass(frozen=True)
class Best:
    """The learning rate of least loss at one width: its index in the grid (``None`` when every
    run diverged), the rate and the loss there."""

    width: int
    index: int | None
    lr: float
    loss: float

    def to_dict(self) -> dict[str, Any]:
        return {"width": self.width, "lr": json_number(self.lr), "index": self.index,
                "loss": json_number(self.loss)}


def _argmin(width: int, lrs: Sequence[float], losses: Sequence[float]) -> Best:
    finite = [i for i, loss in enumerate(losses) if math.isfinite(loss)]
    if not finite:
        return Best(width, None, math.nan, math.nan)
    i = min(finite, key=losses.__getitem__)
    return Best(width, i, lrs[i], losses[i])


@dataclass(frozen=True)
class Transfer:
    """Everything one μTransfer grid measured.

    Attributes:
        dataset: :meth:`Dataset.describe` of the data.
        widths: The widths, increasing.
        lrs: The learning rates, increasing.
        base_width: μP's base width.
        config: How each run trained (its ``lr`` is the grid's).
        seeds: The seeds of the runs.
        schemes: The scheme of each parametrization.
        points: Every grid point, by parametrization, width and learning rate.
        n_train: Training examples.
        n_val: Validation examples.
        seconds: Wall time of the whole grid.
    """

    dataset: dict[str, Any]
    widths: tuple[int, ...]
    lrs: tuple[float, ...]
    base_width: int
    config: TrainConfig
    seeds: tuple[int, ...]
    schemes: Mapping[str, Scheme]
    points: tuple[GridPoint, ...]
    n_train: int
    n_val: int
    seconds: float

    def point(self, parametrization: str, width: int, lr: float) -> GridPoint:
        """The grid point of ``parametrization``, ``width`` and ``lr``.

        Raises:
            ConfigError: when the grid has no such point.
        """
        for point in self.points:
            if (point.parametrization, point.width, point.lr) == (parametrization, width, lr):
                return point
        raise ConfigError(f"the grid has no point {parametrization!r}, width {width},"
                          f" lr {lr_label(lr)}")

    def losses(self, parametrization: str, width: int, seed: int | None = None) -> list[float]:
        """The loss at each learning rate: the mean over the seeds, or the run of ``seed``."""
        points = [self.point(parametrization, width, lr) for lr in self.lrs]
        if seed is None:
            return [p.loss() for p in points]
        k = self.seeds.index(seed)
        return [p.losses()[k] for p in points]

    def best(self, parametrization: str, seed: int | None = None) -> list[Best]:
        """Per width, the learning rate of least loss (mean over seeds, or ``seed``'s run)."""
        return [_argmin(w, self.lrs, self.losses(parametrization, w, seed))
                for w in self.widths]

    def shift(self, parametrization: str, seed: int | None = None) -> int | None:
        """How many grid steps the best learning rate moves across the widths (largest index
        minus smallest); ``None`` when a width has no finite loss."""
        indices = [b.index for b in self.best(parametrization, seed)]
        known = [i for i in indices if i is not None]
        return max(known) - min(known) if len(known) == len(indices) else None

    def largest_rise(self, parametrization: str) -> float:
        """The largest increase of the best loss from one width to the next wider one (<= 0
        when wider is never worse); NaN for fewer than two widths or a width that diverged."""
        losses = [b.loss for b in self.best(parametrization)]
        rises = [b - a for a, b in zip(losses, losses[1:])]
        return max(rises) if rises else math.nan

    def at_edge(self, parametrization: str) -> list[int]:
        """The widths whose best learning rate is the grid's smallest or largest (the grid does
        not bracket their optimum)."""
        last = len(self.lrs) - 1
        return [b.width for b in self.best(parametrization) if b.index in (0, last)]

    # -- text forms ----------------------------------------------------------------------------
    def headline(self) -> str:
        c = self.config
        steps = steps_per_run(self.n_train, c)
        return (f"μTransfer, MLP 784-w-w-10 (ReLU), widths {', '.join(map(str, self.widths))};"
                f" μP relative to width {self.base_width}; {c.optimizer}"
                f"{' ' + c.schedule + ' decay' if c.schedule != 'constant' else ''}, batch"
                f" {c.batch_size}, {c.epochs} epoch(s) = {steps} steps; dataset"
                f" {self.dataset['name']}, {self.n_train} train / {self.n_val} val; seeds"
                f" {list(self.seeds)}; loss = mean training loss over the last"
                f" {max(1, round(FINAL_SHARE * steps))} steps")

    def best_rows(self) -> list[tuple[str, ...]]:
        """Header and one row per width: best learning rate and loss under SP and μP (with
        several seeds also each seed's best learning rate)."""
        per_seed = len(self.seeds) > 1
        header = ["width"]
        for name in PARAMETRIZATIONS:
            header += [f"{LABELS[name]} best lr", f"{LABELS[name]} loss"]
            header += [f"{LABELS[name]} best lr per seed"] if per_seed else []
        rows = [tuple(header)]
        best = {name: self.best(name) for name in PARAMETRIZATIONS}
        seeds = {name: [self.best(name, s) for s in self.seeds] for name in PARAMETRIZATIONS}
        for i, width in enumerate(self.widths):
            row = [str(width)]
            for name in PARAMETRIZATIONS:
                b = best[name][i]
                row += [_best_label(b), format_loss(b.loss)]
                row += [" ".join(_best_label(s[i]) for s in seeds[name])] if per_seed else []
            rows.append(tuple(row))
        return rows

    def grid_rows(self, parametrization: str) -> list[tuple[str, ...]]:
        """Header and one row per learning rate: the loss at each width."""
        losses = [self.losses(parametrization, w) for w in self.widths]
        rows = [("lr", *(f"w={w}" for w in self.widths))]
        rows += [(lr_label(lr), *(format_loss(column[j]) for column in losses))
                 for j, lr in enumerate(self.lrs)]
        return rows

    def summary_lines(self) -> list[str]:
        """The findings: the best learning rate's shift across widths under each
        parametrization, μP's best loss against width, widths the grid does not bracket."""
        lines = []
        for name in PARAMETRIZATIONS:
            shift = self.shift(name)
            seeds = ("; per seed " + ", ".join(str(self.shift(name, s)) for s in self.seeds)
                     if len(self.seeds) > 1 else "")
            lines.append(f"{LABELS[name]}: the best learning rate moves by"
                         f" {'-' if shift is None else shift} grid step(s) across the widths"
                         f"{seeds}")
        for name in PARAMETRIZATIONS:
            rise = self.largest_rise(name)
            trend = ("-" if math.isnan(rise) else "non-increasing" if rise <= 0 else
                     f"rises by up to {rise:.4f}")
            lines.append(f"{LABELS[name]}: loss at the best learning rate against width: {trend}")
        for name in PARAMETRIZATIONS:
            edge = self.at_edge(name)
            if edge:
                lines.append(f"{LABELS[name]}: the best learning rate of width(s) {edge} is at"
                             " the edge of the grid; widen it (--lrs)")
        lines.append(f"{len(self.points) * len(self.seeds)} runs, {self.seconds:.0f} s in all")
        return lines

    def table(self) -> str:
        """The terminal form: headline, best learning rates, both grids, findings."""
        blocks = [textwrap.fill(self.headline(), 100), text_table(self.best_rows())]
        blocks += [f"{LABELS[name]}: final training loss\n" + text_table(self.grid_rows(name))
                   for name in PARAMETRIZATIONS]
        blocks.append("\n".join(self.summary_lines()))
        return "\n\n".join(blocks)

    def markdown(self) -> str:
        """The markdown form of :meth:`table`."""
        parts = [f"# torchinit compare: {EXPERIMENT}", "", self.headline() + ".", "",
                 "## Best learning rate per width", "", markdown_table(self.best_rows()), ""]
        for name in PARAMETRIZATIONS:
            parts += [f"## {LABELS[name]}: final training loss", "",
                      markdown_table(self.grid_rows(name)), ""]
        parts += ["## Findings", "", *(f"- {line}" for line in self.summary_lines())]
        return "\n".join(parts) + "\n"

    def to_dict(self) -> dict[str, Any]:
        return {
            "experiment": EXPERIMENT, "dataset": self.dataset, "widths": list(self.widths),
            "lrs": list(self.lrs), "base_width": self.base_width,
            "config": self.config.to_dict(), "final_share": FINAL_SHARE,
            "seeds": list(self.seeds), "train_examples": self.n_train,
            "val_examples": self.n_val, "seconds": self.seconds,
            "versions": {"torchinit": __version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "schemes": {name: scheme.to_dict() for name, scheme in self.schemes.items()},
            "best": {name: [b.to_dict() for b in self.best(name)] for name in PARAMETRIZATIONS},
            "shift": {name: self.shift(name) for name in PARAMETRIZATIONS},
            "largest_rise": {name: json_number(self.largest_rise(name))
                             for name in PARAMETRIZATIONS},
            "points": [p.to_dict() for p in self.points],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)


def _best_label(best: Best) -> str:
    return "-" if best.index is None else lr_label(best.lr)


def run_transfer(dataset: Dataset, widths: Sequence[int] = DEFAULT_WIDTHS,
                 lrs: Sequence[float] = DEFAULT_LRS, config: TrainConfig | None = None,
                 seeds: int = DEFAULT_SEEDS, seed: int = 0, base_width: int = BASE_WIDTH,
                 progress: bool | None = None,
                 build: Callable[[int], nn.Module] = transfer_model) -> Transfer:
    """Train every width at every learning rate under SP and μP, with seeds ``seed`` ..
    ``seed + seeds - 1``.

    The train/validation split is drawn once with ``seed``; each run of seed ``s`` is
    initialized with ``s`` and sees the batches ``s`` orders, the same for every width,
    learning rate and parametrization (:func:`~torchinit._experiments.protocol.train_run`).

    Args:
        dataset: The data.
        widths: The hidden widths (ints >= 1, distinct; sorted here).
        lrs: The learning rates (finite, > 0, distinct; sorted here): the base learning rate of
            μP's groups and the one learning rate of SP.
        config: How each run trains (default :data:`TRANSFER_CONFIG`); its ``lr`` is
            replaced by the grid's. ``optimizer`` also picks μP's learning-rate column (Adam
            or SGD).
        seeds: Runs per grid point (>= 1).
        seed: The first seed.
        base_width: The width μP is relative to.
        progress: Draw a progress bar on stderr; default: when stderr is a terminal.
        build: Makes the model of a width (default :func:`transfer_model`); μP's base is
            ``build(base_width)``, built on the meta device.

    Returns:
        The :class:`Transfer`.

    Raises:
        ConfigError: for bad widths, learning rates, seeds or base width, and what building the
            split or resolving μP on a model raises.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be an int >= 1, got {seeds!r}")
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ConfigError(f"widths must be a non-empty list of ints >= 1, got {widths!r}")
    ordered = sorted({_check_width(w, "a width") for w in widths})
    if len(ordered) != len(widths):
        raise ConfigError(f"a width is given twice in {list(widths)}")
    rates = _check_lrs(lrs)
    config = TRANSFER_CONFIG if config is None else config
    schemes = transfer_schemes(base_width, config.optimizer, build)
    start = time.perf_counter()
    split = training_split(dataset, config, seed)
    n_train, classes = len(split.train_y), len(dataset.classes)
    total = len(PARAMETRIZATIONS) * len(ordered) * len(rates) * seeds * steps_per_run(
        n_train, config)
    points = []
    with Progress(total, "", enabled=progress, unit="steps") as bar:
        for name in PARAMETRIZATIONS:
            for width in ordered:
                for lr in rates:
                    bar.label = f"{LABELS[name]} width {width} lr {lr_label(lr)}".ljust(28)
                    runs = tuple(train_run(partial(build, width), schemes[name], split,
                                           replace(config, lr=lr), seed + k, classes,
                                           bar.advance) for k in range(seeds))
                    points.append(GridPoint(name, width, lr, runs))
    return Transfer(dataset.describe(), tuple(ordered), rates, base_width, config,
                    tuple(range(seed, seed + seeds)), schemes, tuple(points), n_train,
                    len(split.val_y), time.perf_counter() - start)


def write_transfer(result: Transfer, directory: str | Path) -> Outputs:
    """Write ``results.json``, ``results.md`` and, with matplotlib, ``mup_transfer.png`` (the
    loss against the learning rate per width, SP and μP side by side) into ``directory``."""
    out, files = write_results(directory, result.to_json(), result.markdown())
    plotting, notes = plot_notes()
    if plotting:
        from .plots import plot_transfer

        files.append(out / "mup_transfer.png")
        plot_transfer(result, files[-1])
    return Outputs(tuple(files), tuple(notes))
