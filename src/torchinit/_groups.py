"""Optimizer parameter groups chosen with the same selectors as initialization plans.

``param_groups(model, weight_decay=0.05)`` splits a model's trainable parameters into
``torch.optim`` parameter groups; by default these get no weight decay:

* biases, normalization scales and shifts: the "no bias decay" heuristic of He et al. (2019),
  "Bag of Tricks for Image Classification with Convolutional Neural Networks", section 3.1;
* PReLU slopes, which decay pushes towards zero, turning PReLU into ReLU (He et al. 2015,
  "Delving Deep into Rectifiers", section 2.1);
* layer scales (Touvron et al. 2021, "Going deeper with Image Transformers");
* every other 0-D or 1-D parameter (gains, temperatures), as timm's ``create_optimizer_v2``
  leaves them out (``param_groups_weight_decay(weight_decay_exclude_1d=True)``);
* the parameters the model declares with ``no_weight_decay()`` (timm's position embeddings and
  class tokens, Swin's relative position bias tables) or ``no_weight_decay_keywords()``
  (:func:`declared_no_decay`).

Every other parameter gets ``weight_decay``. The first three come from parameter roles
(``torchinit._plan.roles``), which also catch what the shape rule misses (the 3-D ``bias_k`` of
``nn.MultiheadAttention``, torchvision ConvNeXt's ``(C, 1, 1)`` layer scales).

``lr_scale`` multiplies the learning rate of selected parameters, e.g. layer-wise
learning-rate decay (Clark et al. 2020, "ELECTRA", appendix A). ``plan=`` applies the
per-parameter learning-rate and weight-decay multipliers of a width-aware parametrization
(μP: ``ti.mup``; the spectral parametrization), which its manifest records.

Every parameter is in exactly one group, tied parameters once, under their canonical path (the
name ``model.named_parameters()`` gives them).
"""

from __future__ import annotations

import fnmatch
import math
import numbers
import re
import warnings
from collections.abc import Iterable, Iterator, Mapping, Sequence
from collections.abc import Set as AbstractSet
from typing import Any, Union

from torch import nn

from .errors import ConfigError, short_repr, suggest
from ._plan import Manifest, Plan
from ._plan.plan import collect_params
from ._plan.roles import ROLES
from ._plan.selectors import ParamInfo, Select, as_select

__all__ = ["param_groups", "describe_groups", "declared_no_decay", "DEFAULT_NO_DECAY",
           "Selector"]

Selector = Union[Select, Mapping[str, Any], str]
"""A :class:`~torchinit._plan.Select`, a dict of its fields, or a role name such as ``"bias"``."""

DEFAULT_NO_DECAY: tuple[Selector, ...] = ("bias", "norm", "prelu", "layer_scale",
                                          Select(ndim=(0, 1)))
"""Selectors of the parameters left out of weight decay when ``no_decay`` is not given: roles
``bias``, ``norm``, ``prelu``, ``layer_scale`` and every 0-D or 1-D parameter. The model's own
declarations (:func:`declared_no_decay`) are added to them."""

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
        return Select(role=(selector,))
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


def _glob_escape(text: str) -> str:
    """``text`` as an fnmatch glob matching only itself (``[*]`` for a literal ``*``)."""
    return re.sub(r"([*?\[])", r"[\1]", text)


def _outermost(module: nn.Module, method: str, prefix: str = ""
               ) -> Iterator[tuple[str, nn.Module]]:
    """``(path prefix, module)`` of the outermost modules with a callable ``method`` of their
    own: on each path from the root, the first one has it speak for its whole subtree. A method
    bound to another module, which a wrapper forwards by ``__getattr__`` (``torch.compile``'s
    ``OptimizedModule``), is that module's, found under its own path."""
    found = getattr(module, method, None)
    if callable(found) and getattr(found, "__self__", module) is module:
        yield prefix, module
        return
    for name, child in module.named_children():
        yield from _outermost(child, method, f"{prefix}{name}.")


def _declared(module: nn.Module, prefix: str, method: str) -> list[str]:
    """What ``module.<method>()`` returns, checked to be a collection of strings."""
    value = getattr(module, method)()
    where = f"{type(module).__name__}.{method}()" + (f" of module {prefix[:-1]!r}" if prefix
                                                     else "")
    if isinstance(value, (str, bytes)) or not isinstance(value, Iterable):
        raise ConfigError(f"{where} must return a collection of parameter names, e.g."
                          f" {{'pos_embed', 'cls_token'}}, got {short_repr(value)}")
    names = list(value)
    for name in names:
        if not isinstance(name, str):
            raise ConfigError(f"{where} must return parameter names (strings), but it holds"
                              f" {short_repr(name)}")
    return names


