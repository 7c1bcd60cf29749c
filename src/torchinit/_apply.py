"""``ti.apply``: re-initialize a materialized model in place from a plan or a manifest."""

from __future__ import annotations

from torch import nn

from .errors import ArgumentTypeError, PlanError
from ._plan.manifest import Manifest
from ._plan.plan import Plan

__all__ = ["apply"]


def apply(model: nn.Module, plan: Plan | Manifest, seed: int = 0) -> Manifest:
    """Re-initialize ``model``'s parameters in place.

    Args:
        model: A model with real (non-meta) parameters, on any device.
        plan: A :class:`Plan` (resolved here with ``seed``) or a :class:`Manifest` to replay
            (its own seeds, keys and data-dependent scales are used; ``seed`` is ignored).
        seed: The seed of every parameter's key.

    Returns:
        The manifest of what was done.

    Raises:
        ArgumentTypeError: (a TypeError) if ``model`` is not an ``nn.Module``.
        PlanError: (before any write) if the plan cannot initialize every parameter, or the
            manifest does not describe the model.
        WriteError: (before any write) naming every parameter that cannot be written (on the
            meta device, an inference or expanded tensor, values beyond its dtype's range).

    Every parameter (tied ones once, under their canonical path) is written exactly once,
    under ``no_grad``, by :meth:`Manifest.write`: if a write fails or is interrupted, the
    parameters already written are restored, so the model is bitwise as before. DTensor
    parameters (FSDP2, tensor parallel) get, on every rank, exactly the values of their shard
    in a single-process run: no communication, no full tensor.
    """
    if not isinstance(model, nn.Module):
        raise ArgumentTypeError(f"apply() takes a model (an nn.Module) first, got"
                                f" {type(model).__name__}; call ti.apply(model, plan, seed)")
    if isinstance(plan, Manifest):
        manifest = plan
    elif isinstance(plan, Plan):
        manifest = plan.explain(model, seed)
    else:
        raise PlanError(f"apply() takes a Plan or a Manifest, got {type(plan).__name__}")
    manifest.write(model)
    return manifest
