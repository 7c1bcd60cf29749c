"""Presets for residual networks trained with little or no normalization, and for RL: PPO,
Fixup, T-Fixup, DeepNet, ReZero / SkipInit.

Each starts from the ``torch`` preset's rule, as the recipes do (:mod:`.recipes`): layers a
recipe does not name keep PyTorch's defaults. The layers a recipe treats specially are selected
by path globs (options, with defaults for torch's and the reference code's module names); the
rules for them warn when they match nothing, because then the recipe did not happen.
"""

from __future__ import annotations

import math
from collections.abc import Callable, Sequence
from functools import partial
from typing import Any

from ..errors import ConfigError
from ..initializers import (
    Initializer,
    KaimingNormal,
    Ones,
    Orthogonal,
    VarianceScaling,
    XavierNormal,
    XavierUniform,
    Zeros,
)
from .._plan import Plan, Rule
from ._frameworks import torch_defaults
from ._recipes import CONV_TYPES
from ._registry import (anywhere, choice, globs, option_error, positive_float, positive_int,
                       register, rule)

__all__ = ["PPO_POLICY_PATHS", "PPO_VALUE_PATHS", "PPO_LOG_STD_NAMES", "FIXUP_CLASSIFIER_PATHS",
           "TRANSFORMER_SCALED_PATHS", "TRANSFORMER_DECODER_PATHS", "REZERO_NAMES",
           "SKIPINIT_NAMES"]

DENSE_TYPES = ("Linear", *CONV_TYPES)
ATTENTION_TYPES = ("Linear", "MultiheadAttention")
DEEPNET_ARCHITECTURES = ("encoder", "decoder", "encoder-decoder")

PPO_POLICY_PATHS = anywhere("actor.weight", "actor.4.weight", "actor_mean.4.weight",
                             "action_net.weight")
"""The policy heads: CleanRL's ``actor`` (``ppo_atari.py``), the last Linear of its
``actor``/``actor_mean`` Sequential (``ppo.py``, ``ppo_continuous_action.py``), Stable-Baselines3's
``action_net``."""

PPO_VALUE_PATHS = anywhere("critic.weight", "critic.4.weight", "value_net.weight")
"""The value heads: CleanRL's ``critic`` (a Linear, or the last Linear of its Sequential),
Stable-Baselines3's ``value_net``."""

PPO_LOG_STD_NAMES = ("actor_logstd", "log_std")
"""Bare log-std parameters of Gaussian policies: CleanRL's ``actor_logstd``, SB3's ``log_std``."""

FIXUP_CLASSIFIER_PATHS = anywhere("fc.weight")
"""The classification layer of a torchvision-style ResNet (``fc``)."""

_LAYER_WEIGHTS = ("self_attn.in_proj_weight", "self_attn.v_proj_weight",
                  "self_attn.out_proj.weight", "multihead_attn.in_proj_weight",
                  "multihead_attn.v_proj_weight", "multihead_attn.out_proj.weight",
                  "linear1.weight", "linear2.weight")
# the whole weights a value-path glob can name; a packed in_proj_weight is scaled in its v rows
_WHOLE_WEIGHT_NAMES = ("weight", "v_proj_weight")

TRANSFORMER_SCALED_PATHS = anywhere(*(f"layers.*.{w}" for w in _LAYER_WEIGHTS))
"""The value, output and feed-forward weights of every ``nn.TransformerEncoderLayer`` and
``nn.TransformerDecoderLayer`` (under any ``layers`` list): the value projection of
``self_attn``/``multihead_attn`` (``in_proj_weight``, whose v rows are scaled, or
``v_proj_weight``), their ``out_proj.weight``, ``linear1.weight`` and ``linear2.weight``."""

TRANSFORMER_DECODER_PATHS = anywhere(*(f"decoder.layers.*.{w}" for w in _LAYER_WEIGHTS))
"""The same weights in the layers of a module named ``decoder`` (``nn.Transformer.decoder``)."""

REZERO_NAMES = ("alpha", "resweight")
"""ReZero's residual gains: the paper's ``alpha``, the reference code's ``resweight``."""

