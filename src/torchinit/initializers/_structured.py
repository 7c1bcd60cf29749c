"""Structured initializers: orthogonal, delta-orthogonal, identity (eye), Dirac and sparse.

These build whole matrices rather than independent elements. Each block of a fused parameter
(an LSTM gate, one of q/k/v) is built separately from its own sub-stream ``key.child(block)``,
in float64 on the CPU, and rounded once to the target dtype, so bf16/fp16 work and every
device gets the same values. A region (a shard) costs the generation of every block it touches.
"""

from __future__ import annotations

import math
from dataclasses import dataclass

import torch

from ..errors import InitializerError, describe_target, short_repr
from .._streams import Key, NormalDist, UniformDist
from .._streams.reference import sample_distribution
from ._base import GainMixin, StructuredInitializer, check_non_negative, check_finite
from ._registry import register

__all__ = ["Orthogonal", "DeltaOrthogonal", "Eye", "Dirac", "Sparse"]

_CPU = torch.device("cpu")


def _gaussian(key: Key, shape: tuple[int, ...]) -> torch.Tensor:
    return sample_distribution(NormalDist(0.0, 1.0), key, shape, dtype=torch.float64, device=_CPU)


def orthogonal_matrix(key: Key, rows: int, cols: int) -> torch.Tensor:
    """A (rows, cols) matrix with orthonormal rows or columns, Haar-distributed.

    QR of a Gaussian matrix with the signs of R's diagonal folded into Q (Mezzadri, "How to
    generate random matrices from the classical compact groups", 2007).
    """
    a = _gaussian(key, (rows, cols))
    if rows < cols:
        a = a.T
    q: torch.Tensor
    r: torch.Tensor
    q, r = torch.linalg.qr(a)  # (torch's stubs type the result as Any)
    q = q * torch.sign(torch.diagonal(r)).masked_fill(torch.diagonal(r) == 0, 1.0)
    return q.T if rows < cols else q


@register
@dataclass(frozen=True)
class Orthogonal(GainMixin, StructuredInitializer):
    """(Semi-)orthogonal matrix (Saxe et al., "Exact solutions to the nonlinear dynamics of
    learning in deep linear neural networks", ICLR 2014).

    The tensor is viewed as a ``(rows, prod(rest))`` matrix ``W`` with ``W W^T = gain^2 I``
    (rows <= cols) or ``W^T W = gain^2 I``; fused parameters get one orthogonal matrix per block.
    Entries have root-mean-square ``gain / sqrt(max(rows, cols))``, which ``std()`` reports.

    Args:
        gain: Multiplier, >= 0 (e.g. ``calculate_gain("tanh")``).
    """

    name = "orthogonal"
    formula = 'W W^T = gain^2 I (rows <= cols) or W^T W = gain^2 I, per block'
    min_ndim = 2

    def _generate(self, shape: tuple[int, ...], key: Key) -> torch.Tensor:
        rows, cols = shape[0], math.prod(shape[1:])
        return (self.gain * orthogonal_matrix(key, rows, cols)).reshape(shape)

    def _moments(self, rows: int, cols: int, shape: tuple[int, ...] | None
                 ) -> tuple[float, float, float]:
        return 0.0, self.gain / math.sqrt(max(rows, cols, 1)), float(self.gain)


