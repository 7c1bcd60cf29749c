"""Plan files: read and write plans as YAML, TOML or JSON, with errors that point into the file.

A plan file holds the dict of :meth:`Plan.to_dict` plus ``version: 1``. Reading never runs
code: YAML is read with ``yaml.safe_load`` (which refuses ``!!python/...`` tags), and every
name in the file (module types, initializers, factories) resolves through torchinit's
registries, so a file cannot name an arbitrary Python object.

The structure is validated before any object is built, and every error is a
:class:`~torchinit.errors.PlanError` that names the file, the field (``rules[2].init.gain``)
and, for YAML and for syntax errors in every format, the line.
"""

from __future__ import annotations

import importlib
import json
import os
import sys
import uuid
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from functools import reduce
from operator import getitem
from pathlib import Path
from types import ModuleType
from typing import Any, Union

from .. import initializers
from ..errors import ConfigError, PlanError, TorchinitError, suggest
from .plan import UNMATCHED, Plan
from .rules import FAN_CONVENTIONS, Rule
from .selectors import SELECT_KEYS, as_select

__all__ = ["load_plan", "save_plan", "plan_from_dict", "FORMAT_VERSION", "FORMATS"]

FORMAT_VERSION = 1
FORMATS = {".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".json": "JSON"}
TOP_KEYS = ("version", "name", "on_unmatched", "zero_padding", "rules")  # order written
RULE_KEYS = ("match", "init", "tags", "fans", "label", "optional")

FieldPath = tuple[Union[str, int], ...]


# -- errors that point into the source ---------------------------------------------------------
@dataclass(frozen=True)
class _Source:
    """Where a plan dict came from: the file, its format and a map from field path to line."""

    file: str | None = None
    fmt: str | None = None
    line_of: Callable[[FieldPath], int | None] | None = None

    def error(self, path: FieldPath, message: str, line: int | None = None) -> PlanError:
        """``file:line: field.path: message`` (parts that are unknown are left out)."""
        where = self.file or ""
        if line is None and self.line_of is not None:
            line = self.line_of(path)
        if where and line is not None:
            where += f":{line}"
        parts = [p for p in (where, _format_path(path)) if p]
        return PlanError(": ".join([*parts, message]))


def _format_path(path: FieldPath) -> str:
    out = ""
    for part in path:
        out += f"[{part}]" if isinstance(part, int) else (f".{part}" if out else str(part))
    return out


def _type_name(value: Any) -> str:
    return "null" if value is None else type(value).__name__


# -- formats -----------------------------------------------------------------------------------
def _format_of(file: str) -> str:
    fmt = FORMATS.get(Path(file).suffix.lower())
    if fmt is None:
        raise ConfigError(f"{file}: unsupported plan file extension {Path(file).suffix!r};"
                          f" use one of {', '.join(FORMATS)}")
    return fmt


def _require(module: str, purpose: str) -> ModuleType:
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs the {module!r} package:"
                          " pip install torchinit[config]") from None


def _parse_yaml(text: str, file: str) -> tuple[Any, _Source]:
    yaml = _require("yaml", "reading YAML")
    try:
        data = yaml.safe_load(text)
        root = yaml.compose(text, Loader=yaml.SafeLoader)  # nodes only, for line numbers
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        hint = (" (plan files hold plain data: mappings, lists, strings, numbers and booleans;"
                " tags such as !!python/... are refused)"
                if isinstance(err, yaml.constructor.ConstructorError) else "")
        raise PlanError(f"{where}: invalid YAML: {err.problem}{hint}") from None
    except yaml.YAMLError as err:
        raise PlanError(f"{file}: invalid YAML: {err}") from None
    source = _Source(file, "YAML", lambda path: _yaml_line(root, path))
    _check_yaml_duplicates(root, source)
    return data, source


