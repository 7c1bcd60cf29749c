"""Plots of reports: activation and gradient std by depth, measured and predicted, several
reports overlaid. Needs matplotlib (the ``plot`` extra); it is imported only here, and only the
object-oriented API is used, so no GUI backend is touched.

The y axes are logarithmic. Where a series has a std of exactly 0 (a dead layer, a vanished
gradient), which a log axis would drop, the axis is symmetric-log (``symlog``): logarithmic
down to the lowest positive decade in the data, linear from there to zero, so the zeros are
drawn at 0. Zeros and infinite values (a float overflow) also get their own markers and
legend entries with their counts.
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from ..errors import ConfigError

if TYPE_CHECKING:
    from matplotlib.figure import Figure

    from .report import LayerStats, Report

__all__ = ["plot_reports"]

FORMATS = (".png", ".svg")
MAX_LABELS = 16     # layer names on an x axis; the others are minor ticks
LABEL_CHARS = 24    # a longer module path is shortened with "…" (see _short)
SYMLOG_TICKS = 9    # at most this many decades labelled on a symlog axis
PREDICTED_SHADE = 0.55  # the predicted line's colour: the report's colour times this (darker)


def _figure_class() -> type[Figure]:
    try:
        from matplotlib.figure import Figure
    except ImportError as err:
        raise ImportError("plotting a report needs matplotlib; install the plot extra:"
                          " pip install 'torchinit[plot]'") from err
    return Figure


def _short(parts: list[str]) -> str:
    """A dotted path as a tick label of at most ``LABEL_CHARS`` characters: its first part
    (under a common prefix, usually the block index) and as many last parts as fit."""
    text = ".".join(parts)
    if len(text) <= LABEL_CHARS:
        return text
    head, tail = parts[0], parts[1:]
    while tail and len(head) + 1 + len(".".join(tail)) > LABEL_CHARS:
        tail.pop(0)
    return f"{head}…{'.'.join(tail)}" if tail else text[:LABEL_CHARS - 1] + "…"


def _label_layers(ax: Any, layers: Sequence[LayerStats]) -> None:
    """Name every k-th layer call and the last on the x axis (rotated), at most ``MAX_LABELS``
    of them, by module path under the paths' common prefix (named in the axis label), with a
    minor tick at every call. Where overlaid reports differ at a call, the first names it."""
    names = dict(sorted({s.index: s.layer.split(".") for s in reversed(layers)}.items()))
    common = 0
    while (all(len(parts) > common + 1 for parts in names.values())
           and len({parts[common] for parts in names.values()}) == 1):
        common += 1
    prefix = ".".join(next(iter(names.values()), [])[:common])
    ax.set_xlabel(f"layer{f' in {prefix}' if prefix else ''} (module path, forward order)")
    positions = list(names)
    ax.set_xticks(positions, minor=True)
    chosen = positions[::max(1, math.ceil(len(positions) / MAX_LABELS))]
    if chosen:
        chosen[-1] = positions[-1]  # the last call (the output) is named, in its neighbour's place
    ax.set_xticks(chosen, [_short(names[p][common:]) for p in chosen], rotation=45, ha="right",
                  rotation_mode="anchor", fontsize="x-small")


def _mark_special(ax: Any, depth: list[int], values: list[float], colour: Any,
                  name: str) -> None:
    """Marker and legend entry for the zeros (at 0) and the infinite values (on the top edge,
    where a line cannot reach) of one series."""
    zeros = [x for x, v in zip(depth, values) if v == 0]
    if zeros:
        ax.plot(zeros, [0.0] * len(zeros), linestyle="none", marker="v", markersize=5,
                markerfacecolor="none", markeredgecolor=colour, zorder=4,
                label=f"{name}: {len(zeros)} zero{'s' if len(zeros) > 1 else ''}")
    infinite = [x for x, v in zip(depth, values) if math.isinf(v)]
    if infinite:
        ax.plot(infinite, [1.0] * len(infinite), linestyle="none", marker="^", markersize=5,
                markerfacecolor="none", markeredgecolor=colour, zorder=4, clip_on=False,
                transform=ax.get_xaxis_transform(),
                label=f"{name}: {len(infinite)} infinite (top edge)")


def _yscale(ax: Any, series: Sequence[list[float]]) -> None:
    """Log y axis; symmetric-log, linear below the lowest positive decade of ``series``, where
    a series has a zero, so that it is drawn at 0 (a log axis drops it)."""
    if not any(v == 0 for values in series for v in values):
        ax.set_yscale("log", nonpositive="mask")
        return
    positive = [v for values in series for v in values if 0 < v < math.inf]
    linthresh = 10.0 ** (math.floor(math.log10(min(positive))) if positive else 0)
    ax.set_yscale("symlog", linthresh=linthresh, linscale=0.5)
    ax.yaxis.get_major_locator().set_params(numticks=SYMLOG_TICKS)
    ax.set_ylim(bottom=-0.3 * linthresh)  # the zero markers clear of the bottom edge


def plot_reports(reports: Sequence[Report], path: str | Path, title: str | None = None,
                 only: Sequence[str] | None = None) -> Any:
    """Write one figure overlaying ``reports`` to ``path`` (``.png`` or ``.svg``) and return
    it (a ``matplotlib.figure.Figure``).

    Left: activation std of each layer call; right: gradient std with respect to it. The x axis
    follows the calls in forward-execution order and names up to ``MAX_LABELS`` of them by
    module path. Each report gets a colour and its ``label`` (``report i`` without one) in the
    legend: measured values solid with dots, predicted ones dashed in a darker shade of the
    colour, drawn on top. The y axes are logarithmic, ``symlog`` where there are zeros (see
    the module docstring): zeros are drawn at 0 and marked, infinite values marked on the top
    edge, each with a counted legend entry.
    ``only`` keeps the calls of the named module types (e.g. ``["Linear"]``), which removes the
    alternation between layers and activations from the picture.

    Raises:
        ConfigError: for another file extension or no report to plot.
        ImportError: without matplotlib, naming the ``plot`` extra.
    """
    path = Path(path)
    if path.suffix.lower() not in FORMATS:
        raise ConfigError(f"plot path {str(path)!r}: use a {' or '.join(FORMATS)} file name")
    if not reports:
        raise ConfigError("plot_reports needs at least one report")
    figure = _figure_class()(figsize=(10, 4.2), dpi=100, layout="constrained")
    from matplotlib.colors import to_rgb  # after _figure_class, which names the missing extra

    act_ax, grad_ax = figure.subplots(1, 2)
    plotted: dict[Any, list[list[float]]] = {act_ax: [], grad_ax: []}
    kept: list[LayerStats] = []
    for i, report in enumerate(reports):
        colour, label = f"C{i % 10}", report.label or f"report {i + 1}"
        styles = {"measured": {"color": colour, "marker": "o", "markersize": 3,
                               "linewidth": 1.2, "zorder": 2},
                  "predicted": {"color": tuple(PREDICTED_SHADE * c for c in to_rgb(colour)),
                                "linestyle": (0, (4, 2)), "linewidth": 1.6, "zorder": 3}}
        layers = [s for s in report.layers if only is None or s.module_type in only]
        kept += layers
        depth = [s.index for s in layers]
        series = ((act_ax, "measured", [s.std for s in layers]),
                  (act_ax, "predicted", [s.predicted_std for s in layers]),
                  (grad_ax, "measured", [s.grad_std for s in layers]),
                  (grad_ax, "predicted", [s.predicted_grad_std for s in layers]))
        for ax, kind, raw in series:
            if all(v is None for v in raw):
                continue
            values = [math.nan if v is None else float(v) for v in raw]
            ax.plot(depth, values, label=f"{label}: {kind}", **styles[kind])
            _mark_special(ax, depth, values, styles[kind]["color"], f"{label}: {kind}")
            plotted[ax].append(values)
    for ax, what in ((act_ax, "activation std"), (grad_ax, "gradient std")):
        _yscale(ax, plotted[ax])
        _label_layers(ax, kept)
        ax.set_ylabel(what)
        ax.set_title(f"{what} by depth")
        ax.grid(True, which="major", alpha=0.3)
    act_ax.legend(fontsize="small")
    handles, labels = grad_ax.get_legend_handles_labels()
    special = [(h, t) for h, t in zip(handles, labels) if not t.endswith(("measured", "predicted"))]
    if special:
        grad_ax.legend(*zip(*special), fontsize="small")
    if title:
        figure.suptitle(title)
    figure.savefig(path)
    return figure
