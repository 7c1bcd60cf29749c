"""The storage behind a tensor, for code that tells tensors apart by the memory they share."""

from __future__ import annotations

import torch
from torch import nn

__all__ = ["storage_of"]


def storage_of(tensor: torch.Tensor) -> torch.UntypedStorage | None:
    """``tensor``'s storage (shared by its views and ``.data``, on the meta device too), or
    ``None`` for a tensor without one of its own: an uninitialized lazy parameter (torch would
    raise ``ValueError``) or a sparse or other non-strided tensor (``NotImplementedError``)."""
    # torch's parameter.pyi omits UninitializedTensorMixin, the base of both lazy kinds
    if (isinstance(tensor, nn.parameter.UninitializedTensorMixin)  # type: ignore[attr-defined]
            or tensor.layout != torch.strided):
        return None
    return tensor.untyped_storage()
