"""The preset registry: named functions ``fn(**options) -> Plan`` and their option checks."""

from __future__ import annotations

import inspect
import math
import numbers
import reprlib
from collections.abc import Callable, Sequence
from typing import Any, overload

from ..errors import ConfigError, UnknownNameError, suggest
from .._fans import FanConvention
from .._plan import Plan, Rule

__all__ = ["register", "get", "names", "describe", "rule", "positive_int", "positive_float",
           "flag", "globs", "choice", "anywhere", "option_error"]

PresetFn = Callable[..., Plan]
_PRESETS: dict[str, PresetFn] = {}
_OPTION_KINDS = (inspect.Parameter.POSITIONAL_OR_KEYWORD, inspect.Parameter.KEYWORD_ONLY)
_SHORT = reprlib.Repr()
_SHORT.maxtuple = _SHORT.maxlist = 2


@overload
def register(name: str, fn: PresetFn, *, replace: bool = False) -> PresetFn: ...


@overload
def register(name: str, fn: None = None, *,
             replace: bool = False) -> Callable[[PresetFn], PresetFn]: ...


def register(name: str, fn: PresetFn | None = None, *,
             replace: bool = False) -> PresetFn | Callable[[PresetFn], PresetFn]:
    """Register ``fn(**options) -> Plan`` as the preset ``name`` (usable as a decorator).

    The function's keyword parameters are the preset's options: :func:`get` rejects any other
    option and asks for those without a default. Its docstring is what :func:`describe` shows.

    Args:
        name: The preset's name, e.g. ``"my-lab"``.
        fn: The function; omitted for the decorator form ``@register("my-lab")``.
        replace: Allow replacing a preset already registered under ``name``.

    Raises:
        ConfigError: for an empty name, a function that is not callable, or a name already
            taken (unless ``replace=True``).
    """
    if not isinstance(name, str) or not name:
        raise ConfigError(f"a preset name must be a non-empty string, got {name!r}")

    def add(f: PresetFn) -> PresetFn:
        if not callable(f):
            raise ConfigError(f"preset {name!r} must be a callable fn(**options) -> Plan,"
                              f" got {f!r}")
        owner = _PRESETS.get(name)
        if owner is not None and owner is not f and not replace:
            raise ConfigError(
                f"preset {name!r} is already registered ({owner.__module__}."
                f"{owner.__qualname__}); choose another name or pass replace=True")
        _PRESETS[name] = f
        return f

    return add(fn) if fn is not None else add


def names() -> list[str]:
    """The registered preset names, sorted."""
    return sorted(_PRESETS)


def _lookup(name: str) -> PresetFn:
    try:
        return _PRESETS[name]
    except (KeyError, TypeError):
        raise UnknownNameError(f"unknown preset {name!r}; presets are {names()}."
                               + suggest(str(name), _PRESETS)) from None


def _options(fn: PresetFn) -> dict[str, inspect.Parameter]:
    return {p.name: p for p in inspect.signature(fn).parameters.values() if p.kind in _OPTION_KINDS}


def _takes_any_option(fn: PresetFn) -> bool:
    return any(p.kind is inspect.Parameter.VAR_KEYWORD
               for p in inspect.signature(fn).parameters.values())


def _option_list(fn: PresetFn) -> str:
    parts = [f"{n} (required)" if p.default is p.empty else f"{n}={_SHORT.repr(p.default)}"
             for n, p in _options(fn).items()]
    return ", ".join(parts) if parts else "no options"


