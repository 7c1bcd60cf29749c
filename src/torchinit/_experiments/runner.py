"""Run a comparison over seeds, and write its results (JSON, markdown, plots)."""

from __future__ import annotations

import importlib.util
import time
from collections.abc import Sequence
from dataclasses import dataclass
from pathlib import Path
from typing import TYPE_CHECKING

import torch

from ..errors import ConfigError
from .._progress import Progress
from .datasets import Dataset, Split
from .protocol import TrainConfig, steps_per_run, train_run
from .results import Comparison, PanelResult, SchemeResult
from .schemes import Scheme, resolve_scheme
from .suites import Panel

if TYPE_CHECKING:
    from .._diagnostics import Report

__all__ = ["run_comparison", "write_outputs", "Outputs", "DIAGNOSTIC_BATCH",
           "training_split", "write_results", "plot_notes"]

DIAGNOSTIC_BATCH = 256
"""Training examples the diagnostics report of a depth panel is measured on."""
WEIGHTED_TYPES = ("Linear", "Conv1d", "Conv2d", "Conv3d")


def training_split(dataset: Dataset, config: TrainConfig, seed: int) -> Split:
    """The training and validation parts ``config`` trains on: ``dataset`` split with ``seed``,
    standardized if ``config.standardize``."""
    split = dataset.split(config.val_fraction, seed)
    return split.standardized() if config.standardize else split


def _diagnose(panel: Panel, scheme: Scheme, split: Split, seed: int) -> Report:
    """The diagnostics report of ``scheme``'s initial network (seed ``seed``)."""
    from torchinit._diagnostics import inspect

    torch.manual_seed(seed)
    model = panel.build()
    batch = split.train_x[:DIAGNOSTIC_BATCH]
    scheme.initialize(model, seed, batch)
    return inspect(model, batch, label=scheme.label, seed=seed)


def run_comparison(experiment: str, dataset: Dataset, panels: Sequence[Panel], seeds: int,
                   seed: int = 0, progress: bool | None = None) -> Comparison:
    """Train every scheme of every panel with seeds ``seed, seed + 1, ..., seed + seeds - 1``.

    The train/validation split is drawn once with ``seed`` and shared by every run; each run's
    seed decides its initialization, dropout and batch order. Every scheme is resolved before
    the first run, so a bad name fails at once.

    Args:
        experiment: The experiment's name (recorded in the results).
        dataset: The data.
        panels: What to compare (see :mod:`.suites`).
        seeds: Runs per scheme (>= 1; 2 or more give confidence intervals).
        seed: The first seed.
        progress: Draw a progress bar on stderr; default: when stderr is a terminal.

    Raises:
        ConfigError: for ``seeds < 1``; what resolving a scheme or building a split raises.
    """
    if isinstance(seeds, bool) or not isinstance(seeds, int) or seeds < 1:
        raise ConfigError(f"seeds must be an int >= 1, got {seeds!r}")
    start = time.perf_counter()
    schemes = {p.name: [resolve_scheme(s) for s in p.schemes] for p in panels}
    splits = {p.name: training_split(dataset, p.config, seed) for p in panels}
    total = sum(len(schemes[p.name]) * seeds * steps_per_run(len(splits[p.name].train_y),
                                                              p.config) for p in panels)
    labels = {(p.name, s.name, k): f"{p.name}: {s.name} seed {seed + k}"
              for p in panels for s in schemes[p.name] for k in range(seeds)}
    width = max(len(label) for label in labels.values())
    results = []
    with Progress(total, "", enabled=progress, unit="steps") as bar:
        for panel in panels:
            panel_start, split = time.perf_counter(), splits[panel.name]
            scheme_results = []
            for scheme in schemes[panel.name]:
                runs = []
                for k in range(seeds):
                    bar.label = labels[(panel.name, scheme.name, k)].ljust(width)
                    runs.append(train_run(panel.build, scheme, split, panel.config, seed + k,
                                          len(dataset.classes), bar.advance))
                report = _diagnose(panel, scheme, split, seed) if panel.diagnose else None
                scheme_results.append(SchemeResult(scheme, tuple(runs), report))
            results.append(PanelResult(panel, len(split.train_y), len(split.val_y),
                                       tuple(scheme_results), time.perf_counter() - panel_start))
    return Comparison(experiment, dataset.describe(), tuple(range(seed, seed + seeds)),
                      tuple(results), time.perf_counter() - start)


@dataclass(frozen=True)
class Outputs:
    """What :func:`write_outputs` wrote, and notes on what it could not."""

    files: tuple[Path, ...]
    notes: tuple[str, ...]


def write_results(directory: str | Path, json_text: str, markdown: str
                  ) -> tuple[Path, list[Path]]:
    """Write ``results.json`` and ``results.md`` into ``directory`` (created if needed); return
    the directory and the two files."""
    out = Path(directory).expanduser()
    out.mkdir(parents=True, exist_ok=True)
    files = [out / "results.json", out / "results.md"]
    files[0].write_text(json_text + "\n", encoding="utf-8")
    files[1].write_text(markdown, encoding="utf-8")
    return out, files


def plot_notes() -> tuple[bool, list[str]]:
    """Whether plots can be drawn (matplotlib is installed), and the note to show if not."""
    plotting = importlib.util.find_spec("matplotlib") is not None
    return plotting, [] if plotting else [
        "plots skipped: they need matplotlib (pip install 'torchinit[plot]')"]


def write_outputs(comparison: Comparison, directory: str | Path) -> Outputs:
    """Write ``results.json``, ``results.md`` and, with matplotlib, the plots into
    ``directory`` (created if needed).

    Plots per panel: ``loss_curves.png`` and ``accuracy.png``; panels with diagnostics also
    get ``diagnostics.png`` (activation and gradient std by depth of each scheme's initial
    network, at the layers with weights) and ``diagnostics.txt`` (the reports' tables). When
    the experiment has several panels, each file name starts with the panel's name
    (``depth-relu_accuracy.png``). Without matplotlib the plots are left out and a note says so.
    """
    out, files = write_results(directory, comparison.to_json(), comparison.markdown())
    plotting, notes = plot_notes()
    classes = len(comparison.dataset["classes"])
    for panel in comparison.panels:
        prefix = f"{panel.panel.name}_" if len(comparison.panels) > 1 else ""
        reports = [r.diagnostics for r in panel.results if r.diagnostics is not None]
        if plotting:
            from .plots import plot_accuracy, plot_loss_curves

            files += [out / f"{prefix}loss_curves.png", out / f"{prefix}accuracy.png"]
            plot_loss_curves(panel, files[-2])
            plot_accuracy(panel, files[-1], classes)
            if reports:
                files.append(out / f"{prefix}diagnostics.png")
                reports[0].plot(str(files[-1]), *reports[1:], only=WEIGHTED_TYPES,
                                title=f"initial network: {panel.panel.title}")
        if reports:
            files.append(out / f"{prefix}diagnostics.txt")
            files[-1].write_text("\n\n".join(f"== {r.label}\n{r.table()}" for r in reports)
                                 + "\n", encoding="utf-8")
    return Outputs(tuple(files), tuple(notes))
