"""Base shapes: every parameter's shape and fans in the base-width model μP is relative to.

μP (Yang et al. 2022, "Tensor Programs V") compares each parameter of the model being trained
with the same parameter of a *base* model, built from the same code at a small width: the fans
that differ are the ones that grow with width ("infinite"), and the ratios of the fans are the
width multipliers. :class:`BaseShapes` holds what that needs, read off a model, a factory (built
on the meta device, so a base of any size costs no memory) or a JSON file written by
:meth:`BaseShapes.save`.
"""

from __future__ import annotations

import json
import os
from collections.abc import Callable, Iterator, Mapping
from dataclasses import dataclass, replace
from pathlib import Path
from typing import Any, Union

from torch import nn

from .._fans import Fans
from .._construct import construct
from ..errors import ConfigError
from .._plan.parametrization import width_fans
from .._plan.plan import collect_params

__all__ = ["BaseShape", "BaseShapes", "Base"]

_FORMAT = "torchinit.base_shapes/1"


@dataclass(frozen=True)
class BaseShape:
    """One parameter at base width: its shape, for >= 2-D parameters its fans, and, when the
    base shapes were read with a ``delta`` model, which of them grow with width.

    Attributes:
        shape: The base parameter's shape.
        fan_in: Its fan-in (``None`` for 0-D and 1-D parameters, or a bare shape).
        fan_out: Its fan-out.
        grows: ``(fan-in grows, fan-out grows)`` (for 0-D and 1-D parameters, fan-out is the
            one dimension), from a comparison with the delta model; ``None``: unknown, and
            the model μP is applied to decides (what differs from the base grows).
    """

    shape: tuple[int, ...]
    fan_in: int | None = None
    fan_out: int | None = None
    grows: tuple[bool, bool] | None = None

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"shape": list(self.shape)}
        if self.fan_in is not None:
            out["fans"] = [self.fan_in, self.fan_out]
        if self.grows is not None:
            out["grows"] = list(self.grows)
        return out


def _entry(value: Any, where: str) -> BaseShape:
    if isinstance(value, list):  # a bare shape
        value = {"shape": value}
    if not isinstance(value, Mapping) or set(value) - {"shape", "fans", "grows"} \
            or "shape" not in value:
        raise ConfigError(f"{where} must be {{'shape': [...], 'fans': [fan_in, fan_out],"
                          f" 'grows': [bool, bool]}} or a shape list, got {value!r}")
    shape, fans, grows = value["shape"], value.get("fans"), value.get("grows")
    if not isinstance(shape, list) or not all(type(d) is int and d >= 0 for d in shape):
        raise ConfigError(f"{where}.shape must be a list of sizes >= 0, got {shape!r}")
    if fans is not None and (not isinstance(fans, list) or len(fans) != 2
                             or not all(type(f) is int and f >= 0 for f in fans)):
        raise ConfigError(f"{where}.fans must be [fan_in, fan_out], got {fans!r}")
    if grows is not None and (not isinstance(grows, list) or len(grows) != 2
                              or not all(isinstance(g, bool) for g in grows)):
        raise ConfigError(f"{where}.grows must be [fan-in grows, fan-out grows], got {grows!r}")
    fan_in, fan_out = fans or (None, None)
    return BaseShape(tuple(shape), fan_in, fan_out,
                     None if grows is None else (grows[0], grows[1]))


def _with_growth(path: str, base: BaseShape, delta: BaseShape) -> BaseShape:
    """``base`` with ``grows`` read off the comparison with the same parameter of ``delta``."""
    if len(base.shape) != len(delta.shape):
        raise ConfigError(f"μP delta: parameter {path!r} has shape {delta.shape}, but"
                          f" {base.shape} in the base; only sizes may differ")
    if base.fan_in is None or delta.fan_in is None:
        grows = (False, base.shape[:1] != delta.shape[:1]) if len(base.shape) < 2 else (
            base.shape[1] != delta.shape[1],
            base.shape[0] != delta.shape[0] or base.shape[2:] != delta.shape[2:])
    else:
        grows = (base.fan_in != delta.fan_in, base.fan_out != delta.fan_out)
    return replace(base, grows=grows)