def _yaml_line(node: Any, path: FieldPath) -> int | None:
    """Line of the deepest node along ``path`` (mapping entries: the key's line)."""
    if node is None:  # an empty document
        return None
    line = node.start_mark.line + 1
    for part in path:
        if isinstance(part, int) and node.id == "sequence" and part < len(node.value):
            node = node.value[part]
            line = node.start_mark.line + 1
            continue
        entry = next(((k, v) for k, v in node.value if k.id == "scalar" and k.value == str(part)),
                     None) if node.id == "mapping" else None
        if entry is None:
            break
        line, node = entry[0].start_mark.line + 1, entry[1]
    return line


def _check_yaml_duplicates(root: Any, source: _Source) -> None:
    """Refuse a key given twice in one mapping (``safe_load`` would keep the last silently)."""
    stack: list[tuple[Any, FieldPath]] = [(root, ())] if root is not None else []
    seen: set[int] = set()  # aliases share nodes; visit each once
    while stack:
        node, path = stack.pop()
        if id(node) in seen:
            continue
        seen.add(id(node))
        if node.id == "sequence":
            stack.extend((item, (*path, i)) for i, item in enumerate(node.value))
        elif node.id == "mapping":
            keys: set[Any] = set()
            for key, value in node.value:
                name = key.value if key.id == "scalar" else id(key)
                if name in keys:
                    raise source.error((*path, str(name)), f"key {name!r} is given twice",
                                       key.start_mark.line + 1)
                keys.add(name)
                stack.append((value, (*path, str(name))))


def _parse_json(text: str, file: str) -> tuple[Any, _Source]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise PlanError(f"{file}: key {key!r} is given twice in one JSON object")
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=unique)
    except json.JSONDecodeError as err:
        raise PlanError(f"{file}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    return data, _Source(file, "JSON")


def _parse_toml(text: str, file: str) -> tuple[Any, _Source]:
    tomllib = _require("tomllib" if sys.version_info >= (3, 11) else "tomli", "reading TOML")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:  # the message says "(at line L, column C)"
        raise PlanError(f"{file}: invalid TOML: {err}") from None
    return data, _Source(file, "TOML")


_PARSERS = {"YAML": _parse_yaml, "JSON": _parse_json, "TOML": _parse_toml}
_DUMPERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "YAML": lambda data: _require("yaml", "writing YAML").safe_dump(
        data, sort_keys=False, default_flow_style=None, allow_unicode=True),
    "TOML": lambda data: _require("tomli_w", "writing TOML").dumps(data),
    "JSON": lambda data: json.dumps(data, indent=2) + "\n",
}


# -- schema ------------------------------------------------------------------------------------
def _check_keys(data: Mapping, allowed: tuple[str, ...], path: FieldPath, source: _Source,
                what: str) -> None:
    for key in data:
        if key not in allowed:
            raise source.error((*path, str(key)), f"unknown {what} key {key!r}; {what} keys are"
                               f" {list(allowed)}." + suggest(str(key), allowed))


def _expect(ok: bool, value: Any, path: FieldPath, source: _Source, expected: str) -> None:
    if not ok:
        raise source.error(path, f"must be {expected}, got {_type_name(value)} {value!r}")


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
    "fans": (lambda v: v in FAN_CONVENTIONS, f"one of {FAN_CONVENTIONS}"),
    "label": (_is_str, "a string"),
    "optional": (lambda v: isinstance(v, bool), "true or false"),
}
_SELECTOR_FIELDS: _Checks = {
    **{key: (lambda v: _is_str(v) or _is_str_list(v), "a string or a list of strings")
       for key in SELECT_KEYS},
    "regex": (_is_str, "a string"),
    "block": (_is_str, "a string"),
    "ndim": (lambda v: _is_int(v) or (isinstance(v, list) and all(map(_is_int, v))),
             "an integer or a list of integers"),
}


def _check_fields(data: Mapping, checks: _Checks, path: FieldPath, source: _Source) -> None:
    for key, (ok, expected) in checks.items():
        if key in data:
            _expect(ok(data[key]), data[key], (*path, key), source, expected)