def _named_by(prefix: str, names: list[str], paths: AbstractSet[str]) -> set[str]:
    """The paths under ``prefix`` that ``no_weight_decay()`` names: a parameter name or an
    fnmatch pattern on it, as timm's ``param_groups_weight_decay`` matches them, or a module
    name, standing for all its parameters."""
    exact = {prefix + n for n in names} & paths
    globs = [_glob_escape(prefix) + n + suffix for n in names if prefix + n not in paths
             for suffix in ("", ".*")]
    return exact | {p for p in paths if any(fnmatch.fnmatchcase(p, g) for g in globs)}


def _with_keywords(prefix: str, keywords: list[str], paths: AbstractSet[str]) -> set[str]:
    """The paths under ``prefix`` whose part after it contains one of ``keywords``, as the
    Swin Transformer repository's ``build_optimizer`` reads ``no_weight_decay_keywords()``."""
    return {p for p in paths
            if p.startswith(prefix) and any(k in p[len(prefix):] for k in keywords)}


_DECLARATIONS = {"no_weight_decay": _named_by, "no_weight_decay_keywords": _with_keywords}
"""The methods a module declares its parameters exempt from weight decay with, and how their
names are matched."""


def declared_no_decay(model: nn.Module) -> tuple[Select, ...]:
    """Selectors of the parameters that ``model`` declares exempt from weight decay.

    Two conventions of vision model libraries are read:

    * ``no_weight_decay()`` returns parameter names relative to the module (timm:
      ``{'pos_embed', 'cls_token'}`` for ViTs, every ``relative_position_bias_table`` for
      Swin), matched as timm's ``optim.param_groups_weight_decay`` does, with fnmatch (XCiT
      returns ``'pos_embed.*'``); a name of a submodule stands for all its parameters (timm's
      fnmatch would match none of them; no timm model declares one).
    * ``no_weight_decay_keywords()`` returns substrings of names (the Swin Transformer
      repository's ``build_optimizer``; timm's TinyViT).

    timm's ``create_optimizer_v2`` calls only the model's own ``no_weight_decay()``; timm models
    built from declaring parts forward their parts' names themselves (``Eva`` adds
    ``rope.*``). Here, on each path from the root, the outermost module with the method speaks
    for its whole subtree: a model that declares is the only one asked, as in timm, and a
    wrapper that declares nothing, such as ``nn.Sequential(timm_model, head)``, gets its
    parts' declarations under their paths. The one difference from timm: a model that itself
    declares nothing but whose layers do (timm's EdgeNeXt, whose attention declares its
    ``temperature``) gets its layers' declarations, which timm ignores. Attributes of these
    names that are not methods are ignored.

    Returns:
        One selector of the declared parameters (by exact path, aliases of tied parameters
        included), or ``()`` when nothing is declared, so ``[..., *declared_no_decay(model)]``
        composes with other selectors.

    Raises:
        ConfigError: if a declaration returns something other than a collection of strings.
    """
    order = list(dict.fromkeys(n for n, _ in model.named_parameters(remove_duplicate=False)))
    paths = frozenset(order)
    declared: set[str] = set()
    for method, match in _DECLARATIONS.items():
        for prefix, module in _outermost(model, method):
            declared |= match(prefix, _declared(module, prefix, method), paths)
    if not declared:
        return ()
    return (Select(path=tuple(_glob_escape(p) for p in order if p in declared)),)


class _Choices:
    """Which selectors match a parameter path, and what that decides for it.

    ``defaults`` never warn; ``given`` (labelled ``label[i]``) and ``scales`` warn when they
    match no parameter."""

    def __init__(self, defaults: tuple[Select, ...], given: tuple[Select, ...], label: str,
                 scales: tuple[tuple[Select, float], ...]) -> None:
        self.defaults = defaults
        self.given = given
        self.label = label
        self.scales = scales
        self.used_given: set[int] = set()
        self.used_scales: set[int] = set()

    def decide(self, info: ParamInfo) -> tuple[bool, float]:
        """(decayed?, lr factor) for the path ``info``: no ``no_decay`` selector matches it;
        the factor of the last matching ``lr_scale`` pair, 1 if none matches."""
        skip = {i for i, s in enumerate(self.given) if s.matches(info)}
        scaled = [i for i, (s, _) in enumerate(self.scales) if s.matches(info)]
        self.used_given |= skip
        self.used_scales.update(scaled)
        decays = not skip and not any(s.matches(info) for s in self.defaults)
        return decays, self.scales[scaled[-1]][1] if scaled else 1.0

    def warn_unused(self, frozen_left_out: int) -> None:
        unused = [f"{self.label}[{i}] ({s.describe()})" for i, s in enumerate(self.given)
                  if i not in self.used_given]
        unused += [f"lr_scale[{i}] ({s.describe()})" for i, (s, _) in enumerate(self.scales)
                   if i not in self.used_scales]
        frozen = (f" ({frozen_left_out} frozen parameter(s) are left out; include_frozen=True"
                  " groups them too)" if frozen_left_out else "")
        for what in unused:
            warnings.warn(f"param_groups: {what} matches no parameter{frozen}", stacklevel=3)


