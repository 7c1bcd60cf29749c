"""Presets of language-model codebases: torchtitan, Megatron-LM, GPT-NeoX, OLMo, T5 (Mamba: in
:mod:`.mamba`).

Each selects parameters by the module names of its codebase (``layers.3.attention.wo``,
``self_attention.linear_proj``, ...), at the model's root or under any prefix. Stds that depend
on a block's index (torchtitan's ``depth_init``, OLMo's ``llama_depth``) are one rule per layer,
``layers.{i}.<suffix>`` (``blocks.{i}.`` for OLMo) for ``i < n_layers``, after a guard rule on
every ``<suffix>`` whose init function (``layer_not_covered``) raises for a parameter no per-layer rule
covers: one with no layer index in its path, or with an index of ``n_layers`` or more. (An init function
sees only the parameter, not the preset's ``std``, so it cannot draw these itself.)
"""

from __future__ import annotations

import math
import re
from collections.abc import Callable, Sequence
from functools import partial

from ..errors import ConfigError
from ..initializers import Constant, Initializer, Normal, TruncatedNormal, Zeros
from .._plan import ParamInfo, Plan, Rule, register_init_function
from ._frameworks import torch_defaults
from ._recipes import _weights_biases_scales
from ._registry import anywhere, choice, flag, positive_float, positive_int, register, rule

__all__ = ["layer_index"]

_LAYER_INDEX = re.compile(r"(?:^|\.)(\d+)(?=\.|$)")


# -- helpers --------------------------------------------------------------------------------------
def _trunc3(std: float) -> TruncatedNormal:
    """``trunc_normal_(std=std, a=-3 std, b=3 std)`` (OLMo's ``init_linear``)."""
    return TruncatedNormal(0.0, std, -3.0 * std, 3.0 * std)


def _torch_trunc(std: float) -> TruncatedNormal:
    """``trunc_normal_(std=std)`` with torch's default absolute bounds ``[-2, 2]``."""
    return TruncatedNormal(0.0, std, -2.0, 2.0)


def layer_index(param: ParamInfo, function: str) -> int:
    """The block index of a parameter: the first numeric component of its path
    (``model.layers.3.attention.wo.weight`` -> 3).

    Raises:
        ConfigError: for a path with no numeric component, naming ``function``.
    """
    match = _LAYER_INDEX.search(param.path)
    if match is None:
        raise ConfigError(
            f"init function {function!r} scales {param.path!r} by the index of its block, but the path"
            " has no numeric component (such as 'layers.3.'); the rule should select"
            " parameters inside numbered blocks (an nn.ModuleList or a ModuleDict keyed"
            " '0', '1', ...)")
    return int(match.group(1))


def _fan_in(param: ParamInfo, function: str) -> int:
    if param.fans is None or not param.fans.fan_in:
        raise ConfigError(f"init function {function!r} needs the fan-in of {param.path!r}"
                          f" ({type(param.module).__name__}), which has none; select weight"
                          " matrices (Linear)")
    return param.fans.fan_in


def _per_layer(preset: str, blocks: str, suffixes: Sequence[str], n_layers: int,
               init_of: Callable[[int], Initializer], formula: str) -> list[Rule]:
    """The guard rule on every ``suffix``, then, for each layer ``i < n_layers``, a rule giving
    ``{blocks}.{i}.{suffix}`` the initializer ``init_of(i)``."""
    guard = rule(preset, {"function": "layer_not_covered"}, optional=False,
                 label=f"{', '.join(suffixes)} -> {formula}, one rule per layer",
                 path=anywhere(*suffixes))
    return [guard, *(rule(preset, init_of(i), label=f"layer {i} -> {formula}",
                          path=anywhere(*(f"{blocks}.{i}.{s}" for s in suffixes)))
                     for i in range(n_layers))]


def _with_outputs(preset: str, base: Initializer, output: Initializer, paths: Sequence[str],
                  label: str) -> Plan:
    """``base`` for every weight and embedding, zero biases, unit scales; ``output`` for the
    blocks' output projections at ``paths`` (warns if they match nothing)."""
    rules = _weights_biases_scales(preset, base)
    rules.append(rule(preset, output, optional=False, label=label, path=paths))
    return Plan(rules, name=preset)


