"""Folding a storage's recorded events into what they leave in it.

The values of a storage are described by *segments*: a region (``None`` for all of it) and a
:data:`State`, later writes replacing earlier ones. A state is a constant, a distribution
``scale * X + shift`` of a standard variable ``X`` (uniform on ``[lo, hi]``, standard normal,
or standard normal truncated to ``[lo, hi]``), a catalog scheme (``torch.nn.init``'s Xavier,
Kaiming, orthogonal, ...) with its elementwise equivalent, or an :class:`Unknown` that says
why the values are not a distribution torchinit can draw.

Scalar post-ops fold into the distribution: ``normal_(0, 0.02)`` then ``div_(sqrt(2 L))`` is
``N(0, (0.02 / sqrt(2 L))^2)``; ``uniform_(2 Phi(a) - 1, 2 Phi(b) - 1)``, ``erfinv_()``,
``mul_(sqrt(2) s)``, ``add_(m)`` and a ``clamp_`` that cuts nothing (the recipe of every
``trunc_normal_`` in the ecosystem) is the truncated normal ``N(m, s^2)`` on ``[a, b]``.
"""

from __future__ import annotations

import math
from dataclasses import dataclass, replace
from statistics import NormalDist
from typing import Any, Union

import torch

from ..initializers import (
    Dirac,
    Eye,
    Initializer,
    KaimingNormal,
    KaimingUniform,
    Orthogonal,
    Sparse,
    XavierNormal,
    XavierUniform,
)
from .calls import Event, Region
from .recorder import Log

__all__ = ["Const", "Dist", "Scheme", "Unknown", "Segments", "fold", "State"]

_STD_NORMAL = NormalDist()
_TOL = 1e-9
_TAIL = 1e-12
"""A clamp that moves less probability than this onto its bounds is taken as truncation: the
two differ in fewer than one element in 10^12."""


def _mass(lo: float, hi: float) -> float:
    """P(lo <= Z <= hi) for a standard normal Z, accurate in either tail."""
    if lo > 0:
        return _STD_NORMAL.cdf(-lo) - _STD_NORMAL.cdf(-hi)
    return _STD_NORMAL.cdf(hi) - _STD_NORMAL.cdf(lo)


@dataclass(frozen=True)
class Const:
    value: float


@dataclass(frozen=True)
class Dist:
    """``scale * X + shift``; ``X`` uniform on [lo, hi] (``kind="uniform"``), standard normal
    (``"normal"``) or standard normal truncated to [lo, hi] (``"trunc"``)."""

    kind: str
    lo: float = -math.inf
    hi: float = math.inf
    scale: float = 1.0
    shift: float = 0.0

    def support(self) -> tuple[float, float]:
        a, b = self.scale * self.lo + self.shift, self.scale * self.hi + self.shift
        if self.scale == 0:
            return self.shift, self.shift
        return (a, b) if a <= b else (b, a)

    def std(self) -> float:
        if self.kind == "uniform":
            return abs(self.scale) * (self.hi - self.lo) / math.sqrt(12.0)
        if self.kind == "normal":
            return abs(self.scale)
        return math.nan  # not needed for the cross-check


@dataclass(frozen=True)
class Scheme:
    """A catalog scheme drawn with torch's fan convention; ``low`` is what its inner calls
    drew (for the cross-check of the numbers and for post-ops), when known."""

    init: Initializer
    low: Any = None


@dataclass(frozen=True)
class Unknown:
    reason: str
    where: str = ""
    site: str = ""


@dataclass(frozen=True)
class Empty:
    where: str = ""
    site: str = ""


@dataclass(frozen=True)
class Given:
    tensor: torch.Tensor
    where: str = ""
    site: str = ""


State = Union[Const, Dist, Scheme, Unknown, Empty, Given]
Segments = list[tuple[Union[Region, None], State]]


def _given(state: State) -> State:
    """The values a tensor was created with: a constant, or computed values."""
    if not isinstance(state, Given):
        return state
    t = state.tensor
    if t.is_meta:
        return Unknown("created from values computed on the meta device", state.where, state.site)
    flat = t.detach().reshape(-1)
    if flat.numel() and bool((flat == flat[0]).all()):
        return Const(float(flat[0]))
    return Unknown("created from computed values (a table or data, not a distribution)",
                   state.where, state.site)


def _affine(state: State, scale: float, shift: float, event: Event) -> State:
    state = _given(state)
    if isinstance(state, Const):
        return Const(scale * state.value + shift)
    if isinstance(state, Dist):
        return replace(state, scale=scale * state.scale, shift=scale * state.shift + shift)
    if isinstance(state, Scheme):
        init = state.init
        if shift == 0 and isinstance(init, Orthogonal):
            return Scheme(replace(init, gain=init.gain * scale))
        if shift == 0 and isinstance(init, Sparse) and scale:
            return Scheme(replace(init, stddev=init.stddev * abs(scale)))
        if state.low is not None:
            return _affine(state.low, scale, shift, event)
        return Unknown(f"{type(init).__name__} followed by a scale/shift with no catalog"
                       " equivalent", event.where, event.site)
    if isinstance(state, Empty):
        return state
    return state


