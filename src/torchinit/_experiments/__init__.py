"""Experiments: what initialization does to training, measured over seeds.

>>> from torchinit import experiments as ex
>>> data = ex.load_dataset("embedded")
>>> panels = ex.experiment_panels("protocol", schemes=["general-rule", "kaiming"])
>>> result = ex.run_comparison("protocol", data, panels, seeds=3)   # doctest: +SKIP
>>> print(result.table())                                           # doctest: +SKIP
>>> grid = ex.run_transfer(data)          # μTransfer: SP against μP  # doctest: +SKIP

``torchinit compare`` is the command-line front of this package (see ``docs/experiments.md``).
"""

from .datasets import DATASETS, Dataset, Split, load_dataset
from .models import MODELS, build_model
from .protocol import RunResult, TrainConfig, train_run
from .results import Comparison, PanelResult, SchemeResult
from .runner import Outputs, run_comparison, write_outputs
from .schemes import ALIASES, DEFAULT_SCHEMES, SCHEMES, Scheme, parse_schemes, resolve_scheme
from .suites import DEFAULT_SEEDS, EXPERIMENTS, Panel, experiment_panels
from .transfer import Transfer, parse_lrs, run_transfer, write_transfer

__all__ = [
    "DATASETS", "Dataset", "Split", "load_dataset",
    "MODELS", "build_model",
    "TrainConfig", "RunResult", "train_run",
    "Scheme", "SCHEMES", "ALIASES", "DEFAULT_SCHEMES", "resolve_scheme", "parse_schemes",
    "Panel", "EXPERIMENTS", "DEFAULT_SEEDS", "experiment_panels",
    "Comparison", "PanelResult", "SchemeResult",
    "run_comparison", "write_outputs", "Outputs",
    "Transfer", "run_transfer", "write_transfer", "parse_lrs",
]
