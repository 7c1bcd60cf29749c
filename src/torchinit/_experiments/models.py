"""The built-in example models: 28x28 single-channel inputs, 10 classes, no normalization layers.

* ``mlp``: the protocol's MLP, 784-256-128-10 with ReLU and ``Dropout(0.2)`` after each hidden
  layer (the network of the Udacity "weight initialization" notebook).
* ``deep-relu``: a plain 30-layer ReLU MLP of width 256 (He et al. 2015, sec. 3.2, compared
  Xavier and their initialization on a 30-layer plain network).
* ``deep-tanh``: a plain 100-layer tanh MLP of width 256 (Saxe et al. 2014; Pennington et al.
  2017: orthogonal weights keep deep tanh networks trainable where Gaussian ones stall).
* ``convnet``: four 3x3 convolutions (16-32-32-64 channels, two of them with stride 2), global
  average pooling and a linear classifier.
"""

from __future__ import annotations

from collections import OrderedDict
from collections.abc import Callable
from dataclasses import dataclass

from torch import nn

from ..errors import UnknownNameError, suggest

__all__ = ["MODELS", "BuiltinModel", "build_model", "protocol_mlp", "deep_mlp", "convnet"]

IMAGE_SHAPE = (1, 28, 28)
CLASSES = 10


def protocol_mlp(dropout: float = 0.2) -> nn.Sequential:
    """MLP 784-256-128-10, ReLU, ``Dropout(dropout)`` after each hidden layer."""
    return nn.Sequential(OrderedDict([
        ("flatten", nn.Flatten()),
        ("fc1", nn.Linear(784, 256)), ("relu1", nn.ReLU()), ("drop1", nn.Dropout(dropout)),
        ("fc2", nn.Linear(256, 128)), ("relu2", nn.ReLU()), ("drop2", nn.Dropout(dropout)),
        ("fc3", nn.Linear(128, CLASSES)),
    ]))


_ACTIVATIONS: dict[str, type[nn.Module]] = {"relu": nn.ReLU, "tanh": nn.Tanh}


def deep_mlp(depth: int, width: int = 256, activation: str = "relu") -> nn.Sequential:
    """A plain MLP with ``depth`` Linear layers (``fc1`` ... ``fc{depth}``), the activation after
    every one but the last, no normalization and no skip connections."""
    layers: list[tuple[str, nn.Module]] = [("flatten", nn.Flatten())]
    features = 784
    for i in range(1, depth):
        layers += [(f"fc{i}", nn.Linear(features, width)),
                   (f"act{i}", _ACTIVATIONS[activation]())]
        features = width
    layers.append((f"fc{depth}", nn.Linear(features, CLASSES)))
    return nn.Sequential(OrderedDict(layers))


def convnet() -> nn.Sequential:
    """Conv 16-32-32-64 (3x3, ReLU, stride 2 at the 2nd and 4th), average pool, Linear 64-10."""
    def conv(i: int, cin: int, cout: int, stride: int) -> list[tuple[str, nn.Module]]:
        return [(f"conv{i}", nn.Conv2d(cin, cout, 3, stride=stride, padding=1)),
                (f"relu{i}", nn.ReLU())]

    return nn.Sequential(OrderedDict([
        *conv(1, 1, 16, 1), *conv(2, 16, 32, 2), *conv(3, 32, 32, 1), *conv(4, 32, 64, 2),
        ("pool", nn.AdaptiveAvgPool2d(1)), ("flatten", nn.Flatten()),
        ("fc", nn.Linear(64, CLASSES)),
    ]))


@dataclass(frozen=True)
class BuiltinModel:
    """A built-in example: how to build it, what it is, and its input's shape per example."""

    name: str
    build: Callable[[], nn.Module]
    description: str
    input_shape: tuple[int, ...] = IMAGE_SHAPE


MODELS: dict[str, BuiltinModel] = {m.name: m for m in (
    BuiltinModel("mlp", protocol_mlp, "MLP 784-256-128-10, ReLU, Dropout(0.2)"),
    BuiltinModel("deep-relu", lambda: deep_mlp(30, 256, "relu"),
                 "plain 30-layer ReLU MLP, width 256"),
    BuiltinModel("deep-tanh", lambda: deep_mlp(100, 256, "tanh"),
                 "plain 100-layer tanh MLP, width 256"),
    BuiltinModel("convnet", convnet, "4 conv layers (16-32-32-64), avg pool, Linear 64-10"),
)}
"""The built-in example models by name."""


def build_model(name: str) -> nn.Module:
    """A fresh instance of the built-in model ``name``.

    Raises:
        UnknownNameError: for another name (with close matches).
    """
    if name not in MODELS:
        raise UnknownNameError(f"unknown built-in model {name!r}; built-in models are"
                               f" {list(MODELS)}." + suggest(str(name), MODELS))
    return MODELS[name].build()
