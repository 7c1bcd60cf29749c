"""Batches for data-dependent steps, and model calls whose failures name the failing module.

A *batch* is a tensor (the model's input), or a tuple/list whose first element is the input and
whose second element, when present, is the target. A *loader* is any other iterable of batches,
such as a ``torch.utils.data.DataLoader``.
"""

from __future__ import annotations

import itertools
from collections.abc import Iterable, Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from typing import Any

import torch
from torch import nn
from torch.nn.utils import parametrize

from ..errors import ConfigError

__all__ = ["Batch", "StopForward", "take_batches", "call_model", "leaf_modules", "first_tensor"]

_FORMS = ("a tensor, a tuple/list whose first element is the input (and second the target),"
          " or an iterable such as a DataLoader yielding those")


class StopForward(Exception):
    """Raised from a hook to end a forward pass once the needed outputs are measured."""


@dataclass(frozen=True)
class Batch:
    """The model input of one batch, and its target when the batch carries one."""

    input: Any
    target: Any = None


def _as_batch(item: Any, where: str) -> Batch:
    if isinstance(item, torch.Tensor):
        return Batch(item)
    if isinstance(item, (tuple, list)) and item:
        return Batch(item[0], item[1] if len(item) > 1 else None)
    raise ConfigError(f"{where}: a batch must be {_FORMS}; got {type(item).__name__}")


def take_batches(data: Any, n_batches: int, where: str) -> list[Batch]:
    """Up to ``n_batches`` batches from a batch or a loader (the first ones it yields).

    Raises:
        ConfigError: for ``n_batches < 1``, an empty loader, or items that are not batches.
    """
    if isinstance(n_batches, bool) or not isinstance(n_batches, int) or n_batches < 1:
        raise ConfigError(f"{where}: n_batches must be a positive int, got {n_batches!r}")
    if isinstance(data, (torch.Tensor, tuple, list)):
        return [_as_batch(data, where)]
    if not isinstance(data, Iterable):
        raise ConfigError(f"{where}: the data must be {_FORMS}; got {type(data).__name__}")
    batches = [_as_batch(item, where) for item in itertools.islice(iter(data), n_batches)]
    if not batches:
        raise ConfigError(f"{where}: the loader yielded no batch; pass a non-empty loader or a"
                          " batch tensor")
    return batches


def first_tensor(value: Any) -> torch.Tensor | None:
    """The first floating tensor in a module output (a tensor, tuple/list or dict of them)."""
    if isinstance(value, torch.Tensor):
        return value if value.is_floating_point() else None
    if isinstance(value, nn.utils.rnn.PackedSequence):
        return first_tensor(value.data)
    items = value.values() if isinstance(value, dict) else value
    if isinstance(items, (tuple, list)) or isinstance(value, dict):
        for item in items:
            found = first_tensor(item)
            if found is not None:
                return found
    return None


def _layer_children(module: nn.Module) -> list[nn.Module]:
    """Children of ``module`` other than the container of its parametrizations."""
    parametrized = parametrize.is_parametrized(module)
    return [c for name, c in module.named_children()
            if not (parametrized and name == "parametrizations")]


def leaf_modules(model: nn.Module) -> list[tuple[str, nn.Module]]:
    """Modules without children, by path (each module once; the root if it is a leaf). A
    parametrized layer (weight norm, spectral norm) counts as a leaf; the modules computing its
    parametrized weights do not."""
    leaves: list[tuple[str, nn.Module]] = []
    inside: list[str] = []
    for path, module in model.named_modules():
        if any(path == prefix or path.startswith(prefix + ".") for prefix in inside):
            continue
        if parametrize.is_parametrized(module):
            inside.append(f"{path}.parametrizations" if path else "parametrizations")
        if not _layer_children(module):
            leaves.append((path, module))
    return leaves


def _describe(value: Any) -> str:
    if isinstance(value, torch.Tensor):
        return f"a {str(value.dtype).removeprefix('torch.')} tensor of shape {tuple(value.shape)}"
    return f"a {type(value).__name__}"


@contextmanager
def _module_stack(model: nn.Module) -> Iterator[list[str]]:
    """Track the modules whose forward is running; after an error the last is the failing one."""
    stack: list[str] = []

    def leave(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        stack.pop()

    handles = []
    for path, module in model.named_modules():
        name = path or "(the model itself)"
        handles.append(module.register_forward_pre_hook(
            lambda m, args, name=name: stack.append(name)))
        handles.append(module.register_forward_hook(leave))
    try:
        yield stack
    finally:
        for handle in handles:
            handle.remove()


def call_model(model: nn.Module, inputs: Any, where: str) -> Any:
    """``model(inputs)``; a failure becomes a :class:`ConfigError` naming the failing module.

    Exceptions the caller raises on purpose from its own hooks (subclasses of
    :class:`StopForward`) pass through unchanged.
    """
    with _module_stack(model) as stack:
        try:
            return model(inputs)
        except StopForward:
            raise
        except Exception as err:
            modules = dict(model.named_modules())
            failing = stack[-1] if stack else "(the model itself)"
            kind = type(modules.get(failing, model)).__name__
            raise ConfigError(
                f"{where}: the model's forward failed in module {failing!r} ({kind}) on"
                f" {_describe(inputs)}: {type(err).__name__}: {err}. The data must be what the"
                f" model's forward takes: {_FORMS}") from err
