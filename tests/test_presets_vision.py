"""Vision presets against the init timm's and torchvision's own code performs, captured with
``ti.capture``: for every parameter the preset's scheme is the model's, or has its mean and std.
"""

from __future__ import annotations

import math
from collections.abc import Callable

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError

from .native_checks import assert_same_init

Factory = Callable[[], nn.Module]
TV_VIT = dict(image_size=32, patch_size=8, num_layers=2, num_heads=2, hidden_dim=64, mlp_dim=128)


def timm_model(name: str, **kwargs) -> Factory:
    def factory() -> nn.Module:
        timm = pytest.importorskip("timm")
        return timm.create_model(name, pretrained=False, num_classes=10, **kwargs)
    return factory


def torchvision_model(name: str, **kwargs) -> Factory:
    def factory() -> nn.Module:
        models = pytest.importorskip("torchvision.models")
        if callable(kwargs.get("conv_stem_configs")):
            kwargs["conv_stem_configs"] = kwargs["conv_stem_configs"](models.vision_transformer)
        return getattr(models, name)(num_classes=10, **kwargs)
    return factory


def conv_stem(vision_transformer) -> list:
    config = vision_transformer.ConvStemConfig
    return [config(out_channels=16, kernel_size=3, stride=2),
            config(out_channels=32, kernel_size=3, stride=4)]


def _moments(record: ti.Record) -> tuple[float, float]:
    return (record.init.mean_value(record.fans, record.shape),
            record.init.std(record.fans, record.shape))


def differences(plan: ti.Plan, factory: Factory) -> list[str]:
    """The parameters where ``plan``'s scheme (initializer and fans) is not the one
    ``factory``'s own init uses and differs from it in mean or std (relative 1e-12), or that
    ``plan`` leaves alone."""
    with torch.device("meta"):
        model = factory()
    ours = plan.explain(model)
    found = []
    for theirs in ti.capture(factory).explain(model):
        mine = ours[theirs.path]
        same = (mine.init, mine.fans) == (theirs.init, theirs.fans)
        if mine.init is None or not same and not all(
                math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
                for a, b in zip(_moments(mine), _moments(theirs))):
            found.append(f"{theirs.path}: preset {mine.init}, model {theirs.init}")
    return found


CASES = {
    "convnext-timm": ("convnext", {}, timm_model("convnext_atto")),
    "convnext-timm-options": ("convnext", {"layer_scale": 1e-3, "head_scale": 0.5}, timm_model(
        "convnext_atto", ls_init_value=1e-3, head_init_scale=0.5, head_hidden_size=32)),
    "convnext-timm-v2-grn": ("convnext", {}, timm_model("convnextv2_atto")),
    "convnext-torchvision": ("convnext", {}, torchvision_model("convnext_tiny")),
    "convnext-torchvision-layer-scale": ("convnext", {"layer_scale": 0.1}, torchvision_model(
        "convnext_tiny", layer_scale=0.1)),
    "efficientnet-timm": ("efficientnet", {}, timm_model("efficientnet_b0")),
    "efficientnet-timm-mobilenetv3": ("efficientnet", {}, timm_model("mobilenetv3_small_050")),
    "efficientnet-torchvision": ("efficientnet", {"flavor": "torchvision"},
                                 torchvision_model("efficientnet_b0")),
    "mobilenet-v2": ("mobilenet", {}, torchvision_model("mobilenet_v2")),
    "mobilenet-v3": ("mobilenet", {}, torchvision_model("mobilenet_v3_small")),
    "vit-timm": ("vit", {}, timm_model("vit_tiny_patch16_224", img_size=32)),
    "vit-torchvision": ("vit", {"flavor": "torchvision"},
                        torchvision_model("VisionTransformer", **TV_VIT)),
    "vit-torchvision-pre-logits-conv-stem": ("vit", {"flavor": "torchvision"}, torchvision_model(
        "VisionTransformer", **TV_VIT, representation_size=32, conv_stem_configs=conv_stem)),
}


