"""The compiled CPU backend: the C core of ``_core.c`` driven from Python.

The core writes the stream's values of a region straight into a tensor's storage, on its own
worker threads with the GIL released. This module describes the region to it as runs of flat
indices: whole trailing dimensions are merged, so a contiguous tensor, a conv kernel, a row
block of a fused parameter or a ``Shard(0)`` slice is one long run, and a ``Shard(1)`` slice is
one run per row.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

import torch

from . import _core
from .distributions import Distribution, NormalDist, TruncNormalDist, UniformDist, trunc_params
from .keys import Key
from .regions import region_shape, strides_of

__all__ = ["OUT_KINDS", "Runs", "runs", "sample_compiled"]

OUT_KINDS = {torch.float64: 0, torch.float32: 1, torch.bfloat16: 2, torch.float16: 3}
_UNIFORM, _NORMAL, _TRUNC = 0, 1, 2

Runs = tuple[int, tuple[int, ...], tuple[int, ...], int, int]


def runs(shape: Sequence[int], region: tuple[slice, ...]) -> Runs:
    """``(base, counts, strides, run_len, run_step)``: the region's flat indices are
    ``base + sum(i_d * strides[d]) + t * run_step`` for ``i_d < counts[d]`` and ``t < run_len``,
    in row-major order of the region (trailing whole dimensions merged into the run)."""
    if not shape:
        return 0, (), (), 1, 1
    sizes = region_shape(region)
    full = strides_of(shape)
    base = sum(s.start * st for s, st in zip(region, full))
    d = len(shape) - 1
    run_len, run_step = sizes[d], region[d].step
    while d > 0 and run_step == 1 and run_len == full[d - 1] and region[d - 1].step == 1:
        d -= 1
        run_len = sizes[d] * full[d]
    outer = [(n, s.step * st) for n, s, st in zip(sizes[:d], region[:d], full[:d]) if n > 1]
    if run_len == 1 and outer:  # a column: let the last outer dimension be the run
        run_len, run_step = outer.pop()
    return base, tuple(n for n, _ in outer), tuple(st for _, st in outer), run_len, run_step


def _params(dist: Distribution, dtype: torch.dtype) -> tuple[int, list[float]]:
    inf = math.inf
    if isinstance(dist, UniformDist):
        return _UNIFORM, [dist.low, dist.high - dist.low, 0.0, 0.0, 0.0, 0.0, -inf, inf]
    if isinstance(dist, NormalDist):
        return _NORMAL, [dist.loc, dist.scale, 0.0, 0.0, 0.0, 0.0, -inf, inf]
    assert isinstance(dist, TruncNormalDist)
    t = trunc_params(dist, dtype)
    return _TRUNC, [dist.loc, t.signed_scale, t.pa, t.mass, t.a, t.b, t.low_out, t.high_out]


def sample_compiled(
    dist: Distribution,
    key: Key,
    shape: Sequence[int],
    region: tuple[slice, ...],
    out: torch.Tensor,
    isa: str | None = None,
) -> None:
    """Write a non-constant ``dist`` over a normalized, non-empty ``region`` into the CPU tensor
    ``out``: float64/32, bfloat16 and float16 contiguous tensors directly (converted in the
    core, block by block); any other layout or dtype through one contiguous buffer.

    ``isa`` picks one of the core's kernels (``_core.ISAS``: ``"portable"``, and on x86-64
    ``"avx2"``, ``"avx512f"`` where the CPU has them); by default the best one. All give the
    same bits; the choice exists so that tests can check each of them.
    """
    direct = out.dtype in OUT_KINDS and out.is_contiguous()
    work = out if direct else torch.empty(out.shape, dtype=_work_dtype(out.dtype))
    kind, params = _params(dist, work.dtype)
    base, counts, strides, run_len, run_step = runs(shape, region)
    k0, k1 = key.words
    _core.fill(work.data_ptr(), OUT_KINDS[work.dtype], kind, params, k0, k1, base, counts,
               strides, run_len, run_step, torch.get_num_threads(), isa)
    if not direct:
        out.copy_(work)


def _work_dtype(dtype: torch.dtype) -> torch.dtype:
    return dtype if dtype in OUT_KINDS else torch.float64