class BaseShapes(Mapping[str, BaseShape]):
    """Parameter path -> :class:`BaseShape`, for every path a parameter is reachable under
    (tied parameters under each of their names).

    Build it with :meth:`of`; save and load it with :meth:`save` and :meth:`load`.
    """

    def __init__(self, entries: Mapping[str, BaseShape]) -> None:
        self._entries = dict(entries)

    def __getitem__(self, path: str) -> BaseShape:
        return self._entries[path]

    def __iter__(self) -> Iterator[str]:
        return iter(self._entries)

    def __len__(self) -> int:
        return len(self._entries)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, BaseShapes) and self._entries == other._entries

    def __hash__(self) -> int:
        return hash(tuple(sorted(self._entries.items())))

    def __repr__(self) -> str:
        return f"<BaseShapes: {len(self)} parameters>"

    @classmethod
    def of(cls, base: Base, delta: Base | None = None) -> BaseShapes:
        """The base shapes of a model, of ``factory()`` (built on the meta device), of a saved
        file, or ``base`` itself if it already is one.

        Args:
            base: The base-width model (or factory, file, base shapes).
            delta: The same model at another width (microsoft/mup's ``delta``): the fans that
                differ between the two are the ones that grow with width, recorded in each
                entry's ``grows``. Without it, what grows is read off each model μP is
                applied to, by comparing it with the base, which cannot tell at the base
                width itself (there nothing differs, so every parameter is ``fixed`` and the
                output layer is not zero-initialized).

        Raises:
            ConfigError: for anything else, a file that is not a base-shapes file, or a delta
                whose parameters are not the base's.
            PlanError: if the model has lazy parameters that have no shape yet.
        """
        shapes = cls._read(base)
        if delta is None:
            return shapes
        other = cls._read(delta)
        if set(other) != set(shapes):
            differ = sorted(set(other) ^ set(shapes))
            raise ConfigError(f"the μP delta model's parameters are not the base's: e.g."
                              f" {differ[0]!r} is in only one of them")
        return cls({path: _with_growth(path, entry, other[path])
                    for path, entry in shapes.items()})

    @classmethod
    def _read(cls, base: Base) -> BaseShapes:
        if isinstance(base, BaseShapes):
            return base
        if isinstance(base, (str, os.PathLike)):
            return cls.load(base)
        if isinstance(base, nn.Module):
            model = base
        elif callable(base):
            model = construct(base, what="ti.mup")
        else:
            raise ConfigError("the μP base must be a model, a factory () -> model, a"
                              f" base-shapes file or BaseShapes, got {type(base).__name__}")
        entries: dict[str, BaseShape] = {}
        for param in collect_params(model):
            for info in param.infos:  # a tied alias in another layer has that layer's fans
                fans: Fans | None = width_fans(info)
                entries[info.path] = BaseShape(tuple(param.tensor.shape),
                                               *((fans.fan_in, fans.fan_out) if fans
                                                 else (None, None)))
        return cls(entries)

    def to_dict(self) -> dict[str, Any]:
        return {"format": _FORMAT,
                "parameters": {path: e.to_dict() for path, e in self._entries.items()}}

    @classmethod
    def from_dict(cls, data: Any, where: str = "base shapes") -> BaseShapes:
        """Read :meth:`to_dict`'s form; a plain ``{path: shape}`` mapping is accepted too (fans
        are then read off the trained model with the base's sizes, see
        :class:`~torchinit.width.MuP`).

        Raises:
            ConfigError: naming the entry that is malformed.
        """
        if isinstance(data, Mapping) and "parameters" in data:
            if data.get("format") != _FORMAT:
                raise ConfigError(f"{where}: format must be {_FORMAT!r}, got"
                                  f" {data.get('format')!r}")
            data = data["parameters"]
        if not isinstance(data, Mapping):
            raise ConfigError(f"{where} must map parameter paths to shapes, got {data!r}")
        return cls({str(p): _entry(v, f"{where}[{p!r}]") for p, v in data.items()})

    def save(self, path: str | os.PathLike[str]) -> None:
        """Write the base shapes as JSON."""
        Path(path).write_text(json.dumps(self.to_dict(), indent=1) + "\n")

    @classmethod
    def load(cls, path: str | os.PathLike[str]) -> BaseShapes:
        """Read a file written by :meth:`save` (or a JSON ``{path: shape}`` mapping).

        Raises:
            ConfigError: if the file is missing, not JSON, or not base shapes.
        """
        try:
            data = json.loads(Path(path).read_text())
        except OSError as err:
            raise ConfigError(f"cannot read base shapes {str(path)!r}: {err}") from None
        except json.JSONDecodeError as err:
            raise ConfigError(f"base shapes {str(path)!r} is not JSON: {err}") from None
        return cls.from_dict(data, where=f"base shapes {str(path)!r}")


Base = Union[nn.Module, Callable[[], nn.Module], BaseShapes, str, "os.PathLike[str]"]
"""What μP takes as its base: a model, a factory, base shapes or a saved base-shapes file."""
