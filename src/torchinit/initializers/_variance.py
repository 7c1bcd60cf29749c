"""Variance-preserving initializers: Xavier/Glorot, Kaiming/He, LeCun, variance scaling and the
"general rule".

All of them draw ``w`` with ``Var(w) = scale / n`` where ``n`` is a fan of the layer (fan_in,
fan_out or their average). Fans come from the layer's semantics when a plan or
``torchinit.fans`` supplies them, and from torch's axis-order rule on the tensor shape otherwise.
"""

from __future__ import annotations

import math
from dataclasses import dataclass
from typing import Literal, get_args

from .._deprecation import renamed
from .._fans import FAN_MODES, FanMode, Fans
from ..errors import FanError, InitializerError, UnknownNameError, at_field, short_repr, suggest
from .._gains import Nonlinearity, calculate_gain
from .._streams.distributions import Distribution, NormalDist, TruncNormalDist, UniformDist
from .._streams.distributions import truncated_std_factor
from ._base import ElementwiseInitializer, GainMixin, check_finite
from ._registry import register

__all__ = [
    "VarianceScaling",
    "XavierUniform",
    "XavierNormal",
    "KaimingUniform",
    "KaimingNormal",
    "LecunUniform",
    "LecunNormal",
    "GeneralRule",
    "variance_distribution",
]

VarianceDistribution = Literal["truncated_normal", "normal", "uniform"]
DISTRIBUTIONS: tuple[VarianceDistribution, ...] = get_args(VarianceDistribution)
_TRUNC_2SD = truncated_std_factor(-2.0, 2.0)  # 0.87962566103423978


def variance_distribution(std: float, distribution: VarianceDistribution) -> Distribution:
    """A zero-mean distribution with standard deviation ``std`` of the given family.

    * ``uniform``: ``U(-sqrt(3) std, sqrt(3) std)``;
    * ``normal``: ``N(0, std^2)``;
    * ``truncated_normal``: ``N(0, s^2)`` truncated at ``+-2 s`` with
      ``s = std / 0.87962566103423978`` so the result has std ``std`` (Keras, Flax).
    """
    if distribution == "uniform":
        b = math.sqrt(3.0) * std
        return UniformDist(-b, b)
    if distribution == "normal":
        return NormalDist(0.0, std)
    if distribution == "truncated_normal":
        return TruncNormalDist(0.0, std / _TRUNC_2SD, -2.0, 2.0)
    raise UnknownNameError(
        f"unknown distribution {short_repr(distribution)}; use one of {DISTRIBUTIONS}."
        + suggest(distribution, DISTRIBUTIONS)
    )


def _check_mode(owner: str, mode: str, allowed: tuple[str, ...] = FAN_MODES) -> None:
    if mode not in allowed:
        raise InitializerError(
            f"{owner}: mode must be one of {allowed}, got {short_repr(mode)}."
            + suggest(mode, allowed), field=("mode",)
        )


def _fans(fans: Fans | None, owner: str, mode: FanMode) -> Fans:
    """``fans``, checked to have a non-zero ``mode`` fan (the one the scale divides by).

    Raises:
        FanError: for a zero fan: only a tensor with no elements has one, and it needs no
            scale (``Initializer.sample`` and plans skip it; a manifest records its std as
            ``None``).
    """
    if fans is None:
        raise InitializerError(f"{owner} needs fans: pass fans= or a shape")
    if fans.get(mode) == 0:
        raise FanError(f"{owner}: {mode} is 0 (fans {fans.fan_in} in / {fans.fan_out} out), so"
                       " its scale is undefined; a tensor with a zero fan has no elements and"
                       " needs no values, so ask for the std or bound of a non-empty one")
    return fans


