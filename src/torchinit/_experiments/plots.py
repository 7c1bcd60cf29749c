"""Plots of a comparison: loss curves and accuracy with confidence intervals; and of a
μTransfer grid: the final training loss against the learning rate, one line per width.

Needs matplotlib (the ``plot`` extra), imported here only when a plot is drawn, through its
object-oriented API (no pyplot, so no GUI backend is touched).
"""

from __future__ import annotations

import math
from collections.abc import Sequence
from pathlib import Path
from typing import TYPE_CHECKING, Any

from .results import CONFIDENCE, PanelResult
from .stats import FINAL_SHARE, final_loss

if TYPE_CHECKING:
    from .transfer import Transfer

__all__ = ["plot_loss_curves", "plot_accuracy", "plot_transfer"]

TAIL = FINAL_SHARE   # the share of the last steps whose mean is a curve's final loss
WITHIN_BEST = 3.0    # a scheme trains when its final loss is within this factor of the best
SMOOTH_STEPS = 20    # the zoom's moving average spans 1/SMOOTH_STEPS of the steps
ZOOM_MARGIN = 1.15   # the zoom's y range: its curves' range widened by this factor each way
ZOOM_STYLES = ("-", "--", "-.", ":", (0, (6, 1, 1, 1)))


def _figure(width: float, height: float):  # type: ignore[no-untyped-def]
    from matplotlib.figure import Figure

    return Figure(figsize=(width, height), dpi=100, layout="constrained")


def _trains(first: float, final: float, best: float) -> bool:
    """Whether a curve from ``first`` to ``final`` trains: at most half its first loss and
    within ``WITHIN_BEST`` times the ``best`` final loss of the panel."""
    return math.isfinite(final) and final <= first / 2 and final <= WITHIN_BEST * best


def _moving_average(curve: Sequence[float], window: int) -> list[float]:
    """Mean of each ``window`` consecutive values (the first at step ``window``)."""
    return [math.fsum(curve[i - window:i]) / window for i in range(window, len(curve) + 1)]