SKIPINIT_NAMES = ("alpha", "skipinit_gain")
"""SkipInit's branch multipliers: the paper's ``alpha``, timm NF-Net's ``skipinit_gain``."""

Xavier = Callable[..., Initializer]


def _label(option: str, init: Initializer) -> str:
    """``option -> name(args)``, e.g. ``policy_paths -> orthogonal(gain=0.01)``."""
    args = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v!r}"
                     for k, v in init.to_config().items() if k != "name")
    return f"{option} -> {init.name}({args})" if args else f"{option} -> {init.name}"


def _required(preset: str, option: str, init: Initializer, **select: Any) -> Rule:
    """The rule that carries the recipe, for the parameters ``option`` selects: it is labelled
    after the option and warns when it matches nothing."""
    return rule(preset, init, optional=False, label=_label(option, init), **select)


def _at_least(preset: str, option: str, value: Any, low: int) -> int:
    """``value`` if it is an int >= ``low`` (bools refused)."""
    if positive_int(preset, option, value) < low:
        raise option_error(preset, option, f"an int >= {low}", value)
    return int(value)


# -- RL ---------------------------------------------------------------------------------------
@register("ppo")
def ppo(hidden_gain: float = math.sqrt(2), policy_gain: float = 0.01, value_gain: float = 1.0,
        policy_paths: str | Sequence[str] = PPO_POLICY_PATHS,
        value_paths: str | Sequence[str] = PPO_VALUE_PATHS) -> Plan:
    """PPO's actor-critic init: orthogonal weights, ``0.01`` policy head, ``1`` value head.

    * Linear and Conv weights ``orthogonal(gain=hidden_gain)``: ``W W^T = g^2 I`` on the
      ``(out, in * kernel)`` view (entries of RMS ``g / sqrt(max(rows, cols))``); their biases 0.
    * The policy head (``policy_paths``) ``orthogonal(gain=policy_gain)``, so the initial policy
      is near uniform (Andrychowicz et al., "What Matters In On-Policy Reinforcement
      Learning?", ICLR 2021); the value head (``value_paths``)
      ``orthogonal(gain=value_gain)``. Both rules warn if they match nothing.
    * LSTM weights ``orthogonal(gain=1)`` over each whole fused matrix (torch's
      ``orthogonal_``), biases 0 (CleanRL ``ppo_atari_lstm.py``); Gaussian log-std parameters
      (:data:`PPO_LOG_STD_NAMES`) 0. Other layers keep torch's defaults.

    Options:
        hidden_gain: Gain of the hidden layers (``sqrt(2)``, ReLU's ``calculate_gain``).
        policy_gain: Gain of the policy head.
        value_gain: Gain of the value head.
        policy_paths: Path globs of the policy head's weight; the default covers CleanRL's
            ``actor.weight``, ``actor.4.weight``, ``actor_mean.4.weight`` and SB3's
            ``action_net.weight`` (each also under any module).
        value_paths: Path globs of the value head's weight (default CleanRL's
            ``critic.weight``, ``critic.4.weight``, SB3's ``value_net.weight``).

    Source: Engstrom et al., "Implementation Matters in Deep Policy Gradients" (ICLR 2020),
    code-level optimization 3 (orthogonal initialization and layer scaling); Huang et al.,
    "The 37 Implementation Details of Proximal Policy Optimization" (ICLR blog track 2022),
    detail 2; CleanRL ``cleanrl/ppo.py``, ``ppo_atari.py``, ``ppo_continuous_action.py``,
    ``ppo_atari_lstm.py`` (``layer_init``); Stable-Baselines3 ``common/policies.py``
    (``ActorCriticPolicy``, ``ortho_init``).
    """
    hidden = positive_float("ppo", "hidden_gain", hidden_gain)
    policy = Orthogonal(positive_float("ppo", "policy_gain", policy_gain))
    value = Orthogonal(positive_float("ppo", "value_gain", value_gain))
    r = partial(rule, "ppo")
    return Plan([
        torch_defaults("ppo"),
        r(Orthogonal(hidden), type=DENSE_TYPES, role="weight"),
        r(Zeros(), type=DENSE_TYPES, role="bias"),
        r(Orthogonal(1.0), fan_convention="torch", type="LSTM", role="weight"),
        r(Zeros(), type="LSTM", role="bias"),
        r(Zeros(), name=PPO_LOG_STD_NAMES),
        _required("ppo", "policy_paths", policy, path=globs("ppo", "policy_paths", policy_paths)),
        _required("ppo", "value_paths", value, path=globs("ppo", "value_paths", value_paths)),
    ], name="ppo")


