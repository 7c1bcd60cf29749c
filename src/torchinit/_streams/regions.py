"""Index regions of a full tensor shape.

A region is a tuple of slices, one per dimension (missing trailing dimensions mean the whole
dimension), with non-negative steps. It names the elements a caller wants, e.g. the local shard of
a sharded parameter; the element at multi-index ``(i0, ..., ik)`` of the full shape has flat
(row-major) index ``sum(i_d * stride_d)``, and that flat index is the counter of its random stream.
"""

from __future__ import annotations

import math
from collections.abc import Iterator, Sequence

import torch

from ..errors import InitializerError

__all__ = ["Region", "normalize_region", "region_shape", "block_rows", "strides_of",
           "flat_index_chunks"]

Region = Sequence[slice]


def normalize_region(shape: Sequence[int], region: Region | None) -> tuple[slice, ...]:
    """Return ``region`` as one ``slice(start, stop, step)`` per dimension, bounds resolved."""
    shape = tuple(int(s) for s in shape)
    if region is None:
        return tuple(slice(0, n, 1) for n in shape)
    if isinstance(region, slice):
        region = (region,)
    region = tuple(region)
    if len(region) > len(shape):
        raise InitializerError(
            f"region has {len(region)} slices but the shape {shape} has {len(shape)} dimensions"
        )
    out = []
    for dim, n in enumerate(shape):
        s = region[dim] if dim < len(region) else slice(None)
        if not isinstance(s, slice):
            raise InitializerError(
                f"region entries must be slices, got {type(s).__name__} at dimension {dim}"
                " (use slice(i, i + 1) to keep a single index)"
            )
        start, stop, step = s.indices(n)
        if step <= 0:
            raise InitializerError(f"region slice {s} at dimension {dim} must have a positive step")
        out.append(slice(start, max(start, stop), step))
    return tuple(out)


def region_shape(region: tuple[slice, ...]) -> tuple[int, ...]:
    """Shape of the tensor a normalized region selects."""
    return tuple(len(range(s.start, s.stop, s.step)) for s in region)


def block_rows(rows: range, start: int, stop: int) -> tuple[slice, slice] | None:
    """Where the rows ``start <= r < stop`` of one block stand among the rows a region selects.

    Args:
        rows: The first-dimension indices a normalized region selects.
        start: The block's first row in the full tensor.
        stop: One past the block's last row.

    Returns:
        ``(local, chosen)``: ``local`` slices the region's own rows (the first dimension of a
        tensor of the region's shape) that lie in the block, and ``chosen`` the same rows of the
        full tensor; ``None`` when the region selects none of the block's rows.
    """
    local = [i for i, r in enumerate(rows) if start <= r < stop]
    if not local:
        return None
    return (slice(local[0], local[-1] + 1),
            slice(rows[local[0]], rows[local[-1]] + 1, rows.step))


def strides_of(shape: Sequence[int]) -> list[int]:
    """Row-major strides of ``shape``, in elements (a zero-size dimension counts as one)."""
    strides = [1] * len(shape)
    for d in range(len(shape) - 2, -1, -1):
        strides[d] = strides[d + 1] * max(int(shape[d + 1]), 1)
    return strides


def flat_index_chunks(
    shape: Sequence[int],
    region: tuple[slice, ...],
    device: torch.device,
    chunk: int = 1 << 20,
) -> Iterator[tuple[int, torch.Tensor]]:
    """Yield ``(offset, flat_indices)`` covering the region in row-major order.

    ``offset`` is the position of the first element of the chunk in the flattened region, and
    ``flat_indices`` (int64, on ``device``) are the flat indices of the chunk's elements in the
    full shape. At most about ``chunk`` indices are materialized at a time.
    """
    sizes = region_shape(region)
    total = math.prod(sizes)
    if total == 0:
        return
    if not sizes:  # 0-d tensor
        yield 0, torch.zeros(1, dtype=torch.int64, device=device)
        return
    strides = strides_of(shape)
    inner_n = sizes[-1]
    last = region[-1]
    starts = torch.zeros((), dtype=torch.int64, device=device)
    for s, n, stride in zip(region[:-1], sizes[:-1], strides[:-1]):
        ax = torch.arange(s.start, s.start + s.step * n, s.step, dtype=torch.int64, device=device)
        starts = starts.unsqueeze(-1) + ax * stride
    starts = starts.reshape(-1) + last.start * strides[-1]
    inner_step = last.step * strides[-1]
    rows = starts.numel()
    if inner_n >= chunk:
        for r in range(rows):
            base = int(starts[r])
            for j0 in range(0, inner_n, chunk):
                j1 = min(inner_n, j0 + chunk)
                idx = base + inner_step * torch.arange(j0, j1, dtype=torch.int64, device=device)
                yield r * inner_n + j0, idx
        return
    inner = inner_step * torch.arange(inner_n, dtype=torch.int64, device=device)
    rows_per_chunk = max(1, chunk // inner_n)
    for r0 in range(0, rows, rows_per_chunk):
        r1 = min(rows, r0 + rows_per_chunk)
        yield r0 * inner_n, (starts[r0:r1, None] + inner[None, :]).reshape(-1)
