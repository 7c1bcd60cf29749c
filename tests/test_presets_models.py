"""Presets against the init the libraries' own code performs, captured (``ti.capture``):
for every parameter the preset's scheme is the model's, or draws the same distribution."""

from __future__ import annotations

import math

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit.errors import UnknownNameError

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            vocab_size=320, initializer_range=0.03)
CONFIGS = {
    "llama": lambda: transformers.LlamaConfig(**TINY, num_key_value_heads=2),
    "mistral": lambda: transformers.MistralConfig(**TINY, num_key_value_heads=2),
    "qwen2": lambda: transformers.Qwen2Config(**TINY, num_key_value_heads=2),
    "llama-tied": lambda: transformers.LlamaConfig(**TINY, num_key_value_heads=2,
                                                   tie_word_embeddings=True),
    "gpt2": lambda: transformers.GPT2Config(n_embd=64, n_layer=3, n_head=4, vocab_size=320,
                                            bos_token_id=0, eos_token_id=0,
                                            initializer_range=0.03),
    "bert": lambda: transformers.BertConfig(**TINY),
}


def _moments(record) -> tuple[float, float]:
    init = record.init
    return init.mean_value(record.fans, record.shape), init.std(record.fans, record.shape)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_from_config_matches_the_models_own_init(name):
    config = CONFIGS[name]()

    def factory() -> nn.Module:
        return transformers.AutoModelForCausalLM.from_config(config) if name != "bert" \
            else transformers.BertForMaskedLM(config)

    model = factory()
    preset = ti.presets.from_config(config).explain(model)
    native = ti.capture(factory).explain(model)
    different = []
    for theirs in native:
        ours = preset[theirs.path]
        if (ours.init, ours.fans) != (theirs.init, theirs.fans) and not all(
                math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
                for a, b in zip(_moments(ours), _moments(theirs))):
            different.append(f"{theirs.path}: preset {ours.init}, model {theirs.init}")
    assert not different, "\n".join(different)


def test_llama_norms_are_norms_and_get_the_norm_note():
    config = CONFIGS["llama"]()
    model = transformers.LlamaForCausalLM(config)
    record = ti.presets.get("llama").explain(model)["model.norm.weight"]
    assert record.init == ti.Ones() and "norm" in record.roles
    assert any("LlamaRMSNorm: a *Norm class" in note for note in record.notes)


def test_from_config_names_the_way_out_for_other_models():
    with pytest.raises(UnknownNameError, match=r"'bart'.*ti\.capture"):
        ti.presets.from_config(transformers.BartConfig())
    with pytest.raises(ti.errors.ConfigError, match="model_type"):
        ti.presets.from_config(object())


def test_llama_preset_builds_like_apply():
    config = CONFIGS["qwen2"]()
    built = ti.build(lambda: transformers.Qwen2ForCausalLM(config), "native", seed=2)
    plan = ti.presets.from_config(config)
    again = ti.build(lambda: transformers.Qwen2ForCausalLM(config), plan, seed=2)
    applied = transformers.Qwen2ForCausalLM(config)
    ti.apply(applied, plan, seed=2)
    for (path, a), (_, b) in zip(again.named_parameters(), applied.named_parameters()):
        assert torch.equal(a, b), path
    assert built.model.layers[0].self_attn.q_proj.bias.abs().sum() == 0