@register
@dataclass(frozen=True)
class VarianceScaling(ElementwiseInitializer):
    """Variance scaling (Keras/JAX): ``Var(w) = scale / n``, ``n`` = fan_in, fan_out or fan_avg.

    Args:
        scale: Positive scaling factor (the square of a gain).
        mode: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``.
        distribution: ``"truncated_normal"`` (Keras's and JAX's name: the std-corrected
            truncated normal, the same values as
            ``TruncatedNormalStd(stddev=sqrt(scale / n))``, not torch's ``trunc_normal``),
            ``"normal"`` or ``"uniform"``.
    """

    scale: float = 1.0
    mode: FanMode = "fan_in"
    distribution: VarianceDistribution = "truncated_normal"
    name = "variance_scaling"
    formula = 'Var(w) = scale / fan_mode (uniform, normal or std-corrected truncated normal)'
    uses_fans = True
    min_ndim = 2

    def __post_init__(self) -> None:
        check_finite("variance_scaling", scale=self.scale)
        if self.scale <= 0:
            raise InitializerError(
                f"variance_scaling: scale must be > 0, got {short_repr(self.scale)}",
                field=("scale",))
        _check_mode("variance_scaling", self.mode)
        with at_field("distribution"):
            variance_distribution(1.0, self.distribution)

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        n = _fans(fans, self.name, self.mode).get(self.mode)
        return variance_distribution(math.sqrt(self.scale / n), self.distribution)


@register
@dataclass(frozen=True)
class XavierUniform(GainMixin, ElementwiseInitializer):
    """Xavier/Glorot uniform (Glorot & Bengio, AISTATS 2010).

    ``w ~ U(-b, b)``, ``b = gain * sqrt(6 / (fan_in + fan_out))``; ``std = b / sqrt(3)``.

    Args:
        gain: Multiplier, e.g. ``calculate_gain("tanh")``.
    """

    name = "xavier_uniform"
    formula = 'w ~ U(-b, b), b = gain * sqrt(6 / (fan_in + fan_out))'
    aliases = ("glorot_uniform",)
    uses_fans = True
    min_ndim = 2

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        f = _fans(fans, self.name, "fan_avg")
        b = self.gain * math.sqrt(6.0 / (f.fan_in + f.fan_out))
        return UniformDist(-b, b)


@register
@dataclass(frozen=True)
class XavierNormal(GainMixin, ElementwiseInitializer):
    """Xavier/Glorot normal (Glorot & Bengio, AISTATS 2010).

    ``w ~ N(0, std^2)``, ``std = gain * sqrt(2 / (fan_in + fan_out))``.

    Args:
        gain: Multiplier, e.g. ``calculate_gain("tanh")``.
    """

    name = "xavier_normal"
    formula = 'w ~ N(0, std^2), std = gain * sqrt(2 / (fan_in + fan_out))'
    aliases = ("glorot_normal",)
    uses_fans = True
    min_ndim = 2

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        f = _fans(fans, self.name, "fan_avg")
        return NormalDist(0.0, self.gain * math.sqrt(2.0 / (f.fan_in + f.fan_out)))


@dataclass(frozen=True)
class _Kaiming(ElementwiseInitializer):
    negative_slope: float = 0.0
    mode: FanMode = "fan_in"
    nonlinearity: Nonlinearity = "leaky_relu"
    uses_fans = True
    min_ndim = 2

    def __post_init__(self) -> None:
        check_finite(self.name, negative_slope=self.negative_slope)
        _check_mode(self.name, self.mode, ("fan_in", "fan_out"))
        calculate_gain(self.nonlinearity, self.negative_slope)  # validates both

    @property
    def gain(self) -> float:
        """``calculate_gain(nonlinearity, negative_slope)``: a number, as ``Xavier.gain`` and
        ``Orthogonal.gain`` are (calling it, its former spelling, still works and warns)."""
        return _CallableGain(calculate_gain(self.nonlinearity, self.negative_slope))

    def _std(self, fans: Fans | None) -> float:
        return self.gain / math.sqrt(_fans(fans, self.name, self.mode).get(self.mode))


class _CallableGain(float):
    """A gain that can still be called, as ``_Kaiming.gain()`` was a method."""

    def __call__(self) -> float:
        return renamed("KaimingNormal/KaimingUniform", "gain()", "gain", float(self))


