"""Reading plan files: YAML, TOML and JSON text to plain data, within limits.

A plan file may come from someone else, so reading it is bounded before any of it is built:

* the file holds at most :data:`MAX_FILE_BYTES` bytes (only that much is read);
* mappings and lists nest at most :data:`MAX_DEPTH` levels deep (a plan needs about six);
* YAML aliases add at most :data:`MAX_ALIAS_EXPANSION` values to the document once expanded
  (a 400-byte "billion laughs" would add 10**9), an alias never refers to the collection that
  contains it, and these are checked on the parser's event stream, before anything is built;
* integers lie within 64 bits (literals longer than :data:`MAX_INT_LITERAL` characters are
  refused before they are converted, so no quadratic conversion runs).

Each violation is a :class:`~torchinit.errors.PlanError` naming the file, the field and (for
YAML, and for syntax errors in every format) the line; messages quote values through
:func:`~torchinit.errors.short_repr`, never whole.
"""

from __future__ import annotations

import functools
import importlib
import json
import sys
from collections.abc import Callable, Mapping
from dataclasses import dataclass
from pathlib import Path
from types import ModuleType
from typing import Any

from ..errors import ConfigError, FieldPath, PlanError, short_repr

__all__ = ["Source", "FieldPath", "format_path", "read_plan_data", "check_plain_data", "require",
           "FORMATS", "format_of", "MAX_FILE_BYTES", "MAX_DEPTH", "MAX_ALIAS_EXPANSION",
           "MAX_INT_LITERAL"]

FORMATS = {".yaml": "YAML", ".yml": "YAML", ".toml": "TOML", ".json": "JSON"}
MAX_FILE_BYTES = 2 * 1024 * 1024
"""The largest plan file read (2 MiB, some 20,000 rules)."""
MAX_DEPTH = 32
"""The deepest nesting of mappings and lists in a plan file."""
MAX_ALIAS_EXPANSION = 100_000
"""The most values YAML aliases may add to a document once expanded."""
MAX_INT_LITERAL = 4000
"""The longest integer literal converted (characters); the value must fit 64 bits anyway."""
_INT_RANGE = 2**63


# -- errors that point into the source ---------------------------------------------------------
@dataclass(frozen=True)
class Source:
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
        parts = [p for p in (where, format_path(path)) if p]
        return PlanError(": ".join([*parts, message]))


def format_path(path: FieldPath) -> str:
    """``rules[2].init.gain`` for ``("rules", 2, "init", "gain")``; long keys are shortened,
    and a path deeper than 8 parts shows its first 6 then ``...``."""
    out = ""
    for part in path[:6] if len(path) > 8 else path:
        if isinstance(part, int):
            out += f"[{part}]"
            continue
        name = part if len(part) <= 40 else short_repr(part)
        out += f".{name}" if out else name
    return out + ("..." if len(path) > 8 else "")


def _too_deep(what: str) -> str:
    return (f"{what} nest deeper than {MAX_DEPTH} levels; a plan needs about six (rules, a rule,"
            " its match or init, their values)")


def _int_out_of_range(value: int) -> str:
    return (f"the integer {short_repr(value)} is out of range: plan files hold integers within"
            " 64 bits (write a large number as a float, e.g. 1.0e30)")


def _long_literal(length: int) -> str:
    return (f"an integer literal of {length} characters is too long to read: plan files hold"
            " integers within 64 bits (write a large number as a float, e.g. 1.0e30)")


class _LimitError(Exception):
    """A limit exceeded inside a parser's callback; carries the message and the YAML mark."""

    def __init__(self, message: str, mark: Any = None) -> None:
        super().__init__(message)
        self.mark = mark


# -- files and formats -------------------------------------------------------------------------
def format_of(file: str) -> str:
    """The format named by ``file``'s extension.

    Raises:
        ConfigError: for an unsupported extension.
    """
    fmt = FORMATS.get(Path(file).suffix.lower())
    if fmt is None:
        raise ConfigError(f"{file}: unsupported plan file extension {Path(file).suffix!r};"
                          f" use one of {', '.join(FORMATS)}")
    return fmt


def require(module: str, purpose: str) -> ModuleType:
    """Import an optional dependency, or raise ConfigError saying how to install it."""
    try:
        return importlib.import_module(module)
    except ImportError:
        raise ConfigError(f"{purpose} needs the {module!r} package:"
                          " pip install torchinit[config]") from None


