"""A printable description of the initializer catalog (``torchinit catalog``)."""

from __future__ import annotations

import dataclasses
import inspect
from typing import TYPE_CHECKING, Any, cast

from . import initializers

if TYPE_CHECKING:
    from _typeshed import DataclassInstance

__all__ = ["catalog_records", "format_catalog"]


def _summary(cls: type) -> str:
    doc = inspect.getdoc(cls) or ""
    return " ".join(doc.split("\n\n")[0].split())


def catalog_records() -> list[dict[str, Any]]:
    """One JSON-safe record per initializer: name, aliases, arguments with defaults, summary."""
    records: list[dict[str, Any]] = []
    for name in initializers.names():
        cls = initializers.lookup(name)
        # every initializer class is a dataclass; Initializer itself is not decorated
        fields = dataclasses.fields(cast("type[DataclassInstance]", cls))
        records.append({
            "name": name,
            "class": cls.__name__,
            "aliases": list(cls.aliases),
            "arguments": {f.name: f.default for f in fields},
            "uses_fans": cls.uses_fans,
            "elementwise": cls.elementwise,
            "formula": cls.formula,
            "summary": _summary(cls),
        })
    return records


def format_catalog(records: list[dict[str, Any]]) -> str:
    """A table for people: name, arguments, formula."""
    lines = []
    for r in records:
        args = ", ".join(f"{k}={v!r}" for k, v in r["arguments"].items())
        alias = f"  (also: {', '.join(r['aliases'])})" if r["aliases"] else ""
        lines.append(f"{r['name']}({args}){alias}")
        lines.append(f"    {r['formula']}")
        lines.append(f"    {r['summary']}")
    return "\n".join(lines)
