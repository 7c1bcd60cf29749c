"""The bert and gpt2 presets against HF transformers' own initialization.

Each model is built from a small config (no download), so HF runs its ``_init_weights``. What HF
draws for each parameter is restated below from its code (``transformers/modeling_utils.py``,
``PreTrainedModel._init_weights``; ``models/bert/modeling_bert.py``;
``models/gpt2/modeling_gpt2.py``, ``GPT2PreTrainedModel._init_weights``) and compared with the
preset's manifest, with HF's tensors, and with the preset's own draws.
"""

from __future__ import annotations

import math

import pytest

transformers = pytest.importorskip("transformers")

import torch  # noqa: E402
from scipy import stats  # noqa: E402
from torch import nn  # noqa: E402
from transformers.models.gpt2.modeling_gpt2 import GPT2MLP, GPT2Attention  # noqa: E402
from transformers.pytorch_utils import Conv1D  # noqa: E402

import torchinit as ti  # noqa: E402
import torchinit.presets as presets  # noqa: E402

BERT_CONFIG = dict(vocab_size=1000, hidden_size=64, num_hidden_layers=2, num_attention_heads=4,
                   intermediate_size=128, max_position_embeddings=64, pad_token_id=0)
GPT2_CONFIG = dict(vocab_size=1000, n_embd=64, n_layer=3, n_head=4, n_positions=64,
                   bos_token_id=999, eos_token_id=999)
SAMPLED_MIN = 1000  # fewer elements: family and exact values only


def hf_bert(model: nn.Module, path: str) -> tuple[str, float]:
    """HF's choice for a BERT parameter: ("normal", std), ("zeros", 0) or ("ones", 1)."""
    owner, _, name = path.rpartition(".")
    module = model.get_submodule(owner)
    if name == "bias":  # Linear biases, LayerNorm biases, BertLMPredictionHead.bias
        return "zeros", 0.0
    if "LayerNorm" in type(module).__name__:
        return "ones", 1.0
    assert isinstance(module, (nn.Linear, nn.Embedding)), path
    return "normal", model.config.initializer_range


def hf_gpt2(model: nn.Module, path: str) -> tuple[str, float]:
    """HF's choice for a GPT-2 parameter: ``c_proj.weight`` of GPT2Attention/GPT2MLP gets
    ``initializer_range / sqrt(2 n_layer)``."""
    owner, _, name = path.rpartition(".")
    module = model.get_submodule(owner)
    parent = model.get_submodule(owner.rpartition(".")[0])
    config = model.config
    if name == "bias":
        return "zeros", 0.0
    if isinstance(module, nn.LayerNorm):
        return "ones", 1.0
    if owner.endswith("c_proj") and isinstance(parent, (GPT2Attention, GPT2MLP)):
        return "normal", config.initializer_range / math.sqrt(2 * config.n_layer)
    assert isinstance(module, (Conv1D, nn.Embedding)), path
    return "normal", config.initializer_range


def family(init: ti.Initializer) -> tuple[str, float]:
    if init == ti.Zeros():
        return "zeros", 0.0
    if init == ti.Ones():
        return "ones", 1.0
    assert isinstance(init, ti.Normal) and init.mean == 0, init
    return "normal", init.stddev


def build(model_class: type, config: transformers.PretrainedConfig, seed: int) -> nn.Module:
    torch.manual_seed(seed)
    return model_class(config)


def crosscheck(model_class: type, config: transformers.PretrainedConfig, plan: ti.Plan,
               expected) -> ti.Manifest:  # noqa: ANN001
    model = build(model_class, config, seed=0)  # HF's own initialization
    manifest = plan.explain(model)
    ours = build(model_class, config, seed=1)
    ti.apply(ours, plan, seed=2)
    hf_params, our_params = dict(model.named_parameters()), dict(ours.named_parameters())
    assert set(hf_params) == set(manifest.paths())
    for record in manifest:
        kind, scale = expected(model, record.path)
        got_kind, got_scale = family(record.init)
        assert got_kind == kind, record.path
        assert got_scale == pytest.approx(scale, rel=1e-6), record.path
        hf = hf_params[record.path].detach().double()
        mine = our_params[record.path].detach().double()
        if kind != "normal":
            assert torch.all(hf == scale) and torch.all(mine == scale), record.path
            continue
        keep = torch.ones(hf.shape[0], dtype=torch.bool)
        keep[list(record.zero_rows)] = False
        hf, mine = hf[keep].flatten(), mine[keep].flatten()
        if hf.numel() >= SAMPLED_MIN:
            se = scale / math.sqrt(2 * hf.numel())
            assert abs(float(hf.std()) - scale) <= 3 * se, record.path
            assert stats.ks_2samp(hf.numpy(), mine.numpy()).pvalue > 1e-4, record.path
    return manifest


@pytest.mark.parametrize("model_class", [transformers.BertModel, transformers.BertForMaskedLM])
def test_bert_preset_matches_hf_init_weights(model_class):
    config = transformers.BertConfig(**BERT_CONFIG)
    plan = presets.get("bert", std=config.initializer_range)
    manifest = crosscheck(model_class, config, plan, hf_bert)
    prefix = "bert." if model_class is transformers.BertForMaskedLM else ""
    word = manifest[f"{prefix}embeddings.word_embeddings.weight"]
    assert word.zero_rows == (config.pad_token_id,)
    hf = build(model_class, config, seed=0)
    table = dict(hf.named_parameters())[word.path]
    assert torch.all(table[config.pad_token_id] == 0)


@pytest.mark.parametrize("model_class", [transformers.GPT2Model, transformers.GPT2LMHeadModel])
def test_gpt2_preset_matches_hf_init_weights(model_class):
    config = transformers.GPT2Config(**GPT2_CONFIG)
    plan = presets.get("gpt2", n_layers=config.n_layer, std=config.initializer_range)
    manifest = crosscheck(model_class, config, plan, hf_gpt2)
    residual = [r for r in manifest if r.std == pytest.approx(0.02 / math.sqrt(6))]
    assert len(residual) == 2 * config.n_layer
    if model_class is transformers.GPT2LMHeadModel:
        assert manifest["lm_head.weight"].path == "transformer.wte.weight"
