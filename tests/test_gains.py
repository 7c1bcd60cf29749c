"""calculate_gain: torch's values exactly, second-moment gains for the others."""

from __future__ import annotations

import math

import pytest
import torch

import torchinit as ti
from torchinit.errors import InitializerError, UnknownNameError
from torchinit._gains import GAIN_NAMES

TORCH_NAMES = ["linear", "conv1d", "conv2d", "conv3d", "conv_transpose1d", "conv_transpose2d",
               "conv_transpose3d", "sigmoid", "tanh", "relu", "leaky_relu", "selu"]


@pytest.mark.parametrize("name", TORCH_NAMES)
def test_same_as_torch(name):
    assert ti.calculate_gain(name) == torch.nn.init.calculate_gain(name)


@pytest.mark.parametrize("slope", [0, 0.2, 1, math.sqrt(5)])
def test_leaky_relu_slope(slope):
    assert ti.calculate_gain("leaky_relu", slope) == torch.nn.init.calculate_gain(
        "leaky_relu", slope)


@pytest.mark.parametrize("name", ["gelu", "silu", "elu", "softplus", "mish", "hardswish"])
def test_second_moment_rule(name):
    """g = 1 / sqrt(E[f(z)^2]): checked by Monte Carlo with a standard-error tolerance."""
    fn = {"gelu": torch.nn.functional.gelu, "silu": torch.nn.functional.silu,
          "elu": torch.nn.functional.elu, "softplus": torch.nn.functional.softplus,
          "mish": torch.nn.functional.mish, "hardswish": torch.nn.functional.hardswish}[name]
    z = torch.randn(2_000_000, generator=torch.Generator().manual_seed(0), dtype=torch.float64)
    sq = fn(z) ** 2
    moment, se = float(sq.mean()), float(sq.std()) / math.sqrt(z.numel())
    assert abs(ti.calculate_gain(name) ** -2 - moment) <= 5 * se


def test_relu_is_the_second_moment_rule():
    assert "relu" in GAIN_NAMES and ti.calculate_gain("relu") == math.sqrt(2)


def test_errors():
    with pytest.raises(UnknownNameError, match="relu"):
        ti.calculate_gain("rleu")
    with pytest.raises(InitializerError, match="not a valid number"):
        ti.calculate_gain("leaky_relu", "a")  # type: ignore[arg-type]
    with pytest.raises(InitializerError):
        ti.calculate_gain(3)  # type: ignore[arg-type]
