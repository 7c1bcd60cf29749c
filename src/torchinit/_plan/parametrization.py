"""Parametrizations: rules that decide a parameter's initialization *and* its optimizer scales.

Under a width-aware parametrization (μP, Yang et al. 2022, "Tensor Programs V"; the spectral
parametrization, Yang, Simon & Bernstein 2023) the initialization and the per-parameter
learning rate are one decision: both follow from how the parameter's fans grow with width. A
:class:`Parametrization` is the ``init`` of a rule that makes both: :meth:`initializer` gives
what the parameter is drawn from and :meth:`scales` its learning-rate and weight-decay
multipliers, which the manifest records and :func:`torchinit.param_groups` applies.

A parameter's multipliers come from the *last* matching rule whose init is a parametrization,
even where a later rule of another kind decides its initializer: ``ti.mup(base) +
[Rule(role="layer_scale", init=ti.Constant(1e-5))]`` changes the layer scales' init and keeps
μP's learning rate for them.
"""

from __future__ import annotations

import math
from abc import ABC, abstractmethod
from collections.abc import Callable, Iterable, Mapping
from dataclasses import dataclass
from typing import Any

from torch import nn

from .._fans import Fans
from ..errors import ConfigError, FanError, UnknownNameError, short_repr, suggest
from ..initializers import Initializer
from .._layouts import fans as layer_fans
from .selectors import ParamInfo

__all__ = ["Parametrization", "Scales", "register_parametrization", "parametrization_from_config",
           "width_fans", "forward_requirements"]


@dataclass(frozen=True)
class Scales:
    """What a parametrization does to one parameter's optimizer settings.

    Attributes:
        lr: Multiplier of the base learning rate.
        weight_decay: Multiplier of the base weight decay.
        kind: The parameter's class under the parametrization (``"hidden"``, ``"input"``,
            ``"output"``, ``"vector"``, ``"fixed"``...), shown in the manifest.
        note: How the multipliers were derived, for the manifest.
    """

    lr: float
    weight_decay: float
    kind: str
    note: str

    def __post_init__(self) -> None:
        for name in ("lr", "weight_decay"):
            value = getattr(self, name)
            if not (math.isfinite(value) and value > 0):
                raise ConfigError(f"Scales.{name} must be a finite number > 0, got {value!r}")


def width_fans(info: ParamInfo) -> Fans | None:
    """The fans a width-aware parametrization reads off a parameter: the layer's semantic fans
    for a parameter of >= 2 dimensions (torch's axis order where no layout is registered, as
    μP's reference implementation reads them); ``None`` for 0-D and 1-D parameters (biases,
    gains), whose one dimension is their fan-out."""
    if info.ndim < 2:
        return None
    if info.fans is not None:
        return info.fans
    try:
        return layer_fans(info.module, info.name, convention="torch")
    except FanError:
        return None


class Parametrization(ABC):
    """The ``init`` of a rule that decides initialization and optimizer scales together."""

    name: str = ""

    @abstractmethod
    def initializer(self, info: ParamInfo) -> Initializer:
        """What the parameter is drawn from.

        Raises:
            InitializerError: if the parametrization has no initialization for it (the message
                says which rule to add).
        """

    @abstractmethod
    def scales(self, info: ParamInfo) -> Scales:
        """The parameter's learning-rate and weight-decay multipliers and its class.

        Raises:
            InitializerError: if the parameter cannot be classified (naming it and the fix).
        """

    def model_warnings(self, model: nn.Module) -> list[str]:
        """What the model's forward pass must do for the parametrization to hold and, where it
        can be seen from the modules, does not (one message per kind of problem)."""
        return []

    @abstractmethod
    def to_config(self) -> dict[str, Any]:
        """The JSON-safe form, ``{"parametrization": name, ...options}``."""

    def __eq__(self, other: object) -> bool:
        return type(other) is type(self) and self.to_config() == other.to_config()

    def __hash__(self) -> int:
        return hash(repr(sorted(self.to_config().items(), key=lambda kv: kv[0])))


def forward_requirements(model: nn.Module, inits: Iterable[object]) -> list[str]:
    """What the parametrizations among ``inits`` (rules' inits) need of ``model``'s forward
    pass and can be seen to be missing, each parametrization asked once."""
    out: list[str] = []
    seen: list[Parametrization] = []
    for init in inits:
        if isinstance(init, Parametrization) and init not in seen:
            seen.append(init)
            out += init.model_warnings(model)
    return out


_KINDS: dict[str, Callable[[Mapping[str, Any]], Parametrization]] = {}


def register_parametrization(name: str, from_config: Callable[[Mapping[str, Any]],
                                                              Parametrization]) -> None:
    """Make ``{"parametrization": name, ...}`` in plan files build ``from_config(options)``."""
    if name in _KINDS and _KINDS[name] is not from_config:
        raise ConfigError(f"parametrization {name!r} is already registered")
    _KINDS[name] = from_config


def parametrization_from_config(config: Mapping[str, Any]) -> Parametrization:
    """The parametrization of a ``{"parametrization": name, ...}`` config dict.

    Raises:
        UnknownNameError: for an unregistered name (with close matches).
        ConfigError: for options the parametrization does not take.
    """
    name = config.get("parametrization")
    if name not in _KINDS:
        raise UnknownNameError(f"unknown parametrization {short_repr(name)}; known:"
                               f" {sorted(_KINDS)}." + suggest(str(name), _KINDS),
                               field=("parametrization",))
    options = {k: v for k, v in config.items() if k != "parametrization"}
    return _KINDS[name](options)
