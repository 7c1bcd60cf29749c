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
from collections.abc import Callable, Iterator
from typing import Any, Union

import torch
from torch import nn

from . import _checkpoints as checkpoints
from ._buffers import BufferRecovery, plan_buffers
from ._checkpoints import Checkpoint, KeyMap, open_checkpoint
from ._native import Captured, captured_params, native_plan
from ._native.instance import captured_instance
from ._native.kept import native_for_kept
from ._native.recorder import Recorder
from ._construct import (
    META,
    construct,
    dry_run,
    has_lazy,
    parameter_like,
    parameters_on_meta,
    rebuild,
)
from .errors import ConfigError, DTypeError, PlanError
from ._plan.manifest import Manifest, Record, last_manifest, remember
from ._plan.plan import Plan
from ._plan.rules import Keep
from ._progress import Progress
from ._sharding import local_region, local_tensor

__all__ = ["build", "materialize", "parameters_on_meta"]

PlanLike = Union[Plan, Manifest, str]



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
            torch.utils.swap_tensors(param, other)  # type: ignore[no-untyped-call]  # torch
        for module, params, buffers in saved:
            module._parameters.clear()
            module._parameters.update(params)
            module._buffers.clear()
            module._buffers.update(buffers)
        raise


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
    map_checkpoint: bool = True,
) -> None:
    """Allocate every meta parameter once on ``device`` and have :meth:`Manifest.write` fill
    it; then put the real parameter (same class, attributes and ``requires_grad``) in place of
    the meta one everywhere it is registered (tied parameters stay tied). A parameter loaded
    from a safetensors file in its own dtype on the CPU is a private memory map of the file
    instead (``map_checkpoint``; not while auditing writes)."""

    def allocate(record: Record, param: torch.Tensor) -> torch.Tensor:
        target = dtype if (dtype is not None and param.dtype.is_floating_point) else param.dtype
        mapped = getattr(record.reader, "mapped", None)
        if map_checkpoint and mapped is not None and device.type == "cpu":
            # the file's bytes as the parameter: nothing to copy
            view: torch.Tensor | None = mapped(target)
            if view is not None:
                return view
        return torch.empty(record.shape, dtype=target, device=device)

    params = dict(model.named_parameters())
    storage = manifest.write(model, out=allocate, progress=progress)
    replacement = {id(params[path]): parameter_like(params[path], data)
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
        torch.utils.swap_tensors(param, new)  # type: ignore[no-untyped-call]  # torch: untyped
        swaps.append((param, new))


def _finish(
    model: nn.Module,
    manifest: Manifest,
    buffers: BufferRecovery,
    device: torch.device,
    dtype: torch.dtype | None,
    audit: bool,
    progress: bool | None,
    load_buffers: Callable[[nn.Module], None] | None = None,
) -> nn.Module:
    """Check and materialize ``model``: all of it, or (on any failure or interrupt) none of
    it, the model left as it was. ``load_buffers`` reads buffers a checkpoint has."""
    regions = {path: local_region(p, path) for path, p in model.named_parameters()}
    sharded = any(region is not None for region in regions.values())
    if sharded and dtype is not None:
        raise PlanError("dtype= cannot convert a sharded (DTensor) model; give the parameters"
                        " their dtype before sharding, or use FSDP2's MixedPrecisionPolicy")
    total = sum(local_tensor(p).numel() * (dtype or p.dtype).itemsize
                for p in model.parameters())
    auditor = _auditor(model, audit)
    with auditor, Progress(total, "materializing", enabled=progress) as bar, \
            _all_or_nothing(model) as swaps:
        buffers.stage(model, device)
        if sharded:
            _fill_shards(model, manifest, regions, device, bar, swaps)
        else:
            _fill_parameters(model, manifest, device, dtype, bar, map_checkpoint=not audit)
        buffers.fill(model)
        if load_buffers is not None:
            load_buffers(model)
        _move_buffers(model, device, dtype)
    remember(model, manifest)
    if audit:
        model.torchinit_audit = auditor.report()
    return model


def _resolve(plan: Plan | Manifest, model: nn.Module, seed: int, checkpoint: Checkpoint | None,
             strict: bool) -> tuple[Manifest, Callable[[nn.Module], None] | None, frozenset[str]]:
    """The manifest, what reads the checkpoint's buffers, and the buffers it has."""
    if checkpoint is None:
        return (plan if isinstance(plan, Manifest) else plan.explain(model, seed)), None, \
            frozenset()
    if isinstance(plan, Manifest):
        raise PlanError("checkpoint= needs a plan (a ti.Plan or 'native'), not a manifest: the"
                        " manifest is made from the plan and the checkpoint together")
    manifest, entries = checkpoints.resolve(plan, model, seed, checkpoint, strict)
    return manifest, (lambda m: checkpoints.load_buffers(m, checkpoint, entries)), \
        frozenset(entries)


def _keeps(plan: PlanLike) -> bool:
    """Whether ``plan`` may leave parameters to the model's own init."""
    if isinstance(plan, str):
        return True
    if isinstance(plan, Manifest):
        return any(r.kept for r in plan)
    return plan.on_unmatched != "error" or any(isinstance(r.init, Keep) for r in plan.rules)


def _check_plan(plan: Any) -> None:
    if isinstance(plan, str) and plan != "native":
        raise PlanError(f"plan {plan!r} is not a plan: pass a ti.Plan, a Manifest, a preset"
                        " (ti.presets.get(name)) or 'native' (the model's own init, captured)")
    if not isinstance(plan, (Plan, Manifest, str)):
        raise PlanError(f"plan must be a ti.Plan, a Manifest or 'native', got"
                        f" {type(plan).__name__}")


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
    count = backend.device_count() \
        if backend is not None and available and hasattr(backend, "device_count") else 0
    if not available or (dev.index is not None and hasattr(backend, "device_count")
                         and dev.index >= count):
        have = f"{count} {dev.type} device(s)" if available else f"no {dev.type} support"
        raise ConfigError(f"device {str(dev)!r} is not available on this machine (torch sees"
                          f" {have}); pass device='cpu'"
                          + (f" or one of {dev.type}:0..{count - 1}" if count else ""))
    return dev


def _auditor(model: nn.Module, enabled: bool) -> Any:
    if not enabled:
        return contextlib.nullcontext()
    from ._audit import WriteAudit

    return WriteAudit(model)


def build(
    factory: Callable[[], nn.Module],
    plan: Plan | Manifest | str,
    seed: int = 0,
    device: torch.device | str = "cpu",
    dtype: torch.dtype | None = None,
    example_inputs: Any = None,
    unrecoverable_buffers: str = "error",
    audit: bool = False,
    progress: bool | None = None,
    checkpoint: Any = None,
    key_map: KeyMap = None,
    strict: bool = True,
) -> nn.Module:
    """Construct ``factory()`` with no wasted initialization and initialize it from ``plan``.

    Args:
        factory: A callable returning the model (e.g. ``lambda: GPT(config)``).
        plan: A :class:`Plan` (resolved against the model with ``seed``), a manifest, or
            ``"native"``: the model's own initialization, captured while the factory runs
            (see :func:`torchinit.capture`); parameters whose init cannot be captured are an
            error that lists them (``ti.capture(factory, fallback="eager")`` keeps them).
            Parameters a plan leaves to the model (``on_unmatched="keep"``/``"warn"``, rules
            with ``init="keep"``) get the model's own init too: captured where possible, else
            its code run for real on the CPU for just those parameters (noted in the manifest
            as not shard-invariant).
        seed: The seed of every parameter's key.
        device: Where the parameters and buffers end up.
        dtype: Floating dtype for floating parameters and buffers (default: as constructed).
        example_inputs: What the model's forward takes (a tensor, a tuple of positional
            arguments or a dict of keyword arguments); needed when the model has lazy modules.
            Only shapes and dtypes are used: the dry run happens on meta tensors.
        unrecoverable_buffers: ``"error"`` or ``"zeros"`` for buffers that end up on meta and
            that neither their module (``init_non_persistent_buffers``,
            ``reset_running_stats``) nor a second construction with that module's parameters
            real can recompute.
        audit: Record writes to every parameter and buffer while materializing
            (``model.torchinit_audit``).
        progress: Show a progress bar (default: when stderr is a terminal).
        checkpoint: A ``.safetensors`` file, a sharded ``*.safetensors.index.json`` or a
            state dict: parameters and persistent buffers it has are read into their final
            storage (``record.source == "checkpoint"``), only the rest is initialized by the
            plan.
        key_map: Renames checkpoint keys: a dict of prefixes (``{"module.": ""}``) or a
            callable (``None`` drops a key).
        strict: Checkpoint keys the model does not have are an error (``False``: ignored and
            listed in the manifest).

    Returns:
        The model; ``ti.last_manifest(model)`` is the manifest of what was done.

    Raises:
        CheckpointError: (before anything is allocated) for an unreadable file or a
            checkpoint that does not fit the model, listing every problem.
        PlanError: if the factory fails on meta (naming the torch call and the model's
            function), example inputs do not fit the lazy modules, or the plan cannot
            initialize the model. Nothing half-built is returned.
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
    _check_plan(plan)
    device = _check_device(device)
    source = open_checkpoint(checkpoint, key_map) if checkpoint is not None else None
    try:
        return _build(factory, plan, seed, device, dtype, example_inputs, unrecoverable_buffers,
                      audit, progress, source, strict)
    finally:
        if source is not None:
            source.close()


def _build(factory: Callable[[], nn.Module], plan: PlanLike, seed: int, device: torch.device,
           dtype: torch.dtype | None, example_inputs: Any, unrecoverable_buffers: str,
           audit: bool, progress: bool | None, source: Checkpoint | None,
           strict: bool) -> nn.Module:
    recorder = Recorder() if _keeps(plan) else None
    order: list[nn.Parameter] = []
    model = construct(factory, example_inputs, recorder, order=order)

    def again(real: list[nn.Parameter]) -> nn.Module:
        return rebuild(factory, example_inputs, order, real, seed)

    def captured() -> list[Captured]:
        assert recorder is not None
        return captured_params(model, recorder)

    if isinstance(plan, str):
        plan = native_plan(model, captured(), "error")
    manifest, load, provided = _resolve(plan, model, seed, source, strict)
    manifest = native_for_kept(model, manifest, seed, captured if recorder else
                               (lambda: captured_instance(model)), again)
    buffers = plan_buffers(model, unrecoverable_buffers, again, provided)
    return _finish(model, manifest, buffers, device, dtype, audit, progress, load)


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
    checkpoint: Any = None,
    key_map: KeyMap = None,
    strict: bool = True,
) -> Manifest:
    """Initialize a model built under ``torch.device("meta")`` (or with meta parameters).

    Parameters are allocated once on ``device`` and filled from the plan. Parameters the plan
    leaves to the model (``on_unmatched="keep"``, ``init="keep"``) get what the model's init
    methods give them, captured (:func:`torchinit.capture` of the model). Buffers on the meta
    device have lost their values: modules with ``init_non_persistent_buffers`` or
    ``reset_running_stats`` (batch norm) recompute theirs; any other meta buffer is an error
    (``unrecoverable_buffers="error"``, the default) or is filled with zeros with a warning
    naming it (``"zeros"``). Prefer :func:`build`, which keeps the buffer values ``__init__``
    computes. ``checkpoint``, ``key_map`` and ``strict`` are as for :func:`build`; on a sharded
    (FSDP2/DTensor) model each rank reads only the region of each tensor its shard holds.

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
    _check_plan(plan)
    if isinstance(plan, str):
        raise PlanError("materialize() cannot capture the model's construction; use"
                        " ti.build(factory, 'native'), or ti.capture(model) for its init methods")
    device = _check_device(device)
    if has_lazy(model):
        if example_inputs is None:
            raise PlanError("the model has lazy modules; pass example_inputs= for a dry run")
        dry_run(model, example_inputs)
    real = [p for p, t in model.named_parameters() if local_tensor(t).device != META]
    if real:
        raise PlanError(f"materialize() takes a model whose parameters are on the meta device;"
                        f" {real[:3]} are not (use ti.apply for a materialized model)")
    source = open_checkpoint(checkpoint, key_map) if checkpoint is not None else None
    try:
        manifest, load, provided = _resolve(plan, model, seed, source, strict)
        manifest = native_for_kept(model, manifest, seed, lambda: captured_instance(model), None)
        buffers = plan_buffers(model, unrecoverable_buffers, provided=provided)
        model = _finish(model, manifest, buffers, device, dtype, audit, progress, load)
    finally:
        if source is not None:
            source.close()
    return last_manifest(model)
