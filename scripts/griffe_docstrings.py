"""Griffe extension for the documentation site: renders torchinit's docstrings as Markdown.

The docstrings are Google style, with two habits that Markdown does not know:

* Sphinx roles (``:class:`~torchinit.Plan```, ``:func:`lsuv```, ``:mod:`.fold```). Each becomes
  inline code, linked to the object's reference entry when the name resolves to an object of
  the package (the link is optional: a private helper with no entry is just code).
* Doctest lines (``>>> ...``) in the free text of a docstring, outside an ``Example:`` section
  (which griffe handles itself). Each run of them becomes a ``pycon`` code block.

Loaded by mkdocstrings from ``mkdocs.yml``; the package's source is not changed.
"""

from __future__ import annotations

import html
import re
from typing import Any

import griffe

ROLE = re.compile(r":(?:py:)?(?:class|func|meth|mod|attr|data|exc|obj|const):`([^`]+)`")
DOCTEST = re.compile(r"^(>>> |>>>$)")


class DocstringMarkdown(griffe.Extension):
    """Rewrites roles and free-standing doctests in every docstring of the loaded package."""

    def on_package(self, *, pkg: griffe.Module, loader: griffe.GriffeLoader, **kwargs: Any) -> None:
        for obj in _objects(pkg):
            if obj.docstring is not None:
                text = _fence_doctests(obj.docstring.value)
                obj.docstring.value = ROLE.sub(lambda m: _role(m.group(1), obj, loader), text)


def _objects(obj: griffe.Object) -> list[griffe.Object]:
    """``obj`` and every object defined in it (not the names it imports)."""
    found = [obj]
    for member in obj.members.values():
        if not member.is_alias:
            found.extend(_objects(member))
    return found


def _role(target: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str:
    """Inline code for ``target``, linked to its entry when it names an object of the package."""
    target = target.strip()
    short = target.startswith("~")
    name = target.lstrip("~")
    shown = name.rsplit(".", 1)[-1] if short else name
    code = f"<code>{html.escape(shown)}</code>"
    path = _canonical(name, obj, loader)
    if path is None:
        return code
    return f'<autoref identifier="{html.escape(path)}" optional>{code}</autoref>'


def _canonical(name: str, obj: griffe.Object, loader: griffe.GriffeLoader) -> str | None:
    """The canonical path of the object ``name`` denotes in ``obj``'s scope, or None."""
    if name.startswith("."):
        module = obj.module
        package = module if module.is_init_module else module.parent
        if package is None:
            return None
        full = f"{package.path}{name}"
    else:
        head, _, rest = name.partition(".")
        if head == obj.package.name:
            full = name
        else:
            try:
                full = obj.resolve(head)
            except (griffe.NameResolutionError, griffe.AliasResolutionError, KeyError):
                return None
            full = f"{full}.{rest}" if rest else full
    try:
        found = loader.modules_collection.get_member(full)
        return found.final_target.path if found.is_alias else found.path
    except (KeyError, ValueError, griffe.AliasResolutionError, griffe.CyclicAliasError):
        return None


def _fence_doctests(text: str) -> str:
    """Wrap each run of unindented doctest lines (and their output) in a ``pycon`` fence."""
    out: list[str] = []
    in_fence = False
    in_run = False
    for line in text.splitlines():
        if line.startswith("```"):
            in_fence = not in_fence
        if not in_fence and not in_run and DOCTEST.match(line):
            out.append("```pycon")
            in_run = True
        elif in_run and not line.strip():
            out.append("```")
            in_run = False
        out.append(line)
    if in_run:
        out.append("```")
    return "\n".join(out)
