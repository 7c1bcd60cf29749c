"""Name registry of initializers and the JSON-safe config round trip.

Config files never execute code: a config names a registered class, and its other keys are the
class's dataclass fields.
"""

from __future__ import annotations

import dataclasses
import warnings
from collections.abc import Mapping
from typing import Any, TypeVar

from .._deprecation import REMOVED_IN
from .._stack import user_stacklevel
from ..errors import ConfigError, UnknownNameError, at_field, short_repr, suggest
from ._base import Initializer

__all__ = ["register", "deprecate_alias", "get", "names", "from_config", "lookup"]

_BY_NAME: dict[str, type[Initializer]] = {}
_DEPRECATED: dict[str, str] = {}
"""Deprecated alias -> what to write instead (the alias still resolves, with a warning)."""
T = TypeVar("T", bound=type[Initializer])


def register(cls: T) -> T:
    """Class decorator: add an :class:`Initializer` subclass under its ``name`` and ``aliases``.

    Raises:
        ConfigError: if a name is already taken by another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, Initializer)) or not cls.name:
        raise ConfigError(f"register() takes an Initializer subclass with a name, got {cls!r}")
    for n in (cls.name, *cls.aliases):
        owner = _BY_NAME.get(n)
        if owner is not None and owner is not cls:
            raise ConfigError(f"initializer name {n!r} is already registered to {owner.__name__}")
    for n in (cls.name, *cls.aliases):
        _BY_NAME[n] = cls
    return cls


def deprecate_alias(alias: str, cls: type[Initializer], advice: str) -> None:
    """Keep ``alias`` resolving to ``cls``, with a DeprecationWarning that gives ``advice``.

    Deprecated aliases are left out of :func:`names`.
    """
    _BY_NAME[alias] = cls
    _DEPRECATED[alias] = advice


def names(include_aliases: bool = False) -> list[str]:
    """Sorted registered names (canonical names only unless ``include_aliases``)."""
    if include_aliases:
        return sorted(n for n in _BY_NAME if n not in _DEPRECATED)
    return sorted({cls.name for cls in _BY_NAME.values()})


def lookup(name: str) -> type[Initializer]:
    """The class registered under ``name`` (a canonical name or an alias)."""
    if not isinstance(name, str):
        raise ConfigError(f"an initializer name must be a string, got {short_repr(name)}")
    key = name if name in _BY_NAME else name.lower().replace("-", "_")
    if key not in _BY_NAME:
        raise UnknownNameError(
            f"unknown initializer {short_repr(name)}." + suggest(key, names(True))
            + " See torchinit.initializers.names() for the catalog."
        )
    if key in _DEPRECATED:
        warnings.warn(f"the initializer name {key!r} is deprecated and will be removed in"
                      f" torchinit {REMOVED_IN}: {_DEPRECATED[key]}", DeprecationWarning,
                      stacklevel=user_stacklevel())
    return _BY_NAME[key]


def get(name: str, **kwargs: Any) -> Initializer:
    """Build the initializer registered under ``name`` with the given arguments.

    Example:
        >>> get("kaiming_normal", nonlinearity="relu")
        KaimingNormal(negative_slope=0.0, mode='fan_in', nonlinearity='relu')
    """
    cls = lookup(name)
    fields = {f.name for f in dataclasses.fields(cls)}
    unknown = sorted(set(kwargs) - fields)
    if unknown:
        hint = "".join(suggest(u, fields) for u in unknown)
        raise ConfigError(
            f"{cls.name} has no argument(s) {', '.join(map(short_repr, unknown))}; it takes"
            f" {sorted(fields) or 'no arguments'}.{hint}", field=(unknown[0],)
        )
    try:
        return cls(**kwargs)
    except TypeError as err:  # an argument of a type a registered class does not check itself
        raise ConfigError(f"{cls.name}: {err}; check the types of its arguments"
                          f" {sorted(kwargs)}") from err


def from_config(config: Mapping[str, Any]) -> Initializer:
    """Rebuild an initializer from ``Initializer.to_config()``: ``{"name": ..., **arguments}``."""
    if not isinstance(config, Mapping) or "name" not in config:
        raise ConfigError(
            f"an initializer config must be a mapping with a 'name' key, got {short_repr(config)}"
        )
    args = dict(config)
    name = args.pop("name")
    with at_field("name"):
        cls = lookup(name)
    return get(cls.name, **args)
