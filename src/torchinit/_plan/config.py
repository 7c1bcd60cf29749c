"""Plan files: read and write plans as YAML, TOML or JSON, with errors that point into the file.

A plan file holds the dict of :meth:`Plan.to_dict` plus ``version: 2``. Reading never runs
code: YAML is read with ``yaml.safe_load``'s loader (which refuses ``!!python/...`` tags), within
the limits of :mod:`torchinit._plan.readers` (size, depth, alias expansion), and every
name in the file (module types, initializers, init functions) resolves through torchinit's
registries, so a file cannot name an arbitrary Python object.

The file's frame (keys, version, a rules list) is checked here; the rules and options are
checked by the constructors that build them, against the one schema in :mod:`.schema`, and
their errors carry the field. Every error is a :class:`~torchinit.errors.PlanError` that names
the file, the field (``rules[2].init.gain``) and, for YAML and for syntax errors in every
format, the line.
"""

from __future__ import annotations

import json
import os
import uuid
from collections.abc import Callable, Mapping
from pathlib import Path
from typing import Any

from ..errors import ConfigError, TorchinitError, short_repr
from .plan import Plan
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
from .schema import check_keys, typed_repr

__all__ = ["load_plan", "save_plan", "plan_from_dict", "FORMAT_VERSION", "FORMATS"]

FORMAT_VERSION = 2
"""The version :func:`save_plan` writes: rules with their selector keys at the top level."""
READ_VERSIONS = (1, 2)
"""The versions read; version 1 nested the selector keys under ``match:`` (read with a
DeprecationWarning that says to save the plan again)."""
TOP_KEYS = ("version", "name", "on_unmatched", "zero_padding", "rules")  # order written


_DUMPERS: dict[str, Callable[[dict[str, Any]], str]] = {
    "YAML": lambda data: require("yaml", "writing YAML").safe_dump(
        data, sort_keys=False, default_flow_style=None, allow_unicode=True),
    "TOML": lambda data: require("tomli_w", "writing TOML").dumps(data),
    "JSON": lambda data: json.dumps(data, indent=2) + "\n",
}


# -- reading ---------------------------------------------------------------------------------
def _validate_plan(data: Any, source: Source) -> None:
    """The file's frame: a mapping of known keys, a version this torchinit reads, a rules list
    (the rules and options are checked by the constructors, against :mod:`.schema`)."""
    if not isinstance(data, Mapping):
        raise source.error((), f"must be a mapping with a 'rules' list (a plan), got"
                           f" {typed_repr(data)}")
    try:
        check_keys(data, TOP_KEYS, "plan")
    except ConfigError as err:
        raise source.error(err.field, str(err)) from None
    version = data.get("version", FORMAT_VERSION)
    if isinstance(version, bool) or version not in READ_VERSIONS:
        raise source.error(("version",), "unsupported plan file version"
                           f" {short_repr(version)}; this torchinit reads versions"
                           f" {' and '.join(map(str, READ_VERSIONS))}")
    if "rules" not in data:
        raise source.error((), "missing key 'rules' (a list of rules; it may be empty)")
    if not isinstance(data["rules"], list):
        raise source.error(("rules",), f"must be a list of rules, got"
                           f" {typed_repr(data['rules'])}")


def _value_at(data: Any, path: FieldPath) -> Any:
    """The value at ``path`` inside ``data`` (None where the path leaves it)."""
    for key in path:
        try:
            data = data[key]
        except (KeyError, IndexError, TypeError):
            return None
    return data


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


def _plan_from_data(data: Any, source: Source) -> Plan:
    check_plain_data(data, source)
    _validate_plan(data, source)
    try:
        return Plan(data["rules"], on_unmatched=data.get("on_unmatched", "error"),
                    zero_padding=data.get("zero_padding", True), name=data.get("name"))
    except TorchinitError as err:
        value = _value_at(data, err.field)
        hint = _yaml_number_hint(value) if source.fmt == "YAML" else ""
        raise source.error(err.field, f"{err}{hint}") from None


def plan_from_dict(data: Mapping[str, Any]) -> Plan:
    """Build a plan from its dict form (:meth:`Plan.to_dict`, optionally with ``version``).

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
    raise ConfigError(f"cannot write {file}: {format_path(path)} is {typed_repr(value)},"
                      f" which a {fmt} plan file cannot store")


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
    """Write ``plan`` as YAML, TOML or JSON (by extension), atomically, with ``version: 2``.

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
