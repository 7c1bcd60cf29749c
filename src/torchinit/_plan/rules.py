"""Rules: a selector, the initializer for what it selects, and tags for review."""

from __future__ import annotations

import warnings
from collections.abc import Mapping, Sequence
from typing import Any, Union

from .. import initializers
from .._deprecation import REMOVED_IN, renamed
from .._fans import FanConvention
from .._stack import user_stacklevel
from ..errors import ConfigError, at_field
from ..initializers import Initializer
from .init_functions import InitFunction
from .parametrization import Parametrization, parametrization_from_config
from .schema import RULE_OPTIONS, RULE_SPECS, SELECT_KEYS, check_fields, check_keys, typed_repr
from .selectors import ModuleSpecs, Select, as_select

__all__ = ["Rule", "InitSpec", "as_init", "Keep", "KEEP", "RULE_FIELDS"]


class Keep:
    """The ``init`` of a rule whose parameters keep their values: in ``ti.apply`` the values
    they have; in ``ti.build`` the values the model's own code gives them (its captured init,
    else that code run for real). Written ``init="keep"`` in rules and plan files."""

    name = "keep"
    _instance: Keep | None = None

    def __new__(cls) -> Keep:
        if cls._instance is None:
            cls._instance = super().__new__(cls)
        return cls._instance

    def to_config(self) -> str:
        return "keep"

    def __repr__(self) -> str:
        return "KEEP"


KEEP = Keep()
InitSpec = Union[Initializer, InitFunction, Parametrization, Keep]
RULE_FIELDS = (*SELECT_KEYS, "init", *RULE_OPTIONS)
"""A rule's fields, in the order its dict form and plan files write them: the selector keys,
``init``, then the options."""


def as_init(init: Any) -> InitSpec:
    """Accept an Initializer, a registered name (or ``"keep"``), a config dict
    ``{"name": ..., **arguments}``, ``{"function": name}`` (a registered init function), a
    :class:`Parametrization` or its ``{"parametrization": name, ...}`` form.

    Raises:
        ConfigError: with ``field`` naming the key of a dict that is wrong.
    """
    if isinstance(init, (Initializer, InitFunction, Parametrization, Keep)):
        return init
    if init == "keep":
        return KEEP
    if isinstance(init, str):
        return initializers.get(init)
    if isinstance(init, Mapping):
        if "factory" in init:  # the former key of {"function": name}
            warnings.warn(f"init: {{factory: name}} is now {{function: name}}; 'factory' is"
                          f" deprecated and will be removed in torchinit {REMOVED_IN}",
                          DeprecationWarning, stacklevel=user_stacklevel())
        key = next((k for k in ("function", "factory") if k in init), None)
        if key is not None:
            check_keys(init, (key,), "init function reference")
            with at_field(key):
                return InitFunction(init[key])
        if "parametrization" in init:
            return parametrization_from_config(init)
        if "name" not in init:
            raise ConfigError("an init mapping needs 'name' (a registered initializer such as"
                              " 'kaiming_normal'), 'function' (a registered init function) or"
                              f" 'parametrization'; got the keys {sorted(map(str, init))}")
        return initializers.from_config(init)
    raise ConfigError(
        f"init must be an initializer, its name, a mapping {{name: ..., arguments...}},"
        f" {{function: name}}, a parametrization or 'keep'; got {typed_repr(init)}")


def _keyword_form(select: Select) -> str:
    """``Rule(type='Linear', role='bias', init=...)``: how to write ``select`` as keywords."""
    try:
        fields = select.to_dict()
    except ConfigError:  # a module class without a registered name: show it by its name
        fields = {k: v for k, v in vars(select).items() if k in SELECT_KEYS and v}
    return "Rule(" + "".join(f"{k}={v!r}, " for k, v in fields.items()) + "init=...)"


