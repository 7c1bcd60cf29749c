"""Presets that reproduce the initialization recipe of a paper or a reference implementation:
DCGAN, GPT-2, BERT, Llama (transformers), ViT (timm or torchvision), ResNet (torchvision).

Each starts from the ``torch`` preset's rule, because each source re-initializes some layers of
a model whose layers were built with PyTorch's defaults; layers the recipe does not mention keep
those defaults, as in the source.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial

from ..initializers import (Initializer, KaimingNormal, Normal, Ones, TruncatedNormal,
                            XavierUniform, Zeros)
from .._plan import Plan, Rule
from ._frameworks import torch_defaults
from ._registry import anywhere, choice, flag, globs, positive_float, positive_int, register, rule

__all__ = ["GPT2_RESIDUAL_PATHS", "RESNET_LAST_BN_PATHS", "BATCH_NORM_TYPES", "FLAVORS"]

BATCH_NORM_TYPES = ("BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm")
CONV_TYPES = ("Conv1d", "Conv2d", "Conv3d")


GPT2_RESIDUAL_PATHS = anywhere(
    "attn.c_proj.weight", "crossattention.c_proj.weight", "mlp.c_proj.weight",  # HF GPT-2
    "self_attn.out_proj.weight", "multihead_attn.out_proj.weight", "linear2.weight",  # torch
)
"""Output projections that write into the residual stream: HF GPT-2's ``attn.c_proj``,
``crossattention.c_proj`` and ``mlp.c_proj``; ``nn.TransformerEncoderLayer`` /
``nn.TransformerDecoderLayer``'s ``self_attn.out_proj``, ``multihead_attn.out_proj`` and
``linear2``."""

RESNET_LAST_BN_PATHS = anywhere("layer*.*.bn2.weight", "layer*.*.bn3.weight")
"""The norm weights of torchvision's residual blocks that may be a block's last one."""


def _weights_biases_scales(preset: str, weight: Initializer) -> list[Rule]:
    """torch defaults, then ``weight`` for every weight matrix and embedding, zero biases, unit
    norm scales."""
    r = partial(rule, preset)
    return [torch_defaults(preset), r(weight, role="weight"), r(Zeros(), role="bias"),
            r(Ones(), role="scale")]


@register("dcgan")
def dcgan() -> Plan:
    """DCGAN: ``N(0, 0.02)`` weights, BatchNorm scales ``N(1, 0.02)``.

    Conv/ConvTranspose weights ``N(0, 0.02)``; BatchNorm weight ``N(1, 0.02)``, bias 0. Beyond
    the tutorial's ``weights_init`` (which touches Conv and BatchNorm only), Linear and
    Embedding weights also get ``N(0, 0.02)`` ("all weights", as the paper says) and every bias
    is 0; other norm layers get scale 1, bias 0. Layers with no weight of their own (PReLU)
    keep torch's defaults.

    Options: none.

    Source: Radford et al., "Unsupervised Representation Learning with Deep Convolutional
    GANs" (ICLR 2016), sec. 4; PyTorch DCGAN tutorial (``beginner_source/dcgan_faces_tutorial.py``,
    ``weights_init``).
    """
    rules = _weights_biases_scales("dcgan", Normal(0.0, 0.02))
    rules.append(rule("dcgan", Normal(1.0, 0.02), type=BATCH_NORM_TYPES, role="scale"))
    return Plan(rules, name="dcgan")


@register("gpt2")
def gpt2(n_layers: int, std: float = 0.02,
         residual_paths: str | Sequence[str] = GPT2_RESIDUAL_PATHS) -> Plan:
    """GPT-2: ``N(0, std)`` weights, residual output projections ``N(0, std/sqrt(2 n_layers))``.

    Every weight matrix (Linear, HF ``Conv1D``, attention projections) and embedding (token
    and position) ``N(0, std)``; biases 0; LayerNorm 1 / 0. The projections that write into
    the residual stream (``residual_paths``) get ``N(0, std / sqrt(2 * n_layers))``: two
    residual additions per block (attention and MLP). The rule for them warns if it matches
    nothing. Tied output heads follow their embedding.

    Options:
        n_layers: Number of transformer blocks (``config.n_layer``), required.
        std: ``config.initializer_range``.
        residual_paths: Path globs of the residual output projections; the default covers
            HF GPT-2 (``*.attn.c_proj.weight``, ``*.mlp.c_proj.weight``, cross-attention) and
            ``nn.TransformerEncoderLayer``/``DecoderLayer`` (``*.self_attn.out_proj.weight``,
            ``*.multihead_attn.out_proj.weight``, ``*.linear2.weight``).

    Source: Radford et al., "Language Models are Unsupervised Multitask Learners" (2019),
    sec. 2.3; HF ``transformers/models/gpt2/modeling_gpt2.py``,
    ``GPT2PreTrainedModel._init_weights``.
    """
    n_layers = positive_int("gpt2", "n_layers", n_layers)
    std = positive_float("gpt2", "std", std)
    residual = globs("gpt2", "residual_paths", residual_paths)
    rules = _weights_biases_scales("gpt2", Normal(0.0, std))
    rules.append(rule("gpt2", Normal(0.0, std / math.sqrt(2 * n_layers)), optional=False,
                      label=f"residual_paths -> normal(std / sqrt(2 * {n_layers}))",
                      path=residual))
    return Plan(rules, name="gpt2")


@register("bert")
def bert(std: float = 0.02) -> Plan:
    """BERT: ``N(0, std)`` weights and embeddings, zero biases, LayerNorm 1 / 0.

    Every weight matrix (Linear, attention projections, also torch's packed ``in_proj_weight``)
    and embedding (word, position, token type) ``N(0, std)``, the ``padding_idx`` row 0;
    biases 0; LayerNorm weight 1, bias 0.

    Options:
        std: ``config.initializer_range``.

    This is HF transformers' BERT. Google's original TensorFlow ``modeling.py`` draws
    ``truncated_normal_initializer(stddev=0.02)`` instead (std 0.0176 after truncation at
    2 std); layer it over this preset with ``TruncatedNormal(0, std, -2 * std, 2 * std)`` rules
    to reproduce that.

    Source: Devlin et al., "BERT" (NAACL 2019); HF ``transformers/modeling_utils.py``,
    ``PreTrainedModel._init_weights``, and ``models/bert/modeling_bert.py``.
    """
    std = positive_float("bert", "std", std)
    return Plan(_weights_biases_scales("bert", Normal(0.0, std)), name="bert")


@register("llama")
def llama(std: float = 0.02) -> Plan:
    """Llama and its family (Mistral, Qwen2, ...) in transformers: ``N(0, std)`` weights and
    embeddings, zero biases (Qwen2's q/k/v), RMSNorm scales 1.

    Every weight matrix (the attention and MLP projections, the LM head unless it is tied to
    the embedding, which it then follows) and the token embedding ``N(0, std)``; biases 0; the
    RMSNorm weights (``LlamaRMSNorm`` and its copies: a norm by structure, see
    :func:`torchinit._plan.roles.norm_reason`) 1. No depth scaling of output projections.

    Options:
        std: ``config.initializer_range``.

    Source: HF ``transformers/modeling_utils.py``, ``PreTrainedModel._init_weights`` (the
    models of this family do not override it), ``models/llama/modeling_llama.py``; tested
    against the init captured from ``LlamaForCausalLM``, ``MistralForCausalLM`` and
    ``Qwen2ForCausalLM`` (``tests/test_presets_models.py``).
    """
    std = positive_float("llama", "std", std)
    return Plan(_weights_biases_scales("llama", Normal(0.0, std)), name="llama")


FLAVORS = ("timm", "torchvision")
"""The libraries whose init a preset with a ``flavor`` option can follow."""


def _vit_timm(r: Callable[..., Rule]) -> list[Rule]:
    trunc = TruncatedNormal(0.0, 0.02, -2.0, 2.0)
    return [
        r(trunc, type=("Linear", "MultiheadAttention"), role="weight"),
        r(Zeros(), type="Linear", role="bias"),
        r(trunc, name=("pos_embed", "dist_token")),
        r(Normal(0.0, 1e-6), name=("cls_token", "reg_token")),
    ]


def _vit_torchvision(r: Callable[..., Rule]) -> list[Rule]:
    mlp = anywhere("mlp.*")
    return [
        r(XavierUniform(), type="Linear", role="weight", path=mlp),
        r(Normal(0.0, 1e-6), type="Linear", role="bias", path=mlp),
        r({"function": "trunc_normal_fan_in"}, fan_convention="torch",
          path=anywhere("conv_proj.weight", "heads.pre_logits.weight")),
        r(KaimingNormal(mode="fan_out"), fan_convention="torch",
          path=anywhere("conv_proj.conv_last.weight")),
        r(Zeros(), path=anywhere("conv_proj.bias", "conv_proj.conv_last.bias",
                                  "heads.pre_logits.bias", "heads.head.weight", "heads.head.bias")),
        r(Zeros(), name="class_token"),
        r(Normal(0.0, 0.02), name="pos_embedding"),
    ]


@register("vit")
def vit(flavor: str = "timm") -> Plan:
    """ViT as timm (``flavor="timm"``, the default) or torchvision initializes it.

    ``flavor="timm"`` (``weight_init=''``, timm's default mode):

    * Linear weights (and torch ``nn.MultiheadAttention``'s input projections, timm's ``qkv``
      Linear) ``trunc_normal_(std=.02)`` with absolute bounds +-2, biases 0.
    * ``pos_embed`` (and DeiT's ``dist_token``) ``trunc_normal_(std=.02)``; ``cls_token`` and
      ``reg_token`` ``N(0, 1e-6)``: bare parameters, selected by name.
    * Everything else keeps torch's defaults, as timm's default mode leaves it: the patch
      embedding's Conv2d (``kaiming_uniform_(a=sqrt(5))``; timm uses ``lecun_normal_`` only in
      its ``'jax'`` mode), LayerNorm 1 / 0.

    ``flavor="torchvision"`` (``torchvision.models.VisionTransformer``):

    * The MLP blocks' Linear layers (``*.mlp.*``) ``xavier_uniform_``, biases ``N(0, 1e-6)``.
    * ``conv_proj`` (the patch embedding) and ``heads.pre_logits``
      ``trunc_normal_(std=sqrt(1 / fan_in))``, bounds +-2 (init function ``trunc_normal_fan_in``),
      biases 0; with a conv stem, ``conv_proj.conv_last`` ``N(0, 2 / out_channels)``
      (``kaiming_normal_(mode="fan_out")`` of a 1x1 conv), bias 0.
    * ``heads.head`` weight and bias 0; ``class_token`` 0; ``encoder.pos_embedding``
      ``N(0, 0.02)`` (not truncated).
    * Everything else keeps torch's defaults: ``nn.MultiheadAttention`` (``xavier_uniform_``
      packed input projection, zero biases, its ``out_proj`` weight ``kaiming_uniform_``),
      LayerNorm 1 / 0, the conv stem's Conv-BN-ReLU layers.

    Options:
        flavor: ``"timm"`` or ``"torchvision"``.

    Source: Dosovitskiy et al., "An Image is Worth 16x16 Words" (ICLR 2021); timm
    ``timm/models/vision_transformer.py``, ``VisionTransformer.init_weights`` and
    ``init_weights_vit_timm``; torchvision ``torchvision/models/vision_transformer.py``,
    ``VisionTransformer.__init__``, ``Encoder.__init__`` and ``MLPBlock.__init__``; tested
    against the init captured from timm's ``vit_tiny_patch16_224`` and torchvision's
    ``VisionTransformer`` (``tests/test_presets_vision.py``).
    """
    rules = {"timm": _vit_timm, "torchvision": _vit_torchvision}[
        choice("vit", "flavor", flavor, FLAVORS)]
    return Plan([torch_defaults("vit"), *rules(partial(rule, "vit"))], name="vit")


@register("resnet")
def resnet(zero_init_residual: bool = True,
           last_bn_paths: str | Sequence[str] = RESNET_LAST_BN_PATHS) -> Plan:
    """ResNet as torchvision initializes it, with the residual blocks' last BN zeroed.

    * Conv weights ``kaiming_normal_(mode="fan_out", nonlinearity="relu")`` with torch's
      fans (``fan_out = out_channels * kernel size``, groups ignored, as torchvision's
      ResNeXt gets); torchvision does this for Conv2d, here Conv1d and Conv3d too.
    * BatchNorm/GroupNorm weight 1, bias 0; the ``fc`` Linear and conv biases keep torch's
      defaults, as torchvision leaves them.
    * ``zero_init_residual``: the scale of each residual block's last norm layer starts at 0
      (Goyal et al. 2017), so every block starts as the identity. ``last_bn_paths`` selects
      candidates; of those, the last norm layer of each block (``bn3`` of ``Bottleneck``,
      ``bn2`` of ``BasicBlock``) gets 0 and the others 1 (init function ``last_norm_zero``). The
      rule warns if it matches nothing. torchvision's own default is ``False``.

    Options:
        zero_init_residual: Zero the last norm scale of each residual block.
        last_bn_paths: Path globs of the residual blocks' norm weights (default:
            ``layer*.*.bn2.weight`` and ``layer*.*.bn3.weight``, at any depth).

    Source: He et al., "Deep Residual Learning" (CVPR 2016) and "Delving Deep into
    Rectifiers" (ICCV 2015); Goyal et al., "Accurate, Large Minibatch SGD" (2017), sec. 5.1;
    torchvision ``torchvision/models/resnet.py``, ``ResNet.__init__``.
    """
    zero_init = flag("resnet", "zero_init_residual", zero_init_residual)
    paths = globs("resnet", "last_bn_paths", last_bn_paths)
    rules = [
        torch_defaults("resnet"),
        rule("resnet", KaimingNormal(mode="fan_out", nonlinearity="relu"), fan_convention="torch",
             type=CONV_TYPES, role="weight"),
    ]
    if zero_init:
        rules.append(rule("resnet", {"function": "last_norm_zero"}, optional=False,
                          label="last_bn_paths -> last_norm_zero", path=paths, role="scale"))
    return Plan(rules, name="resnet")
