"""Fast CPU backend: the reference stream compiled with numba, parallel over index segments.

It computes exactly the operations of :mod:`torchinit.streams.reference` in the same order
(float64, IEEE rounding, no fused multiply-adds, the same AS 241 ``ndtri`` and series ``log``),
so its float32 and float64 results are bit-identical to the reference backend's, for any thread
count. What makes it fast: one pass per element instead of one tensor pass per operation, one
Philox block for every two elements, and all cores.
"""

from __future__ import annotations

import math
import os

import numba
import numpy as np
from numba import njit, prange

from .ndtri import (
    AS241,
    CONST1,
    CONST2,
    LN2_HI,
    LN2_LO,
    LOG_SERIES,
    NEWTON_STEPS,
    SPLIT1,
    SPLIT2,
    SQRT_HALF,
)
from .philox import M0, M1, ROUNDS, W0, W1

__all__ = ["fill_segments", "set_threads"]

# numba's OpenMP layer and torch's bundled OpenMP runtime abort the process at exit
# ("terminate called without an active exception"); numba's own work queue has no such clash.
if "NUMBA_THREADING_LAYER" not in os.environ:
    numba.config.THREADING_LAYER = "workqueue"

MASK = np.uint64(0xFFFFFFFF)
_A, _B, _C, _D, _E, _F = (np.array(AS241[k], dtype=np.float64) for k in "abcdef")
_LOG = np.array(LOG_SERIES, dtype=np.float64)
TWO_M53 = 2.0**-53
_FRACTION = np.uint64((1 << 52) - 1)
_HALF_EXPONENT = np.uint64(1022 << 52)
_SMALLEST_NORMAL = 2.2250738585072014e-308


@njit(inline="always")
def _horner(coeffs, x):
    acc = coeffs[-1]
    for k in range(coeffs.shape[0] - 2, -1, -1):
        acc = acc * x + coeffs[k]
    return acc


@njit(inline="always")
def _log(x):
    m, e = math.frexp(x)
    ef = float(e)
    if m < SQRT_HALF:
        m = m * 2.0
        ef = ef - 1.0
    s = (m - 1.0) / (m + 1.0)
    series = _horner(_LOG, s * s)
    return ef * LN2_HI + (2.0 * s * series + ef * LN2_LO)


@njit(inline="always")
def _sqrt(x):
    m, e = math.frexp(x)
    odd = e & 1
    if odd:
        m = m * 2.0
    y = (m + 1.0) * 0.5
    for _ in range(NEWTON_STEPS):
        y = (y + m / y) * 0.5
    return math.ldexp(y, (e - odd) >> 1)


@njit(inline="always")
def _ndtri(p):
    q = p - 0.5
    if abs(q) <= SPLIT1:
        return _central(p)
    rt = _sqrt(-_log(p if q < 0 else 1.0 - p))
    if rt <= SPLIT2:
        mid = rt - CONST2
        z = _horner(_C, mid) / _horner(_D, mid)
    else:
        far = rt - SPLIT2
        z = _horner(_E, far) / _horner(_F, far)
    return -z if q < 0 else z


@njit(inline="always")
def _philox(j, k0, k1):
    c0 = j & MASK
    c1 = j >> np.uint64(32)
    c2 = np.uint64(0)
    c3 = np.uint64(0)
    for _ in range(ROUNDS):
        p0 = c0 * np.uint64(M0)
        p1 = c2 * np.uint64(M1)
        c0 = (p1 >> np.uint64(32)) ^ c1 ^ k0
        c2 = (p0 >> np.uint64(32)) ^ c3 ^ k1
        c1 = p1 & MASK
        c3 = p0 & MASK
        k0 = (k0 + np.uint64(W0)) & MASK
        k1 = (k1 + np.uint64(W1)) & MASK
    return c0, c1, c2, c3


@njit(inline="always")
def _central(p):
    q = p - 0.5
    r = CONST1 - q * q
    return q * _horner(_A, r) / _horner(_B, r)


@njit(inline="always")
def _uniform53(hi, lo):
    """``((hi >> 5) 2^26 + (lo >> 6) + 1/2) 2^-53``, in exact steps that vectorize (int32 to
    double conversions; every intermediate is an integer below 2^53)."""
    a = float(np.int32(hi >> np.uint64(5)))
    b = float(np.int32(lo >> np.uint64(6)))
    return ((a * 67108864.0 + b) + 0.5) * TWO_M53


@njit(inline="always")
def _scalar_uniform(i, k0, k1):
    x0, x1, x2, x3 = _philox(i >> np.uint64(1), k0, k1)
    if i & np.uint64(1):
        return _uniform53(x2, x3)
    return _uniform53(x0, x1)


@njit(inline="always")
def _transform(kind, u, p):
    """The reference transform of one uniform."""
    if kind == 0:  # uniform: low + (high - low) * u
        return p[0] + p[1] * u
    if kind == 2:  # truncated normal: ndtri of pa + (pb - pa) u, clamped
        z = min(max(_ndtri(p[2] + p[3] * u), p[4]), p[5])
    else:  # normal: ndtri(u)
        z = _ndtri(u)
    return p[0] + p[1] * z


