"""Optimizer parameter groups chosen with the same selectors as initialization plans.

``param_groups(model, weight_decay=0.05)`` splits a model's trainable parameters into
``torch.optim`` parameter groups: biases, normalization scales and shifts and PReLU slopes get
no weight decay, every other parameter gets ``weight_decay``. Leaving biases and the affine
parameters of normalization layers out of weight decay is the "no bias decay" heuristic of
He et al. (2019), "Bag of Tricks for Image Classification with Convolutional Neural Networks",
section 3.1; PReLU slopes are left out because decay pushes them towards zero, turning PReLU into
ReLU (He et al. 2015, "Delving Deep into Rectifiers", section 2.1). Which parameter is which
comes from its role (``torchinit.plan.roles``), not from its name or shape.

``lr_scale`` multiplies the learning rate of selected parameters, e.g. layer-wise
learning-rate decay (Clark et al. 2020, "ELECTRA", appendix A).

Every parameter is in exactly one group, tied parameters once, under their canonical path (the
name ``model.named_parameters()`` gives them).
"""

from __future__ import annotations

import math
import numbers
import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Union

from torch import nn

from .errors import ConfigError, suggest
from .plan.plan import collect_params
from .plan.roles import ROLES
from .plan.selectors import ParamInfo, Select, as_select

__all__ = ["param_groups", "describe_groups", "DEFAULT_NO_DECAY", "Selector"]

Selector = Union[Select, Mapping[str, Any], str]
"""A :class:`~torchinit.plan.Select`, a dict of its fields, or a role name such as ``"bias"``."""

DEFAULT_NO_DECAY: tuple[str, ...] = ("bias", "norm", "prelu")
"""Roles left out of weight decay when ``no_decay`` is not given."""

_NAMES_SHOWN = 3


def _as_group_select(selector: Any, where: str) -> Select:
    """A selector for optimizer groups: a role name, a ``Select`` or a dict of its fields."""
    if isinstance(selector, str):
        if selector not in ROLES:
            path_hint = (f" To select by path, use {{'path': {selector!r}}}."
                         if any(c in selector for c in ".*?[") else "")
            raise ConfigError(
                f"{where}: {selector!r} is not a role; a string selector is a role name, one of"
                f" {ROLES}." + suggest(selector, ROLES) + path_hint)
        return Select(role=selector)
    if not isinstance(selector, (Select, Mapping)):
        raise ConfigError(f"{where} must be a role name, a Select or a dict of Select fields"
                          f" ({{}} selects every parameter), got {selector!r}")
    try:
        select = as_select(selector)
    except ConfigError as err:
        raise type(err)(f"{where}: {err}") from None
    if select.block is not None:
        raise ConfigError(f"{where} ({select.describe()}) selects block {select.block!r} of fused"
                          " parameters, but an optimizer group holds whole tensors; drop 'block'")
    return select


def _selector_list(selectors: Any, where: str) -> tuple[Select, ...]:
    if isinstance(selectors, (str, Select, Mapping)) or not isinstance(selectors, Sequence):
        raise ConfigError(f"{where} must be a list of selectors, e.g. {where}=['bias', 'norm'],"
                          f" got {selectors!r}")
    return tuple(_as_group_select(s, f"{where}[{i}]") for i, s in enumerate(selectors))


def _real(value: Any, where: str, positive: bool) -> float:
    """``value`` as a float, if it is a finite real number >= 0 (> 0 when ``positive``)."""
    bound = "> 0" if positive else ">= 0"
    if isinstance(value, bool) or not isinstance(value, numbers.Real):
        raise ConfigError(f"{where} must be a finite number {bound}, got {value!r}")
    number = float(value)
    if not math.isfinite(number) or number < 0 or (positive and number == 0):
        raise ConfigError(f"{where} must be a finite number {bound}, got {value!r}")
    return number