def _clamp(state: State, lo: float, hi: float, event: Event) -> State:
    state = _given(state)
    if isinstance(state, Const):
        return Const(min(max(state.value, lo), hi))
    if isinstance(state, Scheme) and state.low is not None:
        low = _clamp(state.low, lo, hi, event)
        return state if low == state.low else low
    if isinstance(state, Dist):
        a, b = state.support()
        if a >= lo - _TOL * (1 + abs(lo)) and b <= hi + _TOL * (1 + abs(hi)):
            return state  # cuts nothing: the numerical guard of trunc_normal_
        if state.kind != "uniform" and state.scale != 0:
            za, zb = sorted(((lo - state.shift) / state.scale, (hi - state.shift) / state.scale))
            kept_lo, kept_hi = max(state.lo, za), min(state.hi, zb)
            inside = _mass(kept_lo, kept_hi) / _mass(state.lo, state.hi)
            if kept_lo < kept_hi and 1.0 - inside < _TAIL:
                # the clamp moves a mass below _TAIL onto the bounds: the truncated normal
                # on them (timm's trunc_normal_ with std=0.02 and the default a=-2, b=2)
                return replace(state, kind="trunc", lo=kept_lo, hi=kept_hi)
        return Unknown(f"clamp_({lo:.4g}, {hi:.4g}) cuts the distribution (point masses at the"
                       " bounds have no catalog equivalent)", event.where, event.site)
    if isinstance(state, (Unknown, Empty)):
        return state
    return Unknown("clamp_ of a structured scheme", event.where, event.site)


def _erfinv(state: State, event: Event) -> State:
    if isinstance(state, Dist) and state.kind == "uniform" and state.scale == 1 \
            and state.shift == 0 and -1 <= state.lo < state.hi <= 1:
        # erfinv(u) = ndtri((u + 1) / 2) / sqrt(2): a truncated standard normal over sqrt(2)
        lo = -math.inf if state.lo == -1 else _STD_NORMAL.inv_cdf((state.lo + 1) / 2)
        hi = math.inf if state.hi == 1 else _STD_NORMAL.inv_cdf((state.hi + 1) / 2)
        return Dist("trunc", lo, hi, 1 / math.sqrt(2.0), 0.0)
    return Unknown("erfinv_ of something other than a uniform on [-1, 1]", event.where,
                   event.site)


def _scheme(name: str, args: dict[str, Any], low: State | None) -> State:
    """The state a ``torch.nn.init`` function leaves (``low``: what its inner calls drew)."""
    if name == "uniform_":
        return Dist("uniform", float(args["a"]), float(args["b"]))
    if name == "normal_":
        return Dist("normal", scale=float(args["std"]), shift=float(args["mean"]))
    if name == "constant_":
        return Const(float(args["val"]))
    if name in ("zeros_", "ones_"):
        return Const(0.0 if name == "zeros_" else 1.0)
    if name == "trunc_normal_":
        mean, std = float(args["mean"]), float(args["std"])
        if std == 0:
            return Const(min(max(mean, float(args["a"])), float(args["b"])))
        return Dist("trunc", (float(args["a"]) - mean) / std, (float(args["b"]) - mean) / std,
                    std, mean)
    torch_numbers = args.pop("_low", None)
    if torch_numbers is not None:  # what torch's own fan and gain helpers give
        kind, value = torch_numbers
        low = Dist("uniform", -value, value) if kind == "uniform" else Dist("normal",
                                                                               scale=value)
    if name == "kaiming_uniform_":
        return Scheme(KaimingUniform(negative_slope=float(args["a"]), mode=args["mode"],
                                     nonlinearity=args["nonlinearity"]), low)
    if name == "kaiming_normal_":
        return Scheme(KaimingNormal(negative_slope=float(args["a"]), mode=args["mode"],
                                    nonlinearity=args["nonlinearity"]), low)
    if name == "xavier_uniform_":
        return Scheme(XavierUniform(gain=float(args["gain"])), low)
    if name == "xavier_normal_":
        return Scheme(XavierNormal(gain=float(args["gain"])), low)
    if name == "orthogonal_":
        return Scheme(Orthogonal(gain=float(args["gain"])))
    if name == "sparse_":
        return Scheme(Sparse(sparsity=float(args["sparsity"]), stddev=float(args["std"])))
    if name == "eye_":
        return Scheme(Eye())
    if name == "dirac_":
        return Scheme(Dirac(groups=int(args["groups"])))
    return Unknown(f"torch.nn.init.{name}")


