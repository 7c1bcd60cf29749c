"""Rules: a selector, the initializer for what it selects, and tags for review."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

from .. import initializers
from .._fans import FAN_CONVENTIONS, FanConvention
from .._deprecation import renamed
from ..errors import ConfigError, short_repr
from ..initializers import Initializer
from .factories import InitFactory
from .parametrization import Parametrization, parametrization_from_config
from .selectors import SELECT_KEYS, Select, as_select

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
InitSpec = Union[Initializer, InitFactory, Parametrization, Keep]
RULE_FIELDS = ("match", "init", "tags", "fan_convention", "label", "optional", "override")
"""A rule's fields, in the order its dict form and plan files write them."""


def as_init(init: Any) -> InitSpec:
    """Accept an Initializer, a registered name (or ``"keep"``), a config dict,
    ``{"factory": name}``, a :class:`Parametrization` or its ``{"parametrization": name, ...}``
    form."""
    if isinstance(init, (Initializer, InitFactory, Parametrization, Keep)):
        return init
    if init == "keep":
        return KEEP
    if isinstance(init, str):
        return initializers.get(init)
    if isinstance(init, Mapping):
        if "factory" in init:
            extra = sorted(set(init) - {"factory"})
            if extra:
                raise ConfigError(f"a factory reference takes only 'factory', got also {extra}")
            return InitFactory(init["factory"])
        if "parametrization" in init:
            return parametrization_from_config(init)
        return initializers.from_config(init)
    raise ConfigError(
        f"a rule's init must be an Initializer, a name, a config dict, {{'factory': name}} or a"
        f" Parametrization, got {short_repr(init)}"
    )


class Rule:
    """One line of a plan: the parameters it selects get ``init``.

    Args:
        match: A :class:`Select`, or a dict of its fields; or give the fields as keyword
            arguments (``Rule(type="Linear", name="weight", init=...)``).
        init: An initializer, a registered name (``"zeros"``), a config dict, a factory
            reference ``{"factory": "torch_default"}``, a parametrization
            (:class:`~torchinit._plan.parametrization.Parametrization`, e.g. μP's, which also
            sets learning-rate multipliers), or ``"keep"`` (see :class:`Keep`).
        tags: Free labels shown in the manifest and usable for review.
        fan_convention: ``"semantic"`` (from what the layer computes) or ``"torch"`` (torch's
            axis order). ``fans=`` is its former name, accepted with a DeprecationWarning.
        label: A name for messages and the manifest (default: a description of the rule).
        optional: Matching no parameter is expected (presets), so it does not warn.
        override: With a checkpoint, the rule wins over it for the parameters it matches
            (they are re-initialized, not loaded). Without, a rule that matches only
            parameters the checkpoint has is an error.

    Example:
        >>> Rule(type="Linear", role="bias", init="zeros")
        Rule(type=Linear role=bias -> zeros)
    """

    __slots__ = RULE_FIELDS

    def __init__(
        self,
        match: Select | Mapping[str, Any] | None = None,
        init: Any = None,
        tags: Sequence[str] = (),
        fan_convention: FanConvention = "semantic",
        label: str | None = None,
        optional: bool = False,
        override: bool = False,
        **select: Any,
    ) -> None:
        if "fans" in select:
            fan_convention = renamed("Rule", "fans", "fan_convention", select.pop("fans"))
        if select:
            unknown = sorted(set(select) - set(SELECT_KEYS))
            if unknown:
                raise ConfigError(f"Rule got unknown keyword(s) {unknown}; selector keywords"
                                  f" are {list(SELECT_KEYS)}")
            if match is not None:
                raise ConfigError("give the selector either as match= or as keywords, not both")
            match = select
        if init is None:
            raise ConfigError(f"Rule({as_select(match).describe()}) needs init=")
        if fan_convention not in FAN_CONVENTIONS:
            raise ConfigError(f"Rule fan_convention must be one of {FAN_CONVENTIONS}, got"
                              f" {short_repr(fan_convention)}")
        if isinstance(tags, str):
            tags = (tags,)
        self.match = as_select(match)
        self.init = as_init(init)
        if isinstance(self.init, Parametrization) and self.match.block is not None:
            raise ConfigError(
                f"Rule({self.match.describe()}): a parametrization ({self.init.name}) decides a"
                " whole tensor's learning rate, so it cannot apply to one block of a fused"
                " parameter; drop 'block', or give the block a plain initializer")
        self.tags = tuple(str(t) for t in tags)
        self.fan_convention = fan_convention
        self.label = label
        self.optional = bool(optional)
        self.override = bool(override)

    def describe(self) -> str:
        """``label`` or ``selector -> init``."""
        if self.label:
            return self.label
        target = self.init.name
        return f"{self.match.describe()} -> {target}"

    def to_dict(self) -> dict[str, Any]:
        out: dict[str, Any] = {}
        match = self.match.to_dict()
        if match:
            out["match"] = match
        out["init"] = self.init.to_config()
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
        data = dict(data)
        if "fans" in data:
            data["fan_convention"] = renamed("a rule", "fans", "fan_convention", data.pop("fans"))
        unknown = sorted(set(data) - set(RULE_FIELDS))
        if unknown:
            raise ConfigError(f"unknown rule key(s) {unknown}; a rule has {list(RULE_FIELDS)}")
        return cls(data.get("match"), data.get("init"), data.get("tags", ()),
                   data.get("fan_convention", "semantic"), data.get("label"),
                   data.get("optional", False), data.get("override", False))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple[Any, ...]:
        return tuple(getattr(self, name) for name in RULE_FIELDS)

    def __repr__(self) -> str:
        return f"Rule({self.describe()})"
