"""The experiments ``torchinit compare`` runs: each is a list of panels (a model, a training
configuration and the schemes to compare on it).

* ``protocol``: the MLP 784-256-128-10 of the classic comparison, Adam, 2 epochs.
* ``depth``: the three panels below in one run.
* ``depth-relu``: a plain 30-layer ReLU MLP, Xavier against Kaiming (He et al., "Delving Deep
  into Rectifiers", ICCV 2015, fig. 3: with Xavier the 30-layer net does not learn, with
  theirs it converges).
* ``depth-tanh``: a plain 100-layer tanh MLP, Gaussian ``N(0, 1/n)`` against orthogonal
  weights (Saxe et al., ICLR 2014; Pennington et al., "Resurrecting the sigmoid", NeurIPS
  2017: orthogonal weights give dynamical isometry, Gaussian ones do not).
* ``depth-lsuv``: the 30-layer ReLU MLP with PyTorch's default, orthogonal, and LSUV (Mishkin &
  Matas, "All you need is a good init", ICLR 2016), which rescales each layer to unit output
  std on a batch: a deep network without normalization layers trains from its start.

The depth panels train one epoch with SGD (momentum 0.9; learning rate 0.004 for the ReLU
networks, 0.01 for the tanh one, decaying linearly to 0 over the epoch) on standardized pixels,
and record the loss of every step and a diagnostics report (:func:`torchinit.inspect`) of each
scheme's initial network.
"""

from __future__ import annotations

from collections.abc import Callable, Sequence
from dataclasses import dataclass, replace
from typing import Any

from torch import nn

from ..errors import UnknownNameError, suggest
from .models import MODELS
from .protocol import TrainConfig
from .schemes import DEFAULT_SCHEMES

__all__ = ["Panel", "EXPERIMENTS", "experiment_panels"]


@dataclass(frozen=True)
class Panel:
    """One comparison: a model, how it trains, the schemes it compares.

    Attributes:
        name: Short name (file names of its plots).
        title: What it shows, for tables and plots.
        model: Name of the model (a built-in name or a MODEL spec).
        build: Makes a fresh model.
        config: How each run trains.
        schemes: Names of the schemes compared.
        diagnose: Record a diagnostics report of each scheme's initial network.
    """

    name: str
    title: str
    model: str
    build: Callable[[], nn.Module]
    config: TrainConfig
    schemes: tuple[str, ...]
    diagnose: bool = False


PROTOCOL = Panel("protocol", "MLP 784-256-128-10, Adam, 2 epochs", "mlp", MODELS["mlp"].build,
                 TrainConfig(), DEFAULT_SCHEMES)
RELU_CONFIG = TrainConfig(epochs=1, batch_size=100, optimizer="sgd", lr=0.004, momentum=0.9,
                          schedule="linear", curve_steps=None, standardize=True)
TANH_CONFIG = replace(RELU_CONFIG, lr=0.01)
DEPTH_RELU = Panel("depth-relu", "plain 30-layer ReLU MLP, SGD + momentum, 1 epoch", "deep-relu",
                   MODELS["deep-relu"].build, RELU_CONFIG, ("xavier", "kaiming"), diagnose=True)
DEPTH_TANH = Panel("depth-tanh", "plain 100-layer tanh MLP, SGD + momentum, 1 epoch",
                   "deep-tanh", MODELS["deep-tanh"].build, TANH_CONFIG, ("normal", "orthogonal"),
                   diagnose=True)
DEPTH_LSUV = Panel("depth-lsuv", "LSUV on a plain 30-layer ReLU MLP, SGD + momentum, 1 epoch",
                   "deep-relu", MODELS["deep-relu"].build, RELU_CONFIG,
                   ("torch-default", "orthogonal", "lsuv"), diagnose=True)

EXPERIMENTS: dict[str, tuple[Panel, ...]] = {
    "protocol": (PROTOCOL,),
    "depth": (DEPTH_RELU, DEPTH_TANH, DEPTH_LSUV),
    "depth-relu": (DEPTH_RELU,),
    "depth-tanh": (DEPTH_TANH,),
    "depth-lsuv": (DEPTH_LSUV,),
}
"""The experiments by name."""

DEFAULT_SEEDS = {"protocol": 3, "depth": 1, "depth-relu": 1, "depth-tanh": 1, "depth-lsuv": 1}
"""Seeds per experiment when none are asked for: 1 for the depth experiments, whose runs take
seconds to a minute each on two cores."""


def experiment_panels(name: str, schemes: Sequence[str] | None = None,
                      model: tuple[str, Callable[[], nn.Module]] | None = None,
                      **config: object) -> list[Panel]:
    """The panels of experiment ``name``, with optional replacements.

    Args:
        name: A key of :data:`EXPERIMENTS`.
        schemes: Scheme names replacing every panel's schemes.
        model: ``(name, build)`` replacing every panel's model.
        **config: :class:`TrainConfig` fields replacing every panel's values (``None``
            values are ignored).

    Raises:
        UnknownNameError: for an unknown experiment (with close matches).
        ConfigError: for invalid training settings.
    """
    if name not in EXPERIMENTS:
        raise UnknownNameError(f"unknown experiment {name!r}; experiments are"
                               f" {list(EXPERIMENTS)}." + suggest(str(name), EXPERIMENTS))
    # any values: TrainConfig checks each field's type and range when it is made
    changes: dict[str, Any] = {k: v for k, v in config.items() if v is not None}
    panels = []
    for panel in EXPERIMENTS[name]:
        panel = replace(panel, config=replace(panel.config, **changes))
        if schemes is not None:
            panel = replace(panel, schemes=tuple(schemes))
        if model is not None:
            panel = replace(panel, model=model[0], build=model[1])
        panels.append(panel)
    return panels
