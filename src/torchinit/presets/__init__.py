"""Presets: ready-made plans that reproduce a framework's defaults or a paper's recipe.

>>> import torchinit as ti
>>> ti.presets.names()
['bert', 'dcgan', 'flax', 'general-rule', 'gpt2', 'keras', 'resnet', 'torch', 'vit']
>>> plan = ti.presets.get("gpt2", n_layers=12)

A preset is a :class:`~torchinit.Plan` whose rules go from general to specific, so rules added
after it override it: ``ti.presets.get("bert") + [ti.Rule(path="classifier.*", init="zeros")]``.
``padding_idx`` rows of embeddings stay zero in every preset. Register your own with
:func:`register`.
"""

from . import factories, frameworks, recipes  # noqa: F401  (register factories and presets)
from .registry import describe, get, names, register

__all__ = ["get", "names", "register", "describe"]
