"""Plots of reports: activation and gradient std by depth, measured (solid) and predicted
(dashed), log scale, several reports overlaid. Needs matplotlib (the ``plot`` extra); it is
imported only here, and only the object-oriented API is used, so no GUI backend is touched."""

from __future__ import annotations

from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING

from ..errors import ConfigError

if TYPE_CHECKING:
    from .report import Report

__all__ = ["plot_reports"]

FORMATS = (".png", ".svg")


def _figure_class():  # type: ignore[no-untyped-def]
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plotting a report needs matplotlib; install the plot extra:"
                          " pip install 'torchinit[plot]'") from err
    return Figure


def plot_reports(reports: Sequence[Report], path: str | Path, title: str | None = None,
                 only: Sequence[str] | None = None) -> None:
    """Write one figure overlaying ``reports`` to ``path`` (``.png`` or ``.svg``).

    Left: activation std of each layer call; right: gradient std with respect to it. The x axis
    is the position of the call in forward-execution order. Each report gets a colour and its
    ``label`` (``report i`` without one) in the legend. ``only`` keeps the calls of the named
    module types (e.g. ``["Linear"]``), which removes the alternation between layers and
    activations from the picture.

    Raises:
        ConfigError: for another file extension or no report to plot.
        ImportError: without matplotlib, naming the ``plot`` extra.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"plot path {str(path)!r}: use a {' or '.join(FORMATS)} file name")
    if not reports:
        raise ConfigError("plot_reports needs at least one report")
    figure = _figure_class()(figsize=(10, 3.8), dpi=80, layout="constrained")
    act_ax, grad_ax = figure.subplots(1, 2)
    for i, report in enumerate(reports):
        colour, label = f"C{i % 10}", report.label or f"report {i + 1}"
        layers = [s for s in report.layers if only is None or s.module_type in only]
        depth = [s.index for s in layers]
        series = ((act_ax, [s.std for s in layers], [s.predicted_std for s in layers]),
                  (grad_ax, [s.grad_std for s in layers], [s.predicted_grad_std for s in layers]))
        for ax, measured, predicted in series:
            ax.plot(depth, [float("nan") if v is None else v for v in measured], "-o",
                    color=colour, markersize=2.5, linewidth=1.2, label=f"{label}: measured")
            if any(v is not None for v in predicted):
                ax.plot(depth, [float("nan") if v is None else v for v in predicted], "--",
                        color=colour, linewidth=1.0, alpha=0.8, label=f"{label}: predicted")
    for ax, what in ((act_ax, "activation std"), (grad_ax, "gradient std")):
        ax.set_yscale("log", nonpositive="mask")
        ax.set_xlabel("layer call (forward order)")
        ax.set_ylabel(what)
        ax.set_title(f"{what} by depth")
        ax.grid(True, which="major", alpha=0.3)
    act_ax.legend(fontsize="small")
    if title:
        figure.suptitle(title)
    figure.savefig(path)
