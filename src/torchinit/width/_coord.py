r"""The coordinate check: how the size of every activation changes with width during training.

Yang et al. (2022), "Tensor Programs V", appendix D.1 (and microsoft/mup's
``get_coord_data``): train the same model at several widths for a few steps on one batch and
record the size of each layer's output coordinates, :math:`\overline{|x|} = \frac{1}{N}
\sum_i |x_i|` over the output's :math:`N` entries. Under a parametrization with a width
limit (μP) every curve is flat in width at every step; under the standard parametrization with
Adam, the readout's updates :math:`\Delta W h` add up :math:`n` correlated terms of size about
the learning rate, so the logits grow like the width after the first step.

Convention: step :math:`t = 0, \dots, T` is the forward pass after :math:`t` optimizer
updates, so :math:`t = 0` is the model as initialized, :math:`t < T` is the forward pass the
update :math:`t + 1` is computed from (microsoft/mup records these, numbering them from 1),
and :math:`t = T` one more forward pass after the last update. Each width is built, initialized
and trained from the same seed, so a check is reproducible.
"""

from __future__ import annotations

import json
import math
import numbers
from collections.abc import Callable, Iterator, Mapping, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Literal

import torch
import torch.nn.functional as F
from torch import nn

from .._apply import apply
from .._diagnostics.batches import first_tensor, leaf_modules
from ..errors import ConfigError, UnknownNameError, short_repr, suggest
from .._groups import param_groups
from .._plan import Manifest, Plan

__all__ = ["coord_check", "CoordCheck", "LOGITS", "OPTIMIZERS", "DEFAULT_LR"]

LOGITS = "logits"
"""The coordinate of the model's output."""
Optimizer = Literal["adam", "sgd"]
OPTIMIZERS: tuple[Optimizer, ...] = ("adam", "sgd")
DEFAULT_LR: Mapping[str, float] = {"adam": 1e-2, "sgd": 0.1}
"""The learning rate of each optimizer when none is given."""
_FORMAT = "torchinit.coord_check/1"
_FORMATS = (".png", ".svg", ".pdf")


def _number(x: float) -> float | str:
    return x if math.isfinite(x) else str(x)


