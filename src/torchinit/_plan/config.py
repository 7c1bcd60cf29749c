"""Plan files: read and write plans as YAML, TOML or JSON, with errors that point into the file.

A plan file holds the dict of :meth:`Plan.to_dict` plus ``version: 1``. Reading never runs
code: YAML is read with ``yaml.safe_load``'s loader (which refuses ``!!python/...`` tags), within
the limits of :mod:`torchinit._plan.readers` (size, depth, alias expansion), and every
name in the file (module types, initializers, factories) resolves through torchinit's
registries, so a file cannot name an arbitrary Python object.

The structure is validated before any object is built, and every error is a
:class:`~torchinit.errors.PlanError` that names the file, the field (``rules[2].init.gain``)
and, for YAML and for syntax errors in every format, the line.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from .. import initializers
from ..errors import ConfigError, TorchinitError, short_repr, suggest
from .plan import UNMATCHED, Plan
from .readers import (
    FORMATS,
    FieldPath,
    Source,
    check_plain_data,
    format_of,
    format_path,
    read_plan_data,
    require,
)
from .._fans import FAN_CONVENTIONS
from .rules import RULE_FIELDS, Rule
from .selectors import SELECT_KEYS, as_select

__all__ = ["load_plan", "save_plan", "plan_from_dict", "FORMAT_VERSION", "FORMATS"]

FORMAT_VERSION = 1
TOP_KEYS = ("version", "name", "on_unmatched", "zero_padding", "rules")  # order written


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


_DUMPERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "YAML": lambda data: require("yaml", "writing YAML").safe_dump(
        data, sort_keys=False, default_flow_style=None, allow_unicode=True),
    "TOML": lambda data: require("tomli_w", "writing TOML").dumps(data),
    "JSON": lambda data: json.dumps(data, indent=2) + "\n",
}


# -- schema ------------------------------------------------------------------------------------
def _check_keys(data: Mapping[Any, Any], allowed: tuple[str, ...], path: FieldPath, source: Source,
                what: str) -> None:
    for key in data:
        if key not in allowed:
            field = key if isinstance(key, str) else short_repr(key)
            raise source.error((*path, field), f"unknown {what} key {short_repr(key)}; {what}"
                               f" keys are {list(allowed)}." + suggest(key, allowed))


def _expect(ok: bool, value: Any, path: FieldPath, source: Source, expected: str) -> None:
    if not ok:
        raise source.error(path, f"must be {expected}, got {_type_name(value)}"
                           f" {short_repr(value)}")


def _is_str_list(value: Any) -> bool:
    return isinstance(value, list) and all(isinstance(v, str) for v in value)


def _is_int(value: Any) -> bool:
    return isinstance(value, int) and not isinstance(value, bool)


def _is_str(value: Any) -> bool:
    return isinstance(value, str)


_Checks = dict[str, tuple[Callable[[Any], bool], str]]
_PLAN_FIELDS: _Checks = {
    "on_unmatched": (lambda v: v in UNMATCHED, f"one of {UNMATCHED}"),
    "zero_padding": (lambda v: isinstance(v, bool), "true or false"),
    "name": (_is_str, "a string"),
}
_RULE_FIELDS: _Checks = {
    "tags": (_is_str_list, "a list of strings"),
    "fan_convention": (lambda v: v in FAN_CONVENTIONS, f"one of {FAN_CONVENTIONS}"),
    "label": (_is_str, "a string"),
    "optional": (lambda v: isinstance(v, bool), "true or false"),
    "override": (lambda v: isinstance(v, bool), "true or false"),
}
_SELECTOR_FIELDS: _Checks = {
    **{key: (lambda v: _is_str(v) or _is_str_list(v), "a string or a list of strings")
       for key in SELECT_KEYS},
    "regex": (_is_str, "a string"),
    "block": (_is_str, "a string"),
    "ndim": (lambda v: _is_int(v) or (isinstance(v, list) and all(map(_is_int, v))),
             "an integer or a list of integers"),
}


def _check_fields(data: Mapping[str, Any], checks: _Checks, path: FieldPath,
                  source: Source) -> None:
    for key, (ok, expected) in checks.items():
        if key in data:
            _expect(ok(data[key]), data[key], (*path, key), source, expected)


def _validate_plan(data: Any, source: Source) -> None:
    _expect(isinstance(data, Mapping), data, (), source,
            "a mapping with a 'rules' list (a plan)")
    _check_keys(data, TOP_KEYS, (), source, "plan")
    if "version" in data and not (_is_int(data["version"]) and data["version"] == FORMAT_VERSION):
        raise source.error(("version",), "unsupported plan file version"
                           f" {short_repr(data['version'])}; this torchinit reads version"
                           f" {FORMAT_VERSION}")
    if "rules" not in data:
        raise source.error((), "missing key 'rules' (a list of rules; it may be empty)")
    _expect(isinstance(data["rules"], list), data["rules"], ("rules",), source, "a list of rules")
    _check_fields(data, _PLAN_FIELDS, (), source)
    for i, rule in enumerate(data["rules"]):
        _validate_rule(rule, ("rules", i), source)


def _validate_rule(rule: Any, path: FieldPath, source: Source) -> None:
    _expect(isinstance(rule, Mapping), rule, path, source,
            "a rule: a mapping with 'init' and optionally 'match', 'tags', 'fan_convention', 'label',"
            " 'optional', 'override'")
    if "fans" in rule:  # the former name of fan_convention (Rule.from_dict warns)
        rule = {("fan_convention" if k == "fans" else k): v for k, v in rule.items()}
    _check_keys(rule, RULE_FIELDS, path, source, "rule")
    if "init" not in rule:
        raise source.error(path, "the rule has no 'init' (an initializer name, a mapping"
                           " {name: ..., arguments...} or {factory: name})")
    if "match" in rule:
        match, where = rule["match"], (*path, "match")
        _expect(isinstance(match, Mapping), match, where, source,
                f"a mapping of selector keys {list(SELECT_KEYS)} (leave 'match' out to match"
                " every parameter)")
        _check_keys(match, SELECT_KEYS, where, source, "selector")
        _check_fields(match, _SELECTOR_FIELDS, where, source)
    _validate_init(rule["init"], (*path, "init"), source)
    _check_fields(rule, _RULE_FIELDS, path, source)


def _validate_init(init: Any, path: FieldPath, source: Source) -> None:
    _expect(isinstance(init, (str, Mapping)), init, path, source,
            "an initializer name, a mapping {name: ..., arguments...}, {factory: name} or"
            " {parametrization: name, ...}")
    if isinstance(init, str):
        return
    if "parametrization" in init:
        _expect(isinstance(init["parametrization"], str), init["parametrization"],
                (*path, "parametrization"), source, "a parametrization name ('mup', 'spectral')")
        return
    if "factory" in init:
        _check_keys(init, ("factory",), path, source, "factory reference")
        _expect(isinstance(init["factory"], str), init["factory"], (*path, "factory"), source,
                "a registered factory name")
        return
    if "name" not in init:
        raise source.error(path, "missing 'name' (a registered initializer such as"
                           " 'kaiming_normal'), or give {factory: name}")
    _expect(isinstance(init["name"], str), init["name"], (*path, "name"), source,
            "a registered initializer name")


# -- building ----------------------------------------------------------------------------------
# TypeError too: an argument of the wrong type can fail inside an initializer's own checks.
_BUILD_ERRORS = (TorchinitError, TypeError)


def _fails(build: Callable[[Any], object], value: Any) -> bool:
    try:
        build(value)
    except _BUILD_ERRORS:
        return True
    return False


def _culprit_key(build: Callable[[dict[str, Any]], object],
                 args: Mapping[str, Any]) -> str | None:
    """The first key without which ``build(args)`` succeeds (None: no single key is to blame)."""
    return next((key for key in args
                 if not _fails(build, {k: v for k, v in args.items() if k != key})), None)


def _culprit(rule: Mapping[str, Any], path: FieldPath) -> FieldPath:
    """The field of a validated rule that ``Rule.from_dict`` rejected."""
    match = rule.get("match", {})
    if _fails(as_select, match):
        return (*path, "match", *filter(None, [_culprit_key(as_select, match)]))
    init = rule["init"]
    if not isinstance(init, Mapping):
        return (*path, "init")
    if "factory" in init:
        return (*path, "init", "factory")
    if "parametrization" in init:
        return (*path, "init")
    if _fails(initializers.lookup, init["name"]):
        return (*path, "init", "name")
    args = {k: v for k, v in init.items() if k != "name"}
    culprit = _culprit_key(lambda a: initializers.get(init["name"], **a), args)
    return (*path, "init", *filter(None, [culprit]))


def _yaml_number_hint(value: Any) -> str:
    """PyYAML (YAML 1.1) reads ``1e-3`` as a string: a float needs a ``.`` and a signed
    exponent. Say how to write ``value`` as a number, as PyYAML's own float writer does."""
    if not isinstance(value, str) or not any(c.isdigit() for c in value):
        return ""
    try:
        number = repr(float(value))
    except ValueError:
        return ""
    if "e" in number and "." not in number:
        number = number.replace("e", ".0e")
    return f" (YAML reads {short_repr(value)} as a string; write {number} for the number)"


