"""From a recording to a plan: one captured initializer per parameter, grouped into rules.

Each parameter's storage log is folded (:mod:`.fold`); the state it is left in becomes an
initializer of the catalog (constants, uniform, normal, truncated normal, and torch.nn.init's
variance and structured schemes with torch's fan convention). Parts of a tensor written
separately are kept when a plan can say them: the ``padding_idx`` row of an embedding left at
zero (``Plan(zero_padding=True)``) and row blocks that are blocks of a fused parameter (an LSTM
gate: a rule with ``block=``). Anything else is a :class:`Miss`, reported with the call and the
model's function behind it.
"""

from __future__ import annotations

import math
import re
from collections import defaultdict
from collections.abc import Iterable
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn

from .._fans import FanConvention
from ..errors import FanError, InitializerError
from ..initializers import Constant, Initializer, Normal, Ones, TruncatedNormal, Uniform, Zeros
from .._layouts import fans as layer_fans
from .._plan.plan import Plan
from .._plan.rules import KEEP, Keep, Rule
from .calls import Region
from .fold import Const, Dist, Empty, Scheme, State, Unknown, _given, fold
from .recorder import Recorder, region_of

__all__ = ["Captured", "Miss", "captured_params", "plan_from"]

_REL = 1e-9


@dataclass(frozen=True)
class Miss:
    """Why a parameter's values cannot be replayed from a catalog scheme."""

    reason: str
    where: str = ""
    site: str = ""

    def describe(self) -> str:
        origin = f" (in {self.where}{', ' + self.site if self.site else ''})" if self.where else ""
        return self.reason + origin


@dataclass(frozen=True)
class Captured:
    """What the model's code does to one parameter (canonical path), as plan material."""

    path: str
    shape: tuple[int, ...]
    module_type: str
    init: Initializer | None
    fans: FanConvention = "semantic"
    blocks: tuple[tuple[str, Initializer, FanConvention], ...] = ()
    label: str = ""
    miss: Miss | None = None
    zeroes_padding: bool | None = None  # for an Embedding with padding_idx


def _initializer(state: State, module: nn.Module, name: str
                 ) -> tuple[Initializer, FanConvention] | Miss:
    """The catalog initializer (and fan convention) that draws what ``state`` describes."""
    state = _given(state)
    if isinstance(state, Const):
        return _constant(state.value)
    if isinstance(state, Dist):
        return _distribution(state)
    if isinstance(state, Scheme):
        init = state.init
        if not init.elementwise or state.low is None:
            return init, "torch"
        try:
            fans = layer_fans(module, name, convention="torch")
            agrees = math.isclose(init.std(fans), state.low.std(), rel_tol=_REL)
        except (FanError, InitializerError):
            agrees = False
        return (init, "torch") if agrees else _initializer(state.low, module, name)
    if isinstance(state, Empty):
        return Miss("never written after it was created with torch.empty: its values would be"
                    " whatever memory held", state.where, state.site)
    assert isinstance(state, Unknown)
    return Miss(state.reason, state.where, state.site)


def _constant(value: float) -> tuple[Initializer, FanConvention] | Miss:
    if value in (0.0, 1.0):
        return (Zeros() if value == 0 else Ones()), "semantic"
    if not math.isfinite(value):
        return Miss(f"filled with {value}")
    return Constant(value), "semantic"


def _distribution(d: Dist) -> tuple[Initializer, FanConvention] | Miss:
    lo, hi = d.support()
    if lo == hi:
        return _constant(lo)
    if d.kind == "uniform":
        return Uniform(lo, hi), "semantic"
    if d.kind == "normal":
        return Normal(d.shift, abs(d.scale)), "semantic"
    if math.isinf(lo) and math.isinf(hi):
        return Normal(d.shift, abs(d.scale)), "semantic"
    if math.isinf(lo) or math.isinf(hi):
        return Miss("a normal truncated on one side only")
    return TruncatedNormal(d.shift, abs(d.scale), lo, hi), "semantic"


def _rows(region: Region, param: torch.Tensor) -> tuple[int, int] | None:
    """The rows ``[a, b)`` a region of ``param``'s storage covers, if it is whole rows."""
    offset, sizes, strides = region
    if not param.is_contiguous() or param.dim() == 0:
        return None
    row = math.prod(param.shape[1:]) if param.dim() > 1 else 1
    start = offset - param.storage_offset()
    if len(sizes) != 1 or strides[0] != 1 or start % row or sizes[0] % row:
        return None
    return start // row, (start + sizes[0]) // row


def captured_params(model: nn.Module, recorder: Recorder) -> list[Captured]:
    """What the recording says of every parameter of ``model`` (canonical paths, in order)."""
    modules = dict(model.named_modules())
    out = []
    for path, param in model.named_parameters():
        owner, _, name = path.rpartition(".")
        out.append(_capture_one(path, param, modules[owner], name, recorder))
    return out