def _read_text(file: str) -> str:
    with open(file, "rb") as handle:
        raw = handle.read(MAX_FILE_BYTES + 1)
    if len(raw) > MAX_FILE_BYTES:
        raise PlanError(f"{file}: the file is larger than {MAX_FILE_BYTES} bytes, the limit of a"
                        " plan file; select parameters with globs or regexes instead of one rule"
                        " per parameter, or build the plan in Python")
    try:
        return raw.decode("utf-8")
    except UnicodeDecodeError as err:
        raise PlanError(f"{file}: not UTF-8 text ({err})") from None


def read_plan_data(file: str) -> tuple[Any, Source]:
    """Read and parse a plan file into plain data, within the limits above
    (:func:`check_plain_data` checks the depth and integers of the result).

    Raises:
        ConfigError: for an unsupported extension or a missing optional dependency.
        PlanError: for a file beyond a limit or with a syntax error.
    """
    fmt = format_of(file)
    return _PARSERS[fmt](_read_text(file), file)


# -- YAML --------------------------------------------------------------------------------------
@functools.cache
def _yaml_loader() -> type[Any]:
    """``safe_load``'s loader (libyaml's when installed) refusing over-long integer literals."""
    yaml = require("yaml", "reading YAML")
    base = getattr(yaml, "CSafeLoader", yaml.SafeLoader)

    def construct_int(loader: Any, node: Any) -> int:
        if len(node.value) > MAX_INT_LITERAL:
            raise _LimitError(_long_literal(len(node.value)), node.start_mark)
        value: int = yaml.constructor.SafeConstructor.construct_yaml_int(loader, node)
        return value

    loader: type[Any] = type("PlanLoader", (base,), {})
    loader.add_constructor("tag:yaml.org,2002:int", construct_int)
    return loader


class _Frame:
    """An open YAML collection while scanning events."""

    __slots__ = ("is_map", "anchor", "count", "key", "total_at_start")

    def __init__(self, is_map: bool, anchor: str | None, total_at_start: int) -> None:
        self.is_map, self.anchor, self.total_at_start = is_map, anchor, total_at_start
        self.count = 0
        self.key: str | int = "?"

    def part(self) -> str | int:
        return self.key if self.is_map else self.count


def _scan_yaml_events(yaml: ModuleType, text: str, loader: type, source: Source) -> None:
    """Check nesting depth and alias expansion on the event stream, before composing.

    Every value counts once, an alias as many values as its anchor's collection holds; the
    count is exact and linear in the text, however deep the aliases nest.
    """
    events = yaml.events
    frames: list[_Frame] = []
    sizes: dict[str, int] = {}  # anchor -> values it holds, aliases expanded
    total = unique = 0

    def fail(message: str, event: Any) -> PlanError:
        return source.error(tuple(f.part() for f in frames), message,
                            event.start_mark.line + 1)

    for event in yaml.parse(text, Loader=loader):
        if isinstance(event, events.CollectionEndEvent):
            frame = frames.pop()
            if frame.anchor is not None:
                sizes[frame.anchor] = total - frame.total_at_start
        elif isinstance(event, (events.ScalarEvent, events.AliasEvent,
                                events.CollectionStartEvent)):
            parent = frames[-1] if frames else None
            if parent is not None and parent.is_map and parent.count % 2 == 0:  # a key
                parent.key = event.value if isinstance(event, events.ScalarEvent) else "?"
            if isinstance(event, events.AliasEvent):
                if any(f.anchor == event.anchor for f in frames):
                    raise fail(f"the alias *{short_repr(event.anchor)} refers to a collection"
                               " that contains it; plan files hold trees, not cycles", event)
                total += sizes.get(event.anchor, 1)  # undefined: the composer says so
                unique += 1
                if total - unique > MAX_ALIAS_EXPANSION:
                    raise fail(f"YAML aliases expand to more than {MAX_ALIAS_EXPANSION} values"
                               " (an alias bomb?); write the values out, or use fewer"
                               " aliases", event)
            else:
                total += 1
                unique += 1
                if isinstance(event, events.CollectionStartEvent):
                    if len(frames) >= MAX_DEPTH:
                        raise fail(_too_deep("YAML collections"), event)
                    frames.append(_Frame(isinstance(event, events.MappingStartEvent),
                                         event.anchor, total - 1))
                    continue  # counted in its parent when it ends
                if event.anchor is not None:
                    sizes[event.anchor] = 1
        else:
            continue
        if frames:
            frames[-1].count += 1


