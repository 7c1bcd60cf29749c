"""Fans: how many inputs feed each output of a layer, and how many outputs each input feeds.

The variance-preserving schemes (Glorot & Bengio 2010; He et al. 2015; LeCun et al. 1998) set a
weight's variance from these two numbers. :class:`Fans` holds them for one parameter together with
the blocks of a fused parameter (LSTM gates, packed q/k/v), so a scheme can be applied per block.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from dataclasses import dataclass, field
from typing import Any, Literal, get_args

import torch

from .errors import FanError, InitializerError, short_repr

__all__ = ["Block", "Fans", "FanMode", "FanConvention", "torch_fans", "calculate_fan_in_and_fan_out",
           "calculate_correct_fan"]

FanMode = Literal["fan_in", "fan_out", "fan_avg"]
"""Which fan a variance-scaling scheme divides by (``fan_avg``: their mean)."""
FAN_MODES: tuple[FanMode, ...] = get_args(FanMode)
FanConvention = Literal["semantic", "torch"]
FAN_CONVENTIONS: tuple[FanConvention, ...] = get_args(FanConvention)
"""How fans are read: ``"semantic"`` (from what the layer computes) or ``"torch"``
(torch.nn.init's axis-order rule)."""


@dataclass(frozen=True)
class Block:
    """One block of a fused parameter: rows ``[start, stop)`` of dimension 0, named e.g. ``"f"``."""

    name: str
    start: int
    stop: int


@dataclass(frozen=True)
class Fans:
    """Fan-in and fan-out of one parameter.

    Args:
        fan_in: Number of inputs summed into each output of the layer (per block for fused
            parameters).
        fan_out: Number of outputs each input contributes to (per block).
        receptive_field: Taps per weight (the product of a conv kernel's sizes; 1 for dense layers).
        blocks: For fused parameters, the row blocks along dimension 0 that are separate weight
            matrices (e.g. LSTM gates i, f, g, o); ``fan_in``/``fan_out`` then describe one block.
        assumed: True when the fans were not derived from the layer's semantics but from the
            torch axis-order convention, because the module type has no registered layout.
        convention: ``"semantic"`` (from what the layer computes) or ``"torch"`` (torch.nn.init's
            axis-order rule).
    """

    fan_in: int
    fan_out: int
    receptive_field: int = 1
    blocks: tuple[Block, ...] = field(default=())
    assumed: bool = False
    convention: FanConvention = "semantic"

    def __post_init__(self) -> None:
        for name in ("fan_in", "fan_out", "receptive_field"):
            value = getattr(self, name)
            if isinstance(value, bool) or not isinstance(value, int) or value < 0:
                raise FanError(f"Fans.{name} must be a non-negative int, got {short_repr(value)}")

    @property
    def fan_avg(self) -> float:
        """(fan_in + fan_out) / 2, the Glorot average."""
        return 0.5 * (self.fan_in + self.fan_out)

    def get(self, mode: FanMode) -> float:
        """The fan named by ``mode``: ``"fan_in"``, ``"fan_out"`` or ``"fan_avg"``."""
        if mode == "fan_in":
            return float(self.fan_in)
        if mode == "fan_out":
            return float(self.fan_out)
        if mode == "fan_avg":
            return self.fan_avg
        raise InitializerError(f"fan mode must be one of {FAN_MODES}, got {short_repr(mode)}")

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description (used by manifests)."""
        out: dict[str, Any] = {"fan_in": self.fan_in, "fan_out": self.fan_out}
        if self.receptive_field != 1:
            out["receptive_field"] = self.receptive_field
        if self.blocks:
            out["blocks"] = [[b.name, b.start, b.stop] for b in self.blocks]
        if self.assumed:
            out["assumed"] = True
        out["convention"] = self.convention
        return out


def torch_fans(shape: Sequence[int], what: str = "tensor") -> Fans:
    """Fans by torch.nn.init's axis-order rule, reproducing ``_calculate_fan_in_and_fan_out``.

    ``fan_in = shape[1] * prod(shape[2:])`` and ``fan_out = shape[0] * prod(shape[2:])``.

    Raises:
        FanError: for tensors with fewer than 2 dimensions, where the rule is undefined.
    """
    shape = tuple(int(s) for s in shape)
    if len(shape) < 2:
        raise FanError(
            f"fans cannot be computed for {what} of shape {shape} with fewer than 2 dimensions:"
            " a fan-based scheme needs a weight matrix. For a bias or 1-D tensor use zeros,"
            " constant, normal or uniform, pass fans= explicitly, or let a plan take the fans"
            " from the owning layer."
        )
    receptive = math.prod(shape[2:])
    return Fans(shape[1] * receptive, shape[0] * receptive, receptive, convention="torch")


def calculate_fan_in_and_fan_out(tensor: torch.Tensor) -> tuple[int, int]:
    """``(fan_in, fan_out)`` by torch's axis-order rule (:func:`torch_fans`), with the call and
    message of ``torch.nn.init._calculate_fan_in_and_fan_out``.

    Raises:
        FanError: (a ValueError) for tensors with fewer than 2 dimensions.
    """
    if tensor.dim() < 2:
        raise FanError(f"Fan in and fan out can not be computed for tensor with fewer than 2"
                       f" dimensions (got shape {tuple(tensor.shape)}); use torchinit.fans(module,"
                       " name) for a layer's semantic fans")
    fans = torch_fans(tensor.shape)
    return fans.fan_in, fans.fan_out


def calculate_correct_fan(tensor: torch.Tensor, mode: str) -> int:
    """The fan ``mode`` selects (``"fan_in"`` or ``"fan_out"``, any case), as
    ``torch.nn.init._calculate_correct_fan``.

    Raises:
        InitializerError: (a ValueError) for another mode; FanError for fewer than 2
            dimensions.
    """
    lowered = mode.lower()
    valid_modes = ["fan_in", "fan_out"]
    if lowered not in valid_modes:
        raise InitializerError(f"Mode {lowered} not supported, please use one of {valid_modes}")
    fan_in, fan_out = calculate_fan_in_and_fan_out(tensor)
    return fan_in if lowered == "fan_in" else fan_out
