"""The fields of plans, rules and selectors: what each accepts, declared once.

The constructors (:class:`~torchinit.Plan`, :class:`~torchinit.Rule`,
:class:`~torchinit.Select`) check their arguments against these specs, and plan files are
read by calling those constructors, so a value is accepted or refused the same way from Python
and from a file. A refusal is a :class:`~torchinit.errors.ConfigError` whose ``field`` names
the key, which the file loader turns into ``rules[2].tags`` and a line number.
"""

from __future__ import annotations

from collections.abc import Callable, Mapping
from dataclasses import dataclass
from typing import Any, Literal, get_args

from torch import nn

from .._fans import FAN_CONVENTIONS
from ..errors import ConfigError, short_repr, suggest

__all__ = ["OnUnmatched", "UNMATCHED", "FieldSpec", "check_fields", "check_keys", "typed_repr",
           "PLAN_SPECS", "RULE_SPECS", "SELECT_SPECS", "SELECT_KEYS", "RULE_OPTIONS"]


OnUnmatched = Literal["error", "warn", "keep"]
"""What a plan does with a parameter no rule matches: raise, warn and keep it, or keep it."""
UNMATCHED: tuple[OnUnmatched, ...] = get_args(OnUnmatched)


def typed_repr(value: Any) -> str:
    """``value`` for a message, after its type as a plan file would call it: ``list [1, 2]``,
    ``null None``."""
    kind = "null" if value is None else type(value).__name__
    return f"{kind} {short_repr(value)}"


@dataclass(frozen=True)
class FieldSpec:
    """One field: the values it accepts and how to say so."""

    accepts: Callable[[Any], bool]
    expected: str

    def check(self, key: str, value: Any) -> None:
        """Raise ``ConfigError(field=(key,))`` unless ``value`` is accepted."""
        if not self.accepts(value):
            raise ConfigError(f"{key} must be {self.expected}, got {typed_repr(value)}",
                              field=(key,))


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _one_or_list(accepts: Callable[[Any], bool]) -> Callable[[Any], bool]:
    """Accept one value, or a list or tuple of values, that ``accepts``."""
    return lambda v: accepts(v) or (isinstance(v, (list, tuple)) and all(map(accepts, v)))


def _is_module_spec(value: Any) -> bool:
    return isinstance(value, str) or (isinstance(value, type) and issubclass(value, nn.Module))


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


_STRINGS = FieldSpec(_one_or_list(_is_str), "a string or a list of strings")
_MODULES = FieldSpec(_one_or_list(_is_module_spec),
                     "a module type name (or glob), a module class, or a list of them")
_FLAG = FieldSpec(lambda v: isinstance(v, bool), "true or false")

SELECT_SPECS: Mapping[str, FieldSpec] = {
    "type": _MODULES,
    "within": _MODULES,
    "path": _STRINGS,
    "regex": FieldSpec(lambda v: v is None or _is_str(v), "a string"),
    "name": _STRINGS,
    "role": _STRINGS,
    "ndim": FieldSpec(_one_or_list(lambda v: _is_int(v) and v >= 0),
                      "a non-negative integer or a list of them"),
    "block": FieldSpec(lambda v: v is None or _is_str(v), "a block name (a string)"),
}
"""The selector keys (``Rule(type=..., role=...)``, and the same keys in a plan file)."""
SELECT_KEYS = tuple(SELECT_SPECS)

RULE_SPECS: Mapping[str, FieldSpec] = {
    "tags": _STRINGS,
    "fan_convention": FieldSpec(lambda v: v in FAN_CONVENTIONS, f"one of {FAN_CONVENTIONS}"),
    "label": FieldSpec(lambda v: v is None or _is_str(v), "a string"),
    "optional": _FLAG,
    "override": _FLAG,
}
"""A rule's options besides its selector keys and ``init``."""
RULE_OPTIONS = tuple(RULE_SPECS)

PLAN_SPECS: Mapping[str, FieldSpec] = {
    "on_unmatched": FieldSpec(lambda v: v in UNMATCHED, f"one of {UNMATCHED}"),
    "zero_padding": _FLAG,
    "name": FieldSpec(lambda v: v is None or _is_str(v), "a string"),
}


def check_fields(values: Mapping[str, Any], specs: Mapping[str, FieldSpec]) -> None:
    """Check each of ``values`` that ``specs`` declares."""
    for key, value in values.items():
        if key in specs:
            specs[key].check(key, value)


def check_keys(keys: Any, allowed: tuple[str, ...], what: str) -> None:
    """Raise ``ConfigError(field=(key,))`` for the first key not in ``allowed``."""
    for key in keys:
        if key not in allowed:
            field = key if isinstance(key, str) else short_repr(key)
            raise ConfigError(f"unknown {what} key {short_repr(key)}; {what} keys are"
                              f" {list(allowed)}." + suggest(key, allowed), field=(field,))
