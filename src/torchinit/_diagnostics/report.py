"""The signal-propagation report: measured and predicted statistics per layer call, warnings
with stated thresholds, a table, JSON records and plots."""

from __future__ import annotations

import json
import math
from collections.abc import Sequence
from dataclasses import asdict, dataclass, field, fields
from functools import cached_property
from typing import Any

from .._json import json_number, read_json_number
from ..errors import ConfigError

__all__ = ["Thresholds", "OutputStats", "LayerStats", "ParamStats", "Finding", "Report"]


@dataclass(frozen=True)
class Thresholds:
    """When a report warns.

    Args:
        depth_ratio: Vanishing/exploding when the activation std of the last layer call over
            the first (or the gradient std at the first over the last) is below
            ``1 / depth_ratio`` or above ``depth_ratio``.
        dead: A layer call with more than this fraction of dead units (zero for every example).
        saturated: A bounded activation with more than this fraction of saturated outputs.
        prediction: A layer call whose measured std differs from the predicted one by more
            than this factor, either way.
    """

    depth_ratio: float = 1e3
    dead: float = 0.5
    saturated: float = 0.5
    prediction: float = 2.0

    def __post_init__(self) -> None:
        for f in fields(self):
            value = getattr(self, f.name)
            if isinstance(value, bool) or not isinstance(value, (int, float)) or value <= 0:
                raise ConfigError(f"Thresholds.{f.name} must be a positive number, got {value!r}")
        if self.depth_ratio <= 1 or self.prediction <= 1:
            raise ConfigError("Thresholds.depth_ratio and Thresholds.prediction are factors and"
                              f" must be > 1, got {self.depth_ratio!r} and {self.prediction!r}")


@dataclass(frozen=True)
class OutputStats:
    """Statistics of the output of one call of one leaf module, measured in the forward pass.

    ``dead_fraction`` is the fraction of units (elements of the per-example output) that are
    zero for every example; ``saturated_fraction`` is ``None`` for unbounded activations.
    """

    shape: tuple[int, ...]
    mean: float
    std: float
    abs_max: float
    zero_fraction: float
    dead_fraction: float
    saturated_fraction: float | None


@dataclass(frozen=True)
class _LayerCall:
    """Which call of which leaf module a :class:`LayerStats` describes."""

    index: int
    layer: str
    module_type: str


# A dataclass lists the fields of its bases from the last base to the first, then its own:
# LayerStats' fields are its call (index, layer, module_type), its OutputStats, then the rest.
@dataclass(frozen=True)
class LayerStats(OutputStats, _LayerCall):
    """Statistics of one call of one leaf module, in forward-execution order.

    ``layer`` is the module path, suffixed ``#k`` for the k-th call of a module called more
    than once. After the call come its :class:`OutputStats` (``shape`` to
    ``saturated_fraction``), then the std of the gradient with respect to the output and the
    predictions: the ``predicted_*`` fields are ``None`` where no prediction exists.
    ``zero_by_plan``: the manifest makes this output exactly zero (a zero-initialized scale
    such as the ``resnet`` preset's ``zero_init_residual``), so its dead units are expected.
    ``feeds_zero_by_plan``: this output (or the zero one itself) reaches such an output, so a
    gradient of exactly 0 here is expected too.
    """

    grad_std: float | None
    predicted_std: float | None
    predicted_grad_std: float | None
    zero_by_plan: bool = False
    feeds_zero_by_plan: bool = False

    @property
    def zero_grad_by_plan(self) -> bool:
        """The gradient is exactly 0 and the row feeds an output that is zero by plan."""
        return self.feeds_zero_by_plan and self.grad_std == 0


_FLOATS = ("mean", "std", "abs_max", "zero_fraction", "dead_fraction", "saturated_fraction",
           "grad_std", "predicted_std", "predicted_grad_std")