@dataclass(frozen=True)
class CoordCheck:
    """What :func:`coord_check` measured.

    Attributes:
        widths: The widths, ascending.
        steps: The number of optimizer updates :math:`T`; steps ``0..T`` are recorded.
        layers: The coordinates: leaf modules by path in the order the forward pass first
            calls them, then :data:`LOGITS` (the model's output).
        data: ``(layer, width, step) -> mean |x|`` of that output at that width after ``step``
            updates (a module called several times in a forward pass: over all its outputs).
        optimizer: ``"adam"`` or ``"sgd"``.
        lr: The base learning rate.
        label: What was checked, e.g. ``"μP"``, for tables and plots.
    """

    widths: tuple[int, ...]
    steps: int
    layers: tuple[str, ...]
    data: Mapping[tuple[str, int, int], float] = field(hash=False)
    optimizer: str
    lr: float
    label: str = ""

    def _step(self, step: int) -> int:
        if isinstance(step, bool) or not isinstance(step, int) \
                or not -self.steps - 1 <= step <= self.steps:
            raise ConfigError(f"step must be an int in [0, {self.steps}] (or negative, from the"
                              f" end), got {short_repr(step)}")
        return step % (self.steps + 1)

    def _layer(self, layer: str) -> str:
        if layer not in self.layers:
            raise UnknownNameError(f"no coordinate {short_repr(layer)}; the coordinates are"
                                   f" {list(self.layers)}." + suggest(layer, self.layers))
        return layer

    def values(self, layer: str, step: int = -1) -> tuple[float, ...]:
        """Mean |x| of ``layer`` at each width (ascending) after ``step`` updates (``-1``:
        the last).

        Raises:
            UnknownNameError: for a layer that is not a coordinate (with close matches).
            ConfigError: for a step outside ``[-steps - 1, steps]``.
        """
        layer, step = self._layer(layer), self._step(step)
        return tuple(self.data[(layer, w, step)] for w in self.widths)

    def growth(self, layer: str, step: int = -1) -> float:
        """Mean |x| of ``layer`` at the largest width divided by that at the smallest, after
        ``step`` updates: about 1 where the coordinate is stable in width, about
        :math:`n_{max}/n_{min}` where it grows like the width. NaN for 0/0 (a zero-initialized
        readout at step 0), ``inf`` for x/0."""
        first, *_, last = self.values(layer, step)
        if first == 0:
            return math.nan if last == 0 else math.inf
        return last / first

    def table(self) -> str:
        """Mean |x| per step, coordinate and width, with the growth (largest / smallest
        width) in the last column."""
        rows = [("step", "coordinate", *(str(w) for w in self.widths), "growth")]
        for step in range(self.steps + 1):
            rows += [(str(step), layer, *(f"{v:.3g}" for v in self.values(layer, step)),
                      f"x{self.growth(layer, step):.3g}") for layer in self.layers]
        sizes = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.rjust(s) if i > 1 else c.ljust(s)
                           for i, (c, s) in enumerate(zip(r, sizes))).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * s for s in sizes))
        title = f"{self.label + ': ' if self.label else ''}mean |x| ({self.optimizer}, lr" \
                f" {self.lr:g}, {self.steps} steps)"
        return "\n".join([title, *lines])

    def to_dict(self) -> dict[str, Any]:
        """The JSON-safe form: ``values[layer][step][i]`` is mean |x| at ``widths[i]``
        (non-finite numbers as strings)."""
        return {"format": _FORMAT, "label": self.label, "optimizer": self.optimizer,
                "lr": self.lr, "widths": list(self.widths), "steps": self.steps,
                "values": {layer: [[_number(v) for v in self.values(layer, t)]
                                   for t in range(self.steps + 1)] for layer in self.layers}}

    def to_json(self, indent: int | None = 2) -> str:
        """:meth:`to_dict` as JSON text."""
        return json.dumps(self.to_dict(), indent=indent)

    @classmethod
    def from_json(cls, text: str) -> CoordCheck:
        """The check :meth:`to_json` wrote.

        Raises:
            ConfigError: for text that is not a coordinate check.
        """
        try:
            d = json.loads(text)
            fmt = d["format"]
        except (ValueError, KeyError, TypeError) as err:
            raise ConfigError(f"not a coordinate check ({_FORMAT}): {err!r}") from None
        if fmt != _FORMAT:
            raise ConfigError(f"format must be {_FORMAT!r}, got {short_repr(fmt)}")
        try:
            widths = tuple(int(w) for w in d["widths"])
            data = {(layer, w, t): float(v) for layer, per_step in d["values"].items()
                    for t, row in enumerate(per_step) for w, v in zip(widths, row, strict=True)}
            return cls(widths, int(d["steps"]), tuple(d["values"]), data, d["optimizer"],
                       float(d["lr"]), d["label"])
        except (ValueError, KeyError, TypeError, AttributeError) as err:
            raise ConfigError(f"malformed coordinate check ({_FORMAT}): {err!r}") from None

    def plot(self, path: str | Path, *others: CoordCheck, title: str | None = None) -> None:
        """Draw the check as microsoft/mup's coordinate-check plots: one panel per step,
        x = width (log2), y = mean |x| (log), one line per coordinate. ``others`` (e.g. the
        standard parametrization beside μP) are drawn below, a row each, on the same y scale.
        Zeros (a zero-initialized readout at step 0) and non-finite values are left out. PNG,
        SVG or PDF by the extension. Needs matplotlib (the ``plot`` extra).

        Raises:
            ConfigError: for another extension.
            ImportError: without matplotlib, naming the ``plot`` extra.
        """
        _plot([self, *others], Path(path), title)


