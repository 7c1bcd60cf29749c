"""Selectors: which parameters a rule applies to.

A :class:`Select` combines conditions that must all hold. Every condition is optional; an empty
selector matches every parameter.
"""

from __future__ import annotations

import fnmatch
import re
from collections.abc import Mapping, Sequence
from dataclasses import dataclass, field
from typing import Any, TypeAlias

from torch import nn

from .._fans import Fans
from ..errors import ConfigError, at_field, short_repr, suggest
from .module_types import module_types_matching, type_name
from .regex import LinearRegex
from .roles import ROLES
from .schema import SELECT_KEYS, SELECT_SPECS, check_fields, check_keys

__all__ = ["Select", "ParamInfo", "as_select", "ModuleSpecs", "SELECT_KEYS"]

# Aliases for Select's annotations, inside which its field ``type`` hides the builtin.
_ModuleSpecs: TypeAlias = tuple[type[nn.Module] | str, ...]
"""Module classes or registered names/globs, as ``Select(type=..., within=...)`` keeps them."""
ModuleSpecs: TypeAlias = type[nn.Module] | str | Sequence[type[nn.Module] | str]
"""What ``type=`` and ``within=`` take: a module class or a registered name/glob, or several."""
_ModuleClasses: TypeAlias = tuple[type[nn.Module], ...]


@dataclass(frozen=True)
class ParamInfo:
    """What a selector sees of one parameter (under one of its paths)."""

    path: str
    module: nn.Module
    name: str
    ndim: int
    roles: frozenset[str]
    fans: Fans | None = None
    ancestors: tuple[nn.Module, ...] = ()

    def block_names(self) -> tuple[str, ...]:
        return tuple(b.name for b in self.fans.blocks) if self.fans is not None else ()


def _as_tuple(value: Any) -> tuple[Any, ...]:
    if value is None:
        return ()
    if isinstance(value, (str, type, int)):
        return (value,)
    return tuple(value)


def _unescape(glob: str) -> str | None:
    """The one path a glob matches when it has no wildcard (``[*]`` escapes a literal ``*``),
    else ``None``."""
    if not isinstance(glob, str):
        return None
    plain = re.sub(r"\[([*?\[])\]", "", glob)
    if any(c in plain for c in "*?["):
        return None
    return re.sub(r"\[([*?\[])\]", r"\1", glob)


def _resolve_types(items: tuple[type[nn.Module] | str, ...]) -> tuple[type[nn.Module], ...]:
    """The classes that module classes and registered names or globs (checked) stand for."""
    classes: list[type[nn.Module]] = []
    for t in items:
        classes.extend(module_types_matching(t) if isinstance(t, str) else (t,))
    return tuple(classes)


