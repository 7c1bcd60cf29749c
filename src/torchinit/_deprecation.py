"""Deprecated spellings: each still works, warns once per call site with the new one, and is
listed in CHANGELOG.md with the release that removes it."""

from __future__ import annotations

import warnings
from typing import Any, TypeVar

__all__ = ["renamed", "deprecated_alias"]

_T = TypeVar("_T")

REMOVED_IN = "0.3"


def renamed(owner: str, old: str, new: str, value: _T, stacklevel: int = 3) -> _T:
    """``value``, after warning that ``owner``'s ``old`` is now called ``new``."""
    warnings.warn(f"{owner}: {old!r} is now {new!r}; {old!r} is deprecated and will be removed"
                  f" in torchinit {REMOVED_IN}", DeprecationWarning, stacklevel=stacklevel)
    return value


def deprecated_alias(old: str, new: str, target: Any) -> Any:
    """``target`` (a function) wrapped to warn that ``old`` is now ``new`` when called."""
    import functools

    @functools.wraps(target)
    def alias(*args: Any, **kwargs: Any) -> Any:
        warnings.warn(f"{old} is deprecated and will be removed in torchinit {REMOVED_IN}; use"
                      f" {new}", DeprecationWarning, stacklevel=2)
        return target(*args, **kwargs)

    alias.__doc__ = f"Deprecated: use {new}."
    return alias
