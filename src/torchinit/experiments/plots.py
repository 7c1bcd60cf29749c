"""Plots of a comparison: loss curves and accuracy with confidence intervals.

Needs matplotlib (the ``plot`` extra), imported here only when a plot is drawn, through its
object-oriented API (no pyplot, so no GUI backend is touched).
"""

from __future__ import annotations

import math
from pathlib import Path

from .results import CONFIDENCE, PanelResult

__all__ = ["plot_loss_curves", "plot_accuracy"]


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def plot_loss_curves(panel: PanelResult, path: str | Path) -> None:
    """Training loss per step (mean over seeds), one line per scheme, log scale."""
    figure = _figure(8, 4.5)
    ax = figure.subplots()
    for i, result in enumerate(panel.results):
        curve = result.mean_curve()
        ax.plot(range(1, len(curve) + 1), curve, color=f"C{i % 10}", linewidth=1.2,
                label=result.scheme.label)
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("training step (batch)")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title(panel.panel.title, fontsize="medium")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    figure.savefig(path)


def plot_accuracy(panel: PanelResult, path: str | Path, classes: int = 10) -> None:
    """Mean validation accuracy per scheme with its confidence interval, and chance level."""
    labels, means, errors = [], [], []
    for result in panel.results:
        acc = result.accuracy()
        labels.append(result.scheme.label)
        means.append(100 * acc.mean)
        errors.append(0.0 if acc.half_width is None else 100 * acc.half_width)
    figure = _figure(8, 0.45 * len(labels) + 1.5)
    ax = figure.subplots()
    rows = list(range(len(labels)))[::-1]
    ax.barh(rows, means, xerr=errors, capsize=3, color=[f"C{i % 10}" for i in range(len(labels))])
    for row, mean, error in zip(rows, means, errors):
        if math.isfinite(mean):
            ax.text(mean + error + 1, row, f"{mean:.1f}", va="center", fontsize="small")
    ax.axvline(100 / classes, color="gray", linestyle="--", linewidth=1, label="chance")
    ax.set_yticks(rows, labels)
    ax.set_xlim(0, 110)
    ax.set_xlabel(f"validation accuracy % (mean, {CONFIDENCE:.0%} CI over"
                  f" {len(panel.results[0].runs)} seeds)")
    ax.set_title(panel.panel.title, fontsize="medium")
    ax.legend(fontsize="small", loc="lower right")
    figure.savefig(path)
