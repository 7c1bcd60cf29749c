"""Reference sampling backend, written in torch tensor ops so it runs on any device.

The stream definition (fixed; golden values in the tests pin it):

* element ``i`` (its flat row-major index in the full shape) of a parameter with key ``k``
  takes the Philox4x32-10 output ``x = philox(counter=(i mod 2**32, i >> 32, 0, 0), key=k.words)``;
* a 53-bit uniform ``u = ((x0 >> 5) * 2**26 + (x1 >> 6) + 1/2) / 2**53`` in the open
  interval (0, 1);
* uniform(low, high): ``low + (high - low) * u``;
* normal(loc, scale): ``loc + scale * ndtri(u)`` (inverse normal CDF, one uniform per element);
* truncated normal on [a, b] (std units): ``loc + scale * ndtri(Phi(a) + u (Phi(b) - Phi(a)))``,
  mirrored to the side with the smaller tail mass, then clamped to the bounds; no rejection, so
  the value is a pure function of ``i``.

All arithmetic is float64; the result is rounded once to the requested dtype.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from .distributions import (
    ConstantDist,
    Distribution,
    NormalDist,
    TruncNormalDist,
    UniformDist,
    normal_cdf,
)
from .keys import Key
from .philox import MASK32, philox4x32
from .regions import flat_index_chunks, normalize_region, region_shape

__all__ = ["uniform53", "sample_distribution"]

_TWO_M53 = 2.0**-53


def uniform53(key: Key, flat_index: torch.Tensor) -> torch.Tensor:
    """The stream's standard uniform variates in (0, 1), float64, for the given flat indices."""
    zero = torch.zeros((), dtype=torch.int64, device=flat_index.device)
    x0, x1, _, _ = philox4x32(flat_index & MASK32, flat_index >> 32, zero, zero, key.words)
    bits = (x0 >> 5) * (1 << 26) + (x1 >> 6)
    return (bits.to(torch.float64) + 0.5) * _TWO_M53


def _transform(dist: Distribution, u: torch.Tensor) -> torch.Tensor:
    if isinstance(dist, UniformDist):
        return dist.low + (dist.high - dist.low) * u
    if isinstance(dist, NormalDist):
        return dist.loc + dist.scale * torch.special.ndtri(u)
    if isinstance(dist, TruncNormalDist):
        a, b, sign = dist.lower, dist.upper, 1.0
        if a + b > 0:
            a, b, sign = -b, -a, -1.0
        pa, pb = normal_cdf(a), normal_cdf(b)
        z = torch.special.ndtri(pa + (pb - pa) * u).clamp_(a, b)
        return dist.loc + (sign * dist.scale) * z
    raise TypeError(f"no sampler for {type(dist).__name__}")


def sample_distribution(
    dist: Distribution,
    key: Key,
    shape: Sequence[int],
    region: Sequence[slice] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
) -> torch.Tensor:
    """Sample ``dist`` over ``region`` of a tensor of full ``shape``.

    Only the region's elements are generated; the result equals the same region of the full
    sample bit for bit.
    """
    device = torch.device(device) if device is not None else torch.device("cpu")
    norm = normalize_region(shape, region)
    out_shape = region_shape(norm)
    if isinstance(dist, ConstantDist):
        return torch.full(out_shape, dist.value, dtype=dtype, device=device)
    out = torch.empty(math.prod(out_shape), dtype=dtype, device=device)
    for offset, idx in flat_index_chunks(shape, norm, device):
        values = _transform(dist, uniform53(key, idx))
        out[offset : offset + idx.numel()] = values.to(dtype)
    return out.reshape(out_shape)
