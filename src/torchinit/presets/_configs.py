"""``ti.presets.from_config``: the preset (and its options) for a transformers config.

The preset is chosen by the config's ``model_type`` and given the options the config holds
(``initializer_range``, the number of layers). Model types with no preset here are an error
that points at ``ti.capture``, which replays any model's own init.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

from ..errors import ConfigError, UnknownNameError, suggest
from .._plan import Plan
from ._mamba import MAMBA_DT_RANGE
from ._registry import get

__all__ = ["from_config", "config_types"]


def _std(config: Any) -> float:
    return float(getattr(config, "initializer_range", 0.02) or 0.02)


def _gpt2(config: Any) -> Plan:
    return get("gpt2", n_layers=int(config.n_layer), std=_std(config))


def _llama(config: Any) -> Plan:
    return get("llama", std=_std(config))


def _bert(config: Any) -> Plan:
    return get("bert", std=_std(config))


def _t5(config: Any) -> Plan:
    return get("t5", d_model=int(config.d_model), d_kv=int(config.d_kv),
               n_heads=int(config.num_heads), d_ff=int(config.d_ff),
               factor=float(config.initializer_factor))


def _mamba(config: Any) -> Plan:
    dt_range = (config.time_step_min, config.time_step_max, config.time_step_floor)
    if dt_range != MAMBA_DT_RANGE:
        raise ConfigError(
            f"the mamba preset draws dt_proj.bias for Mamba's step range (time_step_min,"
            f" time_step_max, time_step_floor) = {MAMBA_DT_RANGE}; this config has {dt_range}."
            " ti.capture(lambda: MambaForCausalLM(config), fallback='eager') keeps the"
            " model's own values for it")
    return get("mamba", dt_rank=int(config.time_step_rank), std=_std(config),
               dt_scale=float(config.time_step_scale), dt_init=config.time_step_init_scheme,
               n_layers=int(config.num_hidden_layers) if config.rescale_prenorm_residual
               else None)


_BY_TYPE: dict[str, Callable[[Any], Plan]] = {
    "gpt2": _gpt2,
    **{t: _llama for t in ("llama", "mistral", "qwen2", "qwen3")},
    **{t: _bert for t in ("bert", "roberta", "distilbert", "electra")},
    **{t: _t5 for t in ("t5", "mt5", "umt5")},
    "mamba": _mamba,
}


def config_types() -> list[str]:
    """The transformers ``model_type`` values :func:`from_config` has a preset for."""
    return sorted(_BY_TYPE)


def from_config(config: Any) -> Plan:
    """The preset for a transformers model config, with its options read from the config.

    Args:
        config: A ``transformers.PretrainedConfig`` (anything with a ``model_type``).

    Returns:
        The plan, e.g. ``gpt2`` with ``n_layers=config.n_layer`` and
        ``std=config.initializer_range`` for GPT-2, ``llama`` for Llama, Mistral and Qwen2,
        ``bert`` for BERT-like encoders, ``t5`` for T5, mT5 and UMT5, ``mamba`` for Mamba.

    Raises:
        UnknownNameError: for a model type with no preset here, suggesting
            ``ti.capture(factory)`` (or ``ti.build(factory, "native")``), which reproduces
            any model's own init.
        ConfigError: for an object without a ``model_type``, or a Mamba config whose step
            range is not Mamba's default (the ``mamba`` preset's ``dt_proj.bias`` assumes it).
    """
    model_type = getattr(config, "model_type", None)
    if not isinstance(model_type, str):
        raise ConfigError(f"from_config takes a transformers config (with a model_type), got"
                          f" {type(config).__name__}")
    if model_type not in _BY_TYPE:
        raise UnknownNameError(
            f"no preset for transformers model type {model_type!r} (presets cover"
            f" {config_types()}).{suggest(model_type, _BY_TYPE)} ti.capture(lambda:"
            " AutoModel.from_config(config)) captures any model's own init as a plan, and"
            " ti.build(factory, 'native') builds with it")
    return _BY_TYPE[model_type](config)
