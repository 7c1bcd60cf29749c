"""The initializer catalog: every scheme, its registry and config round trip.

>>> import torchinit as ti
>>> ti.initializers.names()[:3]
['constant', 'delta_orthogonal', 'dirac']
>>> ti.initializers.get("he_normal", nonlinearity="relu")
KaimingNormal(negative_slope=0.0, mode='fan_in', nonlinearity='relu')
"""

from ._base import ElementwiseInitializer, Initializer, StructuredInitializer
from ._elementwise import (
    Constant,
    Normal,
    Ones,
    TruncatedNormal,
    TruncatedNormalStd,
    Uniform,
    Zeros,
)
from ._registry import from_config, get, lookup, names, register
from ._structured import DeltaOrthogonal, Dirac, Eye, Orthogonal, Sparse
from ._variance import (
    GeneralRule,
    KaimingNormal,
    KaimingUniform,
    LecunNormal,
    LecunUniform,
    VarianceScaling,
    XavierNormal,
    XavierUniform,
)

__all__ = [
    "Initializer",
    "ElementwiseInitializer",
    "StructuredInitializer",
    "get",
    "names",
    "register",
    "from_config",
    "lookup",
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