def _plot(checks: list[CoordCheck], path: Path, title: str | None) -> None:
    if path.suffix.lower() not in _FORMATS:
        raise ConfigError(f"plot file {str(path)!r}: the extension must be one of {_FORMATS}")
    try:
        from matplotlib.backends.backend_agg import FigureCanvasAgg
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plotting a coordinate check needs matplotlib; install the plot"
                          " extra: pip install 'torchinit[plot]'") from err
    columns = max(c.steps for c in checks) + 1
    figure = Figure(figsize=(3.2 * columns + 2.2, 3.0 * len(checks)), dpi=100,
                    layout="constrained")
    FigureCanvasAgg(figure)
    axes = figure.subplots(len(checks), columns, sharey=True, squeeze=False)
    for row, check in zip(axes, checks):
        for step, ax in enumerate(row):
            if step > check.steps:
                ax.set_visible(False)
                continue
            for i, layer in enumerate(check.layers):
                points = [(w, v) for w, v in zip(check.widths, check.values(layer, step))
                          if math.isfinite(v) and v > 0]
                if points:
                    ax.plot(*zip(*points), marker="o", markersize=3, color=f"C{i % 10}",
                            linewidth=2.2 if layer == LOGITS else 1.2, label=layer)
            ax.set_xscale("log", base=2)
            ax.set_yscale("log")
            ax.set_title(f"{check.label + ', ' if check.label else ''}step {step}", fontsize=9)
            ax.set_xlabel("width")
            ax.grid(True, which="major", alpha=0.3)
        row[0].set_ylabel("mean |x|")
        handles, labels = row[0].get_legend_handles_labels()
        if handles:
            row[check.steps].legend(handles, labels, loc="center left",
                                    bbox_to_anchor=(1.02, 0.5), fontsize=7)
    figure.suptitle(title or "coordinate check: mean |x| by width after t updates")
    figure.savefig(path)


# -- the check --------------------------------------------------------------------------------
def _widths(widths: Any) -> tuple[int, ...]:
    if isinstance(widths, (str, bytes)) or not isinstance(widths, Sequence) or not widths:
        raise ConfigError(f"widths must be a non-empty list of ints >= 1, e.g. [64, 128, 256],"
                          f" got {short_repr(widths)}")
    bad = [w for w in widths if isinstance(w, bool) or not isinstance(w, int) or w < 1]
    if bad:
        raise ConfigError(f"widths must be ints >= 1, got {short_repr(bad[0])} in"
                          f" {short_repr(list(widths))}")
    if len(set(widths)) != len(widths):
        raise ConfigError(f"widths must be distinct, got {short_repr(list(widths))}")
    return tuple(sorted(widths))


def _real(value: Any, name: str, positive: bool) -> float:
    if isinstance(value, bool) or not isinstance(value, numbers.Real) \
            or not math.isfinite(value) or value < 0 or (positive and value == 0):
        raise ConfigError(f"{name} must be a finite number {'> 0' if positive else '>= 0'},"
                          f" got {short_repr(value)}")
    return float(value)


def _cross_entropy(output: torch.Tensor, targets: torch.Tensor) -> torch.Tensor:
    """Cross-entropy of logits over their last dimension: ``(N, C)`` or ``(N, T, C)``."""
    return F.cross_entropy(output.reshape(-1, output.shape[-1]), targets.reshape(-1))


