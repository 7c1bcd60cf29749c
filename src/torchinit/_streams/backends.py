"""Choice of sampling backend: the compiled CPU core where it applies, else the reference.

``TORCHINIT_BACKEND`` chooses: ``auto`` (the default: the compiled core for every CPU tensor),
``compiled`` (an error if the core is missing) or
``reference`` (torch tensor ops everywhere). Both give bit-identical values, so the choice
changes speed, never results. The core is a C extension built by ``pip install``; where it
could not be built, torchinit warns once and samples with the reference backend.
"""

from __future__ import annotations

import os
import threading
import warnings

import torch

from ..errors import InitializerError

__all__ = ["compiled_available", "use_compiled", "backend_name"]

_CHOICES = ("auto", "compiled", "reference")
_warned = threading.Event()


def compiled_available() -> bool:
    """Whether the compiled core was built and can be imported."""
    try:
        from . import _core  # noqa: F401
    except ImportError:
        return False
    return True


def _choice() -> str:
    choice = os.environ.get("TORCHINIT_BACKEND", "auto")
    if choice not in _CHOICES:
        raise InitializerError(f"TORCHINIT_BACKEND={choice!r} is not a backend; use one of"
                               f" {', '.join(_CHOICES)}")
    return choice


def backend_name() -> str:
    """The backend large CPU samples use now: ``"compiled"`` or ``"reference"``."""
    choice = _choice()
    if choice == "reference" or (choice == "auto" and not compiled_available()):
        return "reference"
    return "compiled"


def use_compiled(device: torch.device, numel: int) -> bool:
    """Whether to sample ``numel`` values on ``device`` with the compiled core."""
    choice = _choice()
    if choice == "reference" or device.type != "cpu" or numel == 0:
        return False
    if compiled_available():
        return True
    if choice == "compiled":
        raise InitializerError(
            "TORCHINIT_BACKEND=compiled, but torchinit's compiled core (torchinit._streams._core)"
            " is not installed; reinstall torchinit where a C compiler is available")
    if not _warned.is_set():
        _warned.set()
        warnings.warn("torchinit's compiled sampling core is not installed (no C compiler at"
                      " install time?), so it samples on the CPU with its reference backend,"
                      " several times slower; reinstall with a C compiler (gcc or clang)",
                      stacklevel=4)
    return False
