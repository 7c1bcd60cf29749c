"""Capturing a model that is already constructed: its init methods run again, on meta twins.

A constructed model no longer shows what its ``__init__`` did, but its init *methods* can run
again: every module's ``reset_parameters`` (``_reset_parameters`` for
``nn.MultiheadAttention``), children before parents as in construction, then the model-level
init: transformers' ``_init_weights`` over the module tree (each sub-model with its own), or a
model's ``init_weights()`` (timm, many research codebases). They run on meta twins of the
parameters and buffers, so nothing of the model is touched and nothing is allocated.
"""

from __future__ import annotations

import contextlib
import inspect
from collections.abc import Callable, Iterator
from typing import Any, cast

import torch
from torch import nn

from .._construct import META, parameter_like
from .assemble import Captured, captured_params
from .recorder import Recorder

__all__ = ["captured_instance"]


def captured_instance(model: nn.Module) -> list[Captured]:
    """What ``model``'s init methods do to each of its parameters."""
    recorder = Recorder()
    with _on_meta(model):
        with recorder, torch.no_grad():
            for module in _post_order(model):
                reset = getattr(module, "reset_parameters", None) \
                    or getattr(module, "_reset_parameters", None)
                if callable(reset) and _takes_no_arguments(reset):
                    reset()
            _model_init(model)
        return captured_params(model, recorder)


def _post_order(module: nn.Module) -> Iterator[nn.Module]:
    for child in module.children():
        yield from _post_order(child)
    yield module


def _takes_no_arguments(fn: Callable[..., Any]) -> bool:
    try:
        signature = inspect.signature(fn)
    except (TypeError, ValueError):
        return False
    return all(p.default is not inspect.Parameter.empty or p.kind in (
        p.VAR_POSITIONAL, p.VAR_KEYWORD) for p in signature.parameters.values())


def _is_transformers_model(module: nn.Module) -> bool:
    return any(c.__name__ == "PreTrainedModel" and c.__module__.startswith("transformers")
               for c in type(module).__mro__) and hasattr(module, "_init_weights")


def _own_init(module: nn.Module) -> Callable[[nn.Module], None]:
    """A transformers model's ``_init_weights`` (a method; torch's stubs type attributes as
    tensors or modules)."""
    return cast(Callable[[nn.Module], None], module._init_weights)


def _model_init(model: nn.Module) -> None:
    if _is_transformers_model(model):
        _transformers_init(model, _own_init(model))
        return
    init_weights = getattr(model, "init_weights", None)
    if callable(init_weights) and _takes_no_arguments(init_weights):
        init_weights()


def _transformers_init(module: nn.Module, init_fn: Callable[[nn.Module], None]) -> None:
    """transformers' own traversal: children first, each sub-model with its own init."""
    for child in module.children():
        _transformers_init(child, _own_init(child) if _is_transformers_model(child)
                           else init_fn)
    init_fn(module)


@contextlib.contextmanager
def _on_meta(model: nn.Module) -> Iterator[None]:
    """Swap every parameter and buffer of ``model`` for a meta twin (tied ones stay tied);
    put the originals back afterwards."""
    saved = [(m, dict(m._parameters), dict(m._buffers)) for m in model.modules()]
    twins: dict[int, nn.Parameter] = {}
    try:
        for module, params, buffers in saved:
            for name, p in params.items():
                if p is not None:
                    if id(p) not in twins:
                        twin = parameter_like(p, torch.empty_like(p, device=META))
                        twin.__dict__.pop("_is_hf_initialized", None)
                        twins[id(p)] = twin
                    module._parameters[name] = twins[id(p)]
            for name, b in buffers.items():
                if b is not None:
                    module._buffers[name] = torch.empty_like(b, device=META)
        yield
    finally:
        for module, params, buffers in saved:
            module._parameters.clear()
            module._parameters.update(params)
            module._buffers.clear()
            module._buffers.update(buffers)
