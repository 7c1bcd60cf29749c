"""Recommended gains for nonlinearities (``calculate_gain``).

A gain ``g`` multiplies the standard deviation of a variance-preserving scheme so that a layer
followed by the nonlinearity keeps the second moment of its input.

For the nonlinearities of ``torch.nn.init.calculate_gain`` the values are torch's, exactly:

================= ==================================
nonlinearity      gain
================= ==================================
linear, conv*,    1
conv_transpose*,
sigmoid
tanh              5/3
relu              sqrt(2)
leaky_relu        sqrt(2 / (1 + negative_slope^2)), slope default 0.01
selu              3/4
================= ==================================

SELU: 3/4 is torch's choice, made so that ``kaiming_*(nonlinearity="selu")`` lands between the
self-normalizing requirement (gain 1, Klambauer et al. 2017, which uses LeCun normal) and a
stable-looking gradient scale; for a truly self-normalizing network use ``lecun_normal``.

For the other common activations (``gelu``, ``silu``/``swish``, ``elu``, ``softplus``,
``mish``, ``hardswish``) torchinit applies the second-moment rule that gives ReLU its sqrt(2):
``g = 1 / sqrt(E[f(z)^2])`` for ``z ~ N(0, 1)``, evaluated by numerical quadrature.
"""

from __future__ import annotations

import functools
import math
from collections.abc import Callable
from typing import Literal, get_args

from .errors import InitializerError, UnknownNameError, short_repr, suggest

__all__ = ["calculate_gain", "GAIN_NAMES", "Nonlinearity"]

_LARGEST_SLOPE = 1e154
"""Leaky-ReLU slopes must stay below this, so that ``slope**2`` fits float64."""

_LINEAR = (
    "linear", "conv1d", "conv2d", "conv3d",
    "conv_transpose1d", "conv_transpose2d", "conv_transpose3d", "sigmoid",
)
Nonlinearity = Literal[
    "linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
    "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu", "gelu", "silu",
    "swish", "elu", "softplus", "mish", "hardswish"]
"""The names :func:`calculate_gain` knows (``GAIN_NAMES``)."""


def _softplus(x: float) -> float:
    return max(x, 0.0) + math.log1p(math.exp(-abs(x)))


_SECOND_MOMENT: dict[str, Callable[[float], float]] = {
    "gelu": lambda x: 0.5 * x * (1.0 + math.erf(x / math.sqrt(2.0))),
    "silu": lambda x: x / (1.0 + math.exp(-x)),
    "swish": lambda x: x / (1.0 + math.exp(-x)),
    "elu": lambda x: x if x > 0 else math.expm1(x),
    "softplus": _softplus,
    "mish": lambda x: x * math.tanh(_softplus(x)),
    "hardswish": lambda x: x * min(max(x + 3.0, 0.0), 6.0) / 6.0,
}

GAIN_NAMES: tuple[Nonlinearity, ...] = get_args(Nonlinearity)
assert set(GAIN_NAMES) == {*_LINEAR, "tanh", "relu", "leaky_relu", "selu", *_SECOND_MOMENT}


@functools.lru_cache(maxsize=None)
def _second_moment_gain(name: str) -> float:
    f = _SECOND_MOMENT[name]
    # Simpson's rule on [-12, 12]; the Gaussian weight is below 1e-31 outside.
    n, lo, hi = 24000, -12.0, 12.0
    h = (hi - lo) / n
    total = 0.0
    for i in range(n + 1):
        x = lo + i * h
        w = 1 if i in (0, n) else (4 if i % 2 else 2)
        total += w * f(x) ** 2 * math.exp(-0.5 * x * x)
    moment = total * h / 3.0 / math.sqrt(2.0 * math.pi)
    return 1.0 / math.sqrt(moment)


def calculate_gain(nonlinearity: Nonlinearity, param: float | None = None) -> float:
    """Return the recommended gain for ``nonlinearity``.

    Args:
        nonlinearity: The name of the nonlinear function (see the module docstring for the list).
        param: The negative slope for ``leaky_relu`` (default 0.01, as in torch).

    Returns:
        The gain, a positive float.

    Raises:
        UnknownNameError: for names not in ``GAIN_NAMES`` (close matches suggested).
        InitializerError: for a ``leaky_relu`` slope that is not a number.
    """
    if not isinstance(nonlinearity, str):
        raise InitializerError(f"nonlinearity must be a string, got {short_repr(nonlinearity)}",
                               field=("nonlinearity",))
    if nonlinearity in _LINEAR:
        return 1.0
    if nonlinearity == "tanh":
        return 5.0 / 3
    if nonlinearity == "relu":
        return math.sqrt(2.0)
    if nonlinearity == "leaky_relu":
        if param is None:
            slope = 0.01
        elif isinstance(param, bool) or not isinstance(param, (int, float)):
            raise InitializerError(f"negative_slope {short_repr(param)} is not a valid number",
                                   field=("negative_slope",))
        else:
            slope = float(param) if abs(param) < _LARGEST_SLOPE else math.inf
        if not math.isfinite(slope):
            raise InitializerError(f"negative_slope {short_repr(param)} is not a finite number"
                                   f" below {_LARGEST_SLOPE:g} (its square must fit float64)",
                                   field=("negative_slope",))
        return math.sqrt(2.0 / (1 + slope**2))
    if nonlinearity == "selu":
        return 3.0 / 4
    if nonlinearity in _SECOND_MOMENT:
        return _second_moment_gain(nonlinearity)
    raise UnknownNameError(
        f"unsupported nonlinearity {short_repr(nonlinearity)}; known: {', '.join(GAIN_NAMES)}."
        + suggest(nonlinearity, GAIN_NAMES), field=("nonlinearity",)
    )
