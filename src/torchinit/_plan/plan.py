"""Plans: an ordered list of rules that states the initialization of a whole model.

``Plan.explain(model, seed)`` decides, for every parameter, which rule wins (later rules win),
which initializer and fans it gets and which key it draws from, and validates all of it; the
result is a :class:`Manifest`. Nothing is written until every parameter has resolved.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .._fans import FanConvention, Fans
from .._deprecation import deprecated_alias
from .._stack import user_stacklevel
from ..errors import (
    ConfigError,
    FanError,
    InitializerError,
    PlanError,
    TorchinitError,
    at_field,
    describe_target,
)
from ..initializers import Initializer, StructuredInitializer
from .._layouts import fans as layer_fans
from .._streams import Key
from .init_functions import InitFunction
from .manifest import BlockEntry, Manifest, Record
from .parametrization import Parametrization, forward_requirements, width_fans
from .roles import norm_reason, roles_of
from .rules import Keep, Rule
from .schema import PLAN_SPECS, UNMATCHED, OnUnmatched, check_fields, typed_repr
from .selectors import ParamInfo

__all__ = ["Plan", "UNMATCHED", "OnUnmatched"]

_WARNED_ASSUMED: set[type] = set()
"""Module types already warned about for assumed fans (see :func:`_warn_assumed_fans`)."""


@dataclass(frozen=True)
class _Param:
    """One parameter tensor with every path it is reachable under (canonical path first)."""

    tensor: nn.Parameter
    infos: tuple[ParamInfo, ...]

    @property
    def path(self) -> str:
        return self.infos[0].path


def _semantic_fans(module: nn.Module, name: str) -> Fans | None:
    try:
        return layer_fans(module, name)
    except FanError:
        return None


def collect_params(model: nn.Module) -> list[_Param]:
    """Every parameter once, in ``named_parameters()`` order, with all its aliases."""
    modules: dict[str, nn.Module] = dict(model.named_modules(remove_duplicate=False))
    by_id: dict[int, list[ParamInfo]] = {}
    tensors: dict[int, nn.Parameter] = {}
    for path, p in model.named_parameters(remove_duplicate=False):
        if isinstance(p, nn.parameter.UninitializedParameter):
            raise PlanError(
                f"parameter {path!r} belongs to a lazy module that has not run yet, so it has no"
                " shape; run a forward pass first, or build the model with"
                " ti.build(factory, plan, example_inputs=...)")
        owner_path, _, name = path.rpartition(".")
        module = modules[owner_path]
        parts = owner_path.split(".") if owner_path else []
        ancestors = tuple(modules[".".join(parts[:i])] for i in range(len(parts)))
        info = ParamInfo(path, module, name, p.dim(), roles_of(module, name, p.dim()),
                         _semantic_fans(module, name), ancestors)
        by_id.setdefault(id(p), []).append(info)
        tensors[id(p)] = p
    canonical = [id(p) for _, p in model.named_parameters()]
    return [_Param(tensors[i], tuple(by_id[i])) for i in canonical]


def _rule_from_dict(data: Any, index: int) -> Rule:
    with at_field("rules", index):
        if not isinstance(data, Mapping):
            raise PlanError(f"must be a rule (a Rule, or a mapping with 'init' and selector keys),"
                            f" got {typed_repr(data)}")
        return Rule.from_dict(data)


class Plan:
    """An ordered list of :class:`Rule`; for each parameter the last matching rule wins.

    Args:
        rules: The rules (``Rule`` objects or their dict form).
        on_unmatched: What to do with parameters no rule matches: ``"error"`` (list them all),
            ``"warn"`` (list them and keep their values) or ``"keep"``.
        zero_padding: Keep the ``padding_idx`` row of ``Embedding``/``EmbeddingBag`` at zero,
            as torch does.
        name: A label for messages.

    Plans compose: ``preset + [Rule(...)]`` or ``plan_a + plan_b`` appends rules, so the
    additions override.
    """

    def __init__(
        self,
        rules: Iterable[Rule | dict[str, Any]] = (),
        on_unmatched: OnUnmatched = "error",
        zero_padding: bool = True,
        name: str | None = None,
    ) -> None:
        try:
            check_fields({"on_unmatched": on_unmatched, "zero_padding": zero_padding,
                          "name": name}, PLAN_SPECS)
        except ConfigError as err:
            raise PlanError(str(err), field=err.field) from None
        self.rules: tuple[Rule, ...] = tuple(
            r if isinstance(r, Rule) else _rule_from_dict(r, i) for i, r in enumerate(rules))
        self.on_unmatched = on_unmatched
        self.zero_padding = zero_padding
        self.name = name

    # -- composition -----------------------------------------------------------------------------
    def __add__(self, other: Plan | Sequence[Rule]) -> Plan:
        more = other.rules if isinstance(other, Plan) else tuple(other)
        on_unmatched = other.on_unmatched if isinstance(other, Plan) else self.on_unmatched
        return Plan((*self.rules, *more), on_unmatched, self.zero_padding, self.name)

    def with_options(self, **options: Any) -> Plan:
        """A copy with other ``on_unmatched`` / ``zero_padding`` / ``name``."""
        kw = {"on_unmatched": self.on_unmatched, "zero_padding": self.zero_padding,
              "name": self.name, **options}
        return Plan(self.rules, **kw)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Plan) and (self.rules, self.on_unmatched, self.zero_padding,
                                            self.name) == (other.rules, other.on_unmatched,
                                                           other.zero_padding, other.name)

    def __repr__(self) -> str:
        label = f" {self.name!r}" if self.name else ""
        return f"<Plan{label}: {len(self.rules)} rules, on_unmatched={self.on_unmatched!r}>"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {"rules": [r.to_dict() for r in self.rules]}
        if self.on_unmatched != "error":
            out["on_unmatched"] = self.on_unmatched
        if not self.zero_padding:
            out["zero_padding"] = False
        if self.name:
            out["name"] = self.name
        return out

    @classmethod
    def from_dict(cls, data: dict[str, Any]) -> Plan:
        from .config import plan_from_dict

        return plan_from_dict(data)

    @classmethod
    def from_file(cls, path: str) -> Plan:
        """Load a plan from a ``.yaml``/``.yml``, ``.toml`` or ``.json`` file (no code runs)."""
        from .config import load_plan

        return load_plan(path)

    def to_file(self, path: str) -> None:
        """Write the plan as YAML, TOML or JSON, chosen by the file extension."""
        from .config import save_plan

        save_plan(self, path)

    def as_fn(self, model: nn.Module, seed: int = 0) -> Callable[[nn.Module], None]:
        """A function for ``model.apply(plan.as_fn(model, seed))``, for code built around
        ``Module.apply``.

        The whole model is resolved, and every parameter checked for writing, when ``as_fn``
        is called, so nothing is written if any parameter fails; each call then writes the
        direct parameters of the module it gets (through :meth:`Manifest.write`). The model
        is needed because keys come from full parameter paths, which ``Module.apply`` does
        not pass.
        """
        manifest = self.explain(model, seed)
        manifest.check(model)
        paths = {id(p): path for path, p in model.named_parameters()}

        def init_module(module: nn.Module) -> None:
            own = {paths.pop(id(p)): p for p in module.parameters(recurse=False)
                   if id(p) in paths}  # tied parameters are written once
            manifest.write(own)

        return init_module

    # -- resolution ------------------------------------------------------------------------------
    def explain(self, model: nn.Module, seed: int = 0) -> Manifest:
        """Resolve and validate every parameter of ``model`` under this plan: the manifest,
        one record per parameter, nothing written.

        Raises:
            PlanError: listing every parameter that cannot be resolved.
        """
        params = collect_params(model)
        labels = [rule.describe() for rule in self.rules]  # once per rule, not per parameter
        errors: list[str] = []
        records: list[Record] = []
        used: set[int] = set()
        unmatched: list[str] = []
        for param in params:
            try:
                record = self._resolve_param(param, seed, labels)
            except TorchinitError as err:
                errors.append(str(err))
                continue
            used.update(record.matched)
            used.update(record.alias_matched)
            if record.init is None and record.rule is None:
                missing = f" {record.notes[-1]}" if record.blocks else ""
                unmatched.append(f"{record.path} {tuple(record.shape)} ({record.module_type})"
                                 + missing)
            records.append(record)
        if unmatched and self.on_unmatched == "error":
            errors.append(
                f"{len(unmatched)} parameter(s) match no rule (on_unmatched='error'):\n  "
                + "\n  ".join(unmatched)
                + "\nAdd rules for them, or use on_unmatched='keep' or 'warn'.")
        if errors:
            raise PlanError(f"plan{' ' + repr(self.name) if self.name else ''} cannot initialize"
                            " this model:\n- " + "\n- ".join(errors))
        if unmatched and self.on_unmatched == "warn":
            warnings.warn("parameters that match no rule keep their values:\n  "
                          + "\n  ".join(unmatched), stacklevel=user_stacklevel())
        for i, rule in enumerate(self.rules):
            if i not in used and not rule.optional:
                warnings.warn(f"rule #{i} ({rule.describe()}) matches no parameter",
                              stacklevel=user_stacklevel())
        self._warn_forward(model, used)
        return Manifest(tuple(records), seed)

    resolve = deprecated_alias("Plan.resolve", "Plan.explain", explain)

    def _warn_forward(self, model: nn.Module, used: set[int]) -> None:
        """What the matched parametrizations need of the model's forward pass and it lacks."""
        inits = (rule.init for i, rule in enumerate(self.rules) if i in used)
        for message in forward_requirements(model, inits):
            warnings.warn(message, UserWarning, stacklevel=user_stacklevel())

    def _matching(self, info: ParamInfo) -> list[int]:
        return [i for i, rule in enumerate(self.rules) if rule.match.matches(info)]

    def _resolve_param(self, param: _Param, seed: int, labels: Sequence[str]) -> Record:
        info = param.infos[0]
        matched = self._matching(info)
        notes: list[str] = []
        whole = [i for i in matched if self.rules[i].match.block is None]
        winner = whole[-1] if whole else None
        alias_matched: set[int] = set()
        for alias in param.infos[1:]:
            alias_rules = self._matching(alias)
            alias_matched.update(alias_rules)
            alias_whole = [i for i in alias_rules if self.rules[i].match.block is None]
            alias_winner = alias_whole[-1] if alias_whole else None
            if self._rule_effect(alias_winner) != self._rule_effect(winner):
                note = (f"tied parameter {info.path!r} is also {alias.path!r}, where rule"
                        f" #{alias_winner} would win instead of #{winner}; the canonical path's"
                        " rule is used")
                preset_rule = alias_winner is not None and self.rules[alias_winner].optional
                if not preset_rule:  # presets tie weights routinely; the note is enough
                    warnings.warn(note, stacklevel=user_stacklevel())
                notes.append(note)
        reason = norm_reason(info.module) if "norm" in info.roles else None
        if reason:
            notes.append(f"norm role: {reason}")
        base: dict[str, Any] = dict(
            path=info.path, shape=tuple(param.tensor.shape),
            dtype=str(param.tensor.dtype).removeprefix("torch."),
            module_type=type(info.module).__name__,
            aliases=tuple(a.path for a in param.infos[1:]), roles=tuple(sorted(info.roles)),
            matched=tuple(matched), alias_matched=tuple(sorted(alias_matched)),
            notes=tuple(notes))
        blocks = self._block_winners(info, matched, winner, labels)
        scaled = self._scales(info, matched, winner, labels)
        if scaled:
            base["notes"] = (*base["notes"], scaled.pop("note"))
            base.update(scaled)
        if winner is None:
            record = Record(**base)
            if blocks:
                covered = {b.name for b in blocks}
                fused = info.fans.blocks if info.fans is not None else ()  # blocks: fans has them
                missing = [b.name for b in fused if b.name not in covered]
                record = replace(record, key=Key(seed, info.path), blocks=tuple(blocks),
                                 notes=(*base["notes"], f"blocks {missing} match no rule"))
            return record
        rule = self.rules[winner]
        if isinstance(rule.init, Keep):
            return Record(**{**base, "notes": (*base["notes"],
                                               "keeps its values (rule init='keep')")},
                          rule=winner, rule_label=labels[winner], tags=rule.tags,
                          key=Key(seed, info.path) if blocks else None, blocks=tuple(blocks))
        init, fans = self._initializer(winner, info, param.tensor)
        entries = tuple(b for b in blocks if b.rule != winner)
        zero_rows: tuple[int, ...] = ()
        if self.zero_padding and isinstance(info.module, (nn.Embedding, nn.EmbeddingBag)) \
                and info.name == "weight" and info.module.padding_idx is not None:
            zero_rows = (info.module.padding_idx % param.tensor.shape[0],)
        std, bound = _moments(init, fans, tuple(param.tensor.shape))
        fans_note = _fans_note(self.rules[winner].fan_convention, init, fans, info.fans)
        if fans_note:
            base["notes"] = (*base["notes"], fans_note)
        return Record(**base, rule=winner, rule_label=labels[winner], init=init, fans=fans,
                      std=std, bound=bound, key=Key(seed, info.path), blocks=entries,
                      tags=rule.tags, zero_rows=zero_rows)

    def _scales(self, info: ParamInfo, matched: list[int], winner: int | None,
                labels: Sequence[str]) -> dict[str, Any]:
        """The optimizer scales of the last matching parametrization rule, as record fields
        and a note (nothing when no parametrization rule matches)."""
        scaling = [i for i in matched if isinstance(self.rules[i].init, Parametrization)]
        if not scaling:
            return {}
        index = scaling[-1]
        rule = self.rules[index]
        assert isinstance(rule.init, Parametrization)
        try:
            scales = rule.init.scales(info)
        except InitializerError as err:
            raise type(err)(f"rule #{index} ({rule.describe()}): {err}") from None
        note = f"{rule.init.name}: {scales.kind}, {scales.note}"
        if winner != index:
            note += (f"; the init is rule #{winner}'s ({labels[winner]})" if winner is not None
                     else "; no rule sets its init")
        return {"lr_scale": scales.lr, "weight_decay_scale": scales.weight_decay,
                "width": scales.kind, "note": note}

    def _rule_effect(self, index: int | None) -> tuple[object, FanConvention] | None:
        """What a rule does (initializer and fan convention), to compare rules across aliases."""
        return None if index is None else (self.rules[index].init, self.rules[index].fan_convention)

    def _block_winners(self, info: ParamInfo, matched: list[int], winner: int | None,
                       labels: Sequence[str]) -> list[BlockEntry]:
        if not any(self.rules[i].match.block for i in matched) or info.fans is None:
            return []
        out = []
        for block in info.fans.blocks:
            cands = [i for i in matched if self.rules[i].match.block in (None, block.name)]
            if not cands or isinstance(self.rules[cands[-1]].init, Keep):
                continue
            init, fans = self._initializer(cands[-1], info, None)
            rows = block.stop - block.start
            std, _ = _moments(init, fans, (rows, *_shape_tail(info)))
            out.append(BlockEntry(block.name, block.start, block.stop, cands[-1],
                                  labels[cands[-1]], init, fans, std))
        return out

    def _initializer(self, index: int, info: ParamInfo,
                     tensor: torch.Tensor | None) -> tuple[Initializer, Fans | None]:
        rule = self.rules[index]
        shape = tuple(getattr(info.module, info.name).shape)
        try:
            if isinstance(rule.init, InitFunction):
                init = rule.init(info)
            elif isinstance(rule.init, Parametrization):
                init = rule.init.initializer(info)
            else:
                assert not isinstance(rule.init, Keep), "keep rules are skipped before this"
                init = rule.init
            fans = None
            if isinstance(rule.init, Parametrization):  # the fans its scales came from
                fans = width_fans(info)
            elif init.uses_fans or isinstance(init, StructuredInitializer):
                fans = info.fans if rule.fan_convention == "semantic" and info.fans is not None \
                    else layer_fans(info.module, info.name, convention=rule.fan_convention)
            dtype = tensor.dtype if tensor is not None else None
            init.check(shape, dtype, fans, info.path)
        except InitializerError as err:
            raise type(err)(f"rule #{index} ({rule.describe()}): {err}") from None
        except TypeError as err:
            raise PlanError(f"rule #{index} ({rule.describe()}): {err}") from None
        if init.uses_fans and fans is not None and fans.assumed:
            _warn_assumed_fans(info, shape, init, fans)
        return init, fans