def _scale_rules(lr_scale: Any) -> tuple[tuple[Select, float], ...]:
    if isinstance(lr_scale, (str, Mapping)) or not isinstance(lr_scale, Sequence):
        raise ConfigError("lr_scale must be a list of (selector, factor) pairs, e.g."
                          f" lr_scale=[('embedding', 0.1)], got {lr_scale!r}")
    rules = []
    for i, pair in enumerate(lr_scale):
        where = f"lr_scale[{i}]"
        if isinstance(pair, str) or not isinstance(pair, Sequence) or len(pair) != 2:
            raise ConfigError(f"{where} must be a (selector, factor) pair, got {pair!r}")
        rules.append((_as_group_select(pair[0], where), _real(pair[1], f"{where} factor",
                                                              positive=True)))
    return tuple(rules)


class _Choices:
    """Which selectors match a parameter path, and what that decides for it."""

    def __init__(self, no_decay: tuple[Select, ...],
                 scales: tuple[tuple[Select, float], ...]) -> None:
        self.no_decay = no_decay
        self.scales = scales
        self.used_no_decay: set[int] = set()
        self.used_scales: set[int] = set()

    def decide(self, info: ParamInfo) -> tuple[bool, float]:
        """(decayed?, lr factor) for the path ``info``: no ``no_decay`` selector matches it;
        the factor of the last matching ``lr_scale`` pair, 1 if none matches."""
        skip = {i for i, s in enumerate(self.no_decay) if s.matches(info)}
        scaled = [i for i, (s, _) in enumerate(self.scales) if s.matches(info)]
        self.used_no_decay |= skip
        self.used_scales.update(scaled)
        return not skip, self.scales[scaled[-1]][1] if scaled else 1.0

    def warn_unused(self, check_no_decay: bool, frozen_left_out: int) -> None:
        unused = [f"lr_scale[{i}] ({s.describe()})" for i, (s, _) in enumerate(self.scales)
                  if i not in self.used_scales]
        if check_no_decay:
            unused[:0] = [f"no_decay[{i}] ({s.describe()})" for i, s in enumerate(self.no_decay)
                          if i not in self.used_no_decay]
        frozen = (f" ({frozen_left_out} frozen parameter(s) are left out; include_frozen=True"
                  " groups them too)" if frozen_left_out else "")
        for what in unused:
            warnings.warn(f"param_groups: {what} matches no parameter{frozen}", stacklevel=3)


def _describe_choice(decays: bool, factor: float) -> str:
    return f"{'decayed' if decays else 'not decayed'}, lr x{factor:g}"


