"""Elementwise distributions: what one element of an elementwise initializer is drawn from.

Every elementwise initializer reduces, for given fans, to one of these four descriptions. They
carry the exact moments used by ``Initializer.std``/``bound`` and the manifest, and the samplers
turn them into values from a counter-based stream.
"""

from __future__ import annotations

import abc
import math
from dataclasses import dataclass
from typing import NamedTuple

import torch

__all__ = [
    "Distribution",
    "ConstantDist",
    "UniformDist",
    "NormalDist",
    "TruncNormalDist",
    "normal_cdf",
    "normal_pdf",
    "TruncParams",
    "trunc_params",
]


def normal_cdf(x: float) -> float:
    """Standard normal CDF, Phi(x) = erfc(-x / sqrt(2)) / 2 (accurate in both tails)."""
    return 0.5 * math.erfc(-x / math.sqrt(2.0))


def normal_pdf(x: float) -> float:
    """Standard normal density, phi(x) = exp(-x^2 / 2) / sqrt(2 pi) (0 at +-inf)."""
    if math.isinf(x):
        return 0.0
    return math.exp(-0.5 * x * x) / math.sqrt(2.0 * math.pi)


class Distribution(abc.ABC):
    """Base class: a distribution with exact mean, std and largest absolute value."""

    @abc.abstractmethod
    def mean(self) -> float:
        """The mean."""

    @abc.abstractmethod
    def std(self) -> float:
        """The standard deviation."""

    @abc.abstractmethod
    def bound(self) -> float:
        """The largest absolute value a sample can take (``inf`` if unbounded)."""


@dataclass(frozen=True)
class ConstantDist(Distribution):
    """Every element equals ``value``."""

    value: float

    def mean(self) -> float:
        return self.value

    def std(self) -> float:
        return 0.0

    def bound(self) -> float:
        return abs(self.value)


@dataclass(frozen=True)
class UniformDist(Distribution):
    """U(low, high): mean (low + high) / 2, std (high - low) / sqrt(12)."""

    low: float
    high: float

    def mean(self) -> float:
        return 0.5 * (self.low + self.high)

    def std(self) -> float:
        return (self.high - self.low) / math.sqrt(12.0)

    def bound(self) -> float:
        return max(abs(self.low), abs(self.high))


@dataclass(frozen=True)
class NormalDist(Distribution):
    """N(mean, std^2)."""

    loc: float
    scale: float

    def mean(self) -> float:
        return self.loc

    def std(self) -> float:
        return self.scale

    def bound(self) -> float:
        return self.loc if self.scale == 0 else math.inf


@dataclass(frozen=True)
class TruncNormalDist(Distribution):
    """N(loc, scale^2) restricted to [loc + lower * scale, loc + upper * scale].

    ``lower`` and ``upper`` are in units of the pre-truncation ``scale``. With
    ``Z = Phi(upper) - Phi(lower)`` the truncated standard normal has mean
    ``m = (phi(lower) - phi(upper)) / Z`` and variance
    ``1 + (lower phi(lower) - upper phi(upper)) / Z - m^2`` (Johnson, Kotz & Balakrishnan,
    Continuous Univariate Distributions, vol. 1, 1994, sec. 10.1).
    """

    loc: float
    scale: float
    lower: float
    upper: float

    def _standard_moments(self) -> tuple[float, float]:
        a, b = self.lower, self.upper
        if a + b > 0:  # compute on the side with the smaller tail mass, then mirror
            m, v = TruncNormalDist(0.0, 1.0, -b, -a)._standard_moments()
            return -m, v
        z = normal_cdf(b) - normal_cdf(a)
        pa, pb = normal_pdf(a), normal_pdf(b)
        m = (pa - pb) / z
        ta = a * pa if math.isfinite(a) else 0.0
        tb = b * pb if math.isfinite(b) else 0.0
        return m, 1.0 + (ta - tb) / z - m * m

    def mean(self) -> float:
        return self.loc + self.scale * self._standard_moments()[0]

    def std(self) -> float:
        return self.scale * math.sqrt(max(self._standard_moments()[1], 0.0))

    def bound(self) -> float:
        return max(abs(self.loc + self.lower * self.scale), abs(self.loc + self.upper * self.scale))


def truncated_std_factor(lower: float, upper: float) -> float:
    """Std of N(0, 1) truncated to [lower, upper]; 0.87962566103423978 for [-2, 2]."""
    return TruncNormalDist(0.0, 1.0, lower, upper).std()


class TruncParams(NamedTuple):
    """What every backend evaluates for a truncated normal, in this order:
    ``z = clamp(ndtri(pa + mass * u), a, b)``, ``v = loc + signed_scale * z``, then ``v`` clamped
    to ``[low_out, high_out]``, the widest interval of target-dtype values inside the bounds."""

    signed_scale: float
    pa: float
    mass: float
    a: float
    b: float
    low_out: float
    high_out: float


def trunc_params(dist: TruncNormalDist, dtype: torch.dtype) -> TruncParams:
    """The sampler's constants for ``dist``, rounded into bounds for values of ``dtype``.

    The inverse CDF is evaluated on the side with the smaller tail mass (``a + b <= 0``) and
    mirrored, which keeps the far tail accurate. The final clamp makes the rounded value stay
    inside the bounds: 0.04 is 0.0400390625 in bfloat16, so a bfloat16 sample bounded by 0.04
    is at most 0.039794921875.
    """
    a, b, sign = dist.lower, dist.upper, 1.0
    if a + b > 0:
        a, b, sign = -b, -a, -1.0
    pa, pb = normal_cdf(a), normal_cdf(b)
    low = dist.loc + dist.lower * dist.scale
    high = dist.loc + dist.upper * dist.scale
    return TruncParams(sign * dist.scale, pa, pb - pa, a, b, _representable(low, dtype, up=True),
                       _representable(high, dtype, up=False))


def _representable(x: float, dtype: torch.dtype, up: bool) -> float:
    """The value of ``dtype`` nearest to ``x`` on the inside: at least ``x`` (``up``) or at
    most ``x``; infinite bounds stay infinite."""
    if not math.isfinite(x):
        return x
    t = torch.tensor(x, dtype=torch.float64).to(dtype)
    if (float(t) < x) if up else (float(t) > x):
        t = torch.nextafter(t, torch.tensor(math.inf if up else -math.inf, dtype=dtype))
    return float(t)
