"""Data-dependent initialization steps whose results are recorded in the manifest.

* :func:`lsuv`: layer-sequential unit-variance scaling; the scales are in the records, so
  ``ti.apply(model, manifest)`` replays them without data.
* :func:`output_bias_prior`: the output bias from the targets; the values are in the bias's
  record (``Record.values``), so ``ti.apply(model, manifest)`` writes them again too.
"""

from .output_bias import output_bias_prior
from .unit_variance import VISITED, lsuv

__all__ = ["lsuv", "output_bias_prior", "VISITED"]