# -- residual networks without normalization ----------------------------------------------------
def _fixup_branch_paths(m: int) -> tuple[tuple[str, ...], tuple[str, ...]]:
    """torchvision block names for branches of ``m`` layers: ``conv1`` .. ``conv{m-1}`` and the
    last, ``conv{m}``, in the blocks of ``layer*``."""
    return (anywhere(*(f"layer*.*.conv{i}.weight" for i in range(1, m))),
            anywhere(f"layer*.*.conv{m}.weight"))


@register("fixup")
def fixup(n_layers: int, m: int = 2, branch_paths: str | Sequence[str] | None = None,
          last_paths: str | Sequence[str] | None = None,
          classifier_paths: str | Sequence[str] = FIXUP_CLASSIFIER_PATHS,
          scale_names: str | Sequence[str] = "scale") -> Plan:
    """Fixup: zero the last layer of each residual branch, scale the others by ``L^(-1/(2m-2))``.

    With ``L`` residual branches of ``m`` layers each:

    * Every Linear/Conv weight He-normal with torch's fan-out, ``N(0, 2 / fan_out)``,
      ``fan_out = out_channels * kernel size`` (the reference code's formula, also for the
      downsampling convs and the stem).
    * The branch layers but the last (``branch_paths``): ``std = sqrt(2 / fan_out) *
      L^(-1/(2m-2))``, i.e. ``L^(-1/2)`` for ``BasicBlock`` (m=2), ``L^(-1/4)`` for
      ``Bottleneck`` (m=3).
    * The last layer of each branch (``last_paths``) and the classification layer
      (``classifier_paths``) 0. These three rules warn if they match nothing.
    * Biases 0: layer biases and Fixup's scalar biases (``bias1a``, ``bias2b``, ..., which have
      the ``bias`` role); scalar multipliers (``scale_names``) 1; norm scales 1.

    The default paths follow torchvision's block names for ``m``: ``layer*.*.conv1.weight`` ..
    ``conv{m-1}`` and ``layer*.*.conv{m}.weight`` (at any depth). The reference code leaves the
    stem conv at torch's default; the paper's rule 2 ("every other layer: a standard method")
    is followed here.

    Options:
        n_layers: ``L``, the number of residual branches (blocks), required.
        m: Layers per residual branch, >= 2.
        branch_paths: Path globs of the branch layers that are scaled (default from ``m``).
        last_paths: Path globs of each branch's last layer, zeroed (default from ``m``).
        classifier_paths: Path globs of the classification layer's weight (default
            ``fc.weight``).
        scale_names: Name globs of the scalar multipliers (default ``scale``).

    Source: Zhang, Dauphin & Ma, "Fixup Initialization: Residual Learning Without
    Normalization" (ICLR 2019), the recipe's rules 1-3; reference code ``hongyi-zhang/Fixup``,
    ``imagenet/models/fixup_resnet_imagenet.py`` (``FixupResNet.__init__``).
    """
    branches = positive_int("fixup", "n_layers", n_layers)
    m = _at_least("fixup", "m", m, 2)
    default_branch, default_last = _fixup_branch_paths(m)
    branch = globs("fixup", "branch_paths", default_branch if branch_paths is None
                   else branch_paths)
    last = globs("fixup", "last_paths", default_last if last_paths is None else last_paths)
    classifier = globs("fixup", "classifier_paths", classifier_paths)
    r = partial(rule, "fixup")
    he_scaled = VarianceScaling(2.0 * branches ** (-1.0 / (m - 1)), "fan_out", "normal")
    return Plan([
        torch_defaults("fixup"),
        r(KaimingNormal(mode="fan_out", nonlinearity="relu"), fan_convention="torch", type=DENSE_TYPES,
          role="weight"),
        r(Zeros(), role="bias"),
        r(Ones(), role="scale"),
        r(Ones(), name=globs("fixup", "scale_names", scale_names)),
        _required("fixup", "branch_paths", he_scaled, fan_convention="torch", path=branch),
        _required("fixup", "last_paths", Zeros(), path=last),
        _required("fixup", "classifier_paths", Zeros(), path=classifier),
    ], name="fixup")