def _decay_choices(model: nn.Module, no_decay: Sequence[Selector] | None,
                   no_decay_extra: Sequence[Selector],
                   scales: tuple[tuple[Select, float], ...]) -> _Choices:
    """The defaults and ``no_decay_extra``, or ``no_decay`` alone; refuses both lists."""
    extra = _selector_list(no_decay_extra, "no_decay_extra")
    if no_decay is None:
        return _Choices(_DEFAULT_SELECTS + declared_no_decay(model), extra, "no_decay_extra",
                        scales)
    if extra:
        raise ConfigError("no_decay replaces the default selectors and no_decay_extra adds to"
                          " them; give one of the two: no_decay=[every selector] or"
                          " no_decay_extra=[the additions]")
    return _Choices((), _selector_list(no_decay, "no_decay"), "no_decay", scales)


_DEFAULT_SELECTS = _selector_list(DEFAULT_NO_DECAY, "DEFAULT_NO_DECAY")


def _describe_choice(decays: bool, factor: float) -> str:
    return f"{'decayed' if decays else 'not decayed'}, lr x{factor:g}"


def param_groups(
    model: nn.Module,
    weight_decay: float = 0.0,
    no_decay: Sequence[Selector] | None = None,
    lr_scale: Sequence[tuple[Selector, float]] = (),
    lr: float | None = None,
    include_frozen: bool = False,
    *,
    no_decay_extra: Sequence[Selector] = (),
    plan: Plan | Manifest | None = None,
) -> list[dict[str, Any]]:
    """Parameter groups for a ``torch.optim`` optimizer, chosen by role, type or path.

    Args:
        model: The model.
        weight_decay: Decay of every parameter that no ``no_decay`` selector matches; a finite
            number >= 0.
        no_decay: Selectors of the parameters that get ``weight_decay=0``, replacing the
            defaults. ``None`` means the defaults: :data:`DEFAULT_NO_DECAY` (roles ``bias``,
            ``norm``, ``prelu``, ``layer_scale`` and every 0-D or 1-D parameter) and the
            parameters the model declares (:func:`declared_no_decay`). ``[]`` decays everything.
        lr_scale: ``(selector, factor)`` pairs; a parameter's learning rate is multiplied by the
            factor of the *last* pair that matches it (later pairs win, as in plans), 1 if none
            does. Factors are finite and > 0.
        lr: The base learning rate. Given, every group carries ``"lr": lr * factor``. Not
            given, groups with a factor other than 1 carry ``"lr_scale": factor`` instead, which
            torch optimizers keep but do not apply: a scheduler must read it.
        include_frozen: Also group parameters with ``requires_grad=False`` (left out by default).
        no_decay_extra: Selectors left out of weight decay in addition to the defaults, e.g.
            ``["embedding"]``; not allowed with ``no_decay``. An argument of its own rather
            than a "defaults" marker inside ``no_decay``: the defaults depend on the model (its
            declarations), a ``no_decay`` list keeps meaning exactly its selectors, and these
            are the selectors checked for matching nothing.
        plan: A plan whose rules set optimizer scales (a width-aware parametrization:
            ``ti.mup(base)``, the ``"spectral"`` preset), or the manifest it gave. Each
            parameter's learning rate is further multiplied by its record's ``lr_scale``, and
            its weight decay (where it decays) by ``weight_decay_scale``. The plan is resolved
            on ``model`` (global shapes, also for FSDP2 shards), nothing written.

    A selector is a :class:`~torchinit._plan.Select`, a dict of its fields, or a string, which is
    always a role name (``"bias"``, ``"norm"``, ``"scale"``, ``"embedding"``, ``"prelu"``...);
    select paths with ``{"path": "encoder.*"}``. Selectors match a tied parameter under its
    canonical path; where an alias would be grouped differently, a warning says so. A selector
    you give (in ``no_decay``, ``no_decay_extra`` or ``lr_scale``) that matches no grouped
    parameter warns; the defaults never do.

    The defaults follow the two libraries' conventions on their own models:

    * timm: ``create_optimizer_v2`` builds groups with ``param_groups_weight_decay``, which
      leaves out 0-D and 1-D parameters, names ending in ``.bias`` and
      ``model.no_weight_decay()``. The decayed parameters of timm's ViT, Swin and ConvNeXt
      models are the same here, as are those of 95 of the 98 model families of timm 1.0.31
      (one model each). The exceptions: the ``(C, 1, 1)`` ``LayerScale2d.gamma`` of FastViT
      and SwiftFormer, which timm decays and the ``layer_scale`` role leaves out, and
      EdgeNeXt's attention ``temperature`` (see :func:`declared_no_decay`).
    * transformers: ``Trainer.get_decay_parameter_names`` leaves out ``nn.LayerNorm``
      parameters and every name containing ``bias``, ``layernorm``, ``rmsnorm`` or a ``norm``
      component. The decayed parameters of Llama, BERT, GPT-2 and ViT are the same here
      (embeddings decayed; transformers' ViT declares nothing, so its ``cls_token`` and
      ``position_embeddings`` are decayed, where timm's ViT declares and leaves out its own).
      The Trainer differs on two kinds of parameters: 1-D parameters that are neither a bias
      nor a norm (ConvNeXt's ``layer_scale_parameter``), which it decays and timm and this
      function do not; and >= 2-D tables named like a bias (T5's ``relative_attention_bias``
      embedding), which it does not decay and timm and this function do (add
      ``{"path": "*relative_attention_bias*"}`` to ``no_decay_extra`` to follow it).

    Since each library's models are grouped as that library groups them but for these
    parameters, where the Trainer's name test is the odd one out, there is no switch between
    conventions.

    Returns:
        Groups ``{"params": [...], "names": [canonical paths], "weight_decay": wd, ...}``, one
        per distinct (weight decay, lr factor), ordered by their first parameter in
        ``named_parameters()`` order; each parameter appears exactly once. Empty groups are
        left out, so a model without trainable parameters gives ``[]``.

    Raises:
        ConfigError: on a negative, infinite or NaN ``weight_decay``/``lr``/factor, an unknown
            role (with close matches), a malformed selector, both ``no_decay`` and
            ``no_decay_extra``, or a model declaration that is not a collection of names.

    Example:
        >>> groups = param_groups(model, weight_decay=0.05, no_decay_extra=["embedding"])
        >>> optimizer = torch.optim.AdamW(groups, lr=1e-3)
    """
    if not isinstance(model, nn.Module):
        raise ConfigError(f"param_groups needs an nn.Module, got {type(model).__name__}")
    decay = _real(weight_decay, "weight_decay", positive=False)
    base_lr = None if lr is None else _real(lr, "lr", positive=False)
    choices = _decay_choices(model, no_decay, no_decay_extra, _scale_rules(lr_scale))
    params = collect_params(model)
    scales = _plan_scales(model, plan)
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
        plan_lr_scale, decay_scale = scales.get(param.path, (1.0, 1.0))
        factor *= plan_lr_scale
        key = (decay * decay_scale if decays else 0.0, factor)
        if key not in groups:
            groups[key] = {"params": [], "names": [], "weight_decay": key[0]}
            if base_lr is not None:
                groups[key]["lr"] = base_lr * factor
            elif factor != 1.0:
                groups[key]["lr_scale"] = factor
        groups[key]["params"].append(param.tensor)
        groups[key]["names"].append(param.path)
    choices.warn_unused(frozen_left_out=len(params) - len(grouped))
    return list(groups.values())


def _plan_scales(model: nn.Module, plan: Plan | Manifest | None
                 ) -> dict[str, tuple[float, float]]:
    """path -> (lr scale, weight-decay scale) of the records of ``plan`` on ``model``."""
    if plan is None:
        return {}
    if isinstance(plan, Plan):
        with warnings.catch_warnings():  # the resolve that writes warns; this one adds nothing
            warnings.simplefilter("ignore")
            plan = plan.explain(model)
    if not isinstance(plan, Manifest):
        raise ConfigError(f"param_groups: plan must be a Plan or a Manifest, got"
                          f" {type(plan).__name__}")
    missing = [p for p, _ in model.named_parameters() if p not in plan]
    if missing:
        raise ConfigError(f"param_groups: the manifest has no record of {len(missing)}"
                          f" parameter(s) of the model, e.g. {missing[0]!r}; give the plan, or"
                          " the manifest of this model")
    return {r.path: (r.lr_scale, r.weight_decay_scale) for r in plan}


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
