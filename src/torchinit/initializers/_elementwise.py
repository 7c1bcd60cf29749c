"""Elementwise initializers with fixed parameters: constants, uniform, normal, truncated normal."""

from __future__ import annotations

import math
from dataclasses import dataclass

from .._fans import Fans
from ..errors import InitializerError, short_repr
from .._streams.distributions import (
    ConstantDist,
    Distribution,
    NormalDist,
    TruncNormalDist,
    UniformDist,
    normal_cdf,
    truncated_std_factor,
)
from ._base import (
    ElementwiseInitializer,
    check_non_negative,
    check_distribution,
    check_finite,
    check_real,
)
from ._registry import deprecate_alias, register

__all__ = ["Zeros", "Ones", "Constant", "Uniform", "Normal", "TruncatedNormal",
           "TruncatedNormalStd"]


@register
@dataclass(frozen=True)
class Zeros(ElementwiseInitializer):
    """All zeros: ``w = 0``."""

    name = "zeros"
    formula = 'w = 0'
    aliases = ("zero",)

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        return ConstantDist(0.0)


@register
@dataclass(frozen=True)
class Ones(ElementwiseInitializer):
    """All ones: ``w = 1``."""

    name = "ones"
    formula = 'w = 1'
    aliases = ("one",)

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        return ConstantDist(1.0)


@register
@dataclass(frozen=True)
class Constant(ElementwiseInitializer):
    """Every element equals ``value``: ``w = value``.

    Args:
        value: A real number; +-inf is allowed (masks), NaN is not.
    """

    value: float = 0.0
    name = "constant"
    formula = 'w = value'
    aliases = ("const", "full")

    def __post_init__(self) -> None:
        check_real("constant", allow_inf=True, value=self.value)

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        return ConstantDist(float(self.value))


@register
@dataclass(frozen=True)
class Uniform(ElementwiseInitializer):
    """Uniform on ``[low, high)``: mean ``(low + high) / 2``, std ``(high - low) / sqrt(12)``.

    Args:
        low: Lower bound (torch's ``a``).
        high: Upper bound (torch's ``b``); must exceed ``low``.
    """

    low: float = 0.0
    high: float = 1.0
    name = "uniform"
    formula = 'w ~ U(low, high)'
    aliases = ("random_uniform",)

    def __post_init__(self) -> None:
        check_finite("uniform", low=self.low, high=self.high)
        if not self.low < self.high:
            raise InitializerError(
                f"uniform needs low < high, got low={short_repr(self.low)},"
                f" high={short_repr(self.high)};"
                " for a constant use constant(value)", field=("high",)
            )
        if not math.isfinite(self.high - self.low):
            raise InitializerError(
                f"uniform: high - low overflows float64 for low={short_repr(self.low)},"
                f" high={short_repr(self.high)}; the width of the interval must be below 1.8e308",
                field=("high",))
        check_distribution("uniform", self.distribution_for())

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        return UniformDist(float(self.low), float(self.high))


@register
@dataclass(frozen=True)
class Normal(ElementwiseInitializer):
    """Normal ``N(mean, stddev^2)``.

    Args:
        mean: The mean.
        stddev: The standard deviation, >= 0 (DCGAN, Radford et al. 2016, uses 0.02; GPT-2 and BERT
            use 0.02 as well).
    """

    mean: float = 0.0
    stddev: float = 1.0
    name = "normal"
    formula = 'w ~ N(mean, stddev^2)'
    aliases = ("random_normal", "gaussian")

    def __post_init__(self) -> None:
        check_finite("normal", mean=self.mean)
        check_non_negative("normal", stddev=self.stddev)
        check_distribution("normal", self.distribution_for())

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        return NormalDist(float(self.mean), float(self.stddev))


def _trunc_dist(mean: float, scale: float, lower: float, upper: float, owner: str) -> Distribution:
    if scale == 0:
        return ConstantDist(min(max(mean, mean + lower * scale), mean + upper * scale))
    a, b = (lower, upper) if lower + upper <= 0 else (-upper, -lower)
    if not normal_cdf(b) - normal_cdf(a) > 0:
        raise InitializerError(
            f"{owner}: the interval [{mean + lower * scale!r}, {mean + upper * scale!r}] holds no"
            f" probability mass of N({mean!r}, {scale!r}^2); move the bounds towards the mean"
        )
    return TruncNormalDist(mean, scale, lower, upper)


