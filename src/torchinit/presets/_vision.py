"""Presets of vision model families: ConvNeXt, EfficientNet, MobileNet (timm and torchvision).

torchvision's ViT is the ``vit`` preset with ``flavor="torchvision"`` (:mod:`.recipes`). Each
preset starts from the ``torch`` preset's rule, like the recipes. The libraries' own classes
(timm's ``LayerScale``, torchvision's ``CNBlock``) are not registered module types, so rules
select their parameters by role, name or path; nothing here imports timm or torchvision.
"""

from __future__ import annotations

from functools import partial

from ..initializers import (Constant, Initializer, KaimingNormal, Normal, TruncatedNormal,
                            VarianceScaling, Zeros)
from .._fans import FanConvention
from .._plan import Plan, Rule
from ._frameworks import torch_defaults
from ._recipes import CONV_TYPES, FLAVORS
from ._registry import anywhere, choice, positive_float, register, rule

__all__ = ["CONVNEXT_HEAD_PATHS", "GRN_PATHS"]

CONVNEXT_HEAD_PATHS = ("*head.*.*",)
"""Parameters of Linear layers whose module path contains ``head.``: the layers timm's ConvNeXt
scales by ``head_init_scale`` (``'head.' in name``): ``head.fc``, ``head.pre_logits.fc``."""

GRN_PATHS = anywhere("grn.weight", "grn.bias")
"""ConvNeXt V2's Global Response Normalization parameters (timm ``GlobalResponseNormMlp``)."""


def _trunc_normal(scale: float = 1.0) -> TruncatedNormal:
    """``trunc_normal_(std=.02)`` (absolute bounds +-2) multiplied by ``scale``: ``N(0, (.02
    scale)^2)`` truncated to ``[-2 scale, 2 scale]``."""
    return TruncatedNormal(0.0, 0.02 * scale, -2.0 * scale, 2.0 * scale)


@register("convnext")
def convnext(layer_scale: float = 1e-6, head_scale: float = 1.0) -> Plan:
    """ConvNeXt as timm and torchvision initialize it: ``trunc_normal_(std=.02)`` weights.

    * Conv and Linear weights ``trunc_normal_(std=.02)`` with absolute bounds +-2, their biases
      0 (timm and torchvision do this for Conv2d and Linear; here Conv1d and Conv3d too).
    * LayerScale (``role=layer_scale``: timm ``ConvNeXtBlock.gamma``, torchvision
      ``CNBlock.layer_scale``) ``layer_scale``.
    * ConvNeXt V2's GRN weight and bias (``GRN_PATHS``) 0; LayerNorm 1 / 0 (torch defaults).
    * ``head_scale``: timm's ``head_init_scale`` multiplies the weight and bias of every Linear
      whose module path contains ``head.`` (``head.fc``, ``head.pre_logits.fc``:
      ``CONVNEXT_HEAD_PATHS``): weights ``trunc_normal_(std=.02 * head_scale)`` with bounds
      ``+-2 * head_scale``, biases stay 0. torchvision's head (``classifier.2``) is not scaled,
      and has no such option.

    timm and torchvision agree on everything else, so there is no ``flavor`` option.

    Options:
        layer_scale: The LayerScale init value (timm ``ls_init_value``, torchvision
            ``layer_scale``).
        head_scale: timm's ``head_init_scale``.

    Source: Liu et al., "A ConvNet for the 2020s" (CVPR 2022); Woo et al., "ConvNeXt V2"
    (CVPR 2023); timm ``timm/models/convnext.py``, ``_init_weights`` and
    ``ConvNeXtBlock.__init__``; torchvision ``torchvision/models/convnext.py``,
    ``ConvNeXt.__init__`` and ``CNBlock.__init__``; tested against the init captured from
    timm's ``convnext_atto`` / ``convnextv2_atto`` and torchvision's ``convnext_tiny``
    (``tests/test_presets_vision.py``).
    """
    layer_scale = positive_float("convnext", "layer_scale", layer_scale)
    head_scale = positive_float("convnext", "head_scale", head_scale)
    r = partial(rule, "convnext")
    layers = (*CONV_TYPES, "Linear")
    rules = [
        torch_defaults("convnext"),
        r(_trunc_normal(), type=layers, role="weight"),
        r(Zeros(), type=layers, role="bias"),
        r(Constant(layer_scale), role="layer_scale"),
        r(Zeros(), path=GRN_PATHS),
    ]
    if head_scale != 1.0:
        rules.append(r(_trunc_normal(head_scale), type="Linear", role="weight",
                       path=CONVNEXT_HEAD_PATHS))
    return Plan(rules, name="convnext")


