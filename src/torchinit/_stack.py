"""Where a warning points: the first frame of the caller's code, outside torchinit."""

from __future__ import annotations

import os
import sys
from types import FrameType

__all__ = ["PACKAGE_DIR", "user_stacklevel"]

PACKAGE_DIR = os.path.dirname(os.path.abspath(__file__))
"""The folder torchinit's modules are in."""


def user_stacklevel() -> int:
    """The ``stacklevel`` of the first frame outside torchinit, for ``warnings.warn``."""
    level = 1
    frame: FrameType | None = sys._getframe(1)
    while frame is not None and frame.f_code.co_filename.startswith(PACKAGE_DIR):
        level += 1
        frame = frame.f_back
    return level
