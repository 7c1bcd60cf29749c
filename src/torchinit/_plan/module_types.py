"""Names of module types, so plans and config files can say ``"Linear"`` or ``"Conv*"``.

Names resolve through this registry only: every public ``torch.nn`` module class under its class
name, what users register, and a fixed table of other libraries' layers (:data:`_THIRD_PARTY`),
whose module is imported only when a plan names one. A config file can therefore never name an
arbitrary Python object.
"""

from __future__ import annotations

import fnmatch
import importlib

from torch import nn

from ..errors import ConfigError, UnknownNameError, short_repr, suggest
from .._layouts import qualified_name

__all__ = ["register_module_type", "module_type", "module_types_matching", "type_name"]

_BY_NAME: dict[str, type[nn.Module]] = {}

_THIRD_PARTY: dict[str, str] = {"Conv1D": "transformers.pytorch_utils.Conv1D"}
"""Names of other libraries' layers and the qualified names of their classes.

A name here resolves by importing its module when a plan names it exactly, so torchinit does
not import those libraries itself. Globs (``"Conv*"``) do not reach these names: a pattern
written for torch's layers must not start matching GPT-2's ``Conv1D``, a dense layer, when
transformers is installed. A class registered under the same name with
:func:`register_module_type` takes precedence.
"""


def _register_torch_builtins() -> None:
    for name in dir(nn):
        obj = getattr(nn, name)
        if isinstance(obj, type) and issubclass(obj, nn.Module) and not name.startswith("_"):
            _BY_NAME.setdefault(name, obj)


_register_torch_builtins()


def register_module_type(cls: type[nn.Module], name: str | None = None) -> type[nn.Module]:
    """Make a module class nameable in plans and config files (usable as a decorator).

    Args:
        cls: An ``nn.Module`` subclass.
        name: The name to use (default: ``cls.__name__``).

    Raises:
        ConfigError: if ``cls`` is not a module class or the name belongs to another class.
    """
    if not (isinstance(cls, type) and issubclass(cls, nn.Module)):
        raise ConfigError(f"register_module_type takes an nn.Module subclass, got {cls!r}")
    name = name or cls.__name__
    owner = _BY_NAME.get(name)
    redefined = owner is not None and (owner.__module__, owner.__qualname__) == (
        cls.__module__, cls.__qualname__)  # the same class defined again (a notebook cell)
    if owner is not None and owner is not cls and not redefined:
        raise ConfigError(
            f"module type name {name!r} is already registered to {owner.__module__}."
            f"{owner.__qualname__}; pass name= to register {cls.__qualname__} under another name"
        )
    _BY_NAME[name] = cls
    return cls


def module_type(name: str) -> type[nn.Module]:
    """The class registered under ``name``, importing it for a name in :data:`_THIRD_PARTY`.

    Raises:
        UnknownNameError: for a name in no registry, or a third-party name whose class cannot
            be imported here.
    """
    registered = _BY_NAME.get(name)
    if registered is not None:
        return registered
    if name in _THIRD_PARTY:
        return _import_third_party(name)
    raise UnknownNameError(
        f"unknown module type {short_repr(name)}." + suggest(name, [*_BY_NAME, *_THIRD_PARTY])
        + " Built-in torch.nn classes are known by their class name; register your own with"
        " torchinit.register_module_type(MyModule)."
    )


def _import_third_party(name: str) -> type[nn.Module]:
    """The class :data:`_THIRD_PARTY` names ``name``, imported from its module."""
    qualified = _THIRD_PARTY[name]
    module_name, _, class_name = qualified.rpartition(".")
    try:
        cls: type[nn.Module] = getattr(importlib.import_module(module_name), class_name)
    except Exception as err:  # a missing or broken install of the other library, or an old one
        raise UnknownNameError(
            f"module type {name!r} is {qualified}, which cannot be imported here"
            f" ({type(err).__name__}: {short_repr(str(err))}); install"
            f" {module_name.partition('.')[0]}, or register the class you mean with"
            f" torchinit.register_module_type(cls, name={name!r})."
        ) from err
    return cls


def module_types_matching(pattern: str) -> tuple[type[nn.Module], ...]:
    """Classes whose registered name matches ``pattern`` (a name or an fnmatch glob)."""
    if any(ch in pattern for ch in "*?["):
        found = tuple(cls for n, cls in sorted(_BY_NAME.items()) if fnmatch.fnmatchcase(n, pattern))
        if not found:
            raise UnknownNameError(f"no registered module type matches {short_repr(pattern)}")
        return found
    return (module_type(pattern),)


def type_name(cls: type[nn.Module]) -> str:
    """The registered name of ``cls`` (for writing plans to files), a :data:`_THIRD_PARTY` name
    matched by qualified class name unless a registration has taken that name."""
    for name, registered in _BY_NAME.items():
        if registered is cls:
            return name
    for name, qualified in _THIRD_PARTY.items():
        if qualified == qualified_name(cls) and name not in _BY_NAME:
            return name
    raise ConfigError(
        f"module type {cls.__module__}.{cls.__qualname__} has no registered name, so a plan"
        " that names it cannot be written to a file; call"
        f" torchinit.register_module_type({cls.__qualname__}) first"
    )
