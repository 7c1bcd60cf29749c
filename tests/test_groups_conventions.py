"""``param_groups`` defaults against the weight-decay conventions of timm, transformers and
torchvision, on those libraries' own models.

timm: ``create_optimizer_v2`` groups with ``timm.optim.param_groups_weight_decay(model, wd,
no_weight_decay_list=model.no_weight_decay())``. transformers: ``Trainer.create_optimizer``
decays the parameters ``Trainer.get_decay_parameter_names(model)`` names. Models are built on
the meta device where only their parameter names and shapes matter.
"""

from __future__ import annotations

import pytest
import torch
from torch import nn

from torchinit._groups import param_groups

from .thirdparty import importable

WD = 0.05

needs_timm = pytest.mark.skipif(not importable("timm"), reason="timm does not import here")
needs_torchvision = pytest.mark.skipif(not importable("torchvision"),
                                       reason="torchvision does not import here")


def _decayed(model: nn.Module, **kwargs) -> set[str]:
    return {n for g in param_groups(model, weight_decay=WD, **kwargs) if g["weight_decay"]
            for n in g["names"]}


def _timm_model(name: str) -> nn.Module:
    import timm

    with torch.device("meta"):
        return timm.create_model(name, pretrained=False, num_classes=10)


def _timm_decayed(model: nn.Module) -> set[str]:
    """What ``timm.optim.create_optimizer_v2`` decays: ``param_groups_weight_decay`` with the
    model's own ``no_weight_decay()``, if it has one."""
    from timm.optim import param_groups_weight_decay

    names = {id(p): n for n, p in model.named_parameters()}
    declared = getattr(model, "no_weight_decay", lambda: set())()
    groups = param_groups_weight_decay(model, WD, no_weight_decay_list=declared)
    return {names[id(p)] for g in groups if g["weight_decay"] for p in g["params"]}


@needs_timm
@pytest.mark.parametrize("name, left_out", [
    ("vit_tiny_patch16_224", {"pos_embed", "cls_token"}),
    ("swin_tiny_patch4_window7_224", {"layers.0.blocks.0.attn.relative_position_bias_table"}),
    ("convnext_atto", {"stages.0.blocks.0.gamma"}),
])
def test_timm_models_decay_what_timm_decays(name, left_out):
    model = _timm_model(name)
    ours = _decayed(model)
    assert ours == _timm_decayed(model)
    assert left_out <= {n for n, _ in model.named_parameters()} - ours


@needs_timm
@pytest.mark.parametrize("name, suffix", [
    ("fastvit_t8", "layer_scale.gamma"),  # (C, 1, 1) LayerScale2d: role layer_scale
    ("edgenext_xx_small", "xca.temperature"),  # declared by the attention, not the model
])
def test_timm_models_where_the_defaults_differ_as_documented(name, suffix):
    model = _timm_model(name)
    ours = _decayed(model)
    assert _timm_decayed(model) - ours == {n for n, _ in model.named_parameters()
                                           if n.endswith(suffix)} != set()
    assert ours <= _timm_decayed(model)


@needs_timm
def test_wrapped_timm_model_keeps_its_declarations():
    vit = _timm_model("vit_tiny_patch16_224")
    wrapper = nn.Sequential(vit)
    assert _decayed(wrapper) == {f"0.{n}" for n in _decayed(vit)}
    # timm asks only the outer model, which declares nothing: it decays the position embedding
    assert {"0.pos_embed", "0.cls_token"} <= _timm_decayed(wrapper)


def _transformers():
    return pytest.importorskip("transformers")


def _trainer_decayed(model: nn.Module) -> set[str]:
    """What ``Trainer.create_optimizer`` decays: the trainable ``named_parameters()`` that
    ``get_decay_parameter_names`` lists (it reads nothing of the Trainer, so no instance)."""
    names = set(_transformers().Trainer.get_decay_parameter_names(None, model))
    return {n for n, p in model.named_parameters() if n in names and p.requires_grad}


_SMALL = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4)


def _llama() -> nn.Module:
    tf = _transformers()
    return tf.LlamaForCausalLM(tf.LlamaConfig(**_SMALL, num_key_value_heads=2, vocab_size=320))


def _bert() -> nn.Module:
    tf = _transformers()
    return tf.BertForMaskedLM(tf.BertConfig(**_SMALL, vocab_size=320))


def _gpt2() -> nn.Module:
    tf = _transformers()
    return tf.GPT2LMHeadModel(tf.GPT2Config(n_embd=32, n_layer=1, n_head=2, vocab_size=320,
                                            bos_token_id=0, eos_token_id=0))


def _vit() -> nn.Module:
    tf = _transformers()
    config = tf.ViTConfig(**_SMALL, image_size=32, patch_size=8, num_labels=10)
    return tf.ViTForImageClassification(config)


@pytest.mark.parametrize("build, embeddings", [
    (_llama, {"model.embed_tokens.weight"}),
    (_bert, {"bert.embeddings.word_embeddings.weight"}),
    (_gpt2, {"transformer.wte.weight", "transformer.wpe.weight"}),
    # declares nothing, so decayed, unlike timm's ViT, which declares its pos_embed/cls_token
    (_vit, {"vit.embeddings.cls_token", "vit.embeddings.position_embeddings"}),
])
def test_transformers_models_decay_what_the_trainer_decays(build, embeddings):
    model = build()
    ours = _decayed(model)
    assert ours == _trainer_decayed(model)
    assert embeddings <= ours
    assert not any("norm" in n.lower() or n.endswith("bias") for n in ours)


def test_transformers_convnext_layer_scale_is_where_the_trainer_differs():
    tf = _transformers()
    config = tf.ConvNextConfig(num_stages=2, hidden_sizes=[8, 16], depths=[1, 1], num_labels=10)
    model = tf.ConvNextForImageClassification(config)
    layer_scales = {n for n, _ in model.named_parameters() if n.endswith("layer_scale_parameter")}
    assert len(layer_scales) == 2
    assert _trainer_decayed(model) - _decayed(model) == layer_scales
    assert _decayed(model) <= _trainer_decayed(model)


def test_transformers_t5_relative_attention_bias_is_where_the_trainer_differs():
    tf = _transformers()
    config = tf.T5Config(d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=100)
    model = tf.T5ForConditionalGeneration(config)
    tables = {n for n, _ in model.named_parameters() if "relative_attention_bias" in n}
    assert len(tables) == 2
    assert _decayed(model) - _trainer_decayed(model) == tables
    assert _decayed(model, no_decay_extra=[{"path": "*relative_attention_bias*"}]) == \
        _trainer_decayed(model)


@needs_torchvision
def test_torchvision_convnext_layer_scale_not_decayed():
    import torchvision

    with torch.device("meta"):
        model = torchvision.models.convnext_tiny(num_classes=10)
    ours = _decayed(model)
    layer_scales = {n for n, p in model.named_parameters() if n.endswith("layer_scale")}
    assert len(layer_scales) == 18 and all(model.get_parameter(n).dim() == 3
                                           for n in layer_scales)
    assert not layer_scales & ours
    assert ours == {n for n, p in model.named_parameters()
                    if p.dim() >= 2 and not n.endswith("layer_scale")}
