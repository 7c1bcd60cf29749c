"""What μP needs of a model's forward pass, found where the modules show it.

μP changes two things outside initialization and learning rates (Yang et al. 2022, "Tensor
Programs V", section 4 and appendix D.3):

* attention logits are scaled by :math:`1/d_{head}` instead of :math:`1/\\sqrt{d_{head}}`, since
  after training queries and keys are correlated and their dot product grows like
  :math:`d_{head}`, not :math:`\\sqrt{d_{head}}`;
* a readout tied to the input embedding needs an output multiplier (see
  :meth:`~torchinit.width.MuP.model_warnings`); an untied one does not, because its
  :math:`1/n_{in}` is in its init and learning rate.

Found here: ``nn.MultiheadAttention`` (which always scales by :math:`1/\\sqrt{d}`), and modules
that keep their scale as a float attribute ``scaling`` or ``scale`` equal to
``head_dim ** -0.5`` (transformers' attention classes read ``self.scaling``, timm's
``Attention`` ``self.scale``).
"""

from __future__ import annotations

import math

from torch import nn

__all__ = ["attention_warnings", "sqrt_scaled_attention"]

_SHOWN = 3


def sqrt_scaled_attention(model: nn.Module) -> list[tuple[str, str]]:
    """``(path, attribute)`` of every attention module that scales its logits by
    ``1/sqrt(head_dim)``; the attribute is ``""`` for ``nn.MultiheadAttention``, which cannot
    be changed."""
    found = []
    for path, module in model.named_modules():
        if isinstance(module, nn.MultiheadAttention):
            found.append((path, ""))
            continue
        head_dim = getattr(module, "head_dim", None)
        if not isinstance(head_dim, int) or isinstance(head_dim, bool) or head_dim <= 1:
            continue
        for attribute in ("scaling", "scale"):
            value = module.__dict__.get(attribute)
            if isinstance(value, float) and math.isclose(value, head_dim ** -0.5,
                                                         rel_tol=1e-6):
                found.append((path, attribute))
    return found


def _listed(paths: list[str]) -> str:
    shown = ", ".join(repr(p or "<root>") for p in paths[:_SHOWN])
    return shown + (f" and {len(paths) - _SHOWN} more" if len(paths) > _SHOWN else "")


def attention_warnings(model: nn.Module) -> list[str]:
    """The messages for attention that μP's :math:`1/d_{head}` scaling is missing from."""
    found = sqrt_scaled_attention(model)
    fixed = [p for p, a in found if not a]
    settable = [(p, a) for p, a in found if a]
    out = []
    if fixed:
        out.append(
            f"μP: nn.MultiheadAttention {_listed(fixed)} scales attention logits by"
            " 1/sqrt(head_dim) inside torch and cannot be changed to μP's 1/head_dim. Use an"
            " attention that calls torch.nn.functional.scaled_dot_product_attention(q, k, v,"
            " scale=1/head_dim), or multiply the queries by 1/sqrt(head_dim) before the module"
            " (a wrapper that scales its query input)")
    if settable:
        attribute = settable[0][1]
        out.append(
            f"μP: attention {_listed([p for p, _ in settable])} scales logits by"
            f" 1/sqrt(head_dim) (its {attribute!r}); μP needs 1/head_dim: set"
            f" module.{attribute} = 1 / module.head_dim on each before training")
    return out
