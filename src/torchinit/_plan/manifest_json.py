"""Reading a manifest back from JSON, with every field checked.

Anything that is not what :meth:`Manifest.to_json` writes raises :class:`ConfigError` naming
the field path (``records[3].shape``, ``records[0].blocks[1].rows``), never a bare
``TypeError`` or ``KeyError``. Unknown fields are ignored, so newer manifests still load.
"""

from __future__ import annotations

import json
import math
from collections.abc import Callable
from typing import Any, TypeVar, cast, overload

from .._json import NON_FINITE
from .._fans import Block, FanConvention, Fans
from ..errors import SHORT_REPR_LIMIT, ConfigError, TorchinitError, short_repr
from ..initializers import Initializer, from_config
from .._streams import Key
from .manifest import BlockEntry, Manifest, Record

__all__ = ["manifest_from_json", "record_from_dict"]

_T = TypeVar("_T")
_D = TypeVar("_D")
_REQUIRED = object()


def _fail(where: str, expected: str, value: Any) -> ConfigError:
    return ConfigError(f"manifest JSON: {where} must be {expected}, got {short_repr(value)}")


@overload
def _field(d: dict[str, Any], key: str, where: str, parse: Callable[[Any, str], _T]) -> _T: ...


@overload
def _field(d: dict[str, Any], key: str, where: str, parse: Callable[[Any, str], _T],
           default: _D) -> _T | _D: ...


def _field(d: dict[str, Any], key: str, where: str, parse: Callable[[Any, str], _T],
           default: Any = _REQUIRED) -> Any:
    name = f"{where}.{key}" if where else key
    if key not in d:
        if default is _REQUIRED:
            raise ConfigError(f"manifest JSON: {name} is missing")
        return default
    if d[key] is None and default is None:
        return None
    return parse(d[key], name)


def _instance(kind: type[_T], expected: str) -> Callable[[Any, str], _T]:
    """A parser that accepts only instances of ``kind`` (``true`` and ``false`` are not
    integers here), and names the ``expected`` value when it fails."""

    def parse(value: Any, where: str) -> _T:
        if not isinstance(value, kind) or (isinstance(value, bool) and kind is not bool):
            raise _fail(where, expected, value)
        return value

    return parse


_dict = _instance(dict, "an object")
_str = _instance(str, "a string")
_int = _instance(int, "an integer")
_bool = _instance(bool, "true or false")


def _count(value: Any, where: str) -> int:
    count = _int(value, where)
    if count < 0:
        raise _fail(where, "a non-negative integer", value)
    return count


def _number(value: Any, where: str) -> float:
    """A number, or ``"inf"`` / ``"-inf"`` / ``"nan"`` (how :func:`json_number` writes the
    others)."""
    if value in NON_FINITE:
        return float(value)
    if isinstance(value, bool) or not isinstance(value, (int, float)):
        raise _fail(where, 'a number (or "inf")', value)
    try:
        return float(value)
    except OverflowError:
        raise _fail(where, "a number within float range", value) from None


def _convention(value: Any, where: str) -> FanConvention:
    """A fan convention: a string, kept as it is (``Fans`` does not check it)."""
    return cast(FanConvention, _str(value, where))


def _list(parse: Callable[[Any, str], _T]) -> Callable[[Any, str], tuple[_T, ...]]:
    def parse_list(value: Any, where: str) -> tuple[_T, ...]:
        if not isinstance(value, list):
            raise _fail(where, "a list", value)
        return tuple(parse(item, f"{where}[{i}]") for i, item in enumerate(value))

    return parse_list


def _init(value: Any, where: str) -> Initializer:
    config = _dict(value, where)
    try:
        return from_config(config)
    except (TorchinitError, TypeError) as err:
        raise ConfigError(f"manifest JSON: {where}: {err}") from None


def _block(value: Any, where: str) -> Block:
    if not isinstance(value, list) or len(value) != 3:
        raise _fail(where, "[name, start, stop]", value)
    return Block(_str(value[0], f"{where}[0]"), _count(value[1], f"{where}[1]"),
                 _count(value[2], f"{where}[2]"))