@dataclass(frozen=True)
class Select:
    """Conditions on a parameter; all given ones must hold.

    Args:
        type: Module class(es) (subclasses match too) or registered names/globs such as
            ``"Linear"`` or ``"Conv*"``.
        path: fnmatch glob(s) on the full dotted parameter path, e.g. ``"encoder.*.weight"``.
        regex: Regular expression searched in the full path, with ``re.search``'s answer
            but in linear time; constructs that need backtracking (backreferences,
            lookarounds, ``\\b``) are refused.
        name: Glob(s) on the parameter's own name: ``"weight"``, ``"bias"``, ``"weight_ih_l*"``.
        role: Role(s) (any of them): weight, bias, norm, scale, embedding, input, recurrent,
            projection, prelu, layer_scale.
        ndim: Number(s) of dimensions.
        within: Module class(es) or names/globs of which some enclosing module (not the owner
            itself) must be an instance, e.g. ``Select(type="Linear", within="MultiheadAttention")``.
        block: Name of one block of a fused parameter (e.g. ``"f"``, the LSTM forget gate, or
            ``"q"``); the rule then applies to that block's rows only.
    """

    type: _ModuleSpecs = field(default=(), compare=False)
    path: tuple[str, ...] = field(default=())
    regex: str | None = None
    name: tuple[str, ...] = field(default=())
    role: tuple[str, ...] = field(default=())
    ndim: tuple[int, ...] = field(default=())
    within: _ModuleSpecs = field(default=(), compare=False)
    block: str | None = None
    # Selectors compare by the classes they resolve to: "Linear" == nn.Linear.
    _classes: _ModuleClasses = field(default=(), init=False, repr=False)
    _within: _ModuleClasses = field(default=(), init=False, repr=False)
    _regex: LinearRegex | None = field(default=None, init=False, repr=False, compare=False)
    # exact paths (no glob characters) are looked up in a set: captured plans list thousands
    _exact: frozenset[str] = field(default=frozenset(), init=False, repr=False, compare=False)
    _globs: tuple[str, ...] = field(default=(), init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        given = {key: getattr(self, key) for key in SELECT_KEYS}
        check_fields({k: v for k, v in given.items() if v is not None
                      and not (isinstance(v, tuple) and not v)}, SELECT_SPECS)  # defaults pass
        for key in ("type", "within", "path", "name", "role", "ndim"):
            object.__setattr__(self, key, _as_tuple(given[key]))
        for key, attribute in (("type", "_classes"), ("within", "_within")):
            if getattr(self, key):
                with at_field(key):
                    object.__setattr__(self, attribute, _resolve_types(getattr(self, key)))
        plain = [(glob, _unescape(glob)) for glob in self.path]
        object.__setattr__(self, "_exact", frozenset(p for _, p in plain if p is not None))
        object.__setattr__(self, "_globs", tuple(g for g, p in plain if p is None))
        for r in self.role:
            if r not in ROLES:
                raise ConfigError(f"unknown role {short_repr(r)}; roles are {ROLES}."
                                  + suggest(r, ROLES), field=("role",))
        if self.regex is not None:
            with at_field("regex"):
                object.__setattr__(self, "_regex", LinearRegex(self.regex))

    def matches(self, p: ParamInfo) -> bool:
        """Whether every given condition holds for ``p`` (the block condition: ``p`` has it)."""
        if self._classes and not isinstance(p.module, self._classes):
            return False
        if self._within and not any(isinstance(a, self._within) for a in p.ancestors):
            return False
        if self.path and p.path not in self._exact \
                and not any(fnmatch.fnmatchcase(p.path, g) for g in self._globs):
            return False
        if self._regex is not None and not self._regex.search(p.path):
            return False
        if self.name and not any(fnmatch.fnmatchcase(p.name, g) for g in self.name):
            return False
        if self.role and not p.roles.intersection(self.role):
            return False
        if self.ndim and p.ndim not in self.ndim:
            return False
        return self.block is None or self.block in p.block_names()

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form; module types by their registered names."""
        out: dict[str, Any] = {}
        for key in ("type", "within"):
            names = [t if isinstance(t, str) else type_name(t) for t in getattr(self, key)]
            if names:
                out[key] = names[0] if len(names) == 1 else names
        for key in ("path", "name", "role", "ndim"):
            value = getattr(self, key)
            if value:
                out[key] = value[0] if len(value) == 1 else list(value)
        if self.regex is not None:
            out["regex"] = self.regex
        if self.block is not None:
            out["block"] = self.block
        return out

    def describe(self) -> str:
        """Short human description, e.g. ``type=Linear name=bias`` (classes by their names,
        registered or not)."""
        fields = {k: getattr(self, k) for k in SELECT_KEYS}
        parts = []
        for key, value in fields.items():
            items = value if isinstance(value, tuple) else (value,)
            shown = [v if isinstance(v, str) else getattr(v, "__name__", str(v))
                     for v in items if v is not None]
            if shown:
                parts.append(f"{key}={shown[0] if len(shown) == 1 else ','.join(map(str, shown))}")
        return " ".join(parts) if parts else "every parameter"


def as_select(match: Select | Mapping[str, Any] | None) -> Select:
    """Accept a :class:`Select`, a dict of its fields, or None (match everything)."""
    if match is None:
        return Select()
    if isinstance(match, Select):
        return match
    if isinstance(match, Mapping):
        check_keys(match, SELECT_KEYS, "selector")
        return Select(**match)
    raise ConfigError(
        f"a selector must be a Select or a dict of its fields, got {short_repr(match)}")
