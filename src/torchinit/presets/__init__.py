"""Presets: ready-made plans that reproduce a framework's defaults or a paper's recipe.

>>> import torchinit as ti
>>> ti.presets.names()[:5]
['bert', 'convnext', 'dcgan', 'deepnet', 'efficientnet']
>>> plan = ti.presets.get("gpt2", n_layers=12)
>>> # ti.presets.from_config(hf_config): the preset and its options for a transformers config

A preset is a :class:`~torchinit.Plan` whose rules go from general to specific, so rules added
after it override it: ``ti.presets.get("bert") + [ti.Rule(path="classifier.*", init="zeros")]``.
``padding_idx`` rows of embeddings stay zero in every preset. Register your own with
:func:`register`.
"""

from . import _init_functions, _frameworks, _language, _mamba, _recipes, _residual, _vision  # noqa: F401
# (importing them registers their init functions and presets)
from ._configs import from_config
from ._registry import describe, get, names, register

__all__ = ["get", "names", "register", "describe", "from_config"]
