"""Module paths that moved: ``import torchinit.plan`` still works, warns, and gives
``torchinit._plan``, the private module it became (listed in CHANGELOG.md).

The implementation modules are private (``torchinit._plan``, ``torchinit._streams``, ...); what
they define for users is in the ``torchinit`` namespace and its public subpackages
(``initializers``, ``presets``, ``functional``, ``errors``, ``width``). A finder on
``sys.meta_path`` maps each old dotted path, and everything below it, to the new one.
"""

from __future__ import annotations

import importlib
import importlib.abc
import importlib.machinery
import sys
import warnings
from types import ModuleType

from ._deprecation import REMOVED_IN

__all__ = ["MOVED", "RENAMED", "install", "moved_attribute"]

MOVED: dict[str, str] = {
    # renamed as well as made private; listed before their packages, the first match wins
    "torchinit.plan.factories": "torchinit._plan.init_functions",
    "torchinit.presets.factories": "torchinit.presets._init_functions",
    **{f"torchinit.{name}": f"torchinit._{name}" for name in (
        "apply", "audit", "buffers", "catalog", "checkpoints", "construct", "gains", "groups",
        "layouts", "materialize", "progress", "sharding",
        "plan", "streams", "native", "datadep", "diagnostics", "experiments", "cli")},
    **{f"torchinit.{package}.{name}": f"torchinit.{package}._{name}"
       for package, names in {
           "initializers": ("base", "elementwise", "registry", "structured", "variance"),
           "presets": ("configs", "frameworks", "language", "mamba", "recipes",
                       "registry", "residual", "vision"),
       }.items() for name in names},
}
"""Old module path -> the private module it is now."""

RENAMED: dict[str, dict[str, str]] = {
    "torchinit": {"register_factory": "register_init_function"},
    "torchinit._plan.init_functions": {"InitFactory": "InitFunction",
                                       "register_factory": "register_init_function",
                                       "factory_names": "init_function_names"},
}
"""Module -> {old attribute name: the name it is now}."""


def _new_name(fullname: str) -> str | None:
    for old, new in MOVED.items():
        if fullname == old or fullname.startswith(old + "."):
            return new + fullname[len(old):]
    return None


class _Alias(importlib.abc.Loader):
    """Loads an old path as the module it moved to, which keeps its own name and spec."""

    def __init__(self, target: str) -> None:
        self.target = target
        self.saved: dict[str, object] = {}

    def create_module(self, spec: importlib.machinery.ModuleSpec) -> ModuleType:
        module = importlib.import_module(self.target)
        self.saved = {k: module.__dict__[k] for k in ("__name__", "__spec__", "__loader__",
                                                       "__package__") if k in module.__dict__}
        return module

    def exec_module(self, module: ModuleType) -> None:
        """Nothing to run (the module is the one it moved to); the import system has set the
        old path's name and spec on it, so its own are put back."""
        module.__dict__.update(self.saved)


class _MovedFinder(importlib.abc.MetaPathFinder):
    def find_spec(self, fullname: str, path: object = None,
                  target: object = None) -> importlib.machinery.ModuleSpec | None:
        new = _new_name(fullname)
        if new is None:
            return None
        warnings.warn(f"module {fullname} is now private ({new}); import what it defines from"
                      f" torchinit or its public subpackages instead. The old path will be"
                      f" removed in torchinit {REMOVED_IN}", DeprecationWarning, stacklevel=2)
        return importlib.machinery.ModuleSpec(fullname, _Alias(new))


def install() -> None:
    """Put the finder on ``sys.meta_path`` (once)."""
    if not any(isinstance(f, _MovedFinder) for f in sys.meta_path):
        sys.meta_path.insert(0, _MovedFinder())


def moved_attribute(package: str, name: str) -> object:
    """``package.name`` for an old module name reached as an attribute (``ti.plan``), or for
    an attribute that was renamed (``RENAMED``), with a DeprecationWarning."""
    new = RENAMED.get(package, {}).get(name)
    if new is not None:
        warnings.warn(f"{package}.{name} is now {package}.{new}; {name!r} is deprecated and"
                      f" will be removed in torchinit {REMOVED_IN}", DeprecationWarning,
                      stacklevel=3)
        return getattr(sys.modules[package], new)
    old = f"{package}.{name}"
    if old not in MOVED:
        raise AttributeError(f"module {package!r} has no attribute {name!r}")
    return importlib.import_module(old)
