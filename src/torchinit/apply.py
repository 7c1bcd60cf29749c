"""``ti.apply``: re-initialize a materialized model in place from a plan or a manifest."""

from __future__ import annotations

from collections.abc import Mapping

import torch
from torch import nn

from .errors import PlanError
from .plan.manifest import Manifest
from .plan.plan import Plan
from .sharding import local_region, local_tensor

__all__ = ["apply", "write_values", "check_manifest_fits"]


def check_manifest_fits(manifest: Manifest, model: nn.Module) -> None:
    """Raise if the manifest does not describe ``model``'s parameters (paths and shapes)."""
    params = dict(model.named_parameters())
    problems = [f"{r.path}: not a parameter of the model" for r in manifest if r.path not in params]
    problems += [f"{r.path}: shape {tuple(params[r.path].shape)} in the model, {r.shape} in the"
                 " manifest" for r in manifest
                 if r.path in params and tuple(params[r.path].shape) != r.shape]
    problems += [f"{p}: not in the manifest" for p in params if p not in set(manifest.paths())]
    if problems:
        raise PlanError("the manifest does not fit this model:\n- " + "\n- ".join(problems))


def write_values(manifest: Manifest, params: Mapping[str, torch.Tensor]) -> None:
    """Sample every given parameter's values from its record, then write them all.

    All values are computed before the first write, so a failure while sampling leaves every
    tensor untouched. A DTensor parameter gets the values of its local shard only.
    """
    regions = {path: local_region(tensor, path) for path, tensor in params.items()}
    values = []
    for path, tensor in params.items():
        record = manifest[path]
        local = local_tensor(tensor)
        if not record.kept and local.numel():
            values.append((local, record.sample(regions[path], local.dtype, local.device,
                                                current=local)))
    with torch.no_grad():
        for local, value in values:
            local.copy_(value)


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
        PlanError: (before any write) if the plan cannot initialize every parameter.

    Every parameter (tied ones once, under their canonical path) is written exactly once,
    under ``no_grad``; every value is computed before the first write. DTensor parameters
    (FSDP2, tensor parallel) get, on every rank, exactly the values of their shard in a
    single-process run: no communication, no full tensor.
    """
    if isinstance(plan, Manifest):
        manifest = plan
        check_manifest_fits(manifest, model)
    elif isinstance(plan, Plan):
        manifest = plan.resolve(model, seed)
    else:
        raise PlanError(f"apply() takes a Plan or a Manifest, got {type(plan).__name__}")
    write_values(manifest, dict(model.named_parameters()))
    return manifest
