"""Constructing a model without allocating its parameters: meta twins, lazy shapes, recording.

:func:`parameters_on_meta` swaps every parameter a module registers for a meta twin while the
model's ``__init__`` runs (buffers stay real, so they keep the values ``__init__`` computes);
:func:`dry_run` gives lazy modules their shapes from meta copies of example inputs;
:func:`construct` runs a factory under both, optionally recording the model's own
initialization (:class:`torchinit._native.recorder.Recorder`) and keeping some parameters real.
"""

from __future__ import annotations

import contextlib
import threading
from collections.abc import Callable, Iterable, Iterator, Mapping
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .errors import PlanError

if TYPE_CHECKING:
    from ._native.recorder import Recorder

__all__ = ["parameters_on_meta", "construct", "rebuild", "dry_run", "has_lazy", "META",
           "FactoryError", "Rebuild", "eager_seed", "parameter_like"]

META = torch.device("meta")


def parameter_like(param: nn.Parameter, data: torch.Tensor) -> nn.Parameter:
    """A parameter of ``param``'s class, ``requires_grad`` and attributes, holding ``data``."""
    new = torch.Tensor._make_subclass(type(param), data, param.requires_grad)
    new.__dict__.update(param.__dict__)
    return new


def _meta_twin(param: nn.Parameter) -> nn.Parameter:
    if isinstance(param, nn.parameter.UninitializedParameter):
        # torch's stub has the signature of Parameter and makes the class a plain Tensor
        return nn.parameter.UninitializedParameter(  # type: ignore[call-arg, return-value]
            param.requires_grad, META, param.dtype)  # type: ignore[arg-type]
    return parameter_like(param, param.detach().to(META))


_patch_lock = threading.Lock()
_patch_users = 0
_original_register = nn.Module.register_parameter
_building = threading.local()


def _register_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
    """``nn.Module.register_parameter`` while a build is active in some thread: in a thread
    inside :func:`parameters_on_meta`, a real parameter is replaced by its meta twin (unless it
    is one of those kept real); in every other thread it is the original."""
    scope = getattr(_building, "scope", None)
    if scope is not None and param is not None and param.device != META:
        if id(param) not in scope.twins:  # keep the original alive so ids stay unique
            real = len(scope.twins) in scope.real
            twin = param if real else _meta_twin(param)
            scope.twins[id(param)] = (param, twin)
            if scope.link is not None:
                scope.link(param, twin, self, name)
        param = scope.twins[id(param)][1]
    _original_register(self, name, param)


class _Scope:
    """One :func:`parameters_on_meta` block: the twins made so far (by the original's id), the
    registration ordinals of the parameters kept real, and who is told of each new parameter."""

    def __init__(self, real: frozenset[int], link: Callable[..., None] | None) -> None:
        self.twins: dict[int, tuple[nn.Parameter, nn.Parameter]] = {}
        self.real = real
        self.link = link


@contextlib.contextmanager
def parameters_on_meta(
    real: Iterable[int] = (),
    link: Callable[[nn.Parameter, nn.Parameter, nn.Module, str], None] | None = None,
) -> Iterator[None]:
    """Within the block, every parameter a module registers *in this thread* is replaced by a
    meta twin.

    Buffers are left alone, so they keep the values their module computes. The twin keeps the
    Parameter subclass, attributes and ``requires_grad``; a parameter registered twice (tied)
    gets one twin. Uninitialized (lazy) parameters get meta twins too, so they materialize on
    meta.

    Args:
        real: Registration ordinals (0 for the first distinct parameter registered in the
            block, ...) of parameters to keep real: their module's own code initializes them.
        link: Called as ``link(original, twin, module, name)`` for every distinct parameter
            (``twin is original`` for those kept real).

    ``nn.Module.register_parameter`` is patched while at least one such block is active in
    any thread (a count under a lock); the patched function reads a thread-local flag, so
    other threads construct modules normally, and the original is put back when the last
    block exits, also on error.
    """
    global _patch_users, _original_register
    with _patch_lock:
        if _patch_users == 0:
            _original_register = nn.Module.register_parameter
            nn.Module.register_parameter = _register_parameter  # type: ignore[method-assign]
        _patch_users += 1
    outer = getattr(_building, "scope", None)
    _building.scope = _Scope(frozenset(real), link)
    try:
        yield
    finally:
        _building.scope = outer
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0 and nn.Module.register_parameter is _register_parameter:
                nn.Module.register_parameter = _original_register  # type: ignore[method-assign]


def _as_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device=META)
    if isinstance(value, (list, tuple)):
        return type(value)(_as_meta(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _as_meta(v) for k, v in value.items()}
    return value


def has_lazy(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.lazy.LazyModuleMixin) for m in model.modules())


