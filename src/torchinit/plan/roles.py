"""Roles of parameters: what a parameter does in its layer, for selectors and optimizer groups.

A parameter has a set of roles:

* ``weight``: a weight matrix or kernel (>= 2-D parameters of Linear, Conv, attention, RNN...).
* ``bias``: an additive bias vector (``bias``, ``bias_ih_l0``, ``in_proj_bias``, and the
  attention ``bias_k``/``bias_v``); a learned >= 2-D table named like a bias (a relative
  position bias) is not one.
* ``norm``: an affine parameter of a normalization layer; with ``scale`` for its weight
  (``bias`` for its bias).
* ``embedding``: an embedding table.
* ``input`` / ``recurrent`` / ``projection``: RNN input-to-hidden, hidden-to-hidden and
  projection weights.
* ``prelu``: PReLU slopes.
"""

from __future__ import annotations

from torch import nn

__all__ = ["roles_of", "NORM_TYPES", "ROLES"]

ROLES = ("weight", "bias", "norm", "scale", "embedding", "input", "recurrent", "projection",
         "prelu")

NORM_TYPES: tuple[type[nn.Module], ...] = (
    nn.modules.batchnorm._NormBase,
    nn.LayerNorm,
    nn.GroupNorm,
    *((nn.RMSNorm,) if hasattr(nn, "RMSNorm") else ()),
)


def roles_of(module: nn.Module, name: str, ndim: int) -> frozenset[str]:
    """The roles of parameter ``name`` (a direct parameter of ``module``) with ``ndim`` dims."""
    roles: set[str] = set()
    is_bias = (name.startswith("bias") or name.endswith("_bias")) and (
        ndim <= 1 or isinstance(module, nn.MultiheadAttention))
    if isinstance(module, NORM_TYPES):
        roles |= {"norm", "bias" if is_bias else "scale"}
    elif isinstance(module, nn.PReLU):
        roles.add("prelu")
    elif isinstance(module, (nn.Embedding, nn.EmbeddingBag)):
        roles |= {"embedding", "weight"}
    elif is_bias:
        roles.add("bias")
    elif ndim >= 2:
        roles.add("weight")
    if isinstance(module, (nn.RNNBase, nn.RNNCellBase)):
        if name.startswith("weight_ih"):
            roles.add("input")
        elif name.startswith("weight_hh"):
            roles.add("recurrent")
        elif name.startswith("weight_hr"):
            roles.add("projection")
    return frozenset(roles)