class _Recorder:
    """Forward hooks summing |x| and counting the entries of every leaf module's output."""

    def __init__(self, model: nn.Module) -> None:
        self.leaves = [(p, m) for p, m in leaf_modules(model) if p]  # a leaf root: the logits
        if any(p == LOGITS for p, _ in self.leaves):
            raise ConfigError(f"the model has a leaf module named {LOGITS!r}, which is the name"
                              " of the model output's coordinate; wrap the model in a module"
                              " so its path differs")
        self.sums: dict[str, list[torch.Tensor]] = {}
        self.counts: dict[str, int] = {}

    def _hook(self, path: str) -> Callable[[nn.Module, Any, Any], None]:
        def hook(module: nn.Module, args: Any, output: Any) -> None:
            tensor = first_tensor(output)
            if tensor is not None:
                self.sums.setdefault(path, []).append(
                    tensor.detach().abs().sum(dtype=torch.float64))
                self.counts[path] = self.counts.get(path, 0) + tensor.numel()
        return hook

    @contextmanager
    def hooked(self) -> Iterator[_Recorder]:
        handles = [m.register_forward_hook(self._hook(p)) for p, m in self.leaves]
        try:
            yield self
        finally:
            for handle in handles:
                handle.remove()

    def take(self, output: torch.Tensor) -> dict[str, float]:
        """Mean |x| of every leaf output since the last call, then of ``output``."""
        sizes = {p: float(torch.stack(s).sum()) / max(self.counts[p], 1)
                 for p, s in self.sums.items()}
        sizes[LOGITS] = float(output.detach().abs().double().mean())
        self.sums, self.counts = {}, {}
        return sizes


def _build(factory: Callable[[int], nn.Module], plan_fn: Callable[[int], Plan], width: int,
           device: torch.device, seed: int) -> tuple[nn.Module, Manifest]:
    model = factory(width)
    if not isinstance(model, nn.Module):
        raise ConfigError(f"coord_check: factory({width}) returned {type(model).__name__}, not"
                          " an nn.Module; pass factory(width) -> model")
    plan = plan_fn(width)
    if not isinstance(plan, Plan):
        raise ConfigError(f"coord_check: plan_fn({width}) returned {type(plan).__name__}, not a"
                          " Plan; e.g. plan_fn=lambda w: ti.mup(lambda: factory(64))")
    model.to(device)
    return model, apply(model, plan, seed=seed)


def _train(model: nn.Module, optimizer: torch.optim.Optimizer, inputs: torch.Tensor,
           targets: Any, steps: int, loss: Callable[[Any, Any], torch.Tensor],
           width: int) -> list[dict[str, float]]:
    """Mean |x| of every coordinate at steps ``0..steps``."""
    recorder = _Recorder(model)
    sizes = []
    model.train()
    with recorder.hooked():
        for step in range(steps + 1):
            with torch.set_grad_enabled(step < steps):
                output = model(inputs)
            if not isinstance(output, torch.Tensor) or not output.is_floating_point():
                raise ConfigError(f"coord_check: the model at width {width} returned"
                                  f" {type(output).__name__}; its output must be a floating"
                                  " tensor of logits (wrap a model that returns more)")
            sizes.append(recorder.take(output))
            if step < steps:
                optimizer.zero_grad(set_to_none=True)
                loss(output, targets).backward()  # type: ignore[no-untyped-call]
                optimizer.step()
    return sizes


