"""Rules: a selector, the initializer for what it selects, and tags for review."""

from __future__ import annotations

from collections.abc import Mapping, Sequence
from typing import Any, Union

from .. import initializers
from ..errors import ConfigError, short_repr
from ..initializers import Initializer
from .factories import InitFactory
from .selectors import SELECT_KEYS, Select, as_select

__all__ = ["Rule", "InitSpec", "as_init", "Keep", "KEEP"]


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
InitSpec = Union[Initializer, InitFactory, Keep]
FAN_CONVENTIONS = ("semantic", "torch")


def as_init(init: Any) -> InitSpec:
    """Accept an Initializer, a registered name (or ``"keep"``), a config dict, or
    ``{"factory": name}``."""
    if isinstance(init, (Initializer, InitFactory, Keep)):
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
        return initializers.from_config(init)
    raise ConfigError(
        f"a rule's init must be an Initializer, a name, a config dict or {{'factory': name}},"
        f" got {short_repr(init)}"
    )


class Rule:
    """One line of a plan: the parameters it selects get ``init``.

    Args:
        match: A :class:`Select`, or a dict of its fields; or give the fields as keyword
            arguments (``Rule(type="Linear", name="weight", init=...)``).
        init: An initializer, a registered name (``"zeros"``), a config dict, a factory
            reference ``{"factory": "torch_default"}``, or ``"keep"`` (see :class:`Keep`).
        tags: Free labels shown in the manifest and usable for review.
        fans: ``"semantic"`` (from what the layer computes) or ``"torch"`` (torch's axis order).
        label: A name for messages and the manifest (default: a description of the rule).
        optional: Matching no parameter is expected (presets), so it does not warn.
        override: With a checkpoint, the rule wins over it for the parameters it matches
            (they are re-initialized, not loaded). Without, a rule that matches only
            parameters the checkpoint has is an error.

    Example:
        >>> Rule(type="Linear", role="bias", init="zeros")
        Rule(type=Linear role=bias -> zeros)
    """

    __slots__ = ("match", "init", "tags", "fans", "label", "optional", "override")

    def __init__(
        self,
        match: Select | Mapping[str, Any] | None = None,
        init: Any = None,
        tags: Sequence[str] = (),
        fans: str = "semantic",
        label: str | None = None,
        optional: bool = False,
        override: bool = False,
        **select: Any,
    ) -> None:
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
        if fans not in FAN_CONVENTIONS:
            raise ConfigError(f"Rule fans must be one of {FAN_CONVENTIONS}, got {short_repr(fans)}")
        if isinstance(tags, str):
            tags = (tags,)
        self.match = as_select(match)
        self.init = as_init(init)
        self.tags = tuple(str(t) for t in tags)
        self.fans = fans
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
        if self.fans != "semantic":
            out["fans"] = self.fans
        if self.label:
            out["label"] = self.label
        if self.optional:
            out["optional"] = True
        if self.override:
            out["override"] = True
        return out

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Rule:
        allowed = {"match", "init", "tags", "fans", "label", "optional", "override"}
        unknown = sorted(set(data) - allowed)
        if unknown:
            raise ConfigError(f"unknown rule key(s) {unknown}; a rule has {sorted(allowed)}")
        return cls(data.get("match"), data.get("init"), data.get("tags", ()),
                   data.get("fans", "semantic"), data.get("label"), data.get("optional", False),
                   data.get("override", False))

    def __eq__(self, other: object) -> bool:
        return isinstance(other, Rule) and self._identity() == other._identity()

    def __hash__(self) -> int:
        return hash(self._identity())

    def _identity(self) -> tuple:
        return (self.match, self.init, self.tags, self.fans, self.label, self.optional,
                self.override)

    def __repr__(self) -> str:
        return f"Rule({self.describe()})"
