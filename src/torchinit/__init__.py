"""torchinit: parameter initialization for PyTorch.

A catalog of initializers with exact formulas, fans computed from what each layer computes,
and deterministic counter-based random streams: the value of every element is a pure function
of (seed, parameter path, element index, initializer).
"""

from . import errors, functional, initializers, presets, width
from ._fans import Block, Fans, torch_fans
from .gains import calculate_gain
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
from .apply import apply
from .audit import AuditReport, WriteAudit
from .datadep import lsuv, output_bias_prior
from .diagnostics import Report, inspect
from .groups import describe_groups, param_groups
from .layouts import fans, register_layout
from .materialize import build, materialize
from .native import CaptureError, capture
from .plan import Manifest, Plan, Rule, Select, last_manifest, register_module_type
from .streams import Key
from .width import BaseShapes, CoordCheck, coord_check, mup

__version__ = "0.1.0"

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
    "lsuv",
    "output_bias_prior",
    "WriteAudit",
    "AuditReport",
    "register_module_type",
    "presets",
    "param_groups",
    "describe_groups",
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