def _parse_yaml(text: str, file: str) -> tuple[Any, Source]:
    yaml = require("yaml", "reading YAML")
    loader_class = _yaml_loader()
    source = Source(file, "YAML")
    try:
        _scan_yaml_events(yaml, text, loader_class, source)
        loader = loader_class(text)
        try:
            root = loader.get_single_node()
            source = Source(file, "YAML", lambda path: _yaml_line(root, path))
            _check_yaml_duplicates(root, source)  # before merge keys (<<) rewrite the nodes
            data = loader.construct_document(root) if root is not None else None
        finally:
            loader.dispose()
    except yaml.MarkedYAMLError as err:
        mark = err.problem_mark or err.context_mark
        where = f"{file}:{mark.line + 1}:{mark.column + 1}" if mark else file
        hint = (" (plan files hold plain data: mappings, lists, strings, numbers and booleans;"
                " tags such as !!python/... are refused)"
                if isinstance(err, yaml.constructor.ConstructorError) else "")
        raise PlanError(f"{where}: invalid YAML: {err.problem}{hint}") from None
    except yaml.YAMLError as err:
        raise PlanError(f"{file}: invalid YAML: {err}") from None
    except _LimitError as err:
        line = f":{err.mark.line + 1}" if err.mark is not None else ""
        raise PlanError(f"{file}{line}: {err}") from None
    return data, source


def _yaml_line(node: Any, path: FieldPath) -> int | None:
    """Line of the deepest node along ``path`` (mapping entries: the key's line)."""
    if node is None:  # an empty document
        return None
    line: int = node.start_mark.line + 1
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


def _check_yaml_duplicates(root: Any, source: Source) -> None:
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
                    raise source.error((*path, str(name)), f"key {short_repr(name)} is given"
                                       " twice", key.start_mark.line + 1)
                keys.add(name)
                stack.append((value, (*path, str(name))))


# -- JSON and TOML -----------------------------------------------------------------------------
def _parse_int_literal(digits: str) -> int:
    if len(digits) > MAX_INT_LITERAL:
        raise _LimitError(_long_literal(len(digits)))
    return int(digits)


def _parse_json(text: str, file: str) -> tuple[Any, Source]:
    def unique(pairs: list[tuple[str, Any]]) -> dict[str, Any]:
        out: dict[str, Any] = {}
        for key, value in pairs:
            if key in out:
                raise PlanError(f"{file}: key {short_repr(key)} is given twice in one JSON"
                                " object")
            out[key] = value
        return out

    try:
        data = json.loads(text, object_pairs_hook=unique, parse_int=_parse_int_literal)
    except json.JSONDecodeError as err:
        raise PlanError(f"{file}:{err.lineno}:{err.colno}: invalid JSON: {err.msg}") from None
    except RecursionError:
        raise PlanError(f"{file}: {_too_deep('JSON arrays and objects')}") from None
    except _LimitError as err:
        raise PlanError(f"{file}: {err}") from None
    return data, Source(file, "JSON")


def _parse_toml(text: str, file: str) -> tuple[Any, Source]:
    tomllib = require("tomllib" if sys.version_info >= (3, 11) else "tomli", "reading TOML")
    try:
        data = tomllib.loads(text)
    except tomllib.TOMLDecodeError as err:  # the message says "(at line L, column C)"
        raise PlanError(f"{file}: invalid TOML: {err}") from None
    except RecursionError:
        raise PlanError(f"{file}: {_too_deep('TOML arrays and tables')}") from None
    except ValueError:  # int() of a literal beyond sys.get_int_max_str_digits()
        raise PlanError(f"{file}: an integer literal of more than"
                        f" {sys.get_int_max_str_digits()} digits is too long to read: plan files"
                        " hold integers within 64 bits") from None
    return data, Source(file, "TOML")


_PARSERS = {"YAML": _parse_yaml, "JSON": _parse_json, "TOML": _parse_toml}


# -- every format ------------------------------------------------------------------------------
def check_plain_data(data: Any, source: Source) -> None:
    """Refuse nesting deeper than :data:`MAX_DEPTH` and integers beyond 64 bits, naming the
    field. Shared (aliased) collections are visited once, so this is linear in the text."""
    stack: list[tuple[Any, FieldPath]] = [(data, ())]
    seen: set[int] = set()
    while stack:
        value, path = stack.pop()
        if isinstance(value, int) and not isinstance(value, bool):
            if not -_INT_RANGE <= value < _INT_RANGE:
                raise source.error(path, _int_out_of_range(value))
            continue
        if not isinstance(value, (Mapping, list, tuple)) or id(value) in seen:
            continue
        seen.add(id(value))
        if len(path) >= MAX_DEPTH:
            raise source.error(path[:MAX_DEPTH], _too_deep("mappings and lists"))
        if isinstance(value, Mapping):
            for key, item in value.items():
                field = (*path, key if isinstance(key, str) else short_repr(key))
                stack.extend(((key, field), (item, field)))
        else:
            stack.extend((item, (*path, i)) for i, item in enumerate(value))