def _fan_out_convs(preset: str, conv_fans: FanConvention, linear: Initializer) -> list[Rule]:
    """torch defaults; conv weights ``kaiming_normal_(mode="fan_out")`` read with ``conv_fans``,
    Linear weights ``linear``, conv and Linear biases 0 (norms keep torch's 1 / 0)."""
    r = partial(rule, preset)
    return [
        torch_defaults(preset),
        r(KaimingNormal(mode="fan_out"), fan_convention=conv_fans, type=CONV_TYPES, role="weight"),
        r(linear, type="Linear", role="weight"),
        r(Zeros(), type=(*CONV_TYPES, "Linear"), role="bias"),
    ]


@register("efficientnet")
def efficientnet(flavor: str = "timm") -> Plan:
    """EfficientNet as timm (default) or torchvision initializes it: fan-out normal convs.

    * Conv weights ``N(0, 2 / fan_out)`` (``kaiming_normal_(mode="fan_out")``), biases 0.
      The flavors differ only in a grouped conv's fan-out: timm (``fix_group_fanout=True``, as
      TensorFlow's reference) uses ``kh * kw * out_channels / groups`` (semantic fans), so a
      3x3 depthwise conv gets ``N(0, 2 / 9)``; torchvision uses torch's ``kh * kw *
      out_channels`` (torch fans), groups ignored.
    * Linear weights (the classifier) ``U(+-1 / sqrt(out_features))``
      (``VarianceScaling(1/3, "fan_out", "uniform")``), biases 0.
    * BatchNorm (and GroupNorm) 1 / 0, as torch's defaults.

    timm initializes its MobileNetV3, MobileNetV5, MnasNet, MixNet and ReXNet the same way
    (``efficientnet_init_weights``), so ``flavor="timm"`` serves them too. timm's CondConv
    models (``efficientnet_cc_*``: ``CondConv2d`` expert weights and ``routing_fn``) are not
    covered; replay them with ``ti.capture``.

    Options:
        flavor: ``"timm"`` or ``"torchvision"``.

    Source: Tan & Le, "EfficientNet" (ICML 2019); timm
    ``timm/models/_efficientnet_builder.py``, ``_init_weight_goog``; torchvision
    ``torchvision/models/efficientnet.py``, ``EfficientNet.__init__``; tested against the init
    captured from timm's ``efficientnet_b0`` and ``mobilenetv3_small_050`` and torchvision's
    ``efficientnet_b0`` (``tests/test_presets_vision.py``).
    """
    conventions: dict[str, FanConvention] = {"timm": "semantic", "torchvision": "torch"}
    conv_fans = conventions[choice("efficientnet", "flavor", flavor, FLAVORS)]
    classifier = VarianceScaling(1.0 / 3.0, "fan_out", "uniform")
    return Plan(_fan_out_convs("efficientnet", conv_fans, classifier), name="efficientnet")


@register("mobilenet")
def mobilenet() -> Plan:
    """MobileNetV2 / V3 as torchvision initializes them.

    * Conv weights ``kaiming_normal_(mode="fan_out")`` with torch's fans (``kh * kw *
      out_channels``, groups ignored, also for depthwise convs), biases 0.
    * Linear weights ``N(0, 0.01)``, biases 0.
    * BatchNorm (and GroupNorm) 1 / 0, as torch's defaults.

    timm's MobileNetV3 follows its EfficientNet init: use ``efficientnet(flavor="timm")``.

    Options: none.

    Source: Sandler et al., "MobileNetV2" (CVPR 2018); Howard et al., "Searching for
    MobileNetV3" (ICCV 2019); torchvision ``torchvision/models/mobilenetv2.py``,
    ``MobileNetV2.__init__``, and ``torchvision/models/mobilenetv3.py``,
    ``MobileNetV3.__init__``; tested against the init captured from torchvision's
    ``mobilenet_v2`` and ``mobilenet_v3_small`` (``tests/test_presets_vision.py``).
    """
    return Plan(_fan_out_convs("mobilenet", "torch", Normal(0.0, 0.01)), name="mobilenet")