def get(name: str, **options: Any) -> Plan:
    """Build the plan of preset ``name`` with ``options``.

    Example:
        >>> import torchinit as ti
        >>> plan = ti.presets.get("gpt2", n_layers=12)
        >>> plan.name
        'gpt2'

    Raises:
        UnknownNameError: for an unknown preset (the message suggests close names).
        ConfigError: for an unknown option, a missing required one, or a bad value; the
            message names the preset and the options it accepts.
    """
    fn = _lookup(name)
    accepted = _options(fn)
    unknown = [] if _takes_any_option(fn) else sorted(set(options) - set(accepted))
    if unknown:
        raise ConfigError(
            f"preset {name!r} got unknown option(s) {unknown}; it accepts {_option_list(fn)}."
            + "".join(suggest(u, accepted) for u in unknown))
    missing = [n for n, p in accepted.items() if p.default is p.empty and n not in options]
    if missing:
        example = f"presets.get({name!r}, " + ", ".join(f"{n}=..." for n in missing) + ")"
        raise ConfigError(f"preset {name!r} needs option(s) {missing}; it accepts"
                          f" {_option_list(fn)}. Example: {example}")
    plan = fn(**options)
    if not isinstance(plan, Plan):
        raise ConfigError(f"preset {name!r} returned {type(plan).__name__}, not a Plan")
    return plan if plan.name else plan.with_options(name=name)


def describe(name: str) -> str:
    """What preset ``name`` does, its options and its source (its docstring)."""
    fn = _lookup(name)
    doc = inspect.getdoc(fn) or "(undocumented)"
    return f"{name}: {doc}\n\nAccepts: {_option_list(fn)}"


# -- helpers for writing presets --------------------------------------------------------------
def rule(preset: str, init: Any, fan_convention: FanConvention = "semantic", optional: bool = True,
         label: str | None = None, **select: Any) -> Rule:
    """A rule of ``preset``: tagged ``preset:<name>``, optional unless the recipe needs it.

    A preset covers many architectures, so most of its rules may match nothing in a given
    model; ``optional=False`` keeps the warning for rules that carry the recipe's point (GPT-2's
    residual scaling, ResNet's zero-initialized last norm layers).
    """
    return Rule(init=init, fan_convention=fan_convention, tags=(f"preset:{preset}",), optional=optional,
                label=label, **select)


def option_error(preset: str, option: str, wanted: str, value: Any) -> ConfigError:
    """The error for option ``option`` of ``preset``: it must be ``wanted``, got ``value``."""
    return ConfigError(f"preset {preset!r}: option {option} must be {wanted}, got {value!r}")


def choice(preset: str, option: str, value: Any, choices: Sequence[str]) -> str:
    """``value`` if it is one of the strings ``choices`` (the error suggests a close one)."""
    if not isinstance(value, str) or value not in choices:
        raise ConfigError(f"preset {preset!r}: option {option} must be one of"
                          f" {', '.join(map(repr, choices))}, got {value!r}."
                          + suggest(str(value), choices))
    return value


def anywhere(*suffixes: str) -> tuple[str, ...]:
    """Path globs matching each dotted suffix at the model's root or under any module."""
    return tuple(glob for suffix in suffixes for glob in (suffix, f"*.{suffix}"))


def positive_int(preset: str, option: str, value: Any) -> int:
    """``value`` if it is an int > 0 (bools refused)."""
    if isinstance(value, bool) or not isinstance(value, numbers.Integral) or value <= 0:
        raise option_error(preset, option, "an int > 0", value)
    return int(value)


def positive_float(preset: str, option: str, value: Any) -> float:
    """``value`` as a float if it is a finite real number > 0."""
    if (isinstance(value, bool) or not isinstance(value, numbers.Real)
            or not math.isfinite(value) or value <= 0):
        raise option_error(preset, option, "a finite number > 0", value)
    return float(value)


def flag(preset: str, option: str, value: Any) -> bool:
    """``value`` if it is a bool."""
    if not isinstance(value, bool):
        raise option_error(preset, option, "True or False", value)
    return value


def globs(preset: str, option: str, value: Any) -> tuple[str, ...]:
    """One glob or a non-empty sequence of non-empty globs, as a tuple."""
    items: Sequence[Any] = (value,) if isinstance(value, str) else value
    if (not isinstance(items, Sequence) or not items
            or not all(isinstance(g, str) and g for g in items)):
        raise option_error(preset, option, "a glob or a non-empty list of globs on parameter paths",
                   value)
    return tuple(items)
