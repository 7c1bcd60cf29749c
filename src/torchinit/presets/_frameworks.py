"""Presets that reproduce the default initialization of a framework: PyTorch, Keras, Flax, and
the textbook "general rule"."""

from __future__ import annotations

from functools import partial

from ..initializers import (
    Constant,
    GeneralRule,
    Normal,
    Ones,
    Orthogonal,
    Uniform,
    VarianceScaling,
    XavierUniform,
    Zeros,
)
from .._plan import Plan, Rule
from ._registry import register, rule

__all__ = ["TORCH_DEFAULT_TYPES", "torch_defaults"]

TORCH_DEFAULT_TYPES = (
    "Linear", "Bilinear",
    "Conv1d", "Conv2d", "Conv3d", "ConvTranspose1d", "ConvTranspose2d", "ConvTranspose3d",
    "Embedding", "EmbeddingBag",
    "RNNBase", "RNNCellBase", "MultiheadAttention",
    "BatchNorm1d", "BatchNorm2d", "BatchNorm3d", "SyncBatchNorm",
    "InstanceNorm1d", "InstanceNorm2d", "InstanceNorm3d",
    "LayerNorm", "GroupNorm", "RMSNorm",
    "PReLU",
)
"""The layer types whose ``reset_parameters()`` the ``torch_default`` init function reproduces
(subclasses included, e.g. ``LazyLinear`` once materialized)."""


def torch_defaults(preset: str) -> Rule:
    """The rule of the ``torch`` preset, also the first (most general) rule of the recipes:
    every layer type in :data:`TORCH_DEFAULT_TYPES` gets what its ``reset_parameters()`` draws."""
    return rule(preset, {"function": "torch_default"}, fan_convention="torch", type=TORCH_DEFAULT_TYPES,
                label="torch layer types -> torch_default")


@register("torch")
def pytorch() -> Plan:
    """PyTorch's own defaults: what each layer's ``reset_parameters()`` draws.

    One rule, ``{"function": "torch_default"}`` with torch's axis-order fans, for every layer type
    in ``TORCH_DEFAULT_TYPES``: Linear/Conv/ConvTranspose weights and biases
    ``U(+-1/sqrt(fan_in))`` (``kaiming_uniform_(a=sqrt(5))``), Bilinear
    ``U(+-1/sqrt(in1_features))``, Embedding ``N(0, 1)``, RNN/LSTM/GRU and cells
    ``U(+-1/sqrt(hidden_size))``, MultiheadAttention ``xavier_uniform_`` projections with zero
    biases and ``xavier_normal_`` ``bias_k``/``bias_v``, norm layers 1 / 0, PReLU its ``init``.
    ``padding_idx`` rows stay zero. Parameters of other module types match no rule.

    Options: none.

    Source: ``torch/nn/modules/{linear,conv,sparse,rnn,activation,normalization,batchnorm}.py``,
    ``reset_parameters``.
    """
    return Plan([torch_defaults("torch")], name="torch")


@register("keras")
def keras() -> Plan:
    """Keras 3 layer defaults, mapped onto torch layers.

    * Dense/Conv/ConvTranspose kernels, RNN input kernels, LSTM projections:
      ``glorot_uniform`` with fans read off the kernel's shape, as Keras computes them (for
      torch weights that is torch's axis-order rule: exact for grouped convolutions and for
      the fused gate kernels, whose fan-out is ``gates * units``).
    * Recurrent kernels: ``orthogonal`` over the whole fused ``(gates * units, units)`` matrix,
      as Keras's single ``recurrent_kernel`` (so one gate's block is not orthogonal by itself).
    * ``nn.MultiheadAttention``: ``glorot_uniform`` on Keras's 3-D einsum kernels (the init
      function ``keras_attention``).
    * Biases zeros. LSTM ``unit_forget_bias=True``: Keras has one bias whose forget block is 1;
      torch adds ``bias_ih`` and ``bias_hh``, so the forget block of ``bias_ih`` is 1 and
      ``bias_hh`` is 0, and their sum is Keras's bias.
    * Embedding ``uniform`` = ``U(-0.05, 0.05)``. Norm scale 1, offset 0. PReLU ``alpha`` 0
      (``alpha_initializer="zeros"``). Bilinear (no Keras layer): ``glorot_uniform``.

    Options: none.

    Source: ``keras/src/layers/core/dense.py``, ``convolutional/base_conv.py``,
    ``rnn/lstm.py`` (``unit_forget_bias``), ``rnn/gru.py``, ``core/embedding.py``,
    ``activations/prelu.py``, ``attention/multi_head_attention.py``,
    ``initializers/random_initializers.py`` (``compute_fans``, ``OrthogonalInitializer``).
    """
    r = partial(rule, "keras")
    attention = {"function": "keras_attention"}
    return Plan([
        r(XavierUniform(), role="weight", fan_convention="torch"),
        r(Zeros(), role="bias"),
        r(Ones(), role="scale"),
        r(Uniform(-0.05, 0.05), role="embedding"),
        r(Zeros(), role="prelu"),
        r(Orthogonal(), role="recurrent", fan_convention="torch"),
        r(attention, type="MultiheadAttention", role="weight"),
        r(attention, type="Linear", within="MultiheadAttention", role="weight"),
        r(Ones(), type=("LSTM", "LSTMCell"), name="bias_ih*", block="f"),
    ], name="keras")


