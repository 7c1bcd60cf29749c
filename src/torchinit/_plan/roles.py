"""Roles of parameters: what a parameter does in its layer, for selectors and optimizer groups.

A parameter has a set of roles:

* ``weight``: a weight matrix or kernel (>= 2-D parameters of Linear, Conv, attention, RNN...).
* ``bias``: an additive bias vector (``bias``, ``bias_ih_l0``, ``in_proj_bias``, and the
  attention ``bias_k``/``bias_v``); a learned >= 2-D table named like a bias (a relative
  position bias) is not one.
* ``norm``: an affine parameter of a normalization layer; with ``scale`` for its weight
  (``bias`` for its bias). A layer is a normalization layer when it is one of torch's
  (:data:`NORM_TYPES`) or has the structure of one (:func:`norm_reason`): transformers'
  ``LlamaRMSNorm``, ``T5LayerNorm`` and their many copies, timm's norms.
* ``layer_scale``: a per-channel scale on a residual branch (CaiT's LayerScale, Touvron et al.
  2021, "Going deeper with Image Transformers"; timm's ``LayerScale.gamma``, torchvision
  ConvNeXt's ``layer_scale``, transformers' ``*LayerScale.lambda1``).
* ``embedding``: an embedding table.
* ``input`` / ``recurrent`` / ``projection``: RNN input-to-hidden, hidden-to-hidden and
  projection weights.
* ``prelu``: PReLU slopes.
"""

from __future__ import annotations

from torch import nn

from .._norms import NORM_TYPES

__all__ = ["roles_of", "NORM_TYPES", "ROLES", "is_norm", "norm_reason"]

ROLES = ("weight", "bias", "norm", "scale", "embedding", "input", "recurrent", "projection",
         "prelu", "layer_scale")



_NORM_PARAMETERS = frozenset({"weight", "bias", "scale", "offset", "gamma", "beta"})
_LAYER_SCALE_NAMES = frozenset({"gamma", "gamma_1", "gamma_2", "ls", "layer_scale", "lambda1",
                                "lambda_1", "lambda_2", "ls1", "ls2"})


def norm_reason(module: nn.Module) -> str | None:
    """Why ``module`` is a normalization layer, or ``None`` if it is not one.

    torch's own (:data:`NORM_TYPES` and subclasses); or, for layers of other libraries, a class
    whose name ends in ``Norm`` (``LlamaRMSNorm``, ``T5LayerNorm``, timm's ``RmsNorm2d``)
    holding only 1-D affine parameters (``weight``/``bias``, or ``scale``/``offset``,
    ``gamma``/``beta``) and no submodule with parameters: the structure of a norm over the
    channel dimension.
    """
    if isinstance(module, NORM_TYPES):
        return None if type(module).__module__.startswith("torch.") else \
            f"a subclass of {_torch_base(module)}"
    names = [c.__name__ for c in type(module).__mro__ if c is not nn.Module][:-1]
    if not any(n.lower().endswith("norm") for n in names):
        return None
    own = dict(module.named_parameters(recurse=False))
    if not own or any(n not in _NORM_PARAMETERS or p.dim() != 1 for n, p in own.items()):
        return None
    if any(True for child in module.children() for _ in child.parameters()):
        return None
    return f"{type(module).__name__}: a *Norm class with only 1-D {'/'.join(sorted(own))}"


def _torch_base(module: nn.Module) -> str:
    return next(c.__name__ for c in type(module).__mro__ if c.__module__.startswith("torch."))


def is_norm(module: nn.Module) -> bool:
    """Whether ``module`` is a normalization layer (see :func:`norm_reason`)."""
    return isinstance(module, NORM_TYPES) or norm_reason(module) is not None


def _is_layer_scale(module: nn.Module, name: str, shape_ndim: int) -> bool:
    if "layerscale" in type(module).__name__.lower():
        return True
    if name == "layer_scale":  # torchvision's ConvNeXt: (C, 1, 1)
        return shape_ndim in (1, 3)
    return name in _LAYER_SCALE_NAMES and shape_ndim == 1 and not is_norm(module)


def roles_of(module: nn.Module, name: str, ndim: int) -> frozenset[str]:
    """The roles of parameter ``name`` (a direct parameter of ``module``) with ``ndim`` dims."""
    roles: set[str] = set()
    is_bias = (name.startswith("bias") or name.endswith("_bias")) and (
        ndim <= 1 or isinstance(module, nn.MultiheadAttention))
    if _is_layer_scale(module, name, ndim):
        roles.add("layer_scale")
    elif is_norm(module):
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
