r"""The Maximal Update Parametrization (μP) as a plan: initialization and learning-rate
multipliers from how each parameter's fans grow with width.

Yang, Hu, Babuschkin, Sidor, Liu, Farhi, Ryder, Pachocki, Chen & Gao (2022), "Tensor Programs
V: Tuning Large Neural Networks via Zero-Shot Hyperparameter Transfer", Table 3. A parameter's
fans are compared with the same parameter of a base-width model; those that differ are
"infinite". With :math:`m_{in} = n_{in} / n_{in}^{base}` and :math:`m_{out} = n_{out} /
n_{out}^{base}` the fan-in and fan-out width multipliers (1 for a finite fan) and
:math:`\sigma_b` the std at base width (``std``, default :math:`1/\sqrt{n_{in}^{base}}`):

==========  ====================  ==========================================  =========  ==============================
class       infinite fans         init                                        Adam lr    SGD lr
==========  ====================  ==========================================  =========  ==============================
input       fan-out only          :math:`N(0, \sigma_b^2)`                    x1         x :math:`m_{out}`
hidden      fan-in and fan-out    :math:`N(0, \sigma_b^2 / m_{in})`           x :math:`1/m_{in}`  x :math:`m_{out}/m_{in}`
output      fan-in only           zero, or :math:`N(0, \sigma_b^2/m_{in}^2)`  x :math:`1/m_{in}`  x :math:`1/m_{in}`
vector      its one dimension     biases 0, norm scales 1                     x1         x :math:`m_{out}`
fixed       none                  :math:`N(0, \sigma_b^2)`                    x1         x1
==========  ====================  ==========================================  =========  ==============================

These are Table 3's variances (:math:`1/n_{in}` for input and hidden weights and biases,
:math:`1/n_{in}^2` for output weights) and learning rates (Adam: :math:`\eta`,
:math:`\eta/n_{in}`, :math:`\eta/n_{in}`; SGD: :math:`\eta n_{out}`, :math:`\eta`,
:math:`\eta/n_{in}`), written relative to the base model: at base width every multiplier is
1 and every init SP's (the output layer's too under ``output="scaled"``), so a learning rate
tuned on the base transfers to every width. Which fans grow is read off a ``delta`` model at a
second width when one is given (as microsoft/mup's ``set_base_shapes(base, delta)``), else off
the model the plan meets, by comparing it with the base. SGD's
hidden multiplier :math:`m_{out}/m_{in}` is Table 3's 1 when both fans grow together, and the
ratio microsoft/mup's ``MuSGD`` uses when they do not.

Weight decay is scaled by the inverse of the learning-rate multiplier, as microsoft/mup's
``MuAdam`` and ``MuSGD`` (``mup/optim.py``) scale it: the product lr x weight decay, which is
the per-step shrink of torch's decoupled ``AdamW`` and the decay term of ``SGD``, stays the same
at every width.

Table 3 is the form of μP without forward multipliers: the output layer's :math:`1/n_{in}`
is in its init and learning rate (equivalent to microsoft/mup's ``MuReadout`` output multiplier
for Adam, whose updates do not depend on the gradient's scale). What the forward pass must still
do is in :func:`forward_requirements`.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from torch import nn

from ..errors import ConfigError, InitializerError, describe_target
from ..initializers import Initializer, Normal, Ones, Zeros
from .._plan import Plan, Rule
from .._plan.parametrization import (
    Parametrization,
    Scales,
    register_parametrization,
    width_fans,
)
from .._plan.plan import collect_params
from .._plan.selectors import ParamInfo
from ._base_shapes import Base, BaseShape, BaseShapes
from ._forward import attention_warnings

__all__ = ["MuP", "mup", "OPTIMIZERS", "OUTPUTS"]

Optimizer = Literal["adam", "sgd"]
Output = Literal["zero", "scaled"]
OPTIMIZERS: tuple[Optimizer, ...] = ("adam", "sgd")
OUTPUTS: tuple[Output, ...] = ("zero", "scaled")


def _shape(info: ParamInfo) -> tuple[int, ...]:
    return tuple(getattr(info.module, info.name).shape)


def _axis_multipliers(shape: tuple[int, ...], base: tuple[int, ...]) -> tuple[float, float]:
    """(m_in, m_out) read off torch's axis order, as microsoft/mup's ``InfShape`` reads them:
    dimension 1 is the fan-in, dimension 0 the fan-out; a parameter whose only growing
    dimensions are others (a ``(1, T, d)`` position table) is input-like, its fan-out growing
    by their product."""
    ratios = [s / b if b and s != b else 1.0 for s, b in zip(shape, base)]
    m_out, m_in = ratios[0], ratios[1]
    rest = math.prod(ratios[2:])
    if m_in == 1.0 and m_out == 1.0 and rest != 1.0:
        m_out = rest
    return m_in, m_out


_KINDS = {(False, False): "fixed", (False, True): "input", (True, True): "hidden",
          (True, False): "output"}


def _kind(info: ParamInfo, entry: BaseShape, m_in: float, m_out: float) -> str:
    """The class from which fans grow: the base shapes' ``grows`` (from a delta model) when
    recorded, else the fans in which the model differs from the base."""
    if entry.grows is None:
        return _KINDS[(m_in != 1.0, m_out != 1.0)]
    for grows, m, side in zip(entry.grows, (m_in, m_out), ("fan-in", "fan-out")):
        if not grows and m != 1.0:
            raise InitializerError(
                f"μP: parameter {info.path!r} {_shape(info)} has a {side} x{m:.4g} the base's,"
                " but that fan is the same in the base and delta models, so it does not grow"
                " with width; build the delta model from the base with only the widths changed")
    return _KINDS[entry.grows]


class MuP(Parametrization):
    """μP relative to base shapes: the ``init`` of the rule :func:`mup` makes.

    Args:
        base: The base-width model's shapes (anything :meth:`BaseShapes.of` takes).
        optimizer: ``"adam"`` (Adam, AdamW and other sign-like adaptive optimizers) or
            ``"sgd"``: which column of Table 3 the learning rates follow.
        output: The output weights' init: ``"zero"`` (the paper's recommendation, section
            D.2, and microsoft/mup's ``readout_zero_init``) or ``"scaled"``
            (:math:`N(0, \\sigma_b^2/m_{in}^2)`, Table 3's variance :math:`1/n_{in}^2`).
        std: The weights' std at base width; ``None`` gives :math:`1/\\sqrt{n_{in}^{base}}`
            (Table 3's variance :math:`1/n_{in}`; N(0, 1) for an embedding, whose fan-in is 1).
            GPT-style models use 0.02.
        delta: The model at a second width (see :meth:`BaseShapes.of`): which fans grow is
            then fixed by base and delta, so μP classifies the base-width model itself too
            (its output layer zero-initialized under ``output="zero"``). Recommended when the
            base width is one of the widths trained.

    Raises:
        ConfigError: for an unknown optimizer or output, or a std that is not finite and > 0.
    """

    name = "mup"

    def __init__(self, base: Base, optimizer: Optimizer = "adam", output: Output = "zero",
                 std: float | None = None, delta: Base | None = None) -> None:
        if optimizer not in OPTIMIZERS:
            raise ConfigError(f"μP optimizer must be one of {OPTIMIZERS} (AdamW counts as"
                              f" 'adam'), got {optimizer!r}")
        if output not in OUTPUTS:
            raise ConfigError(f"μP output must be one of {OUTPUTS}, got {output!r}")
        if std is not None and (isinstance(std, bool) or not isinstance(std, (int, float))
                                or not math.isfinite(std) or std <= 0):
            raise ConfigError(f"μP std must be a finite number > 0 or None, got {std!r}")
        self.base = BaseShapes.of(base, delta)
        self.optimizer = optimizer
        self.output = output
        self.std = None if std is None else float(std)

    # -- classification ------------------------------------------------------------------------
    def _base(self, info: ParamInfo) -> BaseShape:
        entry = self.base.get(info.path)
        if entry is None:
            raise InitializerError(
                f"μP: parameter {info.path!r} {_shape(info)} is not in the base model"
                f" ({len(self.base)} parameter paths); build the base from the same code at a"
                " smaller width, so every parameter has a base twin")
        if len(entry.shape) != info.ndim:
            raise InitializerError(
                f"μP: parameter {info.path!r} has shape {_shape(info)} but {entry.shape} in the"
                " base model; only sizes may differ between them, not the number of dimensions")
        return entry

    def _multipliers(self, info: ParamInfo) -> tuple[str, float, float, tuple[int, int] | None]:
        """(class, m_in, m_out, base fans) of the parameter; base fans ``None`` for 0-D and
        1-D parameters."""
        entry = self._base(info)
        shape = _shape(info)
        fans = width_fans(info)
        if fans is None:  # 0-D and 1-D: the one dimension is the fan-out
            m_out = shape[0] / entry.shape[0] if shape and entry.shape[0] else 1.0
            kind = _kind(info, entry, 1.0, m_out)
            return ("vector" if kind == "input" else kind), 1.0, m_out, None
        if fans.assumed or entry.fan_in is None or entry.fan_out is None:
            m_in, m_out = _axis_multipliers(shape, entry.shape)
            base_in, base_out = round(fans.fan_in / m_in), round(fans.fan_out / m_out)
        else:
            base_in, base_out = entry.fan_in, entry.fan_out
            m_in = fans.fan_in / base_in if base_in else 1.0
            m_out = fans.fan_out / base_out if base_out else 1.0
        return _kind(info, entry, m_in, m_out), m_in, m_out, (base_in, base_out)

    def scales(self, info: ParamInfo) -> Scales:
        kind, m_in, m_out, base = self._multipliers(info)
        if self.optimizer == "adam":
            lr = 1.0 / m_in if kind in ("hidden", "output") else 1.0
        else:
            lr = {"input": m_out, "vector": m_out, "hidden": m_out / m_in,
                  "output": 1.0 / m_in}.get(kind, 1.0)
        fans = "" if base is None else f", base fans {base[0]}/{base[1]}"
        note = (f"width multipliers in x{m_in:.4g}, out x{m_out:.4g}{fans} ({self.optimizer}:"
                f" lr x{lr:.4g}, weight decay x{1 / lr:.4g})")
        return Scales(lr=lr, weight_decay=1.0 / lr, kind=kind, note=note)

    def initializer(self, info: ParamInfo) -> Initializer:
        kind, m_in, _, base = self._multipliers(info)
        if base is None:
            return self._vector_init(info, kind)
        fans = width_fans(info)
        if fans is not None and fans.assumed:
            raise InitializerError(
                f"μP: {describe_target(info.path, _shape(info))} of {type(info.module).__name__}"
                " has no registered layout, so μP reads its class off torch's axis order"
                f" ({kind}) for its learning rate but does not guess its init. Register the"
                " layer's fans with torchinit.register_layout, or add a rule after the μP plan:"
                f" ti.mup(base) + [Rule(path={info.path!r}, init=...)], which keeps μP's"
                " multipliers")
        std = self.std if self.std is not None else (1.0 / math.sqrt(base[0]) if base[0]
                                                     else 0.0)
        if kind == "hidden":
            std /= math.sqrt(m_in)
        elif kind == "output":
            if self.output == "zero":
                return Zeros()
            std /= m_in
        return Normal(0.0, std) if std > 0 else Zeros()

    def _vector_init(self, info: ParamInfo, kind: str) -> Initializer:
        if "bias" in info.roles:
            return Zeros()
        if "scale" in info.roles:  # a normalization layer's weight
            return Ones()
        raise InitializerError(
            f"μP: {describe_target(info.path, _shape(info))} of"
            f" {type(info.module).__name__} is a {kind} parameter that is neither a bias nor a"
            " normalization scale, so μP has no init for it; its learning rate is μP's."
            f" Add a rule after the μP plan, e.g. ti.mup(base) + [Rule(path={info.path!r},"
            " init=...)], which keeps μP's multipliers")

    # -- forward pass ---------------------------------------------------------------------------
    def model_warnings(self, model: nn.Module) -> list[str]:
        out = attention_warnings(model)
        tied = []
        for param in collect_params(model):
            if len(param.infos) < 2:
                continue
            try:
                kinds = {info.path: self._multipliers(info)[0] for info in param.infos}
            except InitializerError:
                continue  # reported by the resolve itself
            if len(set(kinds.values())) > 1:
                tied.append(", ".join(f"{p} ({k})" for p, k in kinds.items()))
        if tied:
            out.append(
                "μP: tied parameters play two parts: " + "; ".join(tied[:3])
                + ". The canonical path's class sets the init and learning rate. A readout"
                " tied to an input embedding needs an output multiplier in the forward pass:"
                " logits = (h @ E.T) / m_in, with m_in = width / base width (microsoft/mup's"
                " MuSharedReadout); or untie the two")
        return out

    def to_config(self) -> dict[str, Any]:
        return {"parametrization": self.name, "optimizer": self.optimizer,
                "output": self.output, "std": self.std, "base": self.base.to_dict()}

    def __repr__(self) -> str:
        return (f"MuP(optimizer={self.optimizer!r}, output={self.output!r}, std={self.std},"
                f" base={self.base!r})")


def _from_config(options: Mapping[str, Any]) -> MuP:
    unknown = sorted(set(options) - {"optimizer", "output", "std", "base"})
    if unknown or "base" not in options:
        raise ConfigError("a μP parametrization takes 'base' (its base shapes) and optionally"
                          f" 'optimizer', 'output', 'std'; got {sorted(options)}",
                          field=(unknown[0],) if unknown else ())
    return MuP(BaseShapes.from_dict(options["base"]), options.get("optimizer", "adam"),
               options.get("output", "zero"), options.get("std"))


register_parametrization("mup", _from_config)


def mup(base: Base, *, optimizer: Optimizer = "adam", output: Output = "zero",
        std: float | None = None, delta: Base | None = None) -> Plan:
    """A plan that initializes a model under μP relative to ``base`` and sets every
    parameter's learning-rate and weight-decay multipliers (see the module's table).

    Args:
        base: The model at base width: a model (meta is fine), a factory ``() -> model``
            (built on the meta device), a file written by :meth:`BaseShapes.save`, or
            :class:`BaseShapes`. The dimensions in which the model given to the plan differs
            from the base are the ones that grow with width.
        optimizer: ``"adam"`` or ``"sgd"`` (Table 3's two columns).
        output: ``"zero"`` or ``"scaled"`` init of output weights.
        std: The weights' std at base width (default :math:`1/\\sqrt{n_{in}^{base}}`).
        delta: The model at another width (a model, factory or file, as ``base``), which fixes
            which fans grow; without it, they are the fans in which the model the plan is
            applied to differs from the base, so the base-width model itself is all ``fixed``
            (standard init, its output layer not zero). Give it when training at the base
            width too.

    Returns:
        A one-rule plan; use it with ``ti.apply``/``ti.build``/``ti.materialize``, and give it
        to :func:`torchinit.param_groups` (``plan=``) for the optimizer. The manifest shows each
        parameter's class, multipliers and base fans. Applying it twice gives the same tensors:
        values are drawn from the seed, never rescaled from what the tensors hold.

    Example:
        >>> plan = ti.mup(lambda: MLP(width=64), delta=lambda: MLP(width=128))
        >>> model = ti.build(lambda: MLP(width=1024), plan)
        >>> opt = torch.optim.AdamW(ti.param_groups(model, plan=plan, lr=1e-3,
        ...                                         weight_decay=0.1))
    """
    parametrization = MuP(base, optimizer, output, std, delta)
    return Plan([Rule(init=parametrization,
                      label=f"μP ({optimizer}, output {output})")], name="mup")