def _validate_plan(data: Any, source: _Source) -> None:
    _expect(isinstance(data, Mapping), data, (), source,
            "a mapping with a 'rules' list (a plan)")
    _check_keys(data, TOP_KEYS, (), source, "plan")
    if "version" in data and not (_is_int(data["version"]) and data["version"] == FORMAT_VERSION):
        raise source.error(("version",), f"unsupported plan file version {data['version']!r};"
                           f" this torchinit reads version {FORMAT_VERSION}")
    if "rules" not in data:
        raise source.error((), "missing key 'rules' (a list of rules; it may be empty)")
    _expect(isinstance(data["rules"], list), data["rules"], ("rules",), source, "a list of rules")
    _check_fields(data, _PLAN_FIELDS, (), source)
    for i, rule in enumerate(data["rules"]):
        _validate_rule(rule, ("rules", i), source)


def _validate_rule(rule: Any, path: FieldPath, source: _Source) -> None:
    _expect(isinstance(rule, Mapping), rule, path, source,
            "a rule: a mapping with 'init' and optionally 'match', 'tags', 'fans', 'label',"
            " 'optional'")
    _check_keys(rule, RULE_KEYS, path, source, "rule")
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


def _validate_init(init: Any, path: FieldPath, source: _Source) -> None:
    _expect(isinstance(init, (str, Mapping)), init, path, source,
            "an initializer name, a mapping {name: ..., arguments...} or {factory: name}")
    if isinstance(init, str):
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
    return f" (YAML reads {value!r} as a string; write {number} for the number)"


def _build_rule(rule: Mapping[str, Any], path: FieldPath, source: _Source) -> Rule:
    try:
        return Rule.from_dict(rule)
    except _BUILD_ERRORS as err:
        where = _culprit(rule, path)
        value = reduce(getitem, where[len(path):], rule)
        hint = _yaml_number_hint(value) if source.fmt == "YAML" else ""
        raise source.error(where, f"{err}{hint}") from None


def _plan_from_data(data: Any, source: _Source) -> Plan:
    _validate_plan(data, source)
    rules = [_build_rule(rule, ("rules", i), source) for i, rule in enumerate(data["rules"])]
    return Plan(rules, on_unmatched=data.get("on_unmatched", "error"),
                zero_padding=data.get("zero_padding", True), name=data.get("name"))


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """Build a plan from its dict form (:meth:`Plan.to_dict`, optionally with ``version: 1``).

    Raises:
        PlanError: naming the field (``rules[2].init.gain``) that is wrong and what would work.
    """
    return _plan_from_data(data, _Source())


def load_plan(path: str | os.PathLike[str]) -> Plan:
    """Read a plan from a ``.yaml``/``.yml``, ``.toml`` or ``.json`` file; no code runs.

    Raises:
        ConfigError: for an unsupported extension or a missing optional dependency.
        PlanError: for a malformed file or an invalid plan, naming the file, the field and (for
            YAML, and for syntax errors in every format) the line.
    """
    file = os.fspath(path)
    fmt = _format_of(file)
    try:
        text = Path(file).read_text(encoding="utf-8")
    except UnicodeDecodeError as err:
        raise PlanError(f"{file}: not UTF-8 text ({err})") from None
    data, source = _PARSERS[fmt](text, file)
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
    raise ConfigError(f"cannot write {file}: {_format_path(path)} is {_type_name(value)}"
                      f" {value!r}, which a {fmt} plan file cannot store")


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
    fmt = _format_of(file)
    try:
        data = {"version": FORMAT_VERSION, **plan.to_dict()}
    except ConfigError as err:
        raise type(err)(f"cannot write {file}: {err}") from None
    ordered = {key: data[key] for key in TOP_KEYS if key in data}
    _write_atomic(file, _DUMPERS[fmt](_plain(ordered, (), fmt, file)))