# -- init functions---------------------------------------------------------------------------------
@register_init_function("layer_not_covered")
def layer_not_covered(param: ParamInfo) -> Initializer:
    """The guard of a preset's per-layer rules; raises for every parameter it initializes.

    The per-layer rules after it override it for layers ``0 .. n_layers - 1``, so it wins only
    for a depth-scaled parameter whose path has no layer index or an index of ``n_layers`` or
    more, or whose blocks are not where the preset looks for them.

    Raises:
        ConfigError: always, naming the parameter and its layer index.
    """
    index = layer_index(param, "layer_not_covered")
    raise ConfigError(
        f"{param.path!r} (layer {index}) is scaled by its layer index, but no per-layer rule"
        " covers it: the preset has rules for layers 0 .. n_layers - 1 of its block container"
        " ('layers.{i}.' for torchtitan, 'blocks.{i}.' for OLMo); pass n_layers = the model's"
        " number of blocks")


@register_init_function("trunc_normal_fan_in_3std")
def trunc_normal_fan_in_3std(param: ParamInfo) -> Initializer:
    """``trunc_normal_(std=s, a=-3 s, b=3 s)`` with ``s = fan_in ** -0.5``: torchtitan's final
    ``output`` projection (``s = dim ** -0.5``, ``Transformer.init_weights``)."""
    return _trunc3(_fan_in(param, "trunc_normal_fan_in_3std") ** -0.5)


@register_init_function("mitchell_output")
def mitchell_output(param: ParamInfo) -> Initializer:
    """OLMo's ``mitchell`` init of a block's output projection in layer ``i``:
    ``trunc_normal_(std=s, a=-3 s, b=3 s)``, ``s = 1 / sqrt(2 * fan_in * (i + 1))``.

    Source: allenai/OLMo ``olmo/model.py``, ``OLMoBlock.reset_parameters``: ``attn_out`` (fan-in
    ``d_model``) and ``ff_out`` (fan-in its ``in_features``).

    Raises:
        ConfigError: for a path without a layer index, or a parameter without a fan-in.
    """
    index = layer_index(param, "mitchell_output")
    return _trunc3(1.0 / math.sqrt(2 * _fan_in(param, "mitchell_output") * (index + 1)))


# -- presets --------------------------------------------------------------------------------------
TORCHTITAN_OUTPUTS = ("attention.wo.weight", "feed_forward.w2.weight", "feed_forward.w3.weight")

MEGATRON_OUTPUT_PATHS = anywhere(
    "self_attention.linear_proj.weight", "cross_attention.linear_proj.weight",
    "mlp.linear_fc2.weight",  # megatron.core
    "self_attention.dense.weight", "inter_attention.dense.weight",
    "mlp.dense_4h_to_h.weight",  # legacy megatron/model
)
"""The blocks' output layers in Megatron-LM: ``output_layer_init_method``'s parameters."""

NEOX_OUTPUT_PATHS = anywhere("attention.dense.weight", "mlp.linear2.weight",
                              "mlp.dense_4h_to_h.weight")
"""GPT-NeoX's ``attention.dense`` and MLP output (``linear2``; ``dense_4h_to_h`` in older
GPT-NeoX and in transformers' ``GPTNeoX``)."""

OLMO_OUTPUTS = ("attention.w_out.weight", "feed_forward.w2.weight", "feed_forward.w3.weight")
OLMO_SCHEMES = ("normal", "llama", "llama_depth", "mitchell")


