"""Results of a comparison: per-seed runs, means with Student-t intervals, and their JSON,
markdown and terminal forms."""

from __future__ import annotations

import json
import math
import platform
from dataclasses import dataclass
from typing import Any

import torch

from .. import __version__
from .protocol import RunResult
from .schemes import Scheme
from .stats import Interval, mean_interval
from .suites import Panel

__all__ = ["SchemeResult", "PanelResult", "Comparison", "CONFIDENCE", "json_number",
           "format_loss", "text_table", "markdown_table"]

CONFIDENCE = 0.95


def json_number(x: float | None) -> float | None:
    """``x``, or ``None`` for a value JSON cannot hold (NaN, infinity)."""
    return x if x is not None and math.isfinite(x) else None


def _percent(x: float | None) -> str:
    return "-" if x is None or not math.isfinite(x) else f"{100 * x:.1f}"


def format_loss(x: float) -> str:
    """A loss for a table: 3 decimals, 3 significant digits from 1000 on, ``nan``."""
    if math.isnan(x):
        return "nan"
    return f"{x:.3f}" if abs(x) < 1e3 else f"{x:.3g}"


@dataclass(frozen=True)
class SchemeResult:
    """The runs of one scheme in one panel, and the diagnostics report of its initial network
    (a :class:`torchinit._diagnostics.Report`, when the panel asks for one)."""

    scheme: Scheme
    runs: tuple[RunResult, ...]
    diagnostics: Any = None

    def accuracy(self) -> Interval:
        """Mean validation accuracy over the seeds, with its 95% interval."""
        return mean_interval([r.val_accuracy for r in self.runs], CONFIDENCE)

    def last_loss(self) -> float:
        """Mean over the seeds of the last batch's training loss (NaN if any run diverged)."""
        return math.fsum(r.last_loss for r in self.runs) / len(self.runs)

    def mean_curve(self) -> list[float]:
        """Training loss per step, averaged over the runs that reached the step."""
        length = max(len(r.curve) for r in self.runs)
        return [math.fsum(c) / len(c) for c in
                ([r.curve[i] for r in self.runs if i < len(r.curve)] for i in range(length))]

    def class_accuracy(self) -> list[float]:
        """Validation accuracy per class, averaged over the seeds."""
        return [math.fsum(c) / len(c) for c in zip(*(r.class_accuracy for r in self.runs))]

    def to_dict(self, classes: tuple[str, ...]) -> dict[str, Any]:
        acc = self.accuracy()
        out = {
            **self.scheme.to_dict(),
            "val_accuracy": {"mean": acc.mean, "ci_low": json_number(acc.low),
                             "ci_high": json_number(acc.high), "confidence": CONFIDENCE},
            "last_loss_mean": json_number(self.last_loss()),
            "class_accuracy": {name: json_number(a)
                               for name, a in zip(classes, self.class_accuracy())},
            "runs": [{"seed": r.seed, "val_accuracy": r.val_accuracy,
                      "last_loss": json_number(r.last_loss),
                      "curve": [json_number(x) for x in r.curve],
                      "class_accuracy": [json_number(a) for a in r.class_accuracy],
                      "seconds": r.seconds, "diverged_at": r.diverged_at} for r in self.runs],
        }
        if self.diagnostics is not None:
            out["diagnostics"] = json.loads(self.diagnostics.to_json())
        return out