def param_groups(
    model: nn.Module,
    weight_decay: float = 0.0,
    no_decay: Sequence[Selector] | None = None,
    lr_scale: Sequence[tuple[Selector, float]] = (),
    lr: float | None = None,
    include_frozen: bool = False,
) -> list[dict[str, Any]]:
    """Parameter groups for a ``torch.optim`` optimizer, chosen by role, type or path.

    Args:
        model: The model.
        weight_decay: Decay of every parameter that no ``no_decay`` selector matches; a finite
            number >= 0.
        no_decay: Selectors of the parameters that get ``weight_decay=0``. ``None`` means
            :data:`DEFAULT_NO_DECAY`: roles ``bias``, ``norm`` (scale and shift of every
            normalization layer) and ``prelu``. ``[]`` decays everything. Embeddings are decayed
            unless listed (add ``"embedding"``).
        lr_scale: ``(selector, factor)`` pairs; a parameter's learning rate is multiplied by the
            factor of the *last* pair that matches it (later pairs win, as in plans), 1 if none
            does. Factors are finite and > 0.
        lr: The base learning rate. Given, every group carries ``"lr": lr * factor``. Not
            given, groups with a factor other than 1 carry ``"lr_scale": factor`` instead, which
            torch optimizers keep but do not apply: a scheduler must read it.
        include_frozen: Also group parameters with ``requires_grad=False`` (left out by default).

    A selector is a :class:`~torchinit.plan.Select`, a dict of its fields, or a string, which is
    always a role name (``"bias"``, ``"norm"``, ``"scale"``, ``"embedding"``, ``"prelu"``...);
    select paths with ``{"path": "encoder.*"}``. Selectors match a tied parameter under its
    canonical path; where an alias would be grouped differently, a warning says so. A selector
    you give that matches no grouped parameter warns (the defaults never do).

    Returns:
        Groups ``{"params": [...], "names": [canonical paths], "weight_decay": wd, ...}``, one
        per distinct (weight decay, lr factor), ordered by their first parameter in
        ``named_parameters()`` order; each parameter appears exactly once. Empty groups are
        left out, so a model without trainable parameters gives ``[]``.

    Raises:
        ConfigError: on a negative, infinite or NaN ``weight_decay``/``lr``/factor, an unknown
            role (with close matches), or a malformed selector.

    Example:
        >>> groups = param_groups(model, weight_decay=0.05)
        >>> optimizer = torch.optim.AdamW(groups, lr=1e-3)
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"param_groups needs an nn.Module, got {type(model).__name__}")
    decay = _real(weight_decay, "weight_decay", positive=False)
    base_lr = None if lr is None else _real(lr, "lr", positive=False)
    choices = _Choices(_selector_list(DEFAULT_NO_DECAY if no_decay is None else no_decay,
                                      "no_decay"), _scale_rules(lr_scale))
    params = collect_params(model)
    grouped = [p for p in params if include_frozen or p.tensor.requires_grad]
    groups: dict[tuple[float, float], dict[str, Any]] = {}
    for param in grouped:
        decays, factor = choices.decide(param.infos[0])
        for alias in param.infos[1:]:
            alias_choice = choices.decide(alias)
            if alias_choice != (decays, factor):
                warnings.warn(
                    f"param_groups: tied parameter {param.path!r} is also {alias.path!r}, which"
                    f" would be {_describe_choice(*alias_choice)} instead of"
                    f" {_describe_choice(decays, factor)}; the canonical path's choice is used",
                    stacklevel=2)
        key = (decay if decays else 0.0, factor)
        if key not in groups:
            groups[key] = {"params": [], "names": [], "weight_decay": key[0]}
            if base_lr is not None:
                groups[key]["lr"] = base_lr * factor
            elif factor != 1.0:
                groups[key]["lr_scale"] = factor
        groups[key]["params"].append(param.tensor)
        groups[key]["names"].append(param.path)
    choices.warn_unused(check_no_decay=no_decay is not None,
                        frozen_left_out=len(params) - len(grouped))
    return list(groups.values())


def _rate_column(group: Mapping[str, Any]) -> str:
    if "lr" in group:
        return f"{group['lr']:g}"
    if "lr_scale" in group:
        return f"x{group['lr_scale']:g}"
    return "default"


def _names_column(group: Mapping[str, Any]) -> str:
    names = list(group.get("names", group.get("param_names", ())))
    if not names:
        return "-"
    shown = ", ".join(names[:_NAMES_SHOWN])
    return shown + (f", ... (+{len(names) - _NAMES_SHOWN})" if len(names) > _NAMES_SHOWN else "")


def describe_groups(groups: Sequence[Mapping[str, Any]]) -> str:
    """A table of parameter groups for review: index, weight decay, learning rate (absolute,
    ``x<scale>`` for an ``lr_scale`` or ``default``), tensors, elements and the first names.

    Takes what :func:`param_groups` returns or an optimizer's ``param_groups``.
    """
    if isinstance(groups, Mapping) or not isinstance(groups, Sequence):
        raise ConfigError(f"describe_groups needs a list of parameter groups, got {groups!r}")
    header = ("group", "weight_decay", "lr", "tensors", "elements", "names")
    rows = [header]
    for i, group in enumerate(groups):
        if not isinstance(group, Mapping) or "params" not in group:
            raise ConfigError(f"parameter group {i} must be a dict with 'params', got {group!r}")
        params = list(group["params"])
        rows.append((str(i), f"{group['weight_decay']:g}" if "weight_decay" in group
                     else "default", _rate_column(group), str(len(params)),
                     f"{sum(p.numel() for p in params):,}", _names_column(group)))
    widths = [max(len(row[c]) for row in rows) for c in range(len(header) - 1)]
    return "\n".join(
        "  ".join(cell.ljust(w) for cell, w in zip(row[:-1], widths)) + "  " + row[-1]
        for row in rows)