@dataclass(frozen=True)
class ParamStats:
    """Std of a parameter's values and of its gradient in the backward pass."""

    path: str
    shape: tuple[int, ...]
    std: float | None
    grad_std: float | None


@dataclass(frozen=True)
class Finding:
    """One warning: its kind, the layer it concerns (``None`` for depth-wide ones), the
    measured value, the threshold it crossed, and a sentence saying all of it."""

    kind: str
    layer: str | None
    value: float
    threshold: float
    message: str


def _ratio(first: float | None, last: float | None) -> float | None:
    """``last / first``, with an overflowed (infinite) std counting as larger than any other;
    ``None`` where undefined (missing, NaN, 0/0, inf/inf)."""
    if first is None or last is None or math.isnan(first) or math.isnan(last):
        return None
    if first == last and (first == 0 or math.isinf(first)):
        return None
    if first == 0 or math.isinf(last):
        return math.inf
    return last / first


def _depth_findings(kind: str, ratio: float | None, what: str, limit: float) -> list[Finding]:
    if ratio is None:
        return []
    if ratio < 1 / limit:
        return [Finding(f"vanishing_{kind}", None, ratio, 1 / limit,
                        f"vanishing {what}: {ratio:.3g} is below {1 / limit:.3g}")]
    if ratio > limit:
        return [Finding(f"exploding_{kind}", None, ratio, limit,
                        f"exploding {what}: {ratio:.3g} is above {limit:.3g}")]
    return []


