"""The normalization layers torch defines, for the modules that recognize them by type."""

from __future__ import annotations

from torch import nn

__all__ = ["NORM_TYPES", "PER_SAMPLE_NORM_TYPES"]

PER_SAMPLE_NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)
"""Norms whose output is normalized per sample in training and evaluation alike."""

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,  # BatchNorm*, SyncBatchNorm, InstanceNorm*
    *PER_SAMPLE_NORM_TYPES,
)
"""Every torch normalization layer (subclasses included)."""