def _build_rule(rule: Mapping[str, Any], path: FieldPath, source: Source) -> Rule:
    try:
        return Rule.from_dict(rule)
    except _BUILD_ERRORS as err:
        where = _culprit(rule, path)
        value: Any = rule  # the culprit: the value at ``where`` inside ``rule``
        for key in where[len(path):]:
            value = value[key]
        hint = _yaml_number_hint(value) if source.fmt == "YAML" else ""
        raise source.error(where, f"{err}{hint}") from None


def _plan_from_data(data: Any, source: Source) -> Plan:
    check_plain_data(data, source)
    _validate_plan(data, source)
    rules = [_build_rule(rule, ("rules", i), source) for i, rule in enumerate(data["rules"])]
    return Plan(rules, on_unmatched=data.get("on_unmatched", "error"),
                zero_padding=data.get("zero_padding", True), name=data.get("name"))


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """Build a plan from its dict form (:meth:`Plan.to_dict`, optionally with ``version: 1``).

    Raises:
        PlanError: naming the field (``rules[2].init.gain``) that is wrong and what would work.
    """
    return _plan_from_data(data, Source())


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan from a ``.yaml``/``.yml``, ``.toml`` or ``.json`` file; no code runs.

    Reading is bounded (file size, nesting depth, YAML alias expansion, integer size; see
    ``torchinit._plan.readers``), so a hostile file fails fast with little memory.

    Raises:
        ConfigError: for an unsupported extension or a missing optional dependency.
        PlanError: for a malformed file, one beyond a limit, or an invalid plan, naming the
            file, the field and (for YAML, and for syntax errors in every format) the line.
    """
    data, source = read_plan_data(os.fspath(path))
    return _plan_from_data(data, source)


# -- writing -----------------------------------------------------------------------------------
def _plain(value: Any, path: FieldPath, fmt: str, file: str) -> Any:
    """A copy of ``value`` with lists for tuples; refuse what the format cannot store."""
    if isinstance(value, Mapping):
        return {str(k): _plain(v, (*path, str(k)), fmt, file) for k, v in value.items()}
    if isinstance(value, (list, tuple)):
        return [_plain(v, (*path, i), fmt, file) for i, v in enumerate(value)]
    if isinstance(value, (str, bool, int, float)) or (value is None and fmt != "TOML"):
        return value
    raise ConfigError(f"cannot write {file}: {format_path(path)} is {_type_name(value)}"
                      f" {short_repr(value)}, which a {fmt} plan file cannot store")


def _write_atomic(file: str, text: str) -> None:
    """Write ``text`` to a temporary file next to ``file``, then rename it over ``file``."""
    target = Path(file)
    temporary = target.with_name(f".{target.name}.{uuid.uuid4().hex}.tmp")
    try:
        with open(temporary, "x", encoding="utf-8") as handle:
            handle.write(text)
            handle.flush()
            os.fsync(handle.fileno())
        os.replace(temporary, target)
    except BaseException:
        temporary.unlink(missing_ok=True)
        raise


def save_plan(plan: Plan, path: str | os.PathLike[str]) -> None:
    """Write ``plan`` as YAML, TOML or JSON (by extension), atomically, with ``version: 1``.

    Raises:
        ConfigError: for an unsupported extension, a missing optional dependency, or a rule
            that names a module class without a registered name; the file is then untouched.
    """
    file = os.fspath(path)
    fmt = format_of(file)
    try:
        data = {"version": FORMAT_VERSION, **plan.to_dict()}
    except ConfigError as err:
        raise type(err)(f"cannot write {file}: {err}") from None
    ordered = {key: data[key] for key in TOP_KEYS if key in data}
    _write_atomic(file, _DUMPERS[fmt](_plain(ordered, (), fmt, file)))