@register("torchtitan")
def torchtitan(n_layers: int, std: float = 0.02, depth_init: bool = True) -> Plan:
    """torchtitan's Llama 3: truncated normals with depth-scaled output projections.

    * ``wq``/``wk``/``wv``, ``w1`` (and every other weight matrix):
      ``trunc_normal_(std=std)`` with torch's absolute bounds ``[-2, 2]``.
    * ``attention.wo``, ``feed_forward.w2`` and ``feed_forward.w3``: the same with
      ``std / sqrt(2 * (i + 1))`` in block ``i`` (``depth_init``, one rule per layer under
      ``layers.{i}.``) or ``std / sqrt(2 * n_layers)``.
    * ``tok_embeddings``: ``N(0, 1)``; final ``output``: ``trunc_normal_`` with
      ``s = dim ** -0.5`` cut at ``3 s`` (init function ``trunc_normal_fan_in_3std``).
    * RMSNorm scales 1. Biases (Llama 3 has none; torchtitan leaves them as allocated) 0.

    Options:
        n_layers: Number of blocks (``n_layers``), required.
        std: The base std; torchtitan hard-codes 0.02.
        depth_init: Scale by the block's index (torchtitan's default) instead of by
            ``n_layers``.

    Source: pytorch/torchtitan ``torchtitan/models/llama3/model/model.py``:
    ``Transformer.init_weights``, ``TransformerBlock.__init__`` (``weight_init_std``),
    ``Attention.init_weights``, ``FeedForward.init_weights``.
    """
    n_layers = positive_int("torchtitan", "n_layers", n_layers)
    std = positive_float("torchtitan", "std", std)
    r = partial(rule, "torchtitan")
    rules = _weights_biases_scales("torchtitan", _torch_trunc(std))
    rules += [r(Normal(0.0, 1.0), role="embedding"),
              r({"function": "trunc_normal_fan_in_3std"}, label="output -> trunc_normal(dim ** -0.5)",
                path=anywhere("output.weight"))]
    if flag("torchtitan", "depth_init", depth_init):
        rules += _per_layer("torchtitan", "layers", TORCHTITAN_OUTPUTS, n_layers,
                            lambda i: _torch_trunc(std / math.sqrt(2 * (i + 1))),
                            "trunc_normal(std / sqrt(2 (i + 1)))")
    else:
        rules.append(r(_torch_trunc(std / math.sqrt(2 * n_layers)), optional=False,
                       label=f"outputs -> trunc_normal(std / sqrt(2 * {n_layers}))",
                       path=anywhere(*TORCHTITAN_OUTPUTS)))
    return Plan(rules, name="torchtitan")


@register("megatron")
def megatron(n_layers: int, std: float = 0.02) -> Plan:
    """Megatron-LM: ``N(0, std)`` everywhere, the blocks' output layers ``N(0, std /
    sqrt(2 n_layers))``.

    ``init_method_normal(std)`` for every weight matrix and embedding (word and position,
    the untied output layer); ``scaled_init_method_normal(std, n_layers)`` for the attention
    output projection and the MLP's second layer (:data:`MEGATRON_OUTPUT_PATHS`:
    ``self_attention.linear_proj``, ``mlp.linear_fc2`` in ``megatron.core``;
    ``self_attention.dense``, ``mlp.dense_4h_to_h`` in legacy Megatron). Biases 0, LayerNorm
    1 / 0.

    Options:
        n_layers: Number of transformer layers (``--num-layers``), required.
        std: ``--init-method-std``.

    Source: Shoeybi et al., "Megatron-LM" (2019); NVIDIA/Megatron-LM ``megatron/core/utils.py``
    (``init_method_normal``, ``scaled_init_method_normal``),
    ``megatron/core/transformer/transformer_config.py``, ``attention.py`` and ``mlp.py``
    (``output_layer_init_method``).
    """
    n_layers = positive_int("megatron", "n_layers", n_layers)
    std = positive_float("megatron", "std", std)
    return _with_outputs("megatron", Normal(0.0, std), Normal(0.0, std / math.sqrt(2 * n_layers)),
                         MEGATRON_OUTPUT_PATHS,
                         f"output layers -> normal(std / sqrt(2 * {n_layers}))")