@register
@dataclass(frozen=True)
class KaimingUniform(_Kaiming):
    """Kaiming/He uniform (He et al., "Delving Deep into Rectifiers", ICCV 2015).

    ``w ~ U(-b, b)``, ``b = gain * sqrt(3 / fan_mode)``, ``gain = calculate_gain(nonlinearity,
    negative_slope)``. The defaults (``leaky_relu`` with slope 0) give ``gain = sqrt(2)``, as
    in torch.

    Args:
        negative_slope: Slope of the leaky ReLU's negative part (torch's ``a``).
        mode: ``"fan_in"`` preserves forward variance, ``"fan_out"`` backward variance.
        nonlinearity: Name for :func:`torchinit.calculate_gain`.
    """

    name = "kaiming_uniform"
    formula = 'w ~ U(-b, b), b = gain(nonlinearity) * sqrt(3 / fan_mode)'
    aliases = ("he_uniform",)

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        b = math.sqrt(3.0) * self._std(fans)
        return UniformDist(-b, b)


@register
@dataclass(frozen=True)
class KaimingNormal(_Kaiming):
    """Kaiming/He normal (He et al., "Delving Deep into Rectifiers", ICCV 2015).

    ``w ~ N(0, std^2)``, ``std = gain / sqrt(fan_mode)``.

    Args:
        negative_slope: Slope of the leaky ReLU's negative part (torch's ``a``).
        mode: ``"fan_in"`` or ``"fan_out"``.
        nonlinearity: Name for :func:`torchinit.calculate_gain`.
    """

    name = "kaiming_normal"
    formula = 'w ~ N(0, std^2), std = gain(nonlinearity) / sqrt(fan_mode)'
    aliases = ("he_normal",)

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        return NormalDist(0.0, self._std(fans))


@register
@dataclass(frozen=True)
class LecunUniform(ElementwiseInitializer):
    """LeCun uniform (LeCun et al., "Efficient BackProp", 1998).

    ``w ~ U(-b, b)``, ``b = sqrt(3 / fan_in)``, so ``Var(w) = 1 / fan_in``.
    """

    name = "lecun_uniform"
    formula = 'w ~ U(-b, b), b = sqrt(3 / fan_in)'
    uses_fans = True
    min_ndim = 2

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        b = math.sqrt(3.0 / _fans(fans, self.name, "fan_in").fan_in)
        return UniformDist(-b, b)


@register
@dataclass(frozen=True)
class LecunNormal(ElementwiseInitializer):
    """LeCun normal (LeCun et al. 1998; the SELU initialization of Klambauer et al. 2017).

    ``w ~ N(0, 1 / fan_in)``. Keras and Flax's ``lecun_normal`` draw a std-corrected truncated
    normal instead: ``VarianceScaling(1.0, "fan_in", "truncated_normal")``.
    """

    name = "lecun_normal"
    formula = 'w ~ N(0, 1 / fan_in)'
    uses_fans = True
    min_ndim = 2

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        return NormalDist(0.0, 1.0 / math.sqrt(_fans(fans, self.name, "fan_in").fan_in))


@register
@dataclass(frozen=True)
class GeneralRule(ElementwiseInitializer):
    """The widely taught "general rule": ``w ~ U(-1/sqrt(n), 1/sqrt(n))`` with ``n = fan_in``.

    ``std = 1 / sqrt(3 n)``. It is also what torch's default ``reset_parameters`` gives Linear
    and Conv weights (``kaiming_uniform_(a=sqrt(5))``) and their biases (bound from the
    weight's fan_in), so it applies to biases too when the layer's fans are supplied.
    """

    name = "general_rule"
    formula = 'w ~ U(-1/sqrt(fan_in), 1/sqrt(fan_in))'
    aliases = ("uniform_fan_in",)
    uses_fans = True
    min_ndim = 0

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        b = 1.0 / math.sqrt(_fans(fans, self.name, "fan_in").fan_in)
        return UniformDist(-b, b)
