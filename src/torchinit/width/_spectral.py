r"""The spectral parametrization: initialization and learning rates from each layer's fans.

Yang, Simon & Bernstein (2023), "A Spectral Condition for Feature Learning": feature learning
at every width needs each weight's spectral norm, and that of its updates, to scale as
:math:`\sqrt{n_{out}/n_{in}}`. For a weight with fans :math:`n_{in}, n_{out}`:

* init :math:`N(0, \sigma^2)` with
  :math:`\sigma = \frac{1}{\sqrt{n_{in}}} \min\left(1, \sqrt{n_{out}/n_{in}}\right)`
  (their eq. 4, with the constant 1);
* learning rate (SGD) :math:`\propto n_{out}/n_{in}` (their eq. 5); for Adam, whose updates
  have entries of size about the learning rate, :math:`\propto 1/n_{in}` (their section 4.2).

Biases and normalization scales are weights with fan-in 1 (the paper's treatment of biases):
biases start at 0, scales at 1, and their learning rates follow the same rule with
:math:`n_{in} = 1`. Weight decay is scaled by the inverse of the learning-rate multiplier, as
in :mod:`torchinit.width._mup`. Unlike μP, nothing is relative to a base model: the multipliers
are absolute, so the base learning rate is not the one a standard-parametrization run would use.
"""

from __future__ import annotations

import math
from collections.abc import Mapping
from typing import Any, Literal

from ..errors import ConfigError, InitializerError, describe_target
from ..initializers import Initializer, Normal, Ones, Zeros
from .._plan import Plan, Rule
from .._plan.parametrization import (
    Parametrization,
    Scales,
    register_parametrization,
    width_fans,
)
from .._plan.selectors import ParamInfo
from ..presets._registry import choice, register

__all__ = ["Spectral", "spectral"]

SpectralOptimizer = Literal["sgd", "adam"]
_OPTIMIZERS = ("sgd", "adam")


class Spectral(Parametrization):
    """The spectral parametrization; the ``init`` of the ``"spectral"`` preset's rule.

    Args:
        optimizer: ``"sgd"`` (learning rate x fan_out/fan_in) or ``"adam"`` (x 1/fan_in).
    """

    name = "spectral"

    def __init__(self, optimizer: SpectralOptimizer = "sgd") -> None:
        if optimizer not in _OPTIMIZERS:
            raise ConfigError(f"spectral optimizer must be one of {_OPTIMIZERS}, got"
                              f" {optimizer!r}")
        self.optimizer = optimizer

    @staticmethod
    def _fans(info: ParamInfo) -> tuple[int, int]:
        fans = width_fans(info)
        if fans is not None:
            return fans.fan_in, fans.fan_out
        shape = tuple(getattr(info.module, info.name).shape)
        return 1, (shape[0] if shape else 1)

    def scales(self, info: ParamInfo) -> Scales:
        fan_in, fan_out = self._fans(info)
        if fan_in == 0 or fan_out == 0:
            lr = 1.0
        else:
            lr = fan_out / fan_in if self.optimizer == "sgd" else 1.0 / fan_in
        kind = "vector" if info.ndim < 2 else "weight"
        return Scales(lr=lr, weight_decay=1.0 / lr, kind=kind,
                      note=f"fans {fan_in}/{fan_out} ({self.optimizer}: lr x{lr:.4g})")

    def initializer(self, info: ParamInfo) -> Initializer:
        if info.ndim < 2:
            if "bias" in info.roles:
                return Zeros()
            if "scale" in info.roles:
                return Ones()
            shape = tuple(getattr(info.module, info.name).shape)
            raise InitializerError(
                f"spectral: {describe_target(info.path, shape)} is neither a bias nor a"
                " normalization scale, so the parametrization has no init for it; add a rule"
                " after it (its learning-rate multiplier is kept)")
        fan_in, fan_out = self._fans(info)
        if fan_in == 0:
            return Zeros()
        return Normal(0.0, min(1.0, math.sqrt(fan_out / fan_in)) / math.sqrt(fan_in))

    def to_config(self) -> dict[str, Any]:
        return {"parametrization": self.name, "optimizer": self.optimizer}

    def __repr__(self) -> str:
        return f"Spectral(optimizer={self.optimizer!r})"


def _from_config(options: Mapping[str, Any]) -> Spectral:
    unknown = sorted(set(options) - {"optimizer"})
    if unknown:
        raise ConfigError(f"the spectral parametrization takes only 'optimizer', got {unknown}",
                          field=(unknown[0],))
    return Spectral(options.get("optimizer", "sgd"))


register_parametrization("spectral", _from_config)


@register("spectral")
def spectral(optimizer: str = "sgd") -> Plan:
    """Spectral parametrization (Yang, Simon & Bernstein 2023): weights
    N(0, (min(1, sqrt(fan_out/fan_in)) / sqrt(fan_in))^2), biases 0, norm scales 1; learning
    rates x fan_out/fan_in for SGD (x 1/fan_in for ``optimizer="adam"``), weight decay x the
    inverse. Give the plan to ``ti.param_groups(model, plan=...)`` for the optimizer."""
    parametrization = Spectral(choice("spectral", "optimizer", optimizer, _OPTIMIZERS))  # type: ignore[arg-type]
    return Plan([Rule(init=parametrization, label=f"spectral ({optimizer})")], name="spectral")
