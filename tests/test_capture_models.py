"""ti.capture against the real libraries: transformers (tiny models from configs), timm and
torchvision (where they import; see tests/thirdparty.py).

For every model: the capture explains every parameter; every parameter of a build from the
captured plan is drawn like the model's own init (constants and zero rows exactly; random ones
by a two-sample KS test and their standard deviations); every buffer equals the one plain
construction gives; capture + build is bitwise capture + apply.
"""

from __future__ import annotations

import warnings
from collections.abc import Callable

import pytest
import torch
from torch import nn

import torchinit as ti

from .native_checks import assert_bitwise_equal, assert_same_init
from .thirdparty import importable

transformers = pytest.importorskip("transformers")
transformers.logging.set_verbosity_error()

TINY = dict(hidden_size=64, intermediate_size=128, num_hidden_layers=2, num_attention_heads=4,
            vocab_size=320)
SEQ2SEQ = dict(d_model=64, encoder_layers=2, decoder_layers=2, encoder_attention_heads=4,
               decoder_attention_heads=4, encoder_ffn_dim=128, decoder_ffn_dim=128,
               vocab_size=320)

TRANSFORMERS: dict[str, Callable[[], nn.Module]] = {
    "bert": lambda: transformers.BertForMaskedLM(transformers.BertConfig(**TINY)),
    "gpt2": lambda: transformers.GPT2LMHeadModel(
        transformers.GPT2Config(n_embd=64, n_layer=2, n_head=4, vocab_size=320,
                                bos_token_id=0, eos_token_id=0)),
    "llama": lambda: transformers.LlamaForCausalLM(
        transformers.LlamaConfig(**TINY, num_key_value_heads=2)),
    "mistral": lambda: transformers.MistralForCausalLM(
        transformers.MistralConfig(**TINY, num_key_value_heads=2)),
    "qwen2": lambda: transformers.Qwen2ForCausalLM(
        transformers.Qwen2Config(**TINY, num_key_value_heads=2)),
    "t5": lambda: transformers.T5ForConditionalGeneration(
        transformers.T5Config(d_model=64, d_ff=128, num_layers=2, num_heads=4, d_kv=16,
                              vocab_size=320)),
    "vit": lambda: transformers.ViTForImageClassification(
        transformers.ViTConfig(**{**TINY, "vocab_size": None}, image_size=32, patch_size=8)),
    "bart": lambda: transformers.BartForConditionalGeneration(transformers.BartConfig(**SEQ2SEQ)),
}

TIMM = [
    "vit_tiny_patch16_224", "deit_tiny_patch16_224", "swin_tiny_patch4_window7_224",
    "convnext_atto", "efficientnet_b0", "resnet18", "regnetx_002", "mobilenetv3_small_050",
    "eva02_tiny_patch14_224", "beit_base_patch16_224", "coatnet_nano_rw_224",
    "maxvit_nano_rw_256", "mixer_s16_224", "densenet121", "levit_128s", "poolformer_s12",
    "cait_xxs24_224", "xcit_nano_12_p16_224", "mobilevit_xxs", "efficientformer_l1",
    "ghostnet_100", "dla34", "rexnet_100", "tiny_vit_5m_224", "fastvit_t8", "edgenext_xx_small",
]
SHALLOW = {"beit_base_patch16_224": {"depth": 2}}  # the smallest BEiT, two blocks of it

TORCHVISION = {
    "resnet18": {}, "convnext_tiny": {}, "efficientnet_b0": {}, "mobilenet_v3_small": {},
    "swin_t": {}, "regnet_y_400mf": {}, "densenet121": {}, "squeezenet1_0": {},
    "shufflenet_v2_x0_5": {}, "mnasnet0_5": {}, "googlenet": {"init_weights": True},
    "maxvit_t": {},
}


def _check(factory: Callable[[], nn.Module], seed: int = 0) -> ti.Plan:
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # the libraries' own deprecation notes
        plan = ti.capture(factory)  # raises, listing them, if any parameter is unexplained
        torch.manual_seed(seed)
        native = factory()
        built = ti.build(factory, plan, seed=seed + 1)
        assert_same_init(native, built)
        applied = factory()
        ti.apply(applied, plan, seed=seed + 1)
    assert_bitwise_equal(built, applied)
    return plan


@pytest.mark.parametrize("name", sorted(TRANSFORMERS))
def test_transformers_models(name):
    plan = _check(TRANSFORMERS[name])
    assert all(r.label.startswith("native ") for r in plan.rules)


def test_native_build_short_form_and_labels():
    model = ti.build(TRANSFORMERS["llama"], "native", seed=5)
    record = model.torchinit_manifest["model.layers.0.self_attn.q_proj.weight"]
    assert record.init == ti.Normal(0.0, 0.02)
    assert record.rule_label == "native LlamaModel._init_weights"  # the sub-model inits first
    assert model.torchinit_manifest["model.norm.weight"].init == ti.Ones()


@pytest.mark.slow
@pytest.mark.skipif(not importable("timm"), reason="timm does not import here")
@pytest.mark.parametrize("name", TIMM)
def test_timm_models(name):
    import timm

    _check(lambda: timm.create_model(name, pretrained=False, num_classes=10,
                                     **SHALLOW.get(name, {})))


@pytest.mark.slow
@pytest.mark.skipif(not importable("torchvision"), reason="torchvision does not import here")
@pytest.mark.parametrize("name", sorted(TORCHVISION))
def test_torchvision_models(name):
    import torchvision

    _check(lambda: getattr(torchvision.models, name)(num_classes=10, **TORCHVISION[name]))


@pytest.mark.skipif(not importable("torchvision"), reason="torchvision does not import here")
def test_torchvision_vit_class_token_and_positions():
    """vit_b_16's class token and position embedding, which no preset matched, are captured:
    zeros and N(0, 0.02)."""
    import torchvision

    def factory() -> nn.Module:
        return torchvision.models.VisionTransformer(image_size=32, patch_size=8, num_layers=2,
                                                    num_heads=2, hidden_dim=64, mlp_dim=128)

    plan = _check(factory)
    manifest = plan.explain(factory())
    assert manifest["class_token"].init == ti.Zeros()
    assert manifest["encoder.pos_embedding"].init == ti.Normal(0.0, 0.02)
