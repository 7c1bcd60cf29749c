"""``ti.build`` and ``ti.materialize``: models built without wasted default initialization.

``build(factory, plan)`` constructs the model with its *parameters* on the meta device (no
memory, no default init: torch's ``reset_parameters`` runs on meta tensors and costs nothing)
while its *buffers* keep the real values the modules compute in ``__init__`` (batch-norm running
statistics, rotary frequencies, masks). Lazy modules get their shapes from a dry run on meta
tensors shaped like ``example_inputs``. The plan is resolved and validated against the meta
model, and only then is each parameter allocated once, on the target device and dtype, and
filled in place from its manifest record. The Parameter objects stay the same (tied weights
stay tied; subclasses, attributes and ``requires_grad`` are kept); only their storage changes.
"""

from __future__ import annotations

import contextlib
import threading
import warnings
from collections.abc import Callable, Iterator, Mapping
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .errors import ConfigError, DTypeError, PlanError
from .plan.manifest import Manifest, Record
from .plan.plan import Plan
from .progress import Progress
from .sharding import local_region, local_tensor

__all__ = ["build", "materialize", "parameters_on_meta"]

_META = torch.device("meta")


def _parameter_like(param: nn.Parameter, data: torch.Tensor) -> nn.Parameter:
    """A parameter of ``param``'s class, ``requires_grad`` and attributes, holding ``data``."""
    new = torch.Tensor._make_subclass(type(param), data, param.requires_grad)
    new.__dict__.update(param.__dict__)
    return new


def _meta_twin(param: nn.Parameter) -> nn.Parameter:
    if isinstance(param, nn.parameter.UninitializedParameter):
        return nn.parameter.UninitializedParameter(param.requires_grad, _META, param.dtype)
    return _parameter_like(param, param.detach().to(_META))


_patch_lock = threading.Lock()
_patch_users = 0
_original_register = nn.Module.register_parameter
_building = threading.local()


def _register_parameter(self: nn.Module, name: str, param: nn.Parameter | None) -> None:
    """``nn.Module.register_parameter`` while a build is active in some thread: in a thread
    inside :func:`parameters_on_meta`, a real parameter is replaced by its meta twin; in every
    other thread it is the original."""
    twins = getattr(_building, "twins", None)
    if twins is not None and param is not None and param.device != _META:
        if id(param) not in twins:  # keep the original alive so ids stay unique
            twins[id(param)] = (param, _meta_twin(param))
        param = twins[id(param)][1]
    _original_register(self, name, param)


