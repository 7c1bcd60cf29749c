"""Exceptions raised by torchinit.

Every error the library raises on bad input is one of these. Each is a subclass of
:class:`ValueError` or :class:`TypeError`, so code that already catches those keeps working, and
each message names what was being initialized (parameter path, shape, initializer) and says what
would work instead.
"""

from __future__ import annotations

import difflib
from collections.abc import Iterable, Sequence

__all__ = [
    "TorchinitError",
    "InitializerError",
    "FanError",
    "DTypeError",
    "UnknownNameError",
    "ConfigError",
    "PlanError",
    "describe_target",
]


class TorchinitError(Exception):
    """Base class of every exception raised by torchinit."""


class InitializerError(TorchinitError, ValueError):
    """An initializer got arguments or a tensor it cannot serve."""


class FanError(InitializerError):
    """Fans cannot be determined for a tensor or parameter."""


class DTypeError(TorchinitError, TypeError):
    """A tensor's dtype cannot hold what an initializer produces (integer or bool tensors)."""


class ConfigError(InitializerError):
    """A configuration (dict, file or name) does not describe a valid object."""


class PlanError(ConfigError):
    """A plan cannot initialize a model: unmatched parameters, rules that cannot serve the
    parameters they match, bad plan files. Raised before any tensor is written."""


class UnknownNameError(ConfigError, KeyError):
    """A name that is not in a registry; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


def suggest(name: str, known: Iterable[str]) -> str:
    """Return a ``" Did you mean ...?"`` suffix listing close matches of ``name``, or ``""``."""
    matches = difflib.get_close_matches(name, list(known), n=3, cutoff=0.6)
    if not matches:
        return ""
    return " Did you mean " + " or ".join(repr(m) for m in matches) + "?"


def describe_target(
    path: str | None, shape: Sequence[int] | None, initializer: object | None = None
) -> str:
    """Format ``parameter 'path' of shape (a, b) with Initializer(...)`` for error messages."""
    what = f"parameter {path!r}" if path else "tensor"
    if shape is not None:
        what += f" of shape {tuple(int(s) for s in shape)}"
    if initializer is not None:
        what += f" with {initializer!r}"
    return what
