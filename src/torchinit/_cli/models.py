"""MODEL arguments of the command line: a built-in example, ``package.module:callable`` or
``path/to/file.py:callable``.

A module or file named this way is imported, which runs its code: the command line runs the
user's own model code, as ``python file.py`` would. (Plan files never run code.)
"""

from __future__ import annotations

import copy
import hashlib
import importlib
import importlib.util
import sys
from collections.abc import Callable
from pathlib import Path
from types import ModuleType
from typing import Any

from torch import nn

from ..errors import ConfigError, UnknownNameError, suggest
from .._experiments.models import MODELS

__all__ = ["model_factory", "MODEL_HELP"]

MODEL_HELP = ("a built-in example (" + ", ".join(MODELS) + "), package.module:callable or"
              " path/to/file.py:callable; the callable (a class or function) is called with"
              " no arguments and must return an nn.Module, or the name may be a module"
              " instance")


def _is_file(target: str) -> bool:
    return target.endswith(".py") or "/" in target or "\\" in target


def _import_file(target: str, spec: str) -> ModuleType:
    path = Path(target).expanduser().resolve()
    if not path.is_file():
        raise FileNotFoundError(f"model file {target!r} does not exist (MODEL {spec!r})")
    name = "torchinit_model_" + hashlib.sha1(str(path).encode()).hexdigest()[:12]
    if name in sys.modules:
        return sys.modules[name]
    module_spec = importlib.util.spec_from_file_location(name, path)
    if module_spec is None or module_spec.loader is None:
        raise ConfigError(f"cannot load {target!r} as a Python file (MODEL {spec!r})")
    module = importlib.util.module_from_spec(module_spec)
    sys.modules[name] = module
    sys.path.insert(0, str(path.parent))  # its sibling modules import as under `python file.py`
    try:
        module_spec.loader.exec_module(module)
    except Exception as err:
        del sys.modules[name]
        raise ConfigError(f"running {target!r} failed (MODEL {spec!r}): {type(err).__name__}:"
                          f" {err}") from err
    finally:
        sys.path.remove(str(path.parent))
    return module


def _import_module(target: str, spec: str) -> ModuleType:
    try:
        return importlib.import_module(target)
    except ImportError as err:
        raise ConfigError(f"cannot import module {target!r} (MODEL {spec!r}): {err}") from err


def _attribute(module: ModuleType, dotted: str, spec: str) -> Any:
    obj: Any = module
    for part in dotted.split("."):
        if not hasattr(obj, part):
            known = [n for n in dir(obj) if not n.startswith("_")]
            raise ConfigError(f"{spec.rpartition(':')[0]!r} has no attribute {dotted!r}."
                              + suggest(part, known))
        obj = getattr(obj, part)
    return obj


def _checked_call(build: Callable[[], Any], spec: str) -> nn.Module:
    try:
        model = build()
    except Exception as err:
        raise ConfigError(f"calling {spec} with no arguments failed: {type(err).__name__}:"
                          f" {err}") from err
    if not isinstance(model, nn.Module):
        raise ConfigError(f"{spec} returned {type(model).__name__}, not an nn.Module")
    return model


def model_factory(spec: str) -> Callable[[], nn.Module]:
    """A function making a fresh model for the MODEL argument ``spec`` (a copy of the instance
    each call when ``spec`` names a module instance).

    Raises:
        UnknownNameError: for an unknown built-in name (with close matches).
        FileNotFoundError: for a missing model file.
        ConfigError: for a module that does not import, a missing attribute, or an object
            that is neither an ``nn.Module`` nor callable.
    """
    if ":" not in spec:
        if spec in MODELS:
            return MODELS[spec].build
        raise UnknownNameError(f"unknown model {spec!r}: give a built-in example"
                               f" ({', '.join(MODELS)}), package.module:callable or"
                               " path/to/file.py:callable." + suggest(spec, MODELS))
    target, _, attribute = spec.rpartition(":")
    if not target or not attribute:
        raise ConfigError(f"MODEL {spec!r} must look like package.module:callable or"
                          " path/to/file.py:callable")
    module = _import_file(target, spec) if _is_file(target) else _import_module(target, spec)
    obj = _attribute(module, attribute, spec)
    if isinstance(obj, nn.Module):
        return lambda: copy.deepcopy(obj)
    if not callable(obj):
        raise ConfigError(f"{spec} is a {type(obj).__name__}: it must be an nn.Module, a class"
                          " or a function returning one")
    return lambda: _checked_call(obj, spec)
