"""Width-aware parametrizations: μP and the spectral parametrization as plans whose rules set
each parameter's initialization and its learning-rate and weight-decay multipliers together.

* :func:`mup` — the Maximal Update Parametrization (Yang et al. 2022, "Tensor Programs V",
  Table 3) relative to a base-width model (:class:`BaseShapes`);
* :class:`Spectral` — the spectral parametrization (Yang, Simon & Bernstein 2023), also the
  preset ``ti.presets.get("spectral")``;
* :func:`forward_requirements` — what μP needs of the forward pass and a model lacks;
* :func:`coord_check` — the coordinate check (the paper's appendix D.1): activation sizes by
  width over a few training steps (:class:`CoordCheck`), with model families to run it on in
  :mod:`torchinit.width.families`.

The multipliers are in the manifest (``record.lr_scale``, ``record.weight_decay_scale``,
``record.width``) and :func:`torchinit.param_groups` turns them into optimizer groups
(``param_groups(model, plan=plan, lr=..., weight_decay=...)``).
"""

from torch import nn

from .._plan import Plan
from .._plan.parametrization import forward_requirements as requirements_of
from ._base_shapes import BaseShape, BaseShapes
from ._coord import CoordCheck, coord_check
from ._mup import MuP, mup
from ._spectral import Spectral

__all__ = ["mup", "MuP", "Spectral", "BaseShapes", "BaseShape", "forward_requirements",
           "coord_check", "CoordCheck"]


def forward_requirements(model: nn.Module, plan: Plan) -> list[str]:
    """What the parametrizations of ``plan`` (e.g. ``ti.mup(base)``) need of ``model``'s
    forward pass and can be seen to be missing: the messages resolving the plan warns with."""
    return requirements_of(model, (rule.init for rule in plan.rules))
