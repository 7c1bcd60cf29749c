"""The initialization schemes an experiment compares, each a :class:`~torchinit.Plan`.

Built-in schemes give every weight (role ``weight``) one initializer from the catalog, every
bias zero and every norm scale one, as the protocol does. Besides them a scheme can be any
preset name (``torch``, ``keras``...) or a plan file (``.yaml``/``.yml``/``.toml``/``.json``),
which apply unchanged.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Any

import torch
from torch import nn

from .. import presets
from .._apply import apply
from ..errors import ConfigError, UnknownNameError, suggest
from .._groups import param_groups
from ..initializers import (
    GeneralRule,
    Initializer,
    KaimingNormal,
    LecunNormal,
    Ones,
    Orthogonal,
    Uniform,
    XavierUniform,
    Zeros,
)
from .._plan import Manifest, Plan, Rule

__all__ = ["Scheme", "SCHEMES", "ALIASES", "DEFAULT_SCHEMES", "resolve_scheme",
           "parse_schemes"]

PLAN_SUFFIXES = (".yaml", ".yml", ".toml", ".json")


@dataclass(frozen=True)
class Scheme:
    """A named initialization to compare.

    Attributes:
        name: What ``--init`` calls it.
        label: How tables and plots show it.
        description: One line on what it draws.
        plan: The plan applied with the run's seed.
        lsuv: After the plan, run LSUV (Mishkin & Matas 2016) on a training batch: each
            weight is rescaled, layer by layer, so that its layer's output has unit std.
        optimizer_scales: The optimizer takes the plan's per-parameter learning-rate and
            weight-decay multipliers (a width-aware parametrization such as ``ti.mup``, whose
            learning rates are part of it: Yang et al. 2022, "Tensor Programs V", Table 3).
            Otherwise every parameter gets the run's learning rate.
    """

    name: str
    label: str
    description: str
    plan: Plan
    lsuv: bool = False
    optimizer_scales: bool = False

    def initialize(self, model: nn.Module, seed: int,
                   batch: torch.Tensor | None = None) -> Manifest:
        """Initialize ``model`` in place with ``seed``; ``batch`` feeds LSUV.

        Raises:
            ConfigError: for an LSUV scheme without a batch.
            PlanError: when the plan cannot initialize the model (nothing is written).
        """
        if not self.lsuv:
            return apply(model, self.plan, seed=seed)
        if batch is None:
            raise ConfigError(f"scheme {self.name!r} is data-dependent (LSUV): it needs a batch")
        from torchinit._datadep import lsuv

        return lsuv(model, batch, self.plan, orthogonal_first=False, seed=seed)

    def optimizer_groups(self, model: nn.Module, lr: float) -> list[dict[str, Any]]:
        """The ``torch.optim`` parameter groups of ``model`` for base learning rate ``lr``, each
        with its absolute ``"lr"``: one group, or with :attr:`optimizer_scales` the groups of
        ``ti.param_groups(model, plan=self.plan, lr=lr)``."""
        if self.optimizer_scales:
            return param_groups(model, plan=self.plan, lr=lr)
        return [{"params": list(model.parameters()), "lr": lr}]

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe description, the plan included."""
        return {"name": self.name, "label": self.label, "description": self.description,
                "plan": self.plan.to_dict(), "lsuv": self.lsuv,
                "optimizer_scales": self.optimizer_scales}


def _weight_plan(name: str, weight: Initializer) -> Plan:
    return Plan([Rule(role="weight", init=weight, label=f"weights -> {weight.name}"),
                 Rule(role="bias", init=Zeros(), optional=True, label="biases -> zeros"),
                 Rule(role="scale", init=Ones(), optional=True, label="norm scales -> ones")],
                name=name)


def _builtin(name: str, label: str, description: str, weight: Initializer,
             lsuv: bool = False) -> Scheme:
    return Scheme(name, label, description, _weight_plan(name, weight), lsuv)


