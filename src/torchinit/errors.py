"""Exceptions raised by torchinit.

Every error the library raises on bad input is one of these. Each is a subclass of
:class:`ValueError` or :class:`TypeError`, so code that already catches those keeps working, and
each message names what was being initialized (parameter path, shape, initializer) and says what
would work instead.
"""

from __future__ import annotations

import difflib
import math
import reprlib
from collections.abc import Iterable, Iterator, Sequence
from contextlib import contextmanager
from typing import Any

__all__ = [
    "TorchinitError",
    "InitializerError",
    "FanError",
    "DTypeError",
    "UnknownNameError",
    "ConfigError",
    "PlanError",
    "WriteError",
    "CheckpointError",
    "ArgumentTypeError",
    "describe_target",
    "short_repr",
]

FieldPath = tuple[str | int, ...]
"""Where a value sits in a configuration: ``("rules", 2, "init", "stddev")``."""


class TorchinitError(Exception):
    """Base class of every exception raised by torchinit.

    Args:
        *args: The message (as for any exception).
        field: Where in a configuration the wrong value is, relative to the object that raised:
            ``("stddev",)`` from an initializer, ``("init", "stddev")`` once a rule has
            prefixed it (:func:`at_field`). Empty when the error is not about one field. The
            plan-file loader prefixes the rule's place and reports that field and its line.

    Attributes:
        field: The field path given (kept when the error is pickled).
    """

    def __init__(self, *args: object, field: FieldPath = ()) -> None:
        super().__init__(*args)
        self.field: FieldPath = tuple(field)


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


class CheckpointError(PlanError):
    """A checkpoint cannot be read or does not fit the model (missing, truncated or corrupt
    files, shape or dtype mismatches, unexpected keys, rules that would overwrite what it
    loads). Raised before any tensor is allocated, listing every problem."""


class WriteError(PlanError):
    """Tensors cannot receive a manifest's values: meta, inference-mode or self-overlapping
    storage, a dtype that cannot hold the values. Raised before any tensor is written, naming
    every offender."""


class ArgumentTypeError(TorchinitError, TypeError):
    """An argument of the wrong type, e.g. a string where a model is expected."""


class UnknownNameError(ConfigError, KeyError):
    """A name that is not in a registry; the message lists close matches."""

    def __str__(self) -> str:  # KeyError would quote the message
        return str(self.args[0]) if self.args else ""


@contextmanager
def at_field(*prefix: str | int) -> Iterator[None]:
    """Prefix the :attr:`~TorchinitError.field` of a torchinit error raised inside the block
    with ``prefix``: the place, in the object being built, of the value that was passed on."""
    try:
        yield
    except TorchinitError as err:
        err.field = (*prefix, *err.field)
        raise


def suggest(name: object, known: Iterable[str]) -> str:
    """Return a ``" Did you mean ...?"`` suffix listing close matches of ``name``, or ``""``
    (always ``""`` for a value that is not a string of a plausible name's length)."""
    if not isinstance(name, str) or len(name) > SHORT_REPR_LIMIT:
        return ""
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


class _ShortRepr(reprlib.Repr):
    """``reprlib`` limits, and integers too long for ``str`` shown by their size."""

    def __init__(self) -> None:
        super().__init__()
        self.maxlevel, self.maxlist, self.maxtuple, self.maxdict = 3, 6, 6, 4
        self.maxset = self.maxfrozenset = 6
        self.maxstring, self.maxlong, self.maxother = 60, 40, 60

    def repr_int(self, x: int, level: int) -> str:
        if x.bit_length() > 128:  # also beyond sys.get_int_max_str_digits(): no str()
            digits = math.floor((x.bit_length() - 1) * math.log10(2)) + 1
            return f"<{'negative ' if x < 0 else ''}int of about {digits} digits>"
        return super().repr_int(x, level)


_SHORT = _ShortRepr()
SHORT_REPR_LIMIT = 80
"""The longest quote of a user value in a message (characters)."""


def short_repr(value: Any) -> str:
    """``repr(value)`` cut to at most :data:`SHORT_REPR_LIMIT` characters, in time and memory
    bounded by that length whatever ``value`` is (a nested YAML alias bomb, a 10**5000).

    Messages quote user values through this helper, never with ``{value!r}``.
    """
    try:
        text = _SHORT.repr(value)
    except Exception:  # a user object whose repr fails
        text = f"<{type(value).__name__} object>"
    if len(text) > SHORT_REPR_LIMIT:
        text = text[: SHORT_REPR_LIMIT - 3] + "..."
    return text