def _zoom(ax: Any, panel: PanelResult, curves: list[list[float]], chosen: list[int],
          main: Any) -> None:
    """The schemes that train on ``ax``: smoothed, in a y range fitted to them after the
    first ``TAIL`` of the steps, ordered by final loss in the legend; ``main`` shades it."""
    from matplotlib.ticker import FormatStrFormatter

    window = max(1, len(max(curves, key=len)) // SMOOTH_STEPS)
    finals = {i: final_loss(curves[i]) for i in chosen}
    shown: list[float] = []
    for rank, i in enumerate(sorted(chosen, key=finals.__getitem__)):
        smooth = _moving_average(curves[i], window)
        ax.plot(range(window, len(curves[i]) + 1), smooth, color=f"C{i % 10}", linewidth=1.4,
                linestyle=ZOOM_STYLES[rank % len(ZOOM_STYLES)],
                label=f"{panel.results[i].scheme.label} ({finals[i]:#.3g})")
        shown += [v for v in smooth[round(TAIL * len(smooth)):] if math.isfinite(v)]
    ax.set_yscale("log")
    if shown:  # curves shorter than the window have no moving average to fit
        low, high = min(shown) / ZOOM_MARGIN, max(shown) * ZOOM_MARGIN
        ax.set_ylim(low, high)
        main.axhspan(low, high, color="0.85", alpha=0.5, zorder=0, linewidth=0)
    ax.yaxis.set_major_formatter(FormatStrFormatter("%g"))
    ax.yaxis.set_minor_formatter(FormatStrFormatter("%g"))
    ax.set_xlabel("training step (batch)")
    ax.set_ylabel(f"training loss, moving average of {window} steps")
    ax.set_title("the schemes that train, zoomed (grey band at left)", fontsize="medium")
    ax.grid(True, which="both", alpha=0.3)
    ax.legend(fontsize="small", title="final loss", title_fontsize="small")


def plot_loss_curves(panel: PanelResult, path: str | Path) -> Any:
    """Training loss per step (mean over seeds), one line per scheme, log scale; write it to
    ``path`` and return the ``matplotlib.figure.Figure``.

    When at least two schemes train (their final loss, the mean over the last ``TAIL`` of the
    steps, is at most half their first and within ``WITHIN_BEST`` times the best), a second
    axis zooms in on them: moving averages over a ``1 / SMOOTH_STEPS`` share of the steps,
    distinct line styles, the final losses in the legend, so that schemes a log axis spanning
    the diverging ones draws as one band can be told apart.
    """
    curves = [result.mean_curve() for result in panel.results]
    finals = [final_loss(curve) for curve in curves]
    best = min((f for f in finals if math.isfinite(f)), default=math.nan)
    chosen = [i for i, (curve, final) in enumerate(zip(curves, finals))
              if curve and _trains(curve[0], final, best)]
    zoom = len(chosen) >= 2
    figure = _figure(12 if zoom else 8, 4.5)
    axes = figure.subplots(1, 2 if zoom else 1, squeeze=False)[0]
    ax = axes[0]
    for i, (result, curve) in enumerate(zip(panel.results, curves)):
        ax.plot(range(1, len(curve) + 1), curve, color=f"C{i % 10}", linewidth=1.2,
                label=result.scheme.label)
    ax.set_yscale("log", nonpositive="mask")
    ax.set_xlabel("training step (batch)")
    ax.set_ylabel("training loss (mean over seeds)")
    ax.set_title(panel.panel.title, fontsize="medium")
    ax.grid(True, which="major", alpha=0.3)
    ax.legend(fontsize="small", ncol=2)
    if zoom:
        _zoom(axes[1], panel, curves, chosen, ax)
    figure.savefig(path)
    return figure


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


TRANSFER_TITLES = {"sp": "SP: PyTorch default init, one learning rate",
                   "mup": "μP: ti.mup, per-layer learning rates"}
TRANSFER_CEILING = 2.0  # the y axis ends at this factor of the largest of the best losses


def plot_transfer(result: Transfer, path: str | Path) -> Any:
    """The final training loss against log2 of the learning rate, one line per width (darker
    is wider), SP and μP side by side with a shared y axis, each width's best learning rate
    marked: Figures 1 and 3 of Yang et al. (2022), "Tensor Programs V". Write it to ``path``
    and return the ``matplotlib.figure.Figure``.

    The y axis spans the losses from the least to ``TRANSFER_CEILING`` times the largest of
    the widths' best losses, at most the largest finite loss, so the minima stay readable;
    losses above it leave the plot, runs that diverged (NaN) are left out.
    """
    from matplotlib import colormaps
    from matplotlib.ticker import MaxNLocator

    figure = _figure(12, 4.8)
    axes = figure.subplots(1, 2, sharey=True)
    log2 = [math.log2(lr) for lr in result.lrs]
    cmap = colormaps["viridis"]
    shades = [cmap(0.85 * (1 - i / max(1, len(result.widths) - 1))) for i in
              range(len(result.widths))]
    finite: list[float] = []
    best_losses: list[float] = []
    for ax, name in zip(axes, ("sp", "mup")):
        for width, shade, best in zip(result.widths, shades, result.best(name)):
            losses = result.losses(name, width)
            finite += [v for v in losses if math.isfinite(v)]
            ax.plot(log2, [v if math.isfinite(v) else math.nan for v in losses], color=shade,
                    linewidth=1.6, marker=".", label=f"width {width}")
            if best.index is not None:
                best_losses.append(best.loss)
                ax.plot(log2[best.index], best.loss, marker="*", markersize=11, color=shade,
                        markeredgecolor="black", markeredgewidth=0.6, linestyle="none")
        ax.set_xlabel("log2 learning rate")
        ax.xaxis.set_major_locator(MaxNLocator(integer=True))
        shift = result.shift(name)
        ax.set_title(f"{TRANSFER_TITLES[name]}\nbest learning rate moves"
                     f" {'-' if shift is None else shift} grid step(s) across widths",
                     fontsize="medium")
        ax.grid(True, alpha=0.3)
    if finite:
        low, high = min(finite), min(max(finite), TRANSFER_CEILING * max(best_losses))
        margin = 0.04 * (high - low or 1.0)
        axes[0].set_ylim(low - margin, high + margin)
    axes[0].set_ylabel(f"training loss, mean of the last {FINAL_SHARE:.0%} of steps")
    axes[1].legend(fontsize="small", title="* best learning rate", title_fontsize="small")
    figure.suptitle(f"μTransfer: MLP 784-w-w-10 on {result.dataset['name']},"
                    f" {result.config.optimizer}, μP base width {result.base_width}",
                    fontsize="medium")
    figure.savefig(path)
    return figure