@dataclass(frozen=True)
class Report:
    """What :func:`torchinit.inspect` measured and predicted.

    ``layers`` are the leaf-module calls in forward-execution order, ``params`` every parameter
    once. ``input_std`` is the std of the model input; ``prediction_source`` says where weight
    moments came from (``"manifest"``, ``"weights"`` or both). ``warnings`` are derived from
    the statistics and ``thresholds``.
    """

    layers: tuple[LayerStats, ...]
    params: tuple[ParamStats, ...] = ()
    input_std: float | None = None
    label: str = ""
    prediction_source: str = ""
    thresholds: Thresholds = field(default_factory=Thresholds)

    # -- warnings --------------------------------------------------------------------------------
    def activation_ratio(self) -> float | None:
        """Activation std of the last layer call over the first, of those not zero by plan
        (``None`` if undefined)."""
        stds = [s.std for s in self.layers if not s.zero_by_plan]
        return _ratio(stds[0], stds[-1]) if stds else None

    def gradient_ratio(self) -> float | None:
        """Gradient std at the first layer call over the last, in the direction gradients flow,
        of those with a gradient that is not zero by plan (``None`` where there are none)."""
        grads = [s.grad_std for s in self.layers
                 if s.grad_std is not None and not s.zero_grad_by_plan]
        return _ratio(grads[-1], grads[0]) if grads else None

    @cached_property
    def warnings(self) -> tuple[Finding, ...]:
        """Every threshold crossed, depth-wide findings first."""
        t = self.thresholds
        found = _depth_findings("activations", self.activation_ratio(),
                                "activations (std of the last layer call / the first)",
                                t.depth_ratio)
        found += _depth_findings("gradients", self.gradient_ratio(),
                                 "gradients (gradient std at the first layer call / the last)",
                                 t.depth_ratio)
        for s in self.layers:
            where = f"{s.layer} ({s.module_type})"
            if s.dead_fraction > t.dead and not s.zero_by_plan:
                found.append(Finding("dead", s.layer, s.dead_fraction, t.dead,
                                     f"{where}: {s.dead_fraction:.1%} of units are dead (zero for"
                                     f" every example), above the threshold {t.dead:.0%}"))
            if s.saturated_fraction is not None and s.saturated_fraction > t.saturated:
                found.append(Finding("saturated", s.layer, s.saturated_fraction, t.saturated,
                                     f"{where}: {s.saturated_fraction:.1%} of outputs are"
                                     f" saturated, above the threshold {t.saturated:.0%}"))
            off = self._prediction_factor(s)
            if off is not None and off > t.prediction:
                found.append(Finding("prediction", s.layer, off, t.prediction,
                                     f"{where}: measured std {s.std:.3g} differs from the"
                                     f" predicted {s.predicted_std:.3g} by {off:.3g}x, more than"
                                     f" the threshold {t.prediction:g}x"))
        return tuple(found)

    @staticmethod
    def _prediction_factor(s: LayerStats) -> float | None:
        """max(measured/predicted, predicted/measured); ``None`` without a prediction."""
        if s.predicted_std is None:
            return None
        if s.std == 0 or s.predicted_std == 0:
            return None if s.std == s.predicted_std else math.inf
        return max(s.std / s.predicted_std, s.predicted_std / s.std)

    # -- output ----------------------------------------------------------------------------------
    def to_records(self) -> list[dict[str, Any]]:
        """One JSON-safe dict per layer call (non-finite numbers as strings)."""
        return [{k: list(v) if isinstance(v, tuple) else json_number(v) if isinstance(v, float)
                 else v for k, v in asdict(s).items()} for s in self.layers]

    def to_json(self, indent: int | None = 2) -> str:
        """Everything in the report, and its warnings' messages (recomputed when loaded)."""
        return json.dumps({
            "label": self.label, "input_std": json_number(self.input_std),
            "prediction_source": self.prediction_source, "thresholds": asdict(self.thresholds),
            "layers": self.to_records(),
            "params": [{**asdict(p), "shape": list(p.shape), "std": json_number(p.std),
                        "grad_std": json_number(p.grad_std)} for p in self.params],
            "warnings": [w.message for w in self.warnings]}, indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Report:
        """The report :meth:`to_json` wrote."""
        d = json.loads(text)
        layers = tuple(LayerStats(**{**r, **{k: read_json_number(r[k]) for k in _FLOATS},
                                     "shape": tuple(r["shape"])}) for r in d["layers"])
        params = tuple(ParamStats(p["path"], tuple(p["shape"]), read_json_number(p["std"]),
                                  read_json_number(p["grad_std"])) for p in d["params"])
        return cls(layers, params, read_json_number(d["input_std"]), d["label"],
                   d["prediction_source"], Thresholds(**d["thresholds"]))

    def table(self) -> str:
        """A fixed-width table of the layer calls, then the warnings; ``0 (plan)`` marks an
        output (pred std) or a gradient (grad std) that is zero by plan."""
        def fmt(x: float | None, pct: bool = False) -> str:
            return "-" if x is None else f"{x:.1%}" if pct else f"{x:.3g}"

        rows = [("#", "layer", "type", "mean", "std", "pred std", "abs max", "zeros", "dead",
                 "saturated", "grad std", "pred grad")]
        rows += [(str(s.index), s.layer, s.module_type, fmt(s.mean), fmt(s.std),
                  "0 (plan)" if s.zero_by_plan else fmt(s.predicted_std), fmt(s.abs_max),
                  fmt(s.zero_fraction, True),
                  fmt(s.dead_fraction, True), fmt(s.saturated_fraction, True),
                  "0 (plan)" if s.zero_grad_by_plan else fmt(s.grad_std),
                  fmt(s.predicted_grad_std)) for s in self.layers]
        widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        lines += [f"warning: {w.message}" for w in self.warnings] or ["no warnings"]
        return "\n".join(lines)

    def plot(self, path: str, *others: Report, title: str | None = None,
             only: Sequence[str] | None = None) -> None:
        """Plot activation and gradient std by depth (log scale), measured and predicted, with
        ``others`` overlaid; PNG or SVG by the file extension; ``only`` keeps the calls of the
        named module types. Needs the ``plot`` extra (see :func:`.plot.plot_reports`)."""
        from .plot import plot_reports

        plot_reports([self, *others], path, title=title, only=only)