@pytest.mark.parametrize("case", sorted(CASES))
def test_preset_matches_the_librarys_own_init(case):
    name, options, factory = CASES[case]
    found = differences(ti.presets.get(name, **options), factory)
    assert not found, "\n".join(found)


@pytest.mark.parametrize("flavor, factory", [
    ("torchvision", timm_model("efficientnet_b0")),
    ("timm", torchvision_model("efficientnet_b0")),
], ids=["torchvision-on-timm", "timm-on-torchvision"])
def test_efficientnet_flavors_differ_on_grouped_convs_only(flavor, factory):
    with torch.device("meta"):
        model = factory()
    grouped = {f"{path}.weight" for path, m in model.named_modules()
               if isinstance(m, nn.Conv2d) and m.groups > 1}
    assert grouped
    found = differences(ti.presets.get("efficientnet", flavor=flavor), factory)
    assert {line.partition(":")[0] for line in found} == grouped


def test_vit_default_flavor_is_timms_and_misses_torchvisions():
    timms = ti.presets.get("vit").with_options(on_unmatched="keep")
    found = differences(timms, torchvision_model("VisionTransformer", **TV_VIT))
    paths = {line.partition(":")[0] for line in found}
    assert {"conv_proj.weight", "heads.head.weight", "class_token", "encoder.pos_embedding",
            "encoder.layers.encoder_layer_0.mlp.0.weight"} <= paths


@pytest.mark.parametrize("case", ["vit-torchvision", "mobilenet-v3",
                                  "efficientnet-timm-mobilenetv3"])
def test_applied_values_are_drawn_like_the_models_own(case):
    name, options, factory = CASES[case]
    torch.manual_seed(0)
    native = factory()
    model = factory()
    ti.apply(model, ti.presets.get(name, **options), seed=4)
    assert_same_init(native, model)


def test_torchvision_vit_patch_embedding_reads_torchvisions_fan_in():
    with torch.device("meta"):
        model = torchvision_model("VisionTransformer", **TV_VIT)()
    manifest = ti.presets.get("vit", flavor="torchvision").explain(model)
    assert manifest["conv_proj.weight"].init == ti.TruncatedNormal(
        0.0, math.sqrt(1 / (3 * 8 * 8)), -2.0, 2.0)


def test_layer_scale_role_selects_both_libraries_layer_scales():
    for factory, path in ((timm_model("convnext_atto"), "stages.0.blocks.0.gamma"),
                          (torchvision_model("convnext_tiny"), "features.1.0.layer_scale")):
        with torch.device("meta"):
            record = ti.presets.get("convnext", layer_scale=0.5).explain(factory())[path]
        assert "layer_scale" in record.roles and record.init == ti.Constant(0.5)


def test_convnext_head_scale_scales_the_truncation_bounds_too():
    plan = ti.presets.get("convnext", head_scale=0.25)
    model = nn.Sequential()
    model.add_module("head", nn.Sequential())
    model.head.add_module("fc", nn.Linear(8, 4))
    model.add_module("fc", nn.Linear(8, 4))
    manifest = plan.explain(model)
    assert manifest["head.fc.weight"].init == ti.TruncatedNormal(0.0, 0.005, -0.5, 0.5)
    assert manifest["head.fc.bias"].init == ti.Zeros()
    assert manifest["fc.weight"].init == ti.TruncatedNormal(0.0, 0.02, -2.0, 2.0)


@pytest.mark.parametrize("name, options, wrong", [
    ("vit", {"flavor": "tv"}, "flavor"),
    ("vit", {"flavor": None}, "flavor"),
    ("efficientnet", {"flavor": "torch-vision"}, "flavor"),
    ("convnext", {"layer_scale": 0.0}, "layer_scale"),
    ("convnext", {"head_scale": -1.0}, "head_scale"),
])
def test_bad_options_are_refused(name, options, wrong):
    with pytest.raises(ConfigError, match=f"preset '{name}': option {wrong} must be"):
        ti.presets.get(name, **options)


def test_a_flavor_typo_suggests_the_flavor():
    with pytest.raises(ConfigError, match="'timm', 'torchvision'.*Did you mean 'torchvision'"):
        ti.presets.get("efficientnet", flavor="torch-vision")