def _warn_assumed_fans(info: ParamInfo, shape: tuple[int, ...], init: Initializer,
                       fans: Fans) -> None:
    """Warn that a fan-based ``init`` reads torch's axis order on a layer with no layout.

    Once per module type per process, not once per resolve: the fix (a layout, or
    ``fan_convention="torch"``) is made once per type; a model repeats a type many times (GPT-2 has a
    ``Conv1D`` per projection) and a plan is often resolved several times (``explain``, then
    ``apply`` or ``build``), so more warnings would say nothing new. The manifest still marks
    the fans of every such record as assumed (``*`` in its table).
    """
    kind = type(info.module)
    if kind in _WARNED_ASSUMED:
        return
    _WARNED_ASSUMED.add(kind)
    warnings.warn(
        f"{kind.__name__} has no registered layout, so {describe_target(info.path, shape, init)}"
        f" takes fans read off torch's axis order (fan_in={fans.fan_in},"
        f" fan_out={fans.fan_out}), which are wrong if the layer stores its weight in another"
        f" order. Register what the layer computes with torchinit.register_layout("
        f"{kind.__name__}, fn), fn(module, name) returning torchinit.Fans, or pass"
        f" Rule(..., fan_convention='torch') to use torch's axis order explicitly. Warned once per"
        f" module type.",
        UserWarning,
        stacklevel=user_stacklevel(),
    )


