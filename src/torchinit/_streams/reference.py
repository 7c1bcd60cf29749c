"""Reference sampling backend, written in torch tensor ops so it runs on any device.

The stream definition (fixed; golden values in the tests pin it):

* elements ``2j`` and ``2j + 1`` (flat row-major indices in the full shape) of a parameter with
  key ``k`` share one Philox4x32-10 block ``x = philox(counter=(j mod 2**32, j >> 32, 0, 0),
  key=k.words)``: the even element takes the words ``(hi, lo) = (x0, x1)``, the odd one
  ``(x2, x3)``;
* a 53-bit uniform ``u = ((hi >> 5) * 2**26 + (lo >> 6) + 1/2) / 2**53`` in the open
  interval (0, 1);
* uniform(low, high): ``low + (high - low) * u``;
* normal(loc, scale): ``loc + scale * ndtri(u)`` (the inverse normal CDF of
  :mod:`torchinit._streams.ndtri`, bit-identical on every backend; one uniform per element);
* truncated normal on [a, b] (std units): ``loc + scale * ndtri(Phi(a) + u (Phi(b) - Phi(a)))``,
  mirrored to the side with the smaller tail mass, then clamped to the bounds, and clamped again
  to the widest interval of values of the target dtype inside the bounds (so rounding cannot
  leave them); no rejection, so the value is a pure function of ``i``.

All arithmetic is float64; the result is rounded once to the requested dtype. The compiled CPU
core (:mod:`torchinit._streams.compiled`) evaluates the same operations in the same order.
"""

from __future__ import annotations

from collections.abc import Sequence

import torch

from .backends import use_compiled
from .distributions import (
    ConstantDist,
    Distribution,
    NormalDist,
    TruncNormalDist,
    UniformDist,
    trunc_params,
)
from .keys import Key
from .ndtri import ndtri
from .philox import MASK32, philox4x32
from .regions import flat_index_chunks, normalize_region, region_shape

__all__ = ["uniform53", "sample_distribution"]

_TWO_M53 = 2.0**-53


def uniform53(key: Key, flat_index: torch.Tensor) -> torch.Tensor:
    """The stream's standard uniform variates in (0, 1), float64, for the given flat indices."""
    zero = torch.zeros((), dtype=torch.int64, device=flat_index.device)
    block = flat_index >> 1
    x0, x1, x2, x3 = philox4x32(block & MASK32, block >> 32, zero, zero, key.words)
    odd = (flat_index & 1).bool()
    hi, lo = torch.where(odd, x2, x0), torch.where(odd, x3, x1)
    bits = (hi >> 5) * (1 << 26) + (lo >> 6)
    return (bits.to(torch.float64) + 0.5) * _TWO_M53


def _transform(dist: Distribution, u: torch.Tensor, dtype: torch.dtype) -> torch.Tensor:
    if isinstance(dist, UniformDist):
        return dist.low + (dist.high - dist.low) * u
    if isinstance(dist, NormalDist):
        return dist.loc + dist.scale * ndtri(u)
    if isinstance(dist, TruncNormalDist):
        t = trunc_params(dist, dtype)
        z = ndtri(t.pa + t.mass * u).clamp_(t.a, t.b)
        return (dist.loc + t.signed_scale * z).clamp_(t.low_out, t.high_out)
    raise TypeError(f"no sampler for {type(dist).__name__}")


def sample_distribution(
    dist: Distribution,
    key: Key,
    shape: Sequence[int],
    region: Sequence[slice] | None = None,
    dtype: torch.dtype = torch.float32,
    device: torch.device | str | None = None,
    out: torch.Tensor | None = None,
) -> torch.Tensor:
    """Sample ``dist`` over ``region`` of a tensor of full ``shape``.

    Only the region's elements are generated; the result equals the same region of the full
    sample bit for bit. With ``out`` (a tensor of the region's shape; its dtype and device are
    used) the values are written into it, without another allocation where possible.
    """
    norm = normalize_region(shape, region)
    out_shape = region_shape(norm)
    if out is None:
        device = torch.device(device) if device is not None else torch.device("cpu")
        out = torch.empty(out_shape, dtype=dtype, device=device)
    elif tuple(out.shape) != out_shape:
        raise ValueError(f"out has shape {tuple(out.shape)}, the region needs {out_shape}")
    if isinstance(dist, ConstantDist):
        return out.fill_(dist.value)
    if use_compiled(out.device, out.numel()):
        from .compiled import sample_compiled

        sample_compiled(dist, key, shape, norm, out)
        return out
    flat = out.view(-1) if out.is_contiguous() else torch.empty(out.numel(), dtype=out.dtype,
                                                                device=out.device)
    for offset, idx in flat_index_chunks(shape, norm, out.device):
        values = _transform(dist, uniform53(key, idx), out.dtype)
        flat[offset : offset + idx.numel()] = values.to(out.dtype)
    if not out.is_contiguous():
        out.copy_(flat.view(out_shape))
    return out