@register
@dataclass(frozen=True)
class DeltaOrthogonal(GainMixin, StructuredInitializer):
    """Delta-orthogonal convolution kernel (Xiao et al., "Dynamical Isometry and a Mean Field
    Theory of CNNs", ICML 2018).

    A kernel of shape ``(out, in, k1, ..., kd)`` that is zero except at the spatial center
    ``(k1 // 2, ..., kd // 2)``, where it holds ``gain * H`` with ``H`` an orthogonal
    ``(out, in)`` matrix. With ``out >= in`` the convolution is an isometry at initialization.

    Args:
        gain: Multiplier, >= 0.
    """

    name = "delta_orthogonal"
    formula = 'W[:, :, center] = gain * H, H orthogonal; zero elsewhere'
    min_ndim = 3

    def _generate(self, shape: tuple[int, ...], key: Key) -> torch.Tensor:
        out = torch.zeros(shape, dtype=torch.float64)
        center = tuple(k // 2 for k in shape[2:])
        index: tuple[slice | int, ...] = (slice(None), slice(None), *center)
        out[index] = self.gain * orthogonal_matrix(
            key, shape[0], shape[1]
        )
        return out

    def _moments(self, rows: int, cols: int, shape: tuple[int, ...] | None
                 ) -> tuple[float, float, float]:
        taps = math.prod(shape[2:]) if shape is not None else 1
        cin = cols // taps
        return 0.0, self.gain * math.sqrt(min(rows, cin) / max(rows * cols, 1)), float(self.gain)


@register
@dataclass(frozen=True)
class Eye(StructuredInitializer):
    """Identity matrix ``W[i, j] = 1 if i == j else 0`` for 2-D tensors (per block of a fused
    parameter, as in the IRNN recipe of Le, Jaitly & Hinton 2015)."""

    name = "eye"
    formula = 'W = I'
    aliases = ("identity",)
    min_ndim = 2
    max_ndim = 2

    def _generate(self, shape: tuple[int, ...], key: Key) -> torch.Tensor:
        return torch.eye(shape[0], shape[1], dtype=torch.float64)

    def _moments(self, rows: int, cols: int, shape: tuple[int, ...] | None
                 ) -> tuple[float, float, float]:
        p = min(rows, cols) / max(rows * cols, 1)
        return p, math.sqrt(p - p * p), 1.0


@register
@dataclass(frozen=True)
class Dirac(StructuredInitializer):
    """Dirac delta kernel: a convolution that passes its input through (Zagoruyko & Komodakis,
    "DiracNets", 2017), reproducing ``torch.nn.init.dirac_``.

    For a kernel ``(out, in, k1, ..., kd)`` and ``groups`` groups of ``out / groups`` output
    channels, ``W[g * out/groups + d, d, center] = 1`` for ``d < min(out/groups, in)``.

    Args:
        groups: Number of groups; must divide ``out``.
    """

    groups: int = 1
    name = "dirac"
    formula = 'W[g*out/groups + d, d, center] = 1'
    min_ndim = 3
    max_ndim = 5
    per_block = False

    def __post_init__(self) -> None:
        if isinstance(self.groups, bool) or not isinstance(self.groups, int) or self.groups < 1:
            raise InitializerError(
                f"dirac: groups must be a positive int, got {short_repr(self.groups)}",
                field=("groups",))

    def _check_shape(self, shape: tuple[int, ...], path: str | None) -> None:
        if shape[0] % self.groups:
            raise InitializerError(
                f"dirac cannot initialize {describe_target(path, shape)}: the output dimension"
                f" {shape[0]} is not divisible by groups={self.groups}; use a groups value that"
                f" divides {shape[0]}."
            )

    def _generate(self, shape: tuple[int, ...], key: Key) -> torch.Tensor:
        out = torch.zeros(shape, dtype=torch.float64)
        per_group = shape[0] // self.groups
        center = tuple(k // 2 for k in shape[2:])
        for g in range(self.groups):
            for d in range(min(per_group, shape[1])):
                index = (g * per_group + d, d, *center)
                out[index] = 1.0
        return out

    def _moments(self, rows: int, cols: int, shape: tuple[int, ...] | None
                 ) -> tuple[float, float, float]:
        in_channels = shape[1] if shape is not None else cols
        ones = self.groups * min(rows // self.groups, in_channels)
        p = ones / max(rows * cols, 1)
        return p, math.sqrt(p - p * p), 1.0


@register
@dataclass(frozen=True)
class Sparse(StructuredInitializer):
    """Sparse matrix (Martens, "Deep learning via Hessian-free optimization", ICML 2010), as
    ``torch.nn.init.sparse_``: in every column ``ceil(sparsity * rows)`` entries are zero and
    the others are ``N(0, stddev^2)``.

    Which rows are zero is decided by ranking uniform keys from the stream ``key.child("mask")``;
    the values come from ``key.child("values")``.

    Args:
        sparsity: Fraction of each column set to zero, in [0, 1].
        stddev: Std of the non-zero values (torch's ``std``), >= 0.
    """

    sparsity: float = 0.1
    stddev: float = 0.01
    name = "sparse"
    formula = 'ceil(sparsity*rows) zeros per column, others ~ N(0, stddev^2)'
    min_ndim = 2
    max_ndim = 2
    per_block = False

    def __post_init__(self) -> None:
        check_finite(self.name, sparsity=self.sparsity)
        if not 0.0 <= self.sparsity <= 1.0:
            raise InitializerError(
                f"sparse: sparsity must be in [0, 1], got {short_repr(self.sparsity)}",
                field=("sparsity",))
        check_non_negative(self.name, stddev=self.stddev)

    def _generate(self, shape: tuple[int, ...], key: Key) -> torch.Tensor:
        rows, cols = shape
        values = self.stddev * _gaussian(key.child("values"), shape)
        zeros = math.ceil(self.sparsity * rows)
        if zeros:
            ranks = sample_distribution(UniformDist(0.0, 1.0), key.child("mask"), shape,
                                        dtype=torch.float64, device=_CPU)
            zero_rows = torch.argsort(ranks, dim=0, stable=True)[:zeros]
            values.scatter_(0, zero_rows, 0.0)
        return values

    def _moments(self, rows: int, cols: int, shape: tuple[int, ...] | None
                 ) -> tuple[float, float, float]:
        kept = rows - math.ceil(self.sparsity * rows)
        return 0.0, self.stddev * math.sqrt(kept / max(rows, 1)), (
            math.inf if kept and self.stddev else 0.0)