def _scaled_transformer(preset: str, xavier: Xavier,
                        groups: Sequence[tuple[str, tuple[str, ...], float]]) -> list[Rule]:
    """torch defaults; every Linear and attention weight ``xavier(gain=1)``, Linear biases 0;
    then, for each ``(option, paths, gain)``, ``xavier(gain)`` for the weights at ``paths``
    (whole ones, and the v rows of a packed ``in_proj_weight``). Later groups win."""
    r = partial(rule, preset)
    rules = [torch_defaults(preset), r(xavier(), type=ATTENTION_TYPES, role="weight"),
             r(Zeros(), type="Linear", role="bias")]
    for option, paths, gain in groups:
        init = xavier(gain=gain)
        rules += [_required(preset, option, init, path=paths, name=_WHOLE_WEIGHT_NAMES),
                  r(init, label=f"{_label(option, init)} (v rows)", path=paths,
                    name="in_proj_weight", block="v")]
    return rules


@register("t-fixup")
def t_fixup(n_layers: int, scaled_paths: str | Sequence[str] = TRANSFORMER_SCALED_PATHS,
            decoder_paths: str | Sequence[str] = TRANSFORMER_DECODER_PATHS) -> Plan:
    """T-Fixup: Xavier weights, ``N(0, d^-1/2)`` embeddings, value/output/MLP weights scaled.

    With ``N`` layers in the encoder and in the decoder:

    * Every Linear and attention weight ``xavier_uniform`` (gain 1; attention input
      projections with per-block fans ``E x E``); Linear biases 0.
    * Scaled, in each encoder layer: the value projection (the v rows of
      ``self_attn.in_proj_weight``, or ``v_proj_weight``), ``self_attn.out_proj.weight``,
      ``linear1.weight`` and ``linear2.weight`` get ``xavier_uniform(gain=0.67 N^(-1/4))``
      (``scaled_paths``). In each decoder layer the same weights and those of the cross
      attention ``multihead_attn`` get ``gain=(9N)^(-1/4)`` (``decoder_paths``, a later
      rule). The query and key projections are not scaled. Both rules warn if they match
      nothing (so an encoder-only model warns about ``decoder_paths``).
    * Every embedding table ``N(0, d^(-1/2))`` scaled by ``(9N)^(-1/4)``:
      ``std = (9N)^(-1/4) / sqrt(d)``, ``d`` its dimension; ``padding_idx`` rows 0.

    T-Fixup also removes layer normalization and learning-rate warm-up: changes of the model
    and the optimizer, not of the init. Norm layers left in the model keep 1 / 0.

    The reference code differs in two details: fairseq's attention draws the q/k projections
    with ``xavier_uniform_(gain=1/sqrt(2))`` (the paper, and this preset, use gain 1), and it
    scales only the token embeddings (``embed_tokens``), not learned position embeddings; add
    a rule after the preset to reproduce either.

    Options:
        n_layers: ``N``, the number of encoder (and decoder) layers, required.
        scaled_paths: Path globs of the scaled weights of every layer (default
            :data:`TRANSFORMER_SCALED_PATHS`: ``nn.TransformerEncoderLayer`` and
            ``nn.TransformerDecoderLayer`` under any ``layers`` list).
        decoder_paths: Path globs of the decoder's scaled weights (default
            :data:`TRANSFORMER_DECODER_PATHS`: the layers of a module named ``decoder``).

    Source: Huang, Perez, Ba & Volkovs, "Improving Transformer Optimization Through Better
    Initialization" (ICML 2020), Algorithm 1; reference code
    ``layer6ai-labs/T-Fixup``, ``fairseq/modules/transformer_layer.py``
    (``fixup_initialization``) and ``fairseq/models/transformer.py``.
    """
    n = positive_int("t-fixup", "n_layers", n_layers)
    rules = _scaled_transformer("t-fixup", XavierUniform, [
        ("scaled_paths", globs("t-fixup", "scaled_paths", scaled_paths), 0.67 * n ** -0.25),
        ("decoder_paths", globs("t-fixup", "decoder_paths", decoder_paths), (9 * n) ** -0.25),
    ])
    rules.append(rule("t-fixup", VarianceScaling((9 * n) ** -0.5, "fan_out", "normal"),
                      role="embedding"))
    return Plan(rules, name="t-fixup")


