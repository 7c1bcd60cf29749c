"""Which part of a parameter this process holds: the global index region of a DTensor shard.

For a ``DTensor`` parameter (after FSDP2's ``fully_shard``, ``distribute_tensor`` or
``parallelize_module``, on 1-D or 2-D meshes) the local tensor is the box
``[offset_d, offset_d + local_size_d)`` of the global tensor in every dimension, computed from
the placements and the mesh coordinate (uneven shards included: trailing ranks may hold fewer
rows, or none). Sampling exactly that region of the parameter's stream gives every rank the
values a single process would have, with no communication and without the full tensor.
"""

from __future__ import annotations

import sys
from typing import TYPE_CHECKING, TypeGuard

import torch

from .errors import PlanError

if TYPE_CHECKING:
    from torch.distributed.tensor import DTensor

__all__ = ["is_dtensor", "local_region", "local_tensor"]


def _dtensor_type() -> type | None:
    """DTensor's class, or None while ``torch.distributed.tensor`` is not imported: no DTensor
    can exist before it is, and importing it here would cost a new process ~0.4 s."""
    module = sys.modules.get("torch.distributed.tensor")
    return getattr(module, "DTensor", None)


def is_dtensor(tensor: torch.Tensor) -> TypeGuard[DTensor]:
    """Whether ``tensor`` is a ``torch.distributed.tensor.DTensor``."""
    dtensor = _dtensor_type()
    return dtensor is not None and isinstance(tensor, dtensor)


def local_region(tensor: torch.Tensor, path: str = "") -> tuple[slice, ...] | None:
    """The global region held locally by a DTensor, or None for an ordinary tensor.

    Raises:
        PlanError: for placements whose local part is not a box of the global tensor
            (``Partial`` sums, strided shards), naming the parameter.
    """
    if not is_dtensor(tensor):
        return None
    from torch.distributed.tensor import Replicate, Shard
    from torch.distributed.tensor._utils import compute_local_shape_and_global_offset

    for placement in tensor.placements:
        if type(placement) not in (Shard, Replicate):
            raise PlanError(
                f"parameter {path!r} of shape {tuple(tensor.shape)} has placement {placement}:"
                " torchinit initializes shards that are boxes of the global tensor (Shard(d),"
                " Replicate()); a Partial value is a sum of per-rank parts and has no values to"
                " initialize. Initialize before redistributing, or redistribute to Shard/"
                "Replicate first")
    shape, offset = compute_local_shape_and_global_offset(
        tensor.shape, tensor.device_mesh, tensor.placements)
    return tuple(slice(o, o + s) for o, s in zip(offset, shape))


def local_tensor(tensor: torch.Tensor) -> torch.Tensor:
    """The tensor this process writes into: the DTensor's local shard, or the tensor itself."""
    return tensor.to_local() if is_dtensor(tensor) else tensor