def _interval(region: Region) -> tuple[int, int]:
    offset, sizes, strides = region
    last = offset + sum((s - 1) * st for s, st in zip(sizes, strides))
    return offset, last


def _overlaps(a: Region, b: Region) -> bool:
    (a0, a1), (b0, b1) = _interval(a), _interval(b)
    return a0 <= b1 and b0 <= a1


def _write(segments: Segments, region: Region | None, state: State) -> Segments:
    if region is None:
        return [(None, state)]
    kept = [(r, s) for r, s in segments if r is None or r != region]
    if any(r is not None and _overlaps(r, region) for r, _ in kept):
        return [(None, Unknown("writes to overlapping parts of the tensor"))]
    return [*kept, (region, state)]


def _transform(segments: Segments, region: Region | None, fn: Any) -> Segments:
    if region is None:
        return [(r, fn(s)) for r, s in segments]
    for i, (r, s) in enumerate(segments):
        if r == region:
            return [*segments[:i], (r, fn(s)), *segments[i + 1:]]
    if any(r is not None and _overlaps(r, region) for r, _ in segments):
        return [(None, Unknown("a scale/shift of part of a tensor written in other parts"))]
    base = segments[0][1] if segments[0][0] is None else Empty()
    return [*segments, (region, fn(base))]


def _state_of(log: Log, count: int, region: Region | None, depth: int = 0) -> State:
    """What the first ``count`` events of ``log`` leave in ``region`` of it (one state)."""
    if log.derived:
        return Unknown(f"computed from parameter values ({log.derived}); torchinit cannot"
                       " replay an init that reads the values it writes")
    if depth > 32:
        return Unknown("copied through too many tensors")
    segments = fold(log.events[:count], depth + 1)
    if len(segments) == 1 and (region is None or segments[0][0] is None):
        return segments[0][1]
    for r, s in segments:
        if r == region:
            return s
    return Unknown("copies part of a tensor whose parts were written differently")


def fold(events: list[Event], depth: int = 0) -> Segments:
    """The segments ``events`` leave, oldest first, starting from uninitialized memory.

    A value read of the tensor (``w.norm()``, ``w.abs().max().item()``) followed by a scale,
    shift or clamp of it makes it unknown: the numbers may come from its values.
    """
    segments: Segments = [(None, Empty())]
    read: Event | None = None
    i = 0
    while i < len(events):
        event = events[i]
        i += 1
        if event.op == "read":
            read = event
            continue
        if read is not None and event.op in ("affine", "clamp", "erfinv", "unknown"):
            segments = [(None, Unknown(
                f"{event.op} after its values were read ({read.args[0]}): the numbers may come"
                " from the values, which torchinit does not replay", event.where, event.site))]
            continue
        if event.region is None and event.op not in ("affine", "clamp", "erfinv"):
            read = None  # a fresh write of the whole tensor
        if event.op == "init" and event.group is not None:
            inner = []
            while i < len(events) and events[i].group == event.group:
                inner.append(events[i])
                i += 1
            low = fold(inner, depth + 1)
            low_state = low[0][1] if len(low) == 1 else None
            name, args = event.args
            state = _scheme(name, dict(args), low_state)
            segments = _write(segments, event.region, _located(state, event))
            continue
        segments = _apply(segments, event, depth)
    return segments


def _located(state: State, event: Event) -> State:
    if isinstance(state, Unknown) and not state.where:
        return replace(state, where=event.where, site=event.site)
    return state


def _apply(segments: Segments, event: Event, depth: int) -> Segments:
    op, args, region = event.op, event.args, event.region
    if op == "init":
        name, arguments = args
        return _write(segments, region, _located(_scheme(name, dict(arguments), None), event))
    if op == "normal":
        return _write(segments, region, Dist("normal", scale=args[1], shift=args[0]))
    if op == "uniform":
        return _write(segments, region, Dist("uniform", args[0], args[1]))
    if op == "fill":
        return _write(segments, region, Const(args[0]))
    if op == "empty":
        return _write(segments, region, Empty(event.where, event.site))
    if op == "given":
        return _write(segments, region, Given(args[0], event.where, event.site))
    if op == "copy":
        source, source_region, count = args
        return _write(segments, region, _located(_state_of(source, count, source_region,
                                                           depth), event))
    if op == "affine":
        return _transform(segments, region, lambda s: _affine(s, args[0], args[1], event))
    if op == "clamp":
        return _transform(segments, region, lambda s: _clamp(s, args[0], args[1], event))
    if op == "erfinv":
        return _transform(segments, region, lambda s: _erfinv(_given(s), event))
    return _write(segments, region, Unknown(f"{args[0] if args else op} has no catalog"
                                            " equivalent", event.where, event.site))