def dry_run(model: nn.Module, example_inputs: Any) -> None:
    """Run ``model`` on meta copies of ``example_inputs`` so lazy modules learn their shapes.

    Buffers are swapped for meta copies during the run and put back afterwards; nothing is
    computed. Lazy buffers materialize on meta and are recomputed afterwards by their module.
    """
    saved = {}
    for module in model.modules():
        for name, buf in module.named_buffers(recurse=False):
            if isinstance(buf, nn.parameter.UninitializedBuffer):  # materializes on meta
                module._buffers[name] = nn.parameter.UninitializedBuffer(
                    False, META, buf.dtype)  # type: ignore[arg-type]  # stub: (data, ...)
            elif buf is not None and buf.device != META:
                saved[(module, name)] = buf
                module._buffers[name] = torch.empty_like(buf, device=META)
    inputs = _as_meta(example_inputs)
    try:
        with torch.no_grad():
            if isinstance(inputs, Mapping):
                model(**inputs)
            elif isinstance(inputs, (tuple, list)):
                model(*inputs)
            else:
                model(inputs)
    except Exception as err:
        raise PlanError(
            f"the dry run that gives lazy modules their shapes failed: {type(err).__name__}:"
            f" {err}. example_inputs must be what the model's forward takes (a tensor, a tuple"
            " of positional arguments or a dict of keyword arguments)"
        ) from err
    finally:
        for (module, name), buf in saved.items():
            module._buffers[name] = buf


Rebuild = Callable[[list[nn.Parameter]], nn.Module]
"""Constructs the model again with the given parameters (of the first construction) real."""


class FactoryError(PlanError):
    """The model factory failed while its parameters were on the meta device."""


def construct(
    factory: Callable[[], nn.Module],
    example_inputs: Any = None,
    recorder: Recorder | None = None,
    real: Iterable[int] = (),
    what: str = "ti.build",
    order: list[nn.Parameter] | None = None,
) -> nn.Module:
    """``factory()`` with its parameters on meta (except the registration ordinals in
    ``real``), lazy modules given their shapes, and, with ``recorder``, everything the model's
    code does to its tensors recorded. ``order`` receives every distinct parameter (twin) in
    registration order.

    Raises:
        PlanError: if the factory fails on meta (naming the torch call and the model's function
            it failed in, when recorded), returns something other than a module, or has lazy
            modules and no ``example_inputs``.
    """
    scope = recorder if recorder is not None else contextlib.nullcontext()
    order = [] if order is None else order

    def link(original: nn.Parameter, twin: nn.Parameter, module: nn.Module, name: str) -> None:
        order.append(twin)
        if recorder is not None:
            recorder.link(original, twin, module, name)

    try:
        with parameters_on_meta(real, link), scope:
            model = factory()
            if isinstance(model, nn.Module) and has_lazy(model):
                if example_inputs is None:
                    raise PlanError("the model has lazy modules (e.g. LazyLinear); pass"
                                    " example_inputs= so a dry run on meta tensors can give them"
                                    " their shapes")
                dry_run(model, example_inputs)
    except PlanError:
        raise
    except Exception as err:
        failure = recorder.failure if recorder is not None else None
        at = (f" at {failure[0]} in {failure[1] or 'the factory'}"
              f"{' (' + failure[2] + ')' if failure[2] else ''}") if failure else ""
        raise FactoryError(
            f"the model factory failed while its parameters were on the meta device{at}:"
            f" {type(err).__name__}: {err}. Some code needs real parameter values in __init__"
            f" (e.g. reading a weight); {what}(..., fallback='eager') runs the model's code"
            " for real instead, or build the model normally and use ti.apply(model, plan)"
        ) from err
    if not isinstance(model, nn.Module):
        raise PlanError(f"the factory returned {type(model).__name__}, not an nn.Module")
    return model


def eager_seed(seed: int) -> int:
    """The seed of torch's generator while a model's own code runs for real (eager values):
    derived from the build's seed, so it is reproducible and differs between seeds."""
    from ._streams import Key

    low, high = Key(seed, "torchinit.eager").words
    return (high << 32 | low) & (2**63 - 1)


def rebuild(
    factory: Callable[[], nn.Module],
    example_inputs: Any,
    order: list[nn.Parameter],
    keep_real: Iterable[nn.Parameter],
    seed: int,
) -> nn.Module:
    """``factory()`` constructed again with the parameters ``keep_real`` (twins of the first
    construction, whose registration order is ``order``) real, so their modules' own code
    gives them (and buffers computed on their device) real values; torch's generator is
    seeded from ``seed`` and restored afterwards.

    Raises:
        PlanError: if the second construction does not register the same parameters.
    """
    ordinal = {id(p): i for i, p in enumerate(order)}
    real = {ordinal[id(p)] for p in keep_real}
    again: list[nn.Parameter] = []
    with torch.random.fork_rng(devices=[]):
        torch.manual_seed(eager_seed(seed))
        model = construct(factory, example_inputs, real=real, order=again)
    if [tuple(p.shape) for p in again] != [tuple(p.shape) for p in order]:
        raise PlanError("the factory built a different model the second time (other parameters"
                        " or shapes), so the values its own code gives cannot be taken from it;"
                        " make the factory deterministic, or give these parameters rules")
    return model