class Rule:
    """One line of a plan: the parameters its selector keywords select get ``init``.

    The selector keywords are :class:`Select`'s fields, all optional, all of which must hold
    (none: every parameter): ``type``, ``within``, ``path``, ``regex``, ``name``, ``role``,
    ``ndim`` and ``block``. A plan file writes a rule with the same keys.

    Args:
        match: Deprecated: a :class:`Select` or a dict of its fields; give the fields as keyword
            arguments instead (``Rule(type="Linear", role="bias", init=...)``). It still works,
            with a DeprecationWarning that shows the keyword form.
        init: An initializer, a registered name (``"zeros"``), a config dict, a registered
            init function ``{"function": "torch_default"}``, a parametrization
            (:class:`~torchinit._plan.parametrization.Parametrization`, e.g. μP's, which also
            sets learning-rate multipliers), or ``"keep"`` (see :class:`Keep`).
        tags: A tag or a list of tags: free labels shown in the manifest and usable for review.
        fan_convention: ``"semantic"`` (from what the layer computes) or ``"torch"`` (torch's
            axis order). ``fans=`` is its former name, accepted with a DeprecationWarning.
        label: A name for messages and the manifest (default: a description of the rule).
        optional: Matching no parameter is expected (presets), so it does not warn.
        override: With a checkpoint, the rule wins over it for the parameters it matches
            (they are re-initialized, not loaded). Without, a rule that matches only
            parameters the checkpoint has is an error.
        type: Module class(es) or registered names/globs of the parameter's owner.
        within: Module class(es) or names/globs of an enclosing module.
        path: Glob(s) on the full dotted parameter path.
        regex: A regular expression searched in the path (linear time).
        name: Glob(s) on the parameter's own name.
        role: Role(s) of the parameter (any of them).
        ndim: Number(s) of dimensions.
        block: One block of a fused parameter.

    Raises:
        ConfigError: for a value no field accepts, with ``field`` naming it (``("tags",)``,
            ``("init", "stddev")``, ``("role",)``).

    Example:
        >>> Rule(type="Linear", role="bias", init="zeros")
        Rule(type=Linear role=bias -> zeros)
    """

    __slots__ = ("match", "init", *RULE_OPTIONS)

    def __init__(
        self,
        match: Select | Mapping[str, Any] | None = None,
        init: Any = None,
        tags: str | Sequence[str] = (),
        fan_convention: FanConvention = "semantic",
        label: str | None = None,
        optional: bool = False,
        override: bool = False,
        *,
        type: ModuleSpecs = (),
        within: ModuleSpecs = (),
        path: str | Sequence[str] = (),
        regex: str | None = None,
        name: str | Sequence[str] = (),
        role: str | Sequence[str] = (),
        ndim: int | Sequence[int] = (),
        block: str | None = None,
        **deprecated: Any,
    ) -> None:
        if "fans" in deprecated:
            fan_convention = renamed("Rule", "fans", "fan_convention", deprecated.pop("fans"))
        check_keys(deprecated, SELECT_KEYS, "selector")
        given = dict(type=type, within=within, path=path, regex=regex, name=name, role=role,
                     ndim=ndim, block=block)
        select: dict[str, Any] = {k: v for k, v in given.items()
                                  if v is not None and not (isinstance(v, tuple) and not v)}
        if match is not None:
            if select:
                raise ConfigError("give the selector as keywords only: Rule(match=...) is the"
                                  " deprecated form", field=("match",))
            with at_field("match"):
                self.match = as_select(match)
            warnings.warn(f"Rule(match=...) is deprecated and will be removed in torchinit"
                          f" {REMOVED_IN}; give the selector as keywords:"
                          f" {_keyword_form(self.match)}", DeprecationWarning,
                          stacklevel=user_stacklevel())
        else:
            self.match = Select(**select)
        check_fields({"tags": tags, "fan_convention": fan_convention, "label": label,
                      "optional": optional, "override": override}, RULE_SPECS)
        if init is None:
            raise ConfigError(f"Rule({self.match.describe()}) needs init=", field=("init",))
        with at_field("init"):
            self.init = as_init(init)
        if isinstance(self.init, Parametrization) and self.match.block is not None:
            raise ConfigError(
                f"Rule({self.match.describe()}): a parametrization ({self.init.name}) decides a"
                " whole tensor's learning rate, so it cannot apply to one block of a fused"
                " parameter; drop 'block', or give the block a plain initializer",
                field=("block",))
        self.tags = (tags,) if isinstance(tags, str) else tuple(tags)
        self.fan_convention = fan_convention
        self.label = label
        self.optional = optional
        self.override = override

    def describe(self) -> str:
        """``label`` or ``selector -> init``."""
        if self.label:
            return self.label
        target = self.init.name
        return f"{self.match.describe()} -> {target}"

    def to_dict(self) -> dict[str, Any]:
        """The plan-file form: the selector keys, ``init``, then the options not at their
        defaults (``Rule.from_dict`` reads it back)."""
        out: dict[str, Any] = {**self.match.to_dict(), "init": self.init.to_config()}
        if self.tags:
            out["tags"] = list(self.tags)
        if self.fan_convention != "semantic":
            out["fan_convention"] = self.fan_convention
        if self.label:
            out["label"] = self.label
        if self.optional:
            out["optional"] = True
        if self.override:
            out["override"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        """A rule from its dict form (:meth:`to_dict`); a ``match`` mapping (the form plan files
        of version 1 wrote) is read with a DeprecationWarning.

        Raises:
            ConfigError: with ``field`` naming the key that is wrong.
        """
        data = dict(data)
        if "fans" in data:
            data["fan_convention"] = renamed("a rule", "fans", "fan_convention", data.pop("fans"))
        check_keys(data, ("match", *RULE_FIELDS), "rule")
        if "init" not in data:
            raise ConfigError("the rule has no 'init' (an initializer name, a mapping"
                              " {name: ..., arguments...} or {function: name})")
        match = data.pop("match", None)
        if match is not None:
            if not isinstance(match, Mapping):
                raise ConfigError(f"match must be a mapping of selector keys {list(SELECT_KEYS)},"
                                  f" got {typed_repr(match)}",
                                  field=("match",))
            overlap = sorted(set(match) & set(data))
            if overlap:
                raise ConfigError(f"{overlap[0]} is given both in 'match' and in the rule;"
                                  " write the selector keys in the rule only",
                                  field=(overlap[0],))
            with at_field("match"):  # errors name the field inside 'match'
                select = as_select(match)
            warnings.warn("a rule's 'match' mapping is deprecated and will be removed in"
                          f" torchinit {REMOVED_IN}; write its keys in the rule itself:"
                          f" {_keyword_form(select)} (save the plan again to update a file)",
                          DeprecationWarning, stacklevel=user_stacklevel())
            data.update(match)
        for key in SELECT_KEYS:
            if key in data and data[key] is None:  # a YAML key left empty selects nothing
                raise ConfigError(f"{key} is null; give a value, or leave the key out to select"
                                  f" regardless of {key}", field=(key,))
        return cls(**data)

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in self.__slots__)

    def __repr__(self) -> str:
        return f"Rule({self.describe()})"