@register("neox")
def neox(hidden_size: int, n_layers: int) -> Plan:
    """GPT-NeoX: ``small_init`` ``N(0, sqrt(2 / (5 d)))``, output projections ``wang_init``
    ``N(0, 2 / (n_layers sqrt(d)))``.

    ``small_init`` (Nguyen & Salazar 2019) for every weight matrix and embedding, including
    the final linear; ``wang_init`` (Wang 2021, Mesh-Transformer-JAX) for
    :data:`NEOX_OUTPUT_PATHS` (``attention.dense``, ``mlp.linear2`` / ``mlp.dense_4h_to_h``).
    Biases 0, LayerNorm 1 / 0. This is the ``init_method: small_init`` /
    ``output_layer_init_method: wang_init`` of GPT-NeoX's configs; transformers' ``GPTNeoX``
    draws ``N(0, initializer_range)`` instead.

    Options:
        hidden_size: ``d``, the model width, required.
        n_layers: Number of transformer layers, required.

    Source: Nguyen & Salazar, "Transformers without Tears" (2019); EleutherAI/gpt-neox
    ``megatron/model/init_functions.py`` (``small_init_init_method``, ``wang_init_method``),
    ``megatron/model/transformer.py``, ``configs/125M.yml``.
    """
    d = positive_int("neox", "hidden_size", hidden_size)
    n_layers = positive_int("neox", "n_layers", n_layers)
    return _with_outputs("neox", Normal(0.0, math.sqrt(2.0 / (5 * d))),
                         Normal(0.0, 2.0 / (n_layers * math.sqrt(d))), NEOX_OUTPUT_PATHS,
                         f"outputs -> wang_init 2 / ({n_layers} sqrt({d}))")


@register("olmo")
def olmo(d_model: int, n_layers: int, scheme: str = "normal", std: float = 0.02) -> Plan:
    """OLMo's init schemes on OLMo-core's modules; every draw is ``trunc_normal_`` cut at 3 std.

    Modules: ``embeddings``, ``blocks.{i}.attention.w_q/w_k/w_v`` (or fused ``w_qkv``),
    ``attention.w_out``, ``feed_forward.w1/w2/w3``, ``lm_head.w_out``; norms 1, biases 0.

    * ``normal``: every weight and embedding ``std``.
    * ``llama``: embeddings ``N(0, 1)``; ``lm_head.w_out`` ``d_model ** -0.5``; ``w_out``,
      ``w2`` and ``w3`` ``std / sqrt(2 n_layers)`` (``w3`` too, as OLMo-core's
      ``init_feed_forward`` does); the rest ``std``.
    * ``llama_depth``: as ``llama`` with ``std / sqrt(2 (i + 1))`` in block ``i``.
    * ``mitchell`` (original OLMo, allenai/OLMo): every weight and embedding
      ``1 / sqrt(d_model)``; ``w_out`` and ``w2`` of block ``i``
      ``1 / sqrt(2 * fan_in * (i + 1))`` (init function ``mitchell_output``; ``attn_out`` and
      ``ff_out`` there). ``std`` is unused.

    Not here: OLMo-core's ``fan_in`` and ``normalized`` (nGPT) schemes, MoE layers,
    ``embedding_init_std``.

    Options:
        d_model: Model width, required.
        n_layers: Number of blocks, required.
        scheme: One of ``normal`` (OLMo-core's default), ``llama``, ``llama_depth``,
            ``mitchell``.
        std: ``init_std``.

    Source: allenai/OLMo-core ``src/olmo_core/nn/transformer/init.py`` (``InitMethod``,
    ``init_linear``), ``nn/attention/__init__.py`` (``Attention.init_weights``),
    ``nn/transformer/model.py`` (``Transformer.init_weights``); allenai/OLMo ``olmo/model.py``
    (``InitFnType.mitchell`` in ``OLMoBlock``/``OLMo.reset_parameters``).
    """
    d = positive_int("olmo", "d_model", d_model)
    n_layers = positive_int("olmo", "n_layers", n_layers)
    scheme = choice("olmo", "scheme", scheme, OLMO_SCHEMES)
    std = positive_float("olmo", "std", std)
    r = partial(rule, "olmo")
    rules = _weights_biases_scales("olmo", _trunc3(d ** -0.5 if scheme == "mitchell" else std))
    if scheme in ("llama", "llama_depth"):
        rules += [r(Normal(0.0, 1.0), role="embedding"),
                  r(_trunc3(d ** -0.5), path=anywhere("lm_head.w_out.weight"))]
    if scheme == "llama":
        rules.append(r(_trunc3(std / math.sqrt(2 * n_layers)), optional=False,
                       label=f"outputs -> trunc_normal(std / sqrt(2 * {n_layers}))",
                       path=anywhere(*OLMO_OUTPUTS)))
    elif scheme == "llama_depth":
        rules += _per_layer("olmo", "blocks", OLMO_OUTPUTS, n_layers,
                            lambda i: _trunc3(std / math.sqrt(2 * (i + 1))),
                            "trunc_normal(std / sqrt(2 (i + 1)))")
    elif scheme == "mitchell":
        rules.append(r({"function": "mitchell_output"}, optional=False,
                       label="outputs -> mitchell_output",
                       path=anywhere("attention.w_out.weight", "feed_forward.w2.weight")))
    return Plan(rules, name="olmo")