@register
@dataclass(frozen=True)
class TruncatedNormal(ElementwiseInitializer):
    """Truncated normal with torch semantics (``torch.nn.init.trunc_normal_``).

    ``N(mean, stddev^2)`` restricted to the absolute interval ``[a, b]``. ``stddev`` is the
    standard deviation *before* truncation, so the result has a smaller std: for the defaults
    (``stddev=1``, ``a=-2``, ``b=2``) it is 0.8796. ``Initializer.std()`` reports the exact
    post-truncation value.

    Keras's ``TruncatedNormal(mean=m, stddev=s)`` and JAX's ``truncated_normal(stddev=s)``
    have these semantics too (no std correction; values beyond two std are re-drawn): they
    are ``TruncatedNormal(m, s, a=m - 2 s, b=m + 2 s)``. The std-corrected variant that
    Keras's and JAX's ``VarianceScaling(distribution="truncated_normal")`` draw is
    :class:`TruncatedNormalStd`.

    Args:
        mean: Mean of the untruncated normal.
        stddev: Std of the untruncated normal, >= 0 (torch's ``std``).
        a: Lower absolute bound.
        b: Upper absolute bound, > a.
    """

    mean: float = 0.0
    stddev: float = 1.0
    a: float = -2.0
    b: float = 2.0
    name = "trunc_normal"
    formula = 'w ~ N(mean, stddev^2) truncated to [a, b] (stddev before truncation)'
    aliases = ("truncated_normal_torch",)

    def __post_init__(self) -> None:
        check_finite("trunc_normal", mean=self.mean, a=self.a, b=self.b)
        check_non_negative("trunc_normal", stddev=self.stddev)
        if not self.a < self.b:
            raise InitializerError(f"trunc_normal needs a < b, got a={short_repr(self.a)},"
                                   f" b={short_repr(self.b)}", field=("b",))
        check_distribution("trunc_normal", self.distribution_for())

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        s = float(self.stddev)
        if s == 0:
            return ConstantDist(min(max(float(self.mean), self.a), self.b))
        return _trunc_dist(float(self.mean), s, (self.a - self.mean) / s,
                           (self.b - self.mean) / s, "trunc_normal")


@register
@dataclass(frozen=True)
class TruncatedNormalStd(ElementwiseInitializer):
    """Truncated normal with Keras/JAX variance-scaling semantics: bounds in std units, std exact.

    Values are ``mean + s z`` with ``z ~ N(0, 1)`` truncated to ``[lower, upper]`` and
    ``s = stddev / sd(z)``, so the *result* has standard deviation ``stddev``. With the default
    bounds ``[-2, 2]`` the correction is ``sd(z) = 0.87962566103423978``, the constant Keras and
    Flax use in ``VarianceScaling(distribution="truncated_normal")``.

    Args:
        mean: The mean for symmetric bounds.
        stddev: The standard deviation of the result, >= 0.
        lower: Lower bound in units of ``s``.
        upper: Upper bound in units of ``s``, > lower.
    """

    mean: float = 0.0
    stddev: float = 1.0
    lower: float = -2.0
    upper: float = 2.0
    name = "truncated_normal_std"
    formula = 'w = mean + s z, z ~ N(0,1) truncated to [lower, upper], s = stddev / sd(z)'

    def __post_init__(self) -> None:
        check_finite("truncated_normal_std", mean=self.mean, lower=self.lower, upper=self.upper)
        check_non_negative("truncated_normal_std", stddev=self.stddev)
        if not self.lower < self.upper:
            raise InitializerError(
                f"truncated_normal_std needs lower < upper, got {short_repr(self.lower)},"
                f" {short_repr(self.upper)}", field=("upper",)
            )
        check_distribution("truncated_normal_std", self.distribution_for())

    def distribution_for(self, fans: Fans | None = None) -> Distribution:
        target = float(self.stddev)
        if target == 0:
            return ConstantDist(float(self.mean))
        lower, upper = float(self.lower), float(self.upper)
        scale = target / truncated_std_factor(lower, upper)
        return _trunc_dist(float(self.mean), scale, lower, upper, "truncated_normal_std")


deprecate_alias(
    "truncated_normal_keras", TruncatedNormalStd,
    "Keras's TruncatedNormal(stddev=s) does not correct the std (it is"
    " trunc_normal(stddev=s, a=-2s, b=2s)); the std-corrected variant of Keras's"
    " VarianceScaling is truncated_normal_std, which this name resolves to")
