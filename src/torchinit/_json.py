"""Numbers in torchinit's JSON: finite floats as numbers, the others as strings.

JSON has no NaN or infinity. Every JSON form torchinit writes (manifests, diagnostics
reports, experiment results) spells them the same way, as the strings ``"inf"``, ``"-inf"``
and ``"nan"``, which ``float()`` reads back.
"""

from __future__ import annotations

import math
from typing import Any

__all__ = ["json_number", "read_json_number", "NON_FINITE"]

NON_FINITE = ("inf", "-inf", "nan")


def json_number(x: float | None) -> float | str | None:
    """``x`` for JSON: itself if finite (or ``None``), else ``"inf"``, ``"-inf"`` or ``"nan"``."""
    if x is None or math.isfinite(x):
        return x
    return "nan" if math.isnan(x) else ("inf" if x > 0 else "-inf")


def read_json_number(x: Any) -> Any:
    """The inverse of :func:`json_number` (anything else is returned as it is)."""
    return float(x) if isinstance(x, str) and x in NON_FINITE else x
