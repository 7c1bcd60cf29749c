"""Buffers of a model built on meta: keep, recompute or recover their values.

Buffers keep the values ``__init__`` computes (``parameters_on_meta`` leaves them real), except
those a module computes *on a parameter's device* (timm's Swin ``attn_mask``, relative position
indices): while building, that device is meta. They are recovered, in this order, by

1. the module's own hook: ``init_non_persistent_buffers()`` (timm, and code that supports
   meta-device construction) or ``reset_running_stats()`` (batch norm), called once the
   parameters are real;
2. with a factory: constructing the model again with the parameters of the buffer's module
   real, and taking the values its ``__init__`` computes then;
3. else an error naming every such buffer (or zeros, with a warning, on request).
"""

from __future__ import annotations

import warnings
from dataclasses import dataclass, field

import torch
from torch import nn

from ._construct import META, Rebuild
from .errors import PlanError

__all__ = ["BufferRecovery", "plan_buffers", "UNRECOVERABLE"]

UNRECOVERABLE = ("error", "zeros")
_HOOKS = ("init_non_persistent_buffers", "reset_running_stats")



@dataclass
class BufferRecovery:
    """How every meta buffer of a model gets its values."""

    recompute: list[nn.Module] = field(default_factory=list)
    values: dict[str, torch.Tensor] = field(default_factory=dict)
    zeros: list[str] = field(default_factory=list)

    def stage(self, model: nn.Module, device: torch.device) -> None:
        """Give every meta buffer new storage on ``device``, and every buffer of a module that
        recomputes its own a copy, so the recomputation changes no tensor the caller holds."""
        recomputing = {id(m) for m in self.recompute}
        for module in model.modules():
            for name, buf in module.named_buffers(recurse=False):
                if buf is not None and buf.device == META:
                    module._buffers[name] = torch.empty_like(buf, device=device)
                elif buf is not None and id(module) in recomputing:
                    module._buffers[name] = buf.clone()

    def fill(self, model: nn.Module) -> None:
        """Recompute, copy in or zero the staged buffers (the parameters are real by now)."""
        for module in self.recompute:
            hook = next(getattr(module, h) for h in _HOOKS if hasattr(module, h))
            hook()
        with torch.no_grad():
            for path, value in self.values.items():
                _staged(model, path).copy_(value)
            for path in self.zeros:
                _staged(model, path).zero_()
        if self.zeros:
            warnings.warn("buffers filled with zeros because their module cannot recompute"
                          f" them: {self.zeros}", stacklevel=5)


def _staged(model: nn.Module, path: str) -> torch.Tensor:
    """The buffer at ``path``, which ``stage`` gave storage (so it is not None)."""
    owner, _, name = path.rpartition(".")
    buf = model.get_submodule(owner)._buffers[name]
    assert buf is not None
    return buf


def _meta_buffers(module: nn.Module) -> list[str]:
    return [n for n, b in module.named_buffers(recurse=False)
            if b is not None and b.device == META]


def plan_buffers(model: nn.Module, unrecoverable: str, rebuild: Rebuild | None = None,
                 provided: frozenset[str] = frozenset()) -> BufferRecovery:
    """Decide how each meta buffer of ``model`` gets its values (see the module docstring).

    Args:
        unrecoverable: ``"error"`` or ``"zeros"`` for buffers nothing can recompute.
        rebuild: Constructs the model again with the given parameters real (``ti.build``
            has its factory); ``None`` for a model given on meta.
        provided: Paths of buffers something else fills (a checkpoint has them).

    Raises:
        PlanError: naming every buffer nothing can recompute (``unrecoverable="error"``).
    """
    if unrecoverable not in UNRECOVERABLE:
        raise PlanError(f"unrecoverable_buffers must be one of {UNRECOVERABLE}, got"
                        f" {unrecoverable!r}")
    out = BufferRecovery()
    pending: dict[str, tuple[nn.Module, list[str]]] = {}
    for path, module in model.named_modules():
        metas = [n for n in _meta_buffers(module)
                 if (f"{path}.{n}" if path else n) not in provided]
        if metas and any(hasattr(module, h) for h in _HOOKS):
            out.recompute.append(module)
        elif metas:
            pending[path] = (module, metas)
    if pending and rebuild is not None:
        owners = {id(p): p for module, _ in pending.values() for p in module.parameters()}
        again = rebuild(list(owners.values()) or list(model.parameters()))
        for path, (_, names) in list(pending.items()):
            theirs = dict(again.get_submodule(path).named_buffers(recurse=False))
            found = [n for n in names if theirs.get(n) is not None and theirs[n].device != META]
            for n in found:
                out.values[f"{path}.{n}" if path else n] = theirs[n]
            left = [n for n in names if n not in found]
            if left:
                pending[path] = (pending[path][0], left)
            else:
                del pending[path]
    missing = [f"{path}.{n}" if path else n for path, (_, names) in pending.items()
               for n in names]
    if missing and unrecoverable == "error":
        how = ("constructing the model again with these modules' parameters real did not give"
               " them values either" if rebuild is not None else
               "ti.build(factory, plan) keeps the values __init__ computes, and can construct"
               " the module again for real")
        raise PlanError(
            f"these buffers are on the meta device and nothing can recompute them: {missing}."
            " Their module computed them on a parameter's device (meta while building) and has"
            " no init_non_persistent_buffers() or reset_running_stats(); " + how + ". Give the"
            " module an init_non_persistent_buffers() method, or pass"
            " unrecoverable_buffers='zeros' to fill them with zeros (with a warning)")
    out.zeros = missing
    return out