SCHEMES: dict[str, Scheme] = {s.name: s for s in (
    _builtin("zeros", "all zeros", "every weight 0", Zeros()),
    _builtin("ones", "all ones", "every weight 1", Ones()),
    _builtin("uniform01", "uniform [0, 1)", "w ~ U(0, 1)", Uniform(0.0, 1.0)),
    _builtin("centered-uniform", "uniform [-0.5, 0.5)", "w ~ U(-0.5, 0.5)", Uniform(-0.5, 0.5)),
    _builtin("general-rule", "general rule", "w ~ U(-1/sqrt(n), 1/sqrt(n)), n = fan_in",
             GeneralRule()),
    _builtin("normal", "normal(0, 1/sqrt(n))", "w ~ N(0, std = 1/sqrt(n)), n = fan_in (LeCun)",
             LecunNormal()),
    Scheme("torch-default", "PyTorch default",
           "what each layer's reset_parameters() draws, biases included (preset 'torch')",
           presets.get("torch")),
    _builtin("xavier", "Xavier", "w ~ U(-b, b), b = sqrt(6 / (fan_in + fan_out))",
             XavierUniform()),
    _builtin("kaiming", "Kaiming", "w ~ N(0, 2 / fan_in) (He et al. 2015, ReLU)",
             KaimingNormal(nonlinearity="relu")),
    _builtin("orthogonal", "orthogonal", "W W^T = I (Saxe et al. 2014)", Orthogonal()),
    _builtin("lsuv", "LSUV", "orthogonal, then each layer rescaled to unit output std on a"
             " training batch (Mishkin & Matas 2016)", Orthogonal(), lsuv=True),
)}
"""The built-in schemes by name."""

ALIASES = {"all-zeros": "zeros", "all-ones": "ones", "uniform": "uniform01",
           "centered": "centered-uniform", "lecun-normal": "normal",
           "normal-1/sqrt(n)": "normal", "torch": "torch-default", "default": "torch-default",
           "glorot": "xavier", "he": "kaiming"}
"""Other names of the built-in schemes (``torch`` is the preset's name too: the same plan)."""

DEFAULT_SCHEMES = ("zeros", "ones", "uniform01", "centered-uniform", "general-rule", "normal",
                   "torch-default", "xavier", "kaiming")
"""What ``torchinit compare`` compares by default: the table of the protocol and the standard
schemes; ``orthogonal`` and ``lsuv`` are there by name."""


def _is_plan_file(spec: str) -> bool:
    return Path(spec).suffix.lower() in PLAN_SUFFIXES or "/" in spec or "\\" in spec


def resolve_scheme(spec: str) -> Scheme:
    """A built-in scheme or alias, a preset name, or a plan file path.

    Raises:
        UnknownNameError: for a name that is none of these (with close matches).
        FileNotFoundError: for a plan file that does not exist.
        ConfigError, PlanError: for a preset that needs options or an invalid plan file.
    """
    name = ALIASES.get(spec, spec)
    if name in SCHEMES:
        return SCHEMES[name]
    if spec in presets.names():
        plan = presets.get(spec)
        return Scheme(spec, f"preset {spec}", presets.describe(spec).splitlines()[0], plan)
    if _is_plan_file(spec):
        if not Path(spec).is_file():
            raise FileNotFoundError(f"plan file {spec!r} does not exist")
        plan = Plan.from_file(spec)
        return Scheme(spec, Path(spec).stem, f"plan file {spec}", plan)
    known = [*SCHEMES, *ALIASES, *presets.names()]
    raise UnknownNameError(
        f"unknown initialization {spec!r}: not a scheme ({', '.join(SCHEMES)}), a preset"
        f" ({', '.join(presets.names())}) or a plan file ({'/'.join(PLAN_SUFFIXES)})."
        + suggest(spec, known))


def parse_schemes(specs: str) -> list[Scheme]:
    """Schemes from a comma-separated list (``"zeros,xavier,plans/mine.yaml"``).

    Raises:
        ConfigError: for an empty list or a scheme named twice; and what
            :func:`resolve_scheme` raises.
    """
    names = [s.strip() for s in specs.split(",") if s.strip()]
    if not names:
        raise ConfigError(f"no initialization named in {specs!r}; give a comma-separated list"
                          f" such as {','.join(DEFAULT_SCHEMES[:3])}")
    schemes = [resolve_scheme(n) for n in names]
    seen: set[str] = set()
    for scheme in schemes:
        if scheme.name in seen:
            raise ConfigError(f"initialization {scheme.name!r} is named twice in {specs!r}")
        seen.add(scheme.name)
    return schemes