def coord_check(
    factory: Callable[[int], nn.Module],
    widths: Sequence[int],
    plan_fn: Callable[[int], Plan],
    batch: tuple[torch.Tensor, Any],
    steps: int = 3,
    *,
    lr: float | None = None,
    optimizer: Optimizer = "adam",
    loss: Callable[[Any, Any], torch.Tensor] | None = None,
    seed: int = 0,
    weight_decay: float = 0.0,
    label: str = "",
) -> CoordCheck:
    """Train ``factory(width)`` for ``steps`` steps on one batch at every width and record the
    mean |x| of every leaf module's output and of the logits before each update and after the
    last (see the module's convention).

    For each width, under a seed-forked torch generator seeded with ``seed``: the model is
    built, initialized in place by ``ti.apply(model, plan_fn(width), seed=seed)`` and trained
    by a torch optimizer over ``ti.param_groups(model, plan=manifest, lr=lr,
    weight_decay=weight_decay)``, so each parameter gets its parametrization's learning-rate
    and weight-decay multipliers. The model runs on the device of the batch's inputs, in train
    mode.

    Args:
        factory: ``factory(width) -> nn.Module``; its output is the logits tensor.
        widths: The widths (distinct ints >= 1), e.g. ``[64, 128, ..., 2048]``.
        plan_fn: ``plan_fn(width) -> Plan``: for μP ``lambda w: ti.mup(lambda:
            factory(base_width))``, for the standard parametrization ``lambda w:
            ti.presets.get("torch")``.
        batch: ``(inputs, targets)``, used at every step.
        steps: Optimizer updates (>= 1); steps ``0..steps`` are recorded.
        lr: The base learning rate; default :data:`DEFAULT_LR` of the optimizer.
        optimizer: ``"adam"`` (``torch.optim.AdamW``: Adam with decoupled weight decay, which
            is Adam when ``weight_decay=0``) or ``"sgd"`` (``torch.optim.SGD``, no momentum).
        loss: ``loss(output, targets) -> scalar``; default cross-entropy of the logits over
            their last dimension (classifier ``(N, C)`` or language model ``(N, T, V)``).
        seed: Seed of the model's construction, its initialization and training randomness.
        weight_decay: The base weight decay (biases and norm parameters get none, see
            :func:`torchinit.param_groups`).
        label: A name for the result's table and plots, e.g. ``"μP"``.

    Returns:
        A :class:`CoordCheck`; ``check.growth("logits")`` is the logits' size at the largest
        width over that at the smallest after the last update.

    Raises:
        ConfigError: for empty, repeated or non-positive widths, ``steps < 1``, an unknown
            optimizer, a bad ``lr``/``weight_decay``/batch, a factory that does not return an
            ``nn.Module``, a ``plan_fn`` that does not return a Plan, a model whose output is
            not a floating tensor, or models whose leaf modules differ between widths.

    Example:
        >>> from torchinit.width.families import mlp
        >>> check = ti.coord_check(mlp, [64, 128, 256], lambda w: ti.mup(lambda: mlp(64)),
        ...                        batch, steps=3, lr=1e-2)
        >>> check.growth("logits")   # about 1 under μP
    """
    sizes = _widths(widths)
    if isinstance(steps, bool) or not isinstance(steps, int) or steps < 1:
        raise ConfigError(f"steps must be an int >= 1, got {short_repr(steps)}")
    if optimizer not in OPTIMIZERS:
        raise ConfigError(f"optimizer must be one of {OPTIMIZERS}, got {short_repr(optimizer)}")
    rate = DEFAULT_LR[optimizer] if lr is None else _real(lr, "lr", positive=True)
    decay = _real(weight_decay, "weight_decay", positive=False)
    if not callable(factory) or not callable(plan_fn):
        raise ConfigError("coord_check takes factory(width) -> model and plan_fn(width) -> Plan"
                          " callables")
    if not isinstance(batch, (tuple, list)) or len(batch) != 2 \
            or not isinstance(batch[0], torch.Tensor):
        raise ConfigError("batch must be (inputs, targets) with a tensor of inputs, got"
                          f" {short_repr(batch)}")
    inputs, targets = batch
    make = torch.optim.AdamW if optimizer == "adam" else torch.optim.SGD
    data: dict[tuple[str, int, int], float] = {}
    layers: tuple[str, ...] = ()
    for width in sizes:
        with torch.random.fork_rng(devices=[]):
            torch.manual_seed(seed)
            model, manifest = _build(factory, plan_fn, width, inputs.device, seed)
            opt = make(param_groups(model, plan=manifest, lr=rate, weight_decay=decay),
                       lr=rate)
            per_step = _train(model, opt, inputs, targets, steps, loss or _cross_entropy,
                              width)
        found = tuple(per_step[0])
        if layers and found != layers:
            raise ConfigError(f"coord_check: the model at width {width} has coordinates"
                              f" {list(found)}, at width {sizes[0]} {list(layers)}; the factory"
                              " must build the same modules at every width")
        layers = found
        data.update({(layer, width, t): s[layer] for t, s in enumerate(per_step)
                     for layer in layers})
    return CoordCheck(sizes, steps, layers, data, optimizer, rate, label)