def _fans_note(convention: str, init: Initializer, used: Fans | None,
               semantic: Fans | None) -> str | None:
    """A note when a rule uses torch's axis-order fans where the layer's semantic fans differ
    (a captured ``kaiming_uniform_`` on a ConvTranspose or a grouped conv)."""
    if convention != "torch" or not init.uses_fans or used is None or semantic is None \
            or semantic.assumed:
        return None
    if (used.fan_in, used.fan_out) == (semantic.fan_in, semantic.fan_out):
        return None
    return (f"torch's fans {used.fan_in}/{used.fan_out} (as the model's code computes them);"
            f" the layer's semantic fans are {semantic.fan_in}/{semantic.fan_out}")


def _moments(init: Initializer, fans: Fans | None,
             shape: tuple[int, ...]) -> tuple[float | None, float | None]:
    """(std, bound) of what ``init`` draws for ``shape``; ``(None, None)`` for a tensor with no
    elements whose zero fan leaves the scale undefined (nothing is drawn for it)."""
    try:
        return init.std(fans, shape), init.bound(fans, shape)
    except FanError:
        if math.prod(shape) != 0:
            raise
        return None, None


def _shape_tail(info: ParamInfo) -> tuple[int, ...]:
    return tuple(getattr(info.module, info.name).shape[1:])
