"""Deterministic counter-based random streams (Philox4x32-10) over index regions."""

from .distributions import ConstantDist, Distribution, NormalDist, TruncNormalDist, UniformDist
from .keys import Key, as_key
from .philox import philox4x32
from .reference import sample_distribution, uniform53
from .regions import normalize_region, region_shape

__all__ = [
    "Key",
    "as_key",
    "philox4x32",
    "uniform53",
    "sample_distribution",
    "normalize_region",
    "region_shape",
    "Distribution",
    "ConstantDist",
    "UniformDist",
    "NormalDist",
    "TruncNormalDist",
]
