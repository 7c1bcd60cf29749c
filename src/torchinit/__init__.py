"""torchinit: parameter initialization for PyTorch.

A catalog of initializers with exact formulas, fans computed from what each layer computes,
and deterministic counter-based random streams: the value of every element is a pure function
of (seed, parameter path, element index, initializer).
"""

from . import _moved, errors, functional, initializers, presets, width
from ._fans import Block, Fans, torch_fans
from ._gains import calculate_gain
from .initializers import (
    Constant,
    DeltaOrthogonal,
    Dirac,
    Eye,
    GeneralRule,
    Initializer,
    KaimingNormal,
    KaimingUniform,
    LecunNormal,
    LecunUniform,
    Normal,
    Ones,
    Orthogonal,
    Sparse,
    TruncatedNormal,
    TruncatedNormalStd,
    Uniform,
    VarianceScaling,
    XavierNormal,
    XavierUniform,
    Zeros,
)
from ._apply import apply
from ._audit import AuditReport, WriteAudit
from ._datadep import lsuv, output_bias_prior
from ._diagnostics import Report, Thresholds, inspect
from ._groups import declared_no_decay, describe_groups, param_groups
from ._layouts import fans, register_layout
from ._materialize import build, materialize
from ._native import CaptureError, capture
from ._plan import (Manifest, Plan, Rule, Select, last_manifest, register_init_function,
                    register_module_type)
from ._streams import Key
from .width import BaseShapes, CoordCheck, coord_check, mup

__version__ = "0.1.0"

_moved.install()


def __getattr__(name: str) -> object:
    """The modules that became private, as attributes (``ti.plan``), and renamed names
    (``ti.register_factory``), with a warning."""
    return _moved.moved_attribute(__name__, name)

__all__ = [
    "__version__",
    "errors",
    "functional",
    "initializers",
    "width",
    "mup",
    "BaseShapes",
    "coord_check",
    "CoordCheck",
    "Key",
    "Fans",
    "Block",
    "fans",
    "torch_fans",
    "register_layout",
    "Plan",
    "Rule",
    "Select",
    "Manifest",
    "last_manifest",
    "apply",
    "build",
    "materialize",
    "capture",
    "CaptureError",
    "inspect",
    "Report",
    "Thresholds",
    "lsuv",
    "output_bias_prior",
    "WriteAudit",
    "AuditReport",
    "register_module_type",
    "register_init_function",
    "presets",
    "param_groups",
    "describe_groups",
    "declared_no_decay",
    "calculate_gain",
    "Initializer",
    "Zeros",
    "Ones",
    "Constant",
    "Uniform",
    "Normal",
    "TruncatedNormal",
    "TruncatedNormalStd",
    "VarianceScaling",
    "XavierUniform",
    "XavierNormal",
    "KaimingUniform",
    "KaimingNormal",
    "LecunUniform",
    "LecunNormal",
    "GeneralRule",
    "Orthogonal",
    "DeltaOrthogonal",
    "Eye",
    "Dirac",
    "Sparse",
]
