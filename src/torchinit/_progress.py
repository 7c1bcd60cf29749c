"""A minimal progress bar on stderr, shown only when stderr is a terminal."""

from __future__ import annotations

import sys
import time
from types import TracebackType
from typing import TextIO

__all__ = ["Progress"]


class Progress:
    """Context manager: ``with Progress(total, "label") as bar: bar.advance(n)``.

    Args:
        total: The amount of work (any unit; bytes are shown as GB when ``unit="B"``).
        label: Text before the bar.
        enabled: Show the bar; default: when the stream is a terminal.
        unit: ``"B"`` for bytes, otherwise the count is shown as is.
        stream: Where to draw (default ``sys.stderr``).
    """

    def __init__(self, total: float, label: str, enabled: bool | None = None, unit: str = "B",
                 stream: TextIO | None = None) -> None:
        self.stream = stream if stream is not None else sys.stderr
        self.enabled = self.stream.isatty() if enabled is None else enabled
        self.total, self.label, self.unit = max(float(total), 1.0), label, unit
        self.done = 0.0
        self._start = self._last = 0.0

    def __enter__(self) -> Progress:
        self._start = time.perf_counter()
        return self

    def advance(self, amount: float) -> None:
        """Record ``amount`` more work done; redraw at most ten times a second."""
        self.done += amount
        now = time.perf_counter()
        if self.enabled and (now - self._last > 0.1 or self.done >= self.total):
            self._last = now
            self._draw(now)

    def _amount(self, value: float) -> str:
        return f"{value / 1e9:.2f} GB" if self.unit == "B" else f"{value:.0f}"

    def _draw(self, now: float) -> None:
        frac = min(self.done / self.total, 1.0)
        bar = "#" * int(frac * 30)
        self.stream.write(f"\r{self.label} [{bar:<30s}] {frac:4.0%} {self._amount(self.done)}"
                          f"/{self._amount(self.total)} {now - self._start:5.1f}s")
        self.stream.flush()

    def __exit__(self, exc_type: type[BaseException] | None, exc: BaseException | None,
                 tb: TracebackType | None) -> None:
        if self.enabled and self._last:
            self.stream.write("\n")
            self.stream.flush()