@contextlib.contextmanager
def parameters_on_meta() -> Iterator[None]:
    """Within the block, every parameter a module registers *in this thread* is replaced by a
    meta twin.

    Buffers are left alone, so they keep the values their module computes. The twin keeps the
    Parameter subclass, attributes and ``requires_grad``; a parameter registered twice (tied)
    gets one twin. Uninitialized (lazy) parameters get meta twins too, so they materialize on
    meta.

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
    outer = getattr(_building, "twins", None)
    _building.twins = {}
    try:
        yield
    finally:
        _building.twins = outer
        with _patch_lock:
            _patch_users -= 1
            if _patch_users == 0 and nn.Module.register_parameter is _register_parameter:
                nn.Module.register_parameter = _original_register  # type: ignore[method-assign]


def _as_meta(value: Any) -> Any:
    if isinstance(value, torch.Tensor):
        return torch.empty_like(value, device=_META)
    if isinstance(value, (list, tuple)):
        return type(value)(_as_meta(v) for v in value)
    if isinstance(value, Mapping):
        return {k: _as_meta(v) for k, v in value.items()}
    return value


def _has_lazy(model: nn.Module) -> bool:
    return any(isinstance(m, nn.modules.lazy.LazyModuleMixin) for m in model.modules())


def _dry_run(model: nn.Module, example_inputs: Any) -> None:
    """Run ``model`` on meta copies of ``example_inputs`` so lazy modules learn their shapes.

    Buffers are swapped for meta copies during the run and put back afterwards; nothing is
    computed. Lazy buffers materialize on meta and are recomputed afterwards by their module.
    """
    saved = {}
    for module in model.modules():
        for name, buf in module.named_buffers(recurse=False):
            if isinstance(buf, nn.parameter.UninitializedBuffer):  # materializes on meta
                module._buffers[name] = nn.parameter.UninitializedBuffer(False, _META, buf.dtype)
            elif buf is not None and buf.device != _META:
                saved[(module, name)] = buf
                module._buffers[name] = torch.empty_like(buf, device=_META)
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


def _meta_buffers(model: nn.Module, unrecoverable: str) -> tuple[list[nn.Module], list[str]]:
    """Modules that will recompute their meta buffers (``reset_running_stats``), and the paths
    of meta buffers nobody can recompute (an error unless ``unrecoverable == "zeros"``)."""
    recompute, missing = [], []
    for path, module in model.named_modules():
        metas = [n for n, b in module.named_buffers(recurse=False)
                 if b is not None and b.device == _META]
        if metas and hasattr(module, "reset_running_stats"):
            recompute.append(module)
        elif metas:
            missing += [f"{path}.{n}" if path else n for n in metas]
    if missing and unrecoverable == "error":
        raise PlanError(
            "these buffers exist only on the meta device and their module cannot recompute"
            f" them: {missing}. Build the model with ti.build(factory, plan) so buffers keep the"
            " values __init__ computes, or pass unrecoverable_buffers='zeros' to fill them with"
            " zeros (with a warning)")
    return recompute, missing


def _stage_buffers(model: nn.Module, device: torch.device, recompute: list[nn.Module]) -> None:
    """Give every meta buffer new storage on ``device`` (its values are recomputed or zeroed
    next), and every buffer of a module that recomputes its statistics a copy, so the
    recomputation changes no tensor the caller holds."""
    recomputing = {id(m) for m in recompute}
    for module in model.modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf is not None and buf.device == _META:
                module._buffers[name] = torch.empty_like(buf, device=device)
            elif buf is not None and id(module) in recomputing:
                module._buffers[name] = buf.clone()


@contextlib.contextmanager
def _all_or_nothing(model: nn.Module) -> Iterator[list[tuple[torch.Tensor, torch.Tensor]]]:
    """If the block fails or is interrupted, put every module's parameters and buffers back
    (and swap back the tensors swapped in the block, listed by it), so the model is as before."""
    saved = [(m, dict(m._parameters), dict(m._buffers)) for m in model.modules()]
    swaps: list[tuple[torch.Tensor, torch.Tensor]] = []
    try:
        yield swaps
    except BaseException:
        for param, other in reversed(swaps):
            torch.utils.swap_tensors(param, other)
        for module, params, buffers in saved:
            module._parameters.clear()
            module._parameters.update(params)
            module._buffers.clear()
            module._buffers.update(buffers)
        raise


def _recompute_buffers(model: nn.Module, recompute: list[nn.Module], missing: list[str]) -> None:
    for module in recompute:
        module.reset_running_stats()
    for path in missing:
        owner, _, name = path.rpartition(".")
        model.get_submodule(owner)._buffers[name].zero_()
    if missing:
        warnings.warn("buffers filled with zeros because their module cannot recompute them:"
                      f" {missing}", stacklevel=4)


def _check_dtype(dtype: torch.dtype | None) -> None:
    if dtype is not None and not dtype.is_floating_point:
        raise DTypeError(f"ti.build/materialize: dtype {dtype} cannot hold initialized"
                         " parameters; use a floating dtype such as torch.float32 or"
                         " torch.bfloat16")


def _fill_parameters(
    model: nn.Module,
    manifest: Manifest,
    device: torch.device,
    dtype: torch.dtype | None,
    progress: Progress,
) -> None:
    """Allocate every meta parameter once on ``device`` and have :meth:`Manifest.write` fill
    it; then put the real parameter (same class, attributes and ``requires_grad``) in place of
    the meta one everywhere it is registered (tied parameters stay tied)."""

    def allocate(record: Record, param: torch.Tensor) -> torch.Tensor:
        target = dtype if (dtype is not None and param.dtype.is_floating_point) else param.dtype
        return torch.empty(record.shape, dtype=target, device=device)

    params = dict(model.named_parameters())
    storage = manifest.write(model, out=allocate, progress=progress)
    replacement = {id(params[path]): _parameter_like(params[path], data)
                   for path, data in storage.items()}
    for module in model.modules():
        for name, param in module._parameters.items():
            if param is not None and id(param) in replacement:
                module._parameters[name] = replacement[id(param)]


def _move_buffers(model: nn.Module, device: torch.device, dtype: torch.dtype | None) -> None:
    for module in model.modules():
        for name, buf in module.named_buffers(recurse=False):
            if buf is None:
                continue
            target = dtype if (dtype is not None and buf.dtype.is_floating_point) else buf.dtype
            module._buffers[name] = buf.to(device=device, dtype=target)


def _defaults_for_kept(model: nn.Module, manifest: Manifest, seed: int) -> Manifest:
    """Records that keep their values have none to keep on the meta device: give them the
    distribution torch's own ``reset_parameters`` would have drawn (the ``torch`` preset),
    noted in the manifest; a parameter torch has no default for is an error."""
    on_meta = {path for path, p in model.named_parameters() if local_tensor(p).device == _META}
    needy = [r for r in manifest if r.init is None and r.values is None and r.path in on_meta]
    if not needy:
        return manifest
    from .presets import get as preset

    defaults = preset("torch").with_options(on_unmatched="keep").resolve(model, seed)
    missing = [r.path for r in needy if defaults[r.path].init is None]
    if missing:
        raise PlanError(
            f"parameters {missing} match no rule, and on the meta device they have no values to"
            " keep; add rules for them (torchinit knows no torch default for their modules)")
    return manifest.replace_records(
        replace(record, init=defaults[record.path].init, fans=defaults[record.path].fans,
                std=defaults[record.path].std, bound=defaults[record.path].bound,
                key=defaults[record.path].key, zero_rows=defaults[record.path].zero_rows,
                rule_label="torch default (kept)",
                notes=(*record.notes, "no rule matched: torch's default distribution"))
        for record in needy)


def _fill_shards(
    model: nn.Module,
    manifest: Manifest,
    regions: dict[str, tuple[slice, ...] | None],
    device: torch.device,
    progress: Progress,
    swaps: list[tuple[torch.Tensor, torch.Tensor]],
) -> None:
    """Give every sharded (DTensor) parameter storage on ``device`` as ``Module.to_empty``
    does (a DTensor like it, swapped into the parameter object, which FSDP2 holds), after
    :meth:`Manifest.write` has filled its local shard with the values of its global region.
    Each swap is listed in ``swaps``, so a failure can swap it back."""
    made: dict[str, torch.Tensor] = {}

    def allocate(record: Record, param: torch.Tensor) -> torch.Tensor:
        made[record.path] = torch.empty_like(param, device=device)
        return local_tensor(made[record.path])

    params = dict(model.named_parameters())
    manifest.write(model, regions=regions, out=allocate, progress=progress)
    for path, real in made.items():
        param = params[path]
        new = nn.Parameter(real, requires_grad=param.requires_grad)
        torch.utils.swap_tensors(param, new)
        swaps.append((param, new))


def _finish(
    model: nn.Module,
    plan: Plan | Manifest,
    seed: int,
    device: torch.device,
    dtype: torch.dtype | None,
    unrecoverable_buffers: str,
    audit: bool,
    progress: bool | None,
) -> nn.Module:
    """Resolve, check and materialize ``model``: all of it, or (on any failure or interrupt)
    none of it, the model left as it was."""
    manifest = plan if isinstance(plan, Manifest) else plan.resolve(model, seed)
    manifest = _defaults_for_kept(model, manifest, seed)
    regions = {path: local_region(p, path) for path, p in model.named_parameters()}
    sharded = any(region is not None for region in regions.values())
    if sharded and dtype is not None:
        raise PlanError("dtype= cannot convert a sharded (DTensor) model; give the parameters"
                        " their dtype before sharding, or use FSDP2's MixedPrecisionPolicy")
    recompute, missing = _meta_buffers(model, unrecoverable_buffers)
    total = sum(local_tensor(p).numel() * _itemsize(dtype or p.dtype)
                for p in model.parameters())
    auditor = _auditor(model, audit)
    with auditor, Progress(total, "materializing", enabled=progress) as bar, \
            _all_or_nothing(model) as swaps:
        _stage_buffers(model, device, recompute)
        if sharded:
            _fill_shards(model, manifest, regions, device, bar, swaps)
        else:
            _fill_parameters(model, manifest, device, dtype, bar)
        _recompute_buffers(model, recompute, missing)
        _move_buffers(model, device, dtype)
    model.torchinit_manifest = manifest  # type: ignore[assignment]
    if audit:
        model.torchinit_audit = auditor.report()  # type: ignore[union-attr, assignment]
    return model


def _check_device(device: torch.device | str) -> torch.device:
    """``device`` as a ``torch.device``, if this machine has it.

    Raises:
        ConfigError: for a device string torch cannot parse, or a device this machine lacks
            (e.g. ``"cuda:7"`` without CUDA or with fewer GPUs), before anything is built.
    """
    try:
        dev = torch.device(device)
    except (RuntimeError, TypeError, ValueError) as err:
        raise ConfigError(f"device {device!r} is not a torch device ({err}); use e.g. 'cpu' or"
                          " 'cuda:0'") from None
    if dev.type in ("cpu", "meta"):
        return dev
    backend = getattr(torch, dev.type, None)
    available = backend is not None and hasattr(backend, "is_available") \
        and backend.is_available()
    count = backend.device_count() if available and hasattr(backend, "device_count") else 0
    if not available or (dev.index is not None and hasattr(backend, "device_count")
                         and dev.index >= count):
        have = f"{count} {dev.type} device(s)" if available else f"no {dev.type} support"
        raise ConfigError(f"device {str(dev)!r} is not available on this machine (torch sees"
                          f" {have}); pass device='cpu'"
                          + (f" or one of {dev.type}:0..{count - 1}" if count else ""))
    return dev


def _itemsize(dtype: torch.dtype) -> int:
    return torch.empty((), dtype=dtype).element_size()


def _auditor(model: nn.Module, enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext()
    from .audit import WriteAudit

    return WriteAudit(model)


def build(
    factory: Callable[[], nn.Module],
    plan: Plan | Manifest,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    example_inputs: Any = None,
    audit: bool = False,
    progress: bool | None = None,
) -> nn.Module:
    """Construct ``factory()`` with no wasted initialization and initialize it from ``plan``.

    Args:
        factory: A callable returning the model (e.g. ``lambda: GPT(config)``).
        plan: A :class:`Plan` (resolved against the model with ``seed``) or a manifest.
        seed: The seed of every parameter's key.
        device: Where the parameters and buffers end up.
        dtype: Floating dtype for floating parameters and buffers (default: as constructed).
        example_inputs: What the model's forward takes (a tensor, a tuple of positional
            arguments or a dict of keyword arguments); needed when the model has lazy modules.
            Only shapes and dtypes are used: the dry run happens on meta tensors.
        audit: Record writes to every parameter and buffer while materializing
            (``model.torchinit_audit``).
        progress: Show a progress bar (default: when stderr is a terminal).

    Returns:
        The model; ``model.torchinit_manifest`` holds the manifest of what was done.

    Raises:
        PlanError: if the factory fails on meta, example inputs do not fit the lazy modules,
            or the plan cannot initialize the model. Nothing half-built is returned.
        WriteError: naming every parameter whose values its dtype cannot hold.
        ConfigError: for a ``device`` this machine does not have (checked before the factory
            runs).
        DTypeError: for a non-floating ``dtype``.

    Building is all or nothing: if anything fails or is interrupted (``KeyboardInterrupt``)
    while materializing, no model is returned and nothing is left patched. Several threads
    may build at once; other threads construct their modules normally meanwhile.

    The values are bit-identical to ``ti.apply(factory(), plan, seed)``: every element is a
    pure function of (seed, parameter path, index, initializer).
    """
    _check_dtype(dtype)
    device = _check_device(device)
    try:
        with parameters_on_meta():
            model = factory()
    except Exception as err:
        raise PlanError(
            f"the model factory failed while its parameters were on the meta device:"
            f" {type(err).__name__}: {err}. Some code needs real parameter values in __init__"
            " (e.g. reading a weight); build the model normally and use ti.apply(model, plan)"
            " instead") from err
    if not isinstance(model, nn.Module):
        raise PlanError(f"the factory returned {type(model).__name__}, not an nn.Module")
    if _has_lazy(model):
        if example_inputs is None:
            raise PlanError("the model has lazy modules (e.g. LazyLinear); pass example_inputs="
                            " so a dry run on meta tensors can give them their shapes")
        _dry_run(model, example_inputs)
    return _finish(model, plan, seed, device, dtype, "error", audit, progress)


def materialize(
    model: nn.Module,
    plan: Plan | Manifest,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    example_inputs: Any = None,
    unrecoverable_buffers: str = "error",
    audit: bool = False,
    progress: bool | None = None,
) -> Manifest:
    """Initialize a model built under ``torch.device("meta")`` (or with meta parameters).

    Parameters are allocated once on ``device`` and filled from the plan. Buffers on the meta
    device have lost their values: modules with ``reset_running_stats`` (batch norm) recompute
    theirs; any other meta buffer is an error (``unrecoverable_buffers="error"``, the default)
    or is filled with zeros with a warning naming it (``"zeros"``). Prefer :func:`build`,
    which keeps the buffer values ``__init__`` computes.

    Returns:
        The manifest of what was done.

    Raises:
        PlanError: for a model whose parameters are not on meta, buffers nobody can recompute,
            or a plan that cannot initialize the model.
        WriteError: naming every parameter whose values its dtype cannot hold.
        ConfigError: for a ``device`` this machine does not have.

    All or nothing: if anything fails or is interrupted, every parameter and buffer of
    ``model`` is left as it was (still on meta; the dry run that gives lazy modules their
    shapes is kept).
    """
    _check_dtype(dtype)
    device = _check_device(device)
    if unrecoverable_buffers not in ("error", "zeros"):
        raise PlanError("unrecoverable_buffers must be 'error' or 'zeros', got"
                        f" {unrecoverable_buffers!r}")
    if _has_lazy(model):
        if example_inputs is None:
            raise PlanError("the model has lazy modules; pass example_inputs= for a dry run")
        _dry_run(model, example_inputs)
    real = [p for p, t in model.named_parameters() if local_tensor(t).device != _META]
    if real:
        raise PlanError(f"materialize() takes a model whose parameters are on the meta device;"
                        f" {real[:3]} are not (use ti.apply for a materialized model)")
    model = _finish(model, plan, seed, device, dtype, unrecoverable_buffers, audit, progress)
    return model.torchinit_manifest  # type: ignore[return-value]
