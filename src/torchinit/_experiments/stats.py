"""Means and Student-t confidence intervals over seeds, without scipy.

The two-sided ``t`` quantile is found by bisection on the exact distribution function of
Student's t with an integer number of degrees of freedom (Abramowitz & Stegun 26.7.3-4): with
``theta = atan(t / sqrt(nu))``, ``A(t | nu) = P(|T| <= t)`` is

* ``nu`` odd: ``(2 / pi) (theta + sin(theta) (cos(theta) + 2/3 cos^3(theta) + ...
  + (2 4 ... (nu-3)) / (1 3 ... (nu-2)) cos^(nu-2)(theta)))`` (only ``2 theta / pi`` for 1);
* ``nu`` even: ``sin(theta) (1 + 1/2 cos^2(theta) + (1 3) / (2 4) cos^4(theta) + ...
  + (1 3 ... (nu-3)) / (2 4 ... (nu-2)) cos^(nu-2)(theta))``.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass

from ..errors import ConfigError

__all__ = ["t_two_sided_cdf", "t_quantile", "Interval", "mean_interval", "final_loss",
           "FINAL_SHARE"]

FINAL_SHARE = 0.1
"""The share of a run's last steps whose mean training loss is its final loss."""


def t_two_sided_cdf(t: float, dof: int) -> float:
    """``P(|T| <= t)`` for Student's t with ``dof`` (a positive int) degrees of freedom."""
    theta = math.atan(abs(t) / math.sqrt(dof))
    cos2, sin = math.cos(theta) ** 2, math.sin(theta)
    if dof % 2:
        if dof == 1:
            return 2.0 * theta / math.pi
        term, total = math.cos(theta), math.cos(theta)
        for k in range(3, dof - 1, 2):  # term_k = term_{k-2} * (k - 1) / k * cos^2
            term *= (k - 1) / k * cos2
            total += term
        return 2.0 / math.pi * (theta + sin * total)
    term, total = 1.0, 1.0
    for k in range(2, dof - 1, 2):  # term_k = term_{k-2} * (k - 1) / k * cos^2
        term *= (k - 1) / k * cos2
        total += term
    return sin * total


def t_quantile(confidence: float, dof: int) -> float:
    """The ``t`` with ``P(|T| <= t) = confidence`` (e.g. 12.706 for 0.95 and 1 dof).

    Raises:
        ConfigError: for a confidence outside (0, 1) or ``dof < 1``.
    """
    if not 0.0 < confidence < 1.0:
        raise ConfigError(f"confidence must be in (0, 1), got {confidence!r}")
    if isinstance(dof, bool) or not isinstance(dof, int) or dof < 1:
        raise ConfigError(f"degrees of freedom must be an int >= 1, got {dof!r}")
    low, high = 0.0, 1.0
    while t_two_sided_cdf(high, dof) < confidence:
        high *= 2.0
    for _ in range(200):
        mid = 0.5 * (low + high)
        if t_two_sided_cdf(mid, dof) < confidence:
            low = mid
        else:
            high = mid
        if high - low <= 1e-13 * high:
            break
    return 0.5 * (low + high)


@dataclass(frozen=True)
class Interval:
    """A mean and its confidence interval ``mean +- half_width`` (``half_width`` is ``None``
    for a single value or when any value is not finite)."""

    mean: float
    half_width: float | None
    n: int
    confidence: float

    @property
    def low(self) -> float | None:
        return None if self.half_width is None else self.mean - self.half_width

    @property
    def high(self) -> float | None:
        return None if self.half_width is None else self.mean + self.half_width


def mean_interval(values: Sequence[float], confidence: float = 0.95) -> Interval:
    """Mean and Student-t interval: ``mean +- t_{n-1} s / sqrt(n)`` with the sample std ``s``.

    Raises:
        ConfigError: for no values.
    """
    n = len(values)
    if n == 0:
        raise ConfigError("a mean needs at least one value")
    mean = math.fsum(values) / n
    if n == 1 or not all(math.isfinite(v) for v in values):
        return Interval(mean, None, n, confidence)
    var = math.fsum((v - mean) ** 2 for v in values) / (n - 1)
    return Interval(mean, t_quantile(confidence, n - 1) * math.sqrt(var / n), n, confidence)


def final_loss(curve: Sequence[float], share: float = FINAL_SHARE) -> float:
    """Mean of the last ``share`` of ``curve`` (at least one value): a run's final training
    loss, less noisy than its last batch's. Not finite if one of those values is; NaN for an
    empty curve.

    Raises:
        ConfigError: for a share outside (0, 1].
    """
    if not 0.0 < share <= 1.0:
        raise ConfigError(f"the share of the last steps must be in (0, 1], got {share!r}")
    tail = curve[-max(1, round(share * len(curve))):] if len(curve) else []
    return math.fsum(tail) / len(tail) if len(tail) else math.nan