def _deepnet_betas(architecture: str, n: int, m: int) -> tuple[float, float]:
    """(beta of ``scaled_paths``, beta of ``decoder_paths``) from DeepNet's Figure 2 table."""
    if architecture == "encoder-decoder":
        return 0.87 * (n ** 4 * m) ** (-1 / 16), (12 * m) ** -0.25
    beta = (8 * n) ** -0.25
    return beta, beta


@register("deepnet")
def deepnet(n_layers: int, architecture: str = "encoder", n_decoder_layers: int | None = None,
            scaled_paths: str | Sequence[str] = TRANSFORMER_SCALED_PATHS,
            decoder_paths: str | Sequence[str] = TRANSFORMER_DECODER_PATHS) -> Plan:
    """DeepNet: ``xavier_normal(gain=beta)`` for value, output and FFN weights, gain 1 for q/k.

    ``beta`` (DeepNet's Figure 2 table; ``N`` encoder layers, ``M`` decoder layers):

    ==================  ================================  ================
    architecture        encoder beta                      decoder beta
    ==================  ================================  ================
    ``encoder``         ``(8N)^(-1/4)``                   --
    ``decoder``         --                                ``(8M)^(-1/4)``
    ``encoder-decoder`` ``0.87 (N^4 M)^(-1/16)``          ``(12M)^(-1/4)``
    ==================  ================================  ================

    * Every Linear and attention weight ``xavier_normal`` gain 1 (the q and k projections,
      and Linear layers outside the blocks); Linear biases 0.
    * The value projection (v rows of a packed ``in_proj_weight``, or ``v_proj_weight``),
      ``out_proj.weight``, ``linear1.weight`` and ``linear2.weight`` of every layer
      (``scaled_paths``) ``xavier_normal(gain=beta)``: the encoder's beta, or for a
      decoder-only model ``(8M)^(-1/4)`` with ``M = n_layers``. With
      ``architecture="encoder-decoder"`` the decoder's weights (``decoder_paths``, a later
      rule) get the decoder's beta. These rules warn if they match nothing.

    DeepNorm's residual scaling ``x_{l+1} = LN(alpha x_l + G(x_l))`` (``alpha = (2N)^(1/4)``
    encoder-only, ``(2M)^(1/4)`` decoder-only; ``0.81 (N^4 M)^(1/16)`` and ``(3M)^(1/4)`` for
    the encoder and decoder of an encoder-decoder model) changes the forward pass, not the
    init: the model must implement it; this preset does not (and cannot) apply it.

    The reference implementation (torchscale) multiplies its layers' default init of the
    ``fc1``, ``fc2``, ``out_proj`` and ``v_proj`` weights by beta (``div_(init_scale)``, with
    ``1/1.15`` in place of 0.87) rather than redrawing them as the paper's pseudocode does;
    this preset follows the paper.

    Options:
        n_layers: ``N``, the encoder's layers (``M`` for ``architecture="decoder"``),
            required.
        architecture: ``"encoder"``, ``"decoder"`` or ``"encoder-decoder"``.
        n_decoder_layers: ``M`` for ``"encoder-decoder"`` (default ``n_layers``); refused for
            the other architectures.
        scaled_paths: Path globs of the scaled weights of every layer (default
            :data:`TRANSFORMER_SCALED_PATHS`).
        decoder_paths: Path globs of the decoder's scaled weights in an encoder-decoder model
            (default :data:`TRANSFORMER_DECODER_PATHS`).

    Source: Wang et al., "DeepNet: Scaling Transformers to 1,000 Layers" (arXiv:2203.00555,
    2022), Figure 2 (the pseudocode and the alpha/beta table); torchscale
    ``torchscale/architecture/encoder.py``, ``decoder.py`` (``deepnorm``).
    """
    n = positive_int("deepnet", "n_layers", n_layers)
    arch = choice("deepnet", "architecture", architecture, DEEPNET_ARCHITECTURES)
    if n_decoder_layers is not None and arch != "encoder-decoder":
        raise ConfigError(
            f"preset 'deepnet': option n_decoder_layers applies to"
            f" architecture='encoder-decoder', got it with architecture={arch!r}; give the"
            " layer count as n_layers")
    m = n if n_decoder_layers is None else positive_int("deepnet", "n_decoder_layers",
                                                        n_decoder_layers)
    beta, beta_decoder = _deepnet_betas(arch, n, m)
    groups = [("scaled_paths", globs("deepnet", "scaled_paths", scaled_paths), beta)]
    decoder = globs("deepnet", "decoder_paths", decoder_paths)
    if arch == "encoder-decoder":
        groups.append(("decoder_paths", decoder, beta_decoder))
    return Plan(_scaled_transformer("deepnet", XavierNormal, groups), name="deepnet")


