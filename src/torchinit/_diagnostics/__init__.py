"""Signal-propagation diagnostics: measured and predicted activation and gradient statistics
per layer call, warnings with stated thresholds, tables, JSON and plots."""

from .diagnose import inspect
from .report import Finding, LayerStats, ParamStats, Report, Thresholds

__all__ = ["inspect", "Report", "LayerStats", "ParamStats", "Finding", "Thresholds"]
