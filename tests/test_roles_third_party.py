"""Roles of third-party layers: norms recognized by structure, layer scales, with the reason in
the manifest."""

from __future__ import annotations

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit._plan.roles import is_norm, norm_reason, roles_of

from .thirdparty import importable


class MyRMSNorm(nn.Module):
    def __init__(self, d: int) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(d))


class NotANorm(nn.Module):
    """Named like a norm, but holds a matrix: not a norm."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.ones(3, 3))


class Block(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.norm = MyRMSNorm(4)
        self.fc = nn.Linear(4, 4)
        self.gamma = nn.Parameter(torch.full((4,), 1e-5))


def test_structural_norms_and_layer_scales():
    assert roles_of(MyRMSNorm(4), "weight", 1) == {"norm", "scale"}
    assert "MyRMSNorm: a *Norm class with only 1-D weight" in norm_reason(MyRMSNorm(4))
    assert not is_norm(NotANorm()) and norm_reason(nn.LayerNorm(3)) is None
    assert roles_of(Block(), "gamma", 1) == {"layer_scale"}
    assert "layer_scale" not in roles_of(Block(), "gamma", 3)  # a 3-D "gamma" is not one
    record = ti.Plan([ti.Rule(role="norm", init="ones"), ti.Rule(role="layer_scale",
                                                                  init=ti.Constant(1e-5)),
                      ti.Rule(type="Linear", init="zeros")]).explain(Block())
    assert any("norm role: MyRMSNorm" in n for n in record["norm.weight"].notes)
    assert record["gamma"].init == ti.Constant(1e-5)


def test_transformers_norms_are_norms():
    transformers = pytest.importorskip("transformers")
    t5 = transformers.T5ForConditionalGeneration(transformers.T5Config(
        d_model=32, d_ff=64, num_layers=1, num_heads=2, d_kv=16, vocab_size=50))
    llama = transformers.LlamaForCausalLM(transformers.LlamaConfig(
        hidden_size=32, intermediate_size=64, num_hidden_layers=1, num_attention_heads=2,
        num_key_value_heads=1, vocab_size=50))
    for model in (t5, llama):
        norms = [m for m in model.modules() if "Norm" in type(m).__name__]
        assert norms and all(is_norm(m) for m in norms), [type(m).__name__ for m in norms]
    groups = ti.param_groups(llama, weight_decay=0.1)
    decayed = next(g for g in groups if g["weight_decay"] == 0.1)
    assert "model.norm.weight" not in decayed["names"]


@pytest.mark.skipif(not importable("timm"), reason="timm does not import here")
def test_timm_layer_scale_and_norms():
    import timm

    vit = timm.create_model("vit_tiny_patch16_224", pretrained=False, init_values=1e-5,
                            num_classes=10)
    assert roles_of(vit.blocks[0].ls1, "gamma", 1) == {"layer_scale"}
    convnext = timm.create_model("convnext_atto", pretrained=False, num_classes=10)
    norms = [m for m in convnext.modules() if type(m).__name__.endswith("Norm2d")]
    assert norms and all(is_norm(m) for m in norms)
    assert not is_norm(convnext.head)  # NormMlpClassifierHead: has a norm, is not one
