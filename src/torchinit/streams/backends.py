"""Choice of sampling backend: the fast numba CPU backend where it applies, else the reference.

``TORCHINIT_BACKEND=reference`` forces the reference backend (``fast`` requires numba). Both
give bit-identical float32/float64 values, so the choice changes speed, never results.
"""

from __future__ import annotations

import math
import os
import warnings
from collections.abc import Sequence

import numpy as np
import torch

from .distributions import Distribution, NormalDist, TruncNormalDist, UniformDist, normal_cdf
from .keys import Key
from .regions import _strides, region_shape

__all__ = ["fast_available", "use_fast", "sample_fast"]

_FAST_DTYPES = (torch.float32, torch.float64)
_SEGMENT = 1 << 15
_warned = False


def fast_available() -> bool:
    """Whether the numba backend can be imported."""
    try:
        from . import fast  # noqa: F401
    except ImportError:
        return False
    return True


def use_fast(device: torch.device, numel: int) -> bool:
    """Whether to sample ``numel`` values on ``device`` with the fast backend."""
    global _warned
    choice = os.environ.get("TORCHINIT_BACKEND", "auto")
    if choice == "reference" or device.type != "cpu" or numel < 4096:
        return False
    if fast_available():
        return True
    if choice == "fast":
        raise ImportError("TORCHINIT_BACKEND=fast needs numba: pip install torchinit[fast]")
    if not _warned:
        _warned = True
        warnings.warn("numba is not installed, so torchinit samples on the CPU with its"
                      " reference backend, several times slower; pip install torchinit[fast]",
                      stacklevel=4)
    return False


def _params(dist: Distribution) -> tuple[int, np.ndarray]:
    if isinstance(dist, UniformDist):
        return 0, np.array([dist.low, dist.high - dist.low, 0, 0, 0, 0], dtype=np.float64)
    if isinstance(dist, NormalDist):
        return 1, np.array([dist.loc, dist.scale, 0, 0, 0, 0], dtype=np.float64)
    assert isinstance(dist, TruncNormalDist)
    a, b, sign = dist.lower, dist.upper, 1.0
    if a + b > 0:
        a, b, sign = -b, -a, -1.0
    pa, pb = normal_cdf(a), normal_cdf(b)
    return 2, np.array([dist.loc, sign * dist.scale, pa, pb - pa, a, b], dtype=np.float64)


def _segments(shape: Sequence[int], region: tuple[slice, ...]) -> tuple[np.ndarray, ...]:
    """Split the region into runs along its last dimension of at most ``_SEGMENT`` elements."""
    sizes = region_shape(region)
    strides = _strides(shape)
    starts = np.zeros((), dtype=np.int64)
    for s, n, stride in zip(region[:-1], sizes[:-1], strides[:-1]):
        ax = np.arange(s.start, s.start + s.step * n, s.step, dtype=np.int64) * stride
        starts = starts[..., None] + ax
    starts = starts.reshape(-1) + region[-1].start * strides[-1]
    inner = sizes[-1]
    pieces = np.arange(0, inner, _SEGMENT, dtype=np.int64)
    step = region[-1].step * strides[-1]
    seg_index = (starts[:, None] + pieces[None, :] * step).reshape(-1)
    seg_out = (np.arange(starts.size, dtype=np.int64)[:, None] * inner + pieces[None, :]).reshape(-1)
    seg_len = np.broadcast_to(np.minimum(_SEGMENT, inner - pieces), (starts.size, pieces.size))
    return seg_out, seg_index, np.ascontiguousarray(seg_len).reshape(-1), step


def sample_fast(
    dist: Distribution,
    key: Key,
    shape: Sequence[int],
    region: tuple[slice, ...],
    out: torch.Tensor,
) -> None:
    """Write a non-constant ``dist`` over a normalized, non-empty ``region`` into the CPU tensor
    ``out`` (float32/float64 contiguous tensors directly; others through a float64 buffer)."""
    from . import fast

    direct = out.dtype in _FAST_DTYPES and out.is_contiguous()
    work = out.view(-1) if direct else torch.empty(out.numel(), dtype=torch.float64)
    if not shape:
        shape, region = (1,), (slice(0, 1, 1),)
    seg_out, seg_index, seg_len, step = _segments(shape, region)
    kind, params = _params(dist)
    fast.set_threads(torch.get_num_threads())
    k0, k1 = key.words
    fast.fill_segments(work.numpy(), seg_out, seg_index, seg_len, step, k0, k1, kind, params)
    if not direct:
        out.copy_(work.view(out.shape))
