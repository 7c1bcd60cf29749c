"""Init functions the presets need: initializers that depend on the module they meet.

Registered by name (see :func:`torchinit._plan.register_init_function`), so plans that use them can be
written to files and read back.
"""

from __future__ import annotations

import math
from collections.abc import Sequence

from torch import nn

from ..errors import ConfigError
from ..initializers import Initializer, Ones, TruncatedNormal, Uniform, Zeros
from .._layouts import fans as layer_fans
from .._plan import ParamInfo, register_init_function
from .._plan.roles import is_norm

__all__ = ["keras_attention", "last_norm_zero", "keras_kernel_fan_sum"]

_SEPARATE_INPUTS = {"q_proj_weight": "embed_dim", "k_proj_weight": "kdim",
                    "v_proj_weight": "vdim", "in_proj_weight": "embed_dim"}


def keras_kernel_fan_sum(kernel_shape: Sequence[int]) -> int:
    """``fan_in + fan_out`` of a Keras kernel of ``kernel_shape``.

    Keras (``keras/src/initializers/random_initializers.py``, ``compute_fans``) reads fans off
    the kernel's last two axes times the product of the others: ``fan_in = shape[-2] * r``,
    ``fan_out = shape[-1] * r`` with ``r = prod(shape[:-2])``.
    """
    receptive = math.prod(kernel_shape[:-2])
    return receptive * (kernel_shape[-2] + kernel_shape[-1])


def _owning_attention(param: ParamInfo) -> nn.MultiheadAttention | None:
    parent = param.ancestors[-1] if param.ancestors else None
    return parent if isinstance(parent, nn.MultiheadAttention) else None


@register_init_function("keras_attention")
def keras_attention(param: ParamInfo) -> Initializer:
    """Keras ``MultiHeadAttention``'s ``glorot_uniform`` on torch's ``nn.MultiheadAttention``.

    Keras (``keras/src/layers/attention/multi_head_attention.py``) projects with ``EinsumDense``
    kernels of shape ``(d_in, heads, head_dim)`` for query, key and value and
    ``(heads, head_dim, d_out)`` for the output, and Glorot reads their fans the Keras way
    (:func:`keras_kernel_fan_sum`). With ``H`` heads of size ``D = E / H``:

    * ``in_proj_weight`` / ``q_proj_weight``: ``U(+-sqrt(6 / (E (H + D))))``; ``k_proj_weight``
      and ``v_proj_weight`` use ``kdim`` / ``vdim`` for ``E``.
    * ``out_proj.weight``: ``U(+-sqrt(6 / (H (D + E))))``.

    Raises:
        ConfigError: for a parameter that is not an input projection of ``MultiheadAttention``
            or the weight of its ``out_proj``.
    """
    module = param.module
    if isinstance(module, nn.MultiheadAttention) and param.name in _SEPARATE_INPUTS:
        d_in = getattr(module, _SEPARATE_INPUTS[param.name])
        kernel: tuple[int, ...] = (d_in, module.num_heads, module.head_dim)
    elif (attention := _owning_attention(param)) is not None and param.name == "weight":
        kernel = (attention.num_heads, attention.head_dim, attention.out_proj.out_features)
    else:
        raise ConfigError(
            f"init function 'keras_attention' initializes the projection weights of"
            f" nn.MultiheadAttention (in_proj_weight, q/k/v_proj_weight, out_proj.weight), not"
            f" {param.path!r} ({type(module).__name__}); select those with"
            " type='MultiheadAttention', role='weight' or type='Linear',"
            " within='MultiheadAttention'")
    bound = math.sqrt(6.0 / keras_kernel_fan_sum(kernel))
    return Uniform(-bound, bound)


@register_init_function("last_norm_zero")
def last_norm_zero(param: ParamInfo) -> Initializer:
    """Zero for the scale of a residual block's last normalization layer, one for the others.

    The last norm layer is the last one registered directly in the parent module: ``bn3`` of
    torchvision's ``Bottleneck``, ``bn2`` of ``BasicBlock``. Zeroing its scale makes every
    residual block start as the identity (Goyal et al. 2017, "Accurate, Large Minibatch SGD",
    sec. 5.1; torchvision ``resnet.py``, ``zero_init_residual``).

    Raises:
        ConfigError: for a parameter that is not a norm layer's weight inside a block.
    """
    module = param.module
    parent = param.ancestors[-1] if param.ancestors else None
    if not is_norm(module) or param.name != "weight" or parent is None:
        raise ConfigError(
            f"init function 'last_norm_zero' initializes the weight of a normalization layer inside"
            f" a residual block, not {param.path!r} ({type(module).__name__}); point the rule's"
            " paths at the blocks' norm weights, e.g. 'layer*.*.bn2.weight'")
    norms = [child for child in parent.children() if is_norm(child)]
    return Zeros() if norms[-1] is module else Ones()


@register_init_function("trunc_normal_fan_in")
def trunc_normal_fan_in(param: ParamInfo) -> Initializer:
    """``trunc_normal_(std=sqrt(1 / fan_in))`` with torch's absolute bounds ``[-2, 2]``.

    ``fan_in`` is torch's (``in_channels * kernel size`` for a conv, ``in_features`` for a
    Linear), as torchvision computes it for the ``conv_proj`` patch embedding and the
    ``heads.pre_logits`` Linear of its ViT (``torchvision/models/vision_transformer.py``,
    ``VisionTransformer.__init__``).
    """
    fan_in = layer_fans(param.module, param.name, convention="torch").fan_in
    return TruncatedNormal(0.0, math.sqrt(1.0 / fan_in), -2.0, 2.0) if fan_in else Zeros()