def _capture_one(path: str, param: nn.Parameter, module: nn.Module, name: str,
                 recorder: Recorder) -> Captured:
    base: dict[str, Any] = dict(path=path, shape=tuple(param.shape),
                                module_type=type(module).__name__)
    log = recorder.log_of(param)
    if log is None:
        return Captured(**base, init=None, miss=Miss("no code of the model wrote it while it was"
                                                     " recorded"))
    if log.derived:
        return Captured(**base, init=None, miss=Miss(
            f"its values are computed from parameter values ({log.derived}); torchinit does"
            " not replay an init that reads the values it writes"))
    segments = fold(log.events)
    label = next((f"native {e.where}" for e in reversed(log.events) if e.where), "native")
    if param.numel() == 0:
        return Captured(**base, init=Zeros(), label=label)
    own = region_of(param)
    padding = getattr(module, "padding_idx", None) \
        if isinstance(module, (nn.Embedding, nn.EmbeddingBag)) and name == "weight" else None
    zeroes_padding = None if padding is None else False
    blocks: list[tuple[str, Initializer, FanConvention]] = []
    main: State | None = None
    for region, state in segments:
        if region is None or region == own:
            main = state
            continue
        rows = _rows(region, param)
        row = None if padding is None else padding % param.shape[0]
        if row is not None and rows == (row, row + 1) and _given(state) == Const(0.0):
            zeroes_padding = True
            continue
        block = _block_named(module, name, rows)
        found = _initializer(state, module, name) if block else None
        if block and isinstance(found, tuple):
            blocks.append((block, *found))
            continue
        what = f"rows {rows[0]}:{rows[1]}" if rows else "part of it"
        miss = found if isinstance(found, Miss) else Miss(
            f"the model's code writes {what} separately, and no rule can select that part")
        return Captured(**base, init=None, label=label, miss=miss)
    if main is None:
        return Captured(**base, init=None, label=label,
                        miss=Miss("the parameter is a view of a larger tensor"))
    if padding is not None and _given(main) == Const(0.0):
        zeroes_padding = True
    found = _initializer(main, module, name)
    if isinstance(found, Miss):
        return Captured(**base, init=None, label=label, miss=found)
    init, fans = found
    return Captured(**base, init=init, fans=fans, blocks=tuple(blocks), label=label,
                    zeroes_padding=zeroes_padding)


def _block_named(module: nn.Module, name: str, rows: tuple[int, int] | None) -> str | None:
    if rows is None:
        return None
    try:
        blocks = layer_fans(module, name).blocks
    except FanError:
        return None
    return next((b.name for b in blocks if (b.start, b.stop) == rows), None)


def _literal(path: str) -> str:
    return re.sub(r"([*?\[])", r"[\1]", path)


def _compress(paths: list[str], every: Iterable[str]) -> tuple[str, ...]:
    """Globs for ``paths``: each numeric path part becomes ``*`` where the glob matches exactly
    the same parameters of the model (``every``: all its parameter paths and aliases)."""
    import fnmatch

    mine = set(paths)
    globs: dict[str, list[str]] = defaultdict(list)
    for p in paths:
        globs[re.sub(r"(?:^|(?<=\.))\d+(?=\.|$)", "*", _literal(p))].append(p)
    everything = list(every)
    out: list[str] = []
    for glob, members in globs.items():
        if "*" in glob.replace("[*]", "") and len(members) > 1 and all(
                p in mine for p in everything if fnmatch.fnmatchcase(p, glob)):
            out.append(glob)
        else:
            out.extend(_literal(p) for p in members)
    return tuple(out)


def plan_from(model: nn.Module, captured: list[Captured], name: str | None = None) -> Plan:
    """A plan with one rule per distinct captured initializer (parameters that cannot be
    captured get a ``keep`` rule; callers decide whether that is allowed)."""
    groups: dict[tuple[Initializer | Keep, FanConvention, str, str | None], list[str]] = \
        defaultdict(list)
    padded = [c for c in captured if c.zeroes_padding is not None]
    zero_padding = all(c.zeroes_padding for c in padded)
    odd = set() if zero_padding else {c.path for c in padded if c.zeroes_padding}
    for c in captured:
        if c.path in odd:
            c = Captured(c.path, c.shape, c.module_type, None, miss=Miss(
                "it keeps its padding row at zero while another embedding does not (one plan"
                " has one zero_padding)"))
        if c.init is None:
            groups[(KEEP, "semantic", f"native (kept): {c.miss.describe() if c.miss else ''}",
                    None)].append(c.path)
            continue
        groups[(c.init, c.fans, c.label, None)].append(c.path)
        for block, init, fans in c.blocks:
            groups[(init, fans, f"{c.label} [{block}]", block)].append(c.path)
    every = [p for p, _ in model.named_parameters(remove_duplicate=False)]
    canonical = {id(p): path for path, p in model.named_parameters()}
    aliases: dict[str, list[str]] = defaultdict(list)
    for path, p in model.named_parameters(remove_duplicate=False):
        if canonical[id(p)] != path:
            aliases[canonical[id(p)]].append(path)
    rules = []
    for (rule_init, convention, label, block_name), paths in groups.items():
        paths = [a for p in paths for a in (p, *aliases[p])]  # tied: one rule for every name
        rules.append(Rule(path=_compress(paths, every), block=block_name, init=rule_init,
                          fan_convention=convention, label=label, optional=True))
    return Plan(rules, zero_padding=zero_padding, name=name)