@dataclass(frozen=True)
class PanelResult:
    """One panel's results, scheme by scheme."""

    panel: Panel
    n_train: int
    n_val: int
    results: tuple[SchemeResult, ...]
    seconds: float

    def rows(self) -> list[tuple[str, ...]]:
        """Header and one row per scheme: label, name, mean accuracy, interval, last loss,
        seconds per run."""
        ci = f"{CONFIDENCE:.0%} CI"
        rows: list[tuple[str, ...]] = [
            ("initialization", "scheme", "val acc %", ci, "last loss", "s/run")]
        for result in self.results:
            acc = result.accuracy()
            interval = "-" if acc.half_width is None else (
                f"[{_percent(acc.low)}, {_percent(acc.high)}]")
            seconds = math.fsum(r.seconds for r in result.runs) / len(result.runs)
            rows.append((result.scheme.label, result.scheme.name, _percent(acc.mean), interval,
                         format_loss(result.last_loss()), f"{seconds:.1f}"))
        return rows

    def headline(self) -> str:
        c = self.panel.config
        optimizer = f"{c.optimizer} lr {c.lr:g}" + (
            f" momentum {c.momentum:g}" if c.optimizer == "sgd" else "") + (
            f" {c.schedule} decay" if c.schedule != "constant" else "")
        return (f"{self.panel.title} [{self.panel.model}]: {self.n_train} train /"
                f" {self.n_val} val, {optimizer}, batch {c.batch_size}, {c.epochs} epoch(s)")

    def diagnostics_lines(self) -> list[str]:
        """One line per scheme with a diagnostics report: depth ratios and warnings."""
        lines = []
        for result in self.results:
            report = result.diagnostics
            if report is None:
                continue
            act, grad = report.activation_ratio(), report.gradient_ratio()
            lines.append(
                f"{result.scheme.name}: activation std last/first layer"
                f" {'-' if act is None else f'{act:.3g}'}, gradient std first/last layer"
                f" {'-' if grad is None else f'{grad:.3g}'}, {len(report.warnings)} warning(s)")
        return lines

    def to_dict(self, classes: tuple[str, ...]) -> dict[str, Any]:
        return {"name": self.panel.name, "title": self.panel.title, "model": self.panel.model,
                "config": self.panel.config.to_dict(), "train_examples": self.n_train,
                "val_examples": self.n_val, "seconds": self.seconds,
                "schemes": [r.to_dict(classes) for r in self.results]}


def text_table(rows: list[tuple[str, ...]]) -> str:
    """``rows`` (the first is the header) as aligned columns, a rule under the header."""
    widths = [max(len(r[i]) for r in rows) for i in range(len(rows[0]))]
    lines = ["  ".join(c.ljust(w) for c, w in zip(r, widths)).rstrip() for r in rows]
    lines.insert(1, "  ".join("-" * w for w in widths))
    return "\n".join(lines)


def markdown_table(rows: list[tuple[str, ...]]) -> str:
    """``rows`` (the first is the header) as a markdown table."""
    lines = ["| " + " | ".join(r) + " |" for r in rows]
    lines.insert(1, "|" + "|".join("---" for _ in rows[0]) + "|")
    return "\n".join(lines)


@dataclass(frozen=True)
class Comparison:
    """Everything one ``compare`` run measured."""

    experiment: str
    dataset: dict[str, Any]
    seeds: tuple[int, ...]
    panels: tuple[PanelResult, ...]
    seconds: float

    def to_dict(self) -> dict[str, Any]:
        classes = tuple(self.dataset["classes"])
        return {
            "experiment": self.experiment, "dataset": self.dataset, "seeds": list(self.seeds),
            "confidence": CONFIDENCE, "seconds": self.seconds,
            "versions": {"torchinit": __version__, "torch": torch.__version__,
                         "python": platform.python_version()},
            "platform": platform.platform(), "threads": torch.get_num_threads(),
            "panels": [p.to_dict(classes) for p in self.panels],
        }

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps(self.to_dict(), indent=indent)

    def _summary(self) -> str:
        return (f"dataset {self.dataset['name']}, seeds {list(self.seeds)},"
                f" {self.seconds:.0f} s in all")

    def table(self) -> str:
        """The terminal form: per panel a headline, a table and the diagnostics lines."""
        blocks = []
        for panel in self.panels:
            lines = [panel.headline(), text_table(panel.rows())]
            diagnostics = panel.diagnostics_lines()
            if diagnostics:
                lines += ["initial network (torchinit.inspect):", *("  " + d for d in diagnostics)]
            blocks.append("\n".join(lines))
        return "\n\n".join([*blocks, self._summary()])

    def markdown(self) -> str:
        """The markdown form: per panel a heading, the headline and a table."""
        parts = [f"# torchinit compare: {self.experiment}", "", self._summary() + ".",
                 f"Intervals: Student t over the seeds ({CONFIDENCE:.0%})."]
        for panel in self.panels:
            parts += ["", f"## {panel.panel.name}", "", panel.headline() + ".", "",
                      markdown_table(panel.rows())]
            diagnostics = panel.diagnostics_lines()
            if diagnostics:
                parts += ["", "Initial network (`torchinit.inspect`):", "",
                          *(f"- {d}" for d in diagnostics)]
        return "\n".join(parts) + "\n"