@register("t5")
def t5(d_model: int, d_kv: int, n_heads: int, d_ff: int, factor: float = 1.0) -> Plan:
    """T5 as transformers initializes it: a normal per projection, scaled by its fan-in.

    With ``f = factor`` (``config.initializer_factor``), all ``N(0, f * s)``:

    * attention (``SelfAttention``, ``EncDecAttention``): ``q`` ``s = (d_model d_kv) ** -0.5``,
      ``k``, ``v`` ``d_model ** -0.5``, ``o`` ``(n_heads d_kv) ** -0.5``;
      ``relative_attention_bias`` ``d_model ** -0.5``;
    * ``DenseReluDense``: ``wi`` / ``wi_0`` / ``wi_1`` ``d_model ** -0.5``, ``wo``
      ``d_ff ** -0.5``;
    * ``shared`` embedding, an untied ``lm_head`` and everything else ``s = 1``; the heads of
      ``T5ForQuestionAnswering`` (``qa_outputs``) and ``T5ForSequenceClassification``
      (``classification_head.dense``/``out_proj``) ``d_model ** -0.5``;
    * ``T5LayerNorm`` scales ``f``; biases 0.

    Options:
        d_model: ``config.d_model``, required.
        d_kv: ``config.d_kv``, the size of one head, required.
        n_heads: ``config.num_heads``, required.
        d_ff: ``config.d_ff``, required.
        factor: ``config.initializer_factor``.

    Source: Raffel et al., "Exploring the Limits of Transfer Learning" (JMLR 2020); HF
    ``transformers/models/t5/modeling_t5.py``, ``T5PreTrainedModel._init_weights`` (the same
    in ``mt5`` and ``umt5``); tested against the init captured from
    ``T5ForConditionalGeneration``.
    """
    d_model = positive_int("t5", "d_model", d_model)
    d_kv = positive_int("t5", "d_kv", d_kv)
    n_heads = positive_int("t5", "n_heads", n_heads)
    d_ff = positive_int("t5", "d_ff", d_ff)
    factor = positive_float("t5", "factor", factor)
    r = partial(rule, "t5")

    def normal(s: float) -> Normal:
        return Normal(0.0, factor * s)

    def attention(*projections: str) -> tuple[str, ...]:
        return anywhere(*(f"{a}.{p}.weight" for a in ("SelfAttention", "EncDecAttention")
                           for p in projections))

    per_d_model = normal(d_model ** -0.5)
    return Plan([
        torch_defaults("t5"),
        r(normal(1.0), role="weight"), r(Zeros(), role="bias"), r(Constant(factor), role="scale"),
        r(normal((d_model * d_kv) ** -0.5), path=attention("q")),
        r(per_d_model, path=attention("k", "v")),
        r(normal((n_heads * d_kv) ** -0.5), path=attention("o")),
        r(per_d_model, path=anywhere(
            "relative_attention_bias.weight", "DenseReluDense.wi.weight",
            "DenseReluDense.wi_0.weight", "DenseReluDense.wi_1.weight", "qa_outputs.weight",
            "classification_head.dense.weight", "classification_head.out_proj.weight")),
        r(normal(d_ff ** -0.5), path=anywhere("DenseReluDense.wo.weight")),
    ], name="t5")