@register("flax")
def flax() -> Plan:
    """Flax (linen) layer defaults, mapped onto torch layers.

    * Kernels: ``lecun_normal`` as Flax defines it, ``VarianceScaling(1.0, "fan_in",
      "truncated_normal")`` (std exactly ``1/sqrt(fan_in)``, truncated at 2 std), with semantic
      fans: a ConvTranspose's fan-in is its input channels times the kernel size, as for
      Flax's ``(*kernel, in, out)`` kernels; attention projections have fan-in ``E`` (``kdim``,
      ``vdim`` for key and value), as ``DenseGeneral`` computes.
    * Recurrent kernels: ``orthogonal`` per gate, as Flax's ``LSTMCell``/``GRUCell`` keep one
      ``Dense`` per gate; input kernels ``lecun_normal`` per gate.
    * Biases zeros; norm scale 1, bias 0; PReLU slope ``0.01`` (``negative_slope_init``).
    * Embedding: Flax's ``variance_scaling(1.0, "fan_in", "normal", out_axis=0)`` gives a
      ``(num, dim)`` table ``N(0, 1/dim)``. torchinit's Embedding fans are ``fan_in=1``,
      ``fan_out=dim``, so the same distribution is ``VarianceScaling(1.0, "fan_out", "normal")``.

    Options: none.

    Source: ``flax/linen/linear.py`` (``default_kernel_init``, ``default_embed_init``),
    ``flax/linen/recurrent.py`` (``LSTMCell``, ``GRUCell``), ``flax/linen/attention.py``,
    ``flax/linen/normalization.py``, ``flax/linen/activation.py`` (``PReLU``).
    """
    r = partial(rule, "flax")
    return Plan([
        r(VarianceScaling(1.0, "fan_in", "truncated_normal"), role="weight"),
        r(Zeros(), role="bias"),
        r(Ones(), role="scale"),
        r(VarianceScaling(1.0, "fan_out", "normal"), role="embedding"),
        r(Constant(0.01), role="prelu"),
        r(Orthogonal(), role="recurrent"),
    ], name="flax")


@register("general-rule")
def general_rule() -> Plan:
    """The textbook "general rule": ``U(+-1/sqrt(fan_in))`` for every weight.

    Weights (Linear, Conv, ConvTranspose, RNN, attention) ``general_rule`` with semantic
    fan-in (per gate for RNNs); biases zeros; norm scale 1, bias 0; embeddings ``N(0, 1)``;
    PReLU slopes 0.25 (He et al. 2015).

    Options: none.

    Source: the "general rule" of introductory courses: weights uniform in ``[-y, y]`` with
    ``y = 1/sqrt(n)``, ``n`` the inputs of a neuron. torch's Linear/Conv ``reset_parameters``
    (``torch/nn/modules/linear.py``) draws the same distribution with its axis-order fan-in.
    """
    r = partial(rule, "general-rule")
    return Plan([
        r(GeneralRule(), role="weight"),
        r(Zeros(), role="bias"),
        r(Ones(), role="scale"),
        r(Normal(0.0, 1.0), role="embedding"),
        r(Constant(0.25), role="prelu"),
    ], name="general-rule")