def _fans(value: Any, where: str) -> Fans:
    d = _dict(value, where)
    try:
        return Fans(_field(d, "fan_in", where, _count), _field(d, "fan_out", where, _count),
                    _field(d, "receptive_field", where, _count, 1),
                    _field(d, "blocks", where, _list(_block), ()),
                    _field(d, "assumed", where, _bool, False),
                    _field(d, "convention", where, _convention, "semantic"))
    except ConfigError:
        raise
    except TorchinitError as err:
        raise ConfigError(f"manifest JSON: {where}: {err}") from None


def _key(value: Any, where: str) -> Key:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, "[seed, path]", value)
    try:
        return Key(_int(value[0], f"{where}[0]"), _str(value[1], f"{where}[1]"))
    except ConfigError:
        raise
    except TorchinitError as err:
        raise ConfigError(f"manifest JSON: {where}: {err}") from None


def _rows(value: Any, where: str) -> tuple[int, int]:
    if not isinstance(value, list) or len(value) != 2:
        raise _fail(where, "[start, stop]", value)
    return _count(value[0], f"{where}[0]"), _count(value[1], f"{where}[1]")


def _block_entry(value: Any, where: str) -> BlockEntry:
    d = _dict(value, where)
    start, stop = _field(d, "rows", where, _rows)
    return BlockEntry(_field(d, "name", where, _str), start, stop, _field(d, "rule", where, _int),
                      _field(d, "rule_label", where, _str), _field(d, "init", where, _init),
                      _field(d, "fans", where, _fans, None), _field(d, "std", where, _number))


def record_from_dict(value: Any, where: str = "record") -> Record:
    """A :class:`Record` from its :meth:`Record.to_dict` form, every field checked."""
    d = _dict(value, where)
    shape = _field(d, "shape", where, _list(_count))
    values = _field(d, "values", where, _list(_number), None)
    if values is not None and len(values) != math.prod(shape):
        raise ConfigError(f"manifest JSON: {where}.values has {len(values)} value(s) for shape"
                          f" {shape}")
    return Record(
        path=_field(d, "path", where, _str), shape=shape, dtype=_field(d, "dtype", where, _str),
        module_type=_field(d, "module_type", where, _str),
        aliases=_field(d, "aliases", where, _list(_str), ()),
        roles=_field(d, "roles", where, _list(_str), ()),
        matched=_field(d, "matched", where, _list(_int), ()),
        alias_matched=_field(d, "alias_matched", where, _list(_int), ()),
        rule=_field(d, "rule", where, _int, None),
        rule_label=_field(d, "rule_label", where, _str, None),
        init=_field(d, "init", where, _init, None), fans=_field(d, "fans", where, _fans, None),
        std=_field(d, "std", where, _number, None), bound=_field(d, "bound", where, _number, None),
        key=_field(d, "key", where, _key, None),
        blocks=_field(d, "blocks", where, _list(_block_entry), ()),
        tags=_field(d, "tags", where, _list(_str), ()),
        zero_rows=_field(d, "zero_rows", where, _list(_count), ()),
        scale=_field(d, "scale", where, _number, 1.0),
        lr_scale=_field(d, "lr_scale", where, _number, 1.0),
        weight_decay_scale=_field(d, "weight_decay_scale", where, _number, 1.0),
        width=_field(d, "width", where, _str, None),
        notes=_field(d, "notes", where, _list(_str), ()), values=values,
        checkpoint=_field(d, "checkpoint", where, _pair_of_str, None))


def _pair_of_str(value: Any, where: str) -> tuple[str, str]:
    pair = _list(_str)(value, where)
    if len(pair) != 2:
        raise ConfigError(f"manifest JSON: {where} must be [file, key], got {len(pair)} items")
    return pair[0], pair[1]


def manifest_from_json(text: str) -> Manifest:
    """A :class:`Manifest` from :meth:`Manifest.to_json` text.

    Raises:
        ConfigError: naming the field path of the first problem (or the JSON syntax error).
    """
    try:
        d = json.loads(text)
    except (ValueError, RecursionError) as err:  # syntax, nesting, 4300+ digit integers
        raise ConfigError(f"manifest JSON: not valid JSON ({type(err).__name__}:"
                          f" {str(err)[:SHORT_REPR_LIMIT]})") from None
    d = _dict(d, "the document")
    records = _field(d, "records", "", _list(record_from_dict))
    return Manifest(records, _field(d, "seed", "", _int, 0), _field(d, "data", "", _dict, {}))