@njit(inline="always")
def _values(u, v, kind, p):
    """``v[k] = transform(u[k])`` in loops simple enough to vectorize: the central branch of
    AS 241 for every element, then the tails (|x - 1/2| > 0.425, about 15%) recomputed on a
    compacted copy, with the log's frexp done on the bits (exact for normal numbers; the rare
    subnormal or far-tail inputs take the scalar path)."""
    n = u.shape[0]
    if kind == 0:
        for k in range(n):
            v[k] = p[0] + p[1] * u[k]
        return
    if kind == 2:
        for k in range(n):
            u[k] = p[2] + p[3] * u[k]
    for k in range(n):
        z = _central(u[k])
        if kind == 2:
            z = min(max(z, p[4]), p[5])
        v[k] = p[0] + p[1] * z
    where = np.empty(n + 1, dtype=np.int64)
    m = 0
    for k in range(n):  # branch-free compaction: tails are unpredictable
        where[m] = k
        m += abs(u[k] - 0.5) > SPLIT1
    x = np.empty(m, dtype=np.float64)
    for j in range(m):
        uj = u[where[j]]
        x[j] = uj if uj - 0.5 < 0 else 1.0 - uj
    neg_log = _split_exponent_apply(x, m, 0)
    r = _split_exponent_apply(neg_log, m, 1)
    for j in range(m):
        mid = r[j] - CONST2
        x[j] = _horner(_C, mid) / _horner(_D, mid)
    for j in range(m):
        k = where[j]
        if r[j] > SPLIT2 or x[j] != x[j] or u[k] < _SMALLEST_NORMAL:
            z = _ndtri(u[k])
        else:
            z = -x[j] if u[k] - 0.5 < 0 else x[j]
        if kind == 2:
            z = min(max(z, p[4]), p[5])
        v[k] = p[0] + p[1] * z


@njit(inline="always")
def _split_exponent_apply(x, m, op):
    """``-log(x[j])`` (op 0) or ``sqrt(x[j])`` (op 1) for ``j < m``, as :func:`_log` and
    :func:`_sqrt` compute them, with frexp and ldexp done on the bits of arrays: libm's frexp
    and ldexp do not run in parallel, and these loops vectorize (positive normal inputs)."""
    bits = x[:m].view(np.uint64)
    mant_bits = np.empty(m, dtype=np.uint64)
    expo = np.empty(m, dtype=np.int64)
    for j in range(m):
        mant_bits[j] = (bits[j] & _FRACTION) | _HALF_EXPONENT
        expo[j] = np.int64((bits[j] >> np.uint64(52)) & np.uint64(0x7FF)) - 1022
    mant = mant_bits.view(np.float64)
    out = np.empty(m, dtype=np.float64)
    if op == 0:
        for j in range(m):
            mj, ej = mant[j], float(expo[j])
            if mj < SQRT_HALF:
                mj = mj * 2.0
                ej = ej - 1.0
            sj = (mj - 1.0) / (mj + 1.0)
            out[j] = -(ej * LN2_HI + (2.0 * sj * _horner(_LOG, sj * sj) + ej * LN2_LO))
        return out
    scale_bits = np.empty(m, dtype=np.uint64)
    for j in range(m):
        odd = expo[j] & 1
        mj = mant[j] * 2.0 if odd else mant[j]
        y = (mj + 1.0) * 0.5
        for _ in range(NEWTON_STEPS):
            y = (y + mj / y) * 0.5
        out[j] = y
        scale_bits[j] = np.uint64(((expo[j] - odd) >> 1) + 1023) << np.uint64(52)
    scale = scale_bits.view(np.float64)
    for j in range(m):
        out[j] = out[j] * scale[j]
    return out


@njit(inline="always")
def _fill_pairs(out, base, j0, npairs, k0, k1, kind, p):
    """Values of flat indices ``2 j0 ... 2 (j0 + npairs) - 1`` into ``out[base:]``: even and
    odd elements are generated into separate buffers (so the Philox loop vectorizes) and
    interleaved on the final store."""
    even = np.empty(npairs, dtype=np.float64)
    odd = np.empty(npairs, dtype=np.float64)
    for q in range(npairs):
        x0, x1, x2, x3 = _philox(np.uint64(j0 + q), k0, k1)
        even[q] = _uniform53(x0, x1)
        odd[q] = _uniform53(x2, x3)
    v_even = np.empty(npairs, dtype=np.float64)
    v_odd = np.empty(npairs, dtype=np.float64)
    _values(even, v_even, kind, p)
    _values(odd, v_odd, kind, p)
    for q in range(npairs):
        out[base + 2 * q] = v_even[q]
        out[base + 2 * q + 1] = v_odd[q]


@njit(parallel=True, cache=True)
def fill_segments(out, seg_out, seg_index, seg_len, step, k0, k1, kind, params):
    """Fill ``out[seg_out[s] : seg_out[s] + seg_len[s]]`` with the values of flat indices
    ``seg_index[s] + step * t``, for every segment ``s`` in parallel."""
    key0, key1 = np.uint64(k0), np.uint64(k1)
    for s in prange(seg_out.shape[0]):
        base, first, n = seg_out[s], seg_index[s], seg_len[s]
        if step != 1:
            for t in range(n):
                u = _scalar_uniform(np.uint64(first + step * t), key0, key1)
                out[base + t] = _transform(kind, u, params)
            continue
        t = 0
        if first & 1:
            out[base] = _transform(kind, _scalar_uniform(np.uint64(first), key0, key1), params)
            t = 1
        npairs = (n - t) // 2
        _fill_pairs(out, base + t, (first + t) >> 1, npairs, key0, key1, kind, params)
        t += 2 * npairs
        if t < n:
            last = np.uint64(first + t)
            out[base + t] = _transform(kind, _scalar_uniform(last, key0, key1), params)


def set_threads(n: int) -> None:
    """Use ``n`` threads (capped at what numba was started with)."""
    numba.set_num_threads(max(1, min(n, numba.config.NUMBA_NUM_THREADS)))