def _zero_gains(preset: str, gain_names: str | Sequence[str]) -> Plan:
    """torch defaults, and 0 for the residual gains named ``gain_names`` (warns if none)."""
    names = globs(preset, "gain_names", gain_names)
    return Plan([torch_defaults(preset), _required(preset, "gain_names", Zeros(), name=names)],
                name=preset)


@register("rezero")
def rezero(gain_names: str | Sequence[str] = REZERO_NAMES) -> Plan:
    """ReZero: every residual gain ``alpha`` starts at 0, so each block starts as the identity.

    A ReZero block computes ``x_{i+1} = x_i + alpha_i F(x_i)`` with a learned scalar
    ``alpha_i`` initialized to 0 (and no normalization). The parameters named ``gain_names``
    get 0; the rule warns if it matches nothing. Every other layer keeps torch's defaults,
    as in the reference code.

    Options:
        gain_names: Name globs of the residual gains (default ``alpha`` and ``resweight``).

    Source: Bachlechner et al., "ReZero is All You Need: Fast Convergence at Large Depth"
    (UAI 2021); reference code ``majumderb/rezero``, ``rezero/transformer/rztx.py``
    (``RZTXEncoderLayer.resweight``, ``RZTXDecoderLayer.resweight``).
    """
    return _zero_gains("rezero", gain_names)


@register("skipinit")
def skipinit(gain_names: str | Sequence[str] = SKIPINIT_NAMES) -> Plan:
    """SkipInit: the scalar multiplier at the end of each residual branch starts at 0.

    A SkipInit block computes ``x_{i+1} = x_i + alpha_i f_i(x_i)`` without normalization, a
    learned scalar ``alpha_i`` initialized to 0, so the network starts as the identity on its
    residual path, as batch normalization biases it towards. The parameters named
    ``gain_names`` get 0; the rule warns if it matches nothing. Every other layer keeps torch's
    defaults.

    Options:
        gain_names: Name globs of the multipliers (default ``alpha`` and ``skipinit_gain``).

    Source: De & Smith, "Batch Normalization Biases Residual Blocks Towards the Identity
    Function in Deep Networks" (NeurIPS 2020), SkipInit; timm ``timm/models/nfnet.py``
    (``NormFreeBlock.skipinit_gain``).
    """
    return _zero_gains("skipinit", gain_names)
