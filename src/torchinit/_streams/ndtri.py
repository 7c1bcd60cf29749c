"""The inverse normal CDF, in float64 arithmetic that every backend and device reproduces.

``ndtri(p)`` is Wichura's algorithm AS 241 (PPND16; "The Percentage Points of the Normal
Distribution", Applied Statistics 37(3):477-484, 1988), accurate to about 1 part in 10^16: a
rational function of degree 7/7 in ``r = 0.180625 - (p - 1/2)^2`` for ``|p - 1/2| <= 0.425``,
and of ``r = sqrt(-log(min(p, 1 - p)))`` in the tails.

The tails need a logarithm and a square root. Library implementations of both differ in their
last bit between CPUs, vector units and GPUs (torch's float64 ``sqrt`` on AVX-512 CPUs is not
correctly rounded), so :func:`log` and :func:`sqrt` here are built from operations IEEE 754
rounds exactly (frexp, +, -, *, /, scaling by powers of two):

* ``log(x) = e ln 2 + 2 atanh(s)`` with ``x = m 2^e``, ``m in [sqrt(1/2), sqrt(2))``,
  ``s = (m - 1) / (m + 1)`` and the odd series of ``atanh`` to 12 terms (``|s| <= 0.1716``,
  truncation below 1e-18);
* ``sqrt(x) = 2^(e/2) y`` with ``x = m 2^e``, ``e`` even, ``m in [1/2, 2)``, and ``y`` five
  Newton steps ``y <- (y + m / y) / 2`` from ``y = (m + 1) / 2`` (relative error 6%, then
  2e-3, 2e-6, 1e-12, 1e-24).

Evaluated in the same order, without fused multiply-adds, the results are bit-identical on
every backend.
"""

from __future__ import annotations

import math

import torch

__all__ = ["ndtri", "log", "sqrt", "LOG_SERIES", "AS241", "NEWTON_STEPS"]

LN2_HI = 6.93147180369123816490e-01  # ln 2 split so that e * LN2_HI is exact for |e| < 2^11
LN2_LO = 1.90821492927058770002e-10
SQRT_HALF = math.sqrt(0.5)
NEWTON_STEPS = 5
# 1 / (2k + 1), k = 0..11: the series 2 atanh(s) = 2 s sum_k s^(2k) / (2k + 1)
LOG_SERIES = tuple(1.0 / (2 * k + 1) for k in range(12))

# AS 241 (PPND16) coefficients, Wichura (1988), Table 1 (lowest degree first).
AS241 = {
    "a": (3.3871328727963666080e0, 1.3314166789178437745e+2, 1.9715909503065514427e+3,
          1.3731693765509461125e+4, 4.5921953931549871457e+4, 6.7265770927008700853e+4,
          3.3430575583588128105e+4, 2.5090809287301226727e+3),
    "b": (1.0, 4.2313330701600911252e+1, 6.8718700749205790830e+2, 5.3941960214247511077e+3,
          2.1213794301586595867e+4, 3.9307895800092710610e+4, 2.8729085735721942674e+4,
          5.2264952788528545610e+3),
    "c": (1.42343711074968357734e0, 4.63033784615654529590e0, 5.76949722146069140550e0,
          3.64784832476320460504e0, 1.27045825245236838258e0, 2.41780725177450611770e-1,
          2.27238449892691845833e-2, 7.74545014278341407640e-4),
    "d": (1.0, 2.05319162663775882187e0, 1.67638483018380384940e0, 6.89767334985100004550e-1,
          1.48103976427480074590e-1, 1.51986665636164571966e-2, 5.47593808499534494600e-4,
          1.05075007164441684324e-9),
    "e": (6.65790464350110377720e0, 5.46378491116411436990e0, 1.78482653991729133580e0,
          2.96560571828504891230e-1, 2.65321895265761230930e-2, 1.24266094738807843860e-3,
          2.71155556874348757815e-5, 2.01033439929228813265e-7),
    "f": (1.0, 5.99832206555887937690e-1, 1.36929880922735805310e-1, 1.48753612908506148525e-2,
          7.86869131145613259100e-4, 1.84631831751005468180e-5, 1.42151175831644588870e-7,
          2.04426310338993978564e-15),
}
SPLIT1, SPLIT2, CONST1, CONST2 = 0.425, 5.0, 0.180625, 1.6


def _horner(coeffs: tuple[float, ...], x: torch.Tensor) -> torch.Tensor:
    acc = torch.full_like(x, coeffs[-1])
    for c in reversed(coeffs[:-1]):
        acc = acc * x + c
    return acc


def log(x: torch.Tensor) -> torch.Tensor:
    """Natural log of positive float64 ``x`` from exactly rounded operations (see module doc)."""
    m, e = torch.frexp(x)
    small = m < SQRT_HALF
    m = torch.where(small, m * 2.0, m)
    e = (e - small.to(e.dtype)).to(torch.float64)
    s = (m - 1.0) / (m + 1.0)
    series = _horner(LOG_SERIES, s * s)
    return e * LN2_HI + (2.0 * s * series + e * LN2_LO)


def sqrt(x: torch.Tensor) -> torch.Tensor:
    """Square root of positive float64 ``x`` from exactly rounded operations (module doc)."""
    m, e = torch.frexp(x)
    odd = e & 1
    m = torch.where(odd.bool(), m * 2.0, m)
    half = (e - odd) >> 1
    y = (m + 1.0) * 0.5
    for _ in range(NEWTON_STEPS):
        y = (y + m / y) * 0.5
    return y * ((half.to(torch.int64) + 1023) << 52).view(torch.float64)


def ndtri(p: torch.Tensor) -> torch.Tensor:
    """Inverse of the standard normal CDF for float64 ``p`` in (0, 1) (AS 241)."""
    q = p - 0.5
    r = CONST1 - q * q
    out = q * _horner(AS241["a"], r) / _horner(AS241["b"], r)
    tail = q.abs() > SPLIT1
    if bool(tail.any()):
        qt, pt = q[tail], p[tail]
        rt = sqrt(-log(torch.where(qt < 0, pt, 1.0 - pt)))
        near = rt <= SPLIT2
        mid = rt - CONST2
        far = rt - SPLIT2
        z = torch.where(near, _horner(AS241["c"], mid) / _horner(AS241["d"], mid),
                        _horner(AS241["e"], far) / _horner(AS241["f"], far))
        out[tail] = torch.where(qt < 0, -z, z)
    return out
