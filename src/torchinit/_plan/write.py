"""The one writer: the only code that puts values into parameter storage.

``Manifest.write`` (and so ``ti.apply``, ``ti.build``, ``ti.materialize``, ``Plan.as_fn``,
LSUV, the output-bias prior, ``Initializer.fill_`` and the ``torchinit.functional`` drop-ins)
runs in two phases:

1. **Check** every target before the first write, and raise one :class:`WriteError` naming
   every offender: a tensor on the meta device where values are expected, an inference tensor
   outside ``torch.inference_mode()``, self-overlapping storage (an ``expand``-ed or stride-0
   view), a non-floating dtype, a region that does not fit the tensor, or values beyond the
   dtype's range (see :func:`largest_value` for the rule).
2. **Write** each tensor once, under ``no_grad``. In place, a copy of each tensor is taken just
   before it is overwritten; if anything fails or is interrupted (an exception or
   ``KeyboardInterrupt``), every tensor already written is restored from its copy, so the
   tensors are bitwise as before, and the error gets a note naming the parameter. A write of a
   single tensor takes no copy: it either happens (one ``copy_``) or not. With ``out=`` the
   values go into new storage the caller installs, and nothing needs restoring.

Zero-size tensors are left as they are with one warning, as torch does.
"""

from __future__ import annotations

import math
import warnings
from collections.abc import Callable, Mapping, Sequence
from dataclasses import dataclass, replace

import torch
from torch import nn

from .._fans import Fans
from .._stack import user_stacklevel
from ..errors import ArgumentTypeError, PlanError, WriteError, describe_target
from ..initializers import Initializer
from .._progress import Progress
from .._sharding import local_region, local_tensor
from .._streams import Key, as_key, normalize_region, region_shape
from .manifest import Manifest, Record

__all__ = ["write", "check", "check_fits", "fill", "largest_value", "TAIL_STDS"]

Target = nn.Module | Mapping[str, torch.Tensor]
Allocate = Callable[[Record, torch.Tensor], torch.Tensor]
Regions = Mapping[str, Sequence[slice] | None]

TAIL_STDS = 10.0
"""An unbounded scheme (a normal) is taken to reach ``|mean| + TAIL_STDS * std``: a draw
beyond 10 standard deviations has probability below 2e-23."""



@dataclass
class _Write:
    """One tensor to write: its record, the tensor as given, what receives the values (the
    local shard, or new storage) and the global region that is."""

    record: Record
    param: torch.Tensor
    tensor: torch.Tensor
    region: tuple[slice, ...] | None
    skip: bool


def check_fits(manifest: Manifest, params: Mapping[str, torch.Tensor]) -> None:
    """Raise :class:`PlanError` unless the manifest describes exactly these parameters (paths
    and shapes; ``params`` as ``dict(model.named_parameters())``)."""
    problems = [f"{r.path}: not a parameter of the model" for r in manifest if r.path not in params]
    problems += [f"{r.path}: shape {tuple(params[r.path].shape)} in the model, {r.shape} in the"
                 " manifest" for r in manifest
                 if r.path in params and tuple(params[r.path].shape) != r.shape]
    problems += [f"{p}: not in the manifest" for p in params if p not in manifest]
    if problems:
        raise PlanError("the manifest does not fit this model:\n- " + "\n- ".join(problems))


def largest_value(record: Record) -> float:
    """The largest absolute value ``record`` writes, for the check against the dtype's range.

    Bounded schemes (uniform, truncated normal, constants, orthogonal, ...) reach their
    ``bound``; unbounded ones (normal) are taken to reach ``|mean| + TAIL_STDS * std``;
    stored values (the output-bias prior) their largest magnitude; LSUV's ``scale``
    multiplies. A deliberately infinite constant (``Constant(inf)``, for masks) gives 0:
    it is not an overflow.
    """
    if record.checkpoint is not None:
        return 0.0  # read, not drawn: the values are the file's
    if record.values is not None:
        values = torch.as_tensor(record.values, dtype=torch.float64)
        return float(values.abs().max()) if values.numel() else 0.0
    parts = []
    if record.init is not None:
        parts.append(_scheme_largest(record.init, record.fans, record.shape, record.bound,
                                     record.std))
    for block in record.blocks:
        shape = (block.stop - block.start, *record.shape[1:])
        parts.append(_scheme_largest(block.init, block.fans, shape, None, block.std))
    return max(parts, default=0.0) * abs(record.scale)


def _scheme_largest(init: Initializer, fans: Fans | None, shape: tuple[int, ...],
                    bound: float | None, std: float | None) -> float:
    bound = init.bound(fans, shape) if bound is None else bound
    if math.isfinite(bound):
        return abs(bound)
    std = init.std(fans, shape) if std is None else std
    if not std > 0:  # infinite on purpose (Constant(inf)), or no spread to overflow
        return 0.0
    return abs(init.mean_value(fans, shape)) + TAIL_STDS * std


def _pairs(manifest: Manifest, target: Target) -> list[tuple[Record, torch.Tensor]]:
    """(record, tensor) for every tensor to write; tied tensors once, by canonical path."""
    if isinstance(target, nn.Module):
        params = dict(target.named_parameters())
        check_fits(manifest, params)
        return [(r, params[r.path]) for r in manifest]
    if not isinstance(target, Mapping):
        raise ArgumentTypeError(
            "Manifest.write() takes a model (nn.Module) or a mapping from parameter path to"
            f" tensor, got {type(target).__name__}")
    pairs: dict[str, tuple[Record, torch.Tensor]] = {}
    problems = []
    for path, tensor in target.items():
        if not isinstance(tensor, torch.Tensor):
            problems.append(f"{path!r}: {type(tensor).__name__} is not a tensor")
        elif path not in manifest:
            problems.append(f"{path!r}: the manifest has no record for it")
        else:
            record = manifest[path]
            if record.path in pairs and pairs[record.path][1] is not tensor:
                problems.append(f"{path!r}: a second tensor for parameter {record.path!r}")
            pairs[record.path] = (record, tensor)
    if problems:
        raise WriteError("these tensors cannot be written from this manifest:\n- "
                         + "\n- ".join(problems))
    return list(pairs.values())


def _overlaps(tensor: torch.Tensor) -> bool:
    """Whether several elements share one memory location (a stride 0 over a size > 1)."""
    if tensor.is_contiguous():
        return False
    return any(size > 1 and stride == 0 for size, stride in zip(tensor.shape, tensor.stride()))


def _problems(w: _Write, allocated: bool) -> list[str]:
    """Why ``w`` cannot be written (empty when it can)."""
    record, tensor = w.record, w.tensor
    if allocated and record.kept and math.prod(record.shape) != 0:
        return ["it keeps its values (no rule matched), but it gets new storage that has none;"
                " give it a rule"]
    if w.skip:
        return []
    out = []
    if not tensor.dtype.is_floating_point:
        out.append(f"its dtype {tensor.dtype} cannot hold initialized values; use a floating"
                   " dtype (float32, bfloat16, ...) or a plan that keeps it")
    if tensor.device.type == "meta":
        out.append("it is on the meta device and has no storage to write; use"
                   " ti.materialize(model, plan) for a meta model, or ti.build(factory, plan)")
    elif tensor.is_inference() and not torch.is_inference_mode_enabled():
        out.append("it was created under torch.inference_mode() and cannot be written outside"
                   " it; create the model outside inference mode, or write it inside"
                   " torch.inference_mode()")
    if tensor.device.type != "meta" and _overlaps(tensor):
        out.append(f"its elements share memory (an expand()ed view, strides"
                   f" {tuple(tensor.stride())}); give it storage of its own, e.g."
                   " nn.Parameter(weight.clone())")
    expected = record.shape if w.region is None else region_shape(w.region)
    if tuple(tensor.shape) != expected:
        out.append(f"it holds {tuple(tensor.shape)} here, but its region has shape {expected}")
    if tensor.dtype.is_floating_point:
        limit = torch.finfo(tensor.dtype).max
        largest = largest_value(record)
        if largest > limit:
            out.append(f"its values reach {largest:.4g}, beyond the largest finite"
                       f" {tensor.dtype} ({limit:.6g}); use a wider dtype (float32) or a"
                       " smaller scale")
    return out


def _prepare(manifest: Manifest, target: Target, regions: Regions | None,
             out: Allocate | None) -> list[_Write]:
    """Every write, checked; raise :class:`WriteError` naming every offender."""
    writes, problems = [], []
    for record, param in _pairs(manifest, target):
        if tuple(param.shape) != record.shape:
            problems.append(f"{describe_target(record.path or None, param.shape, record.init)}:"
                            f" the manifest says shape {record.shape}")
            continue
        region = regions.get(record.path) if regions is not None else None
        if region is None:
            region = local_region(param, record.path)
        tensor = local_tensor(param) if out is None else out(record, param)
        skip = (record.kept and out is None) or math.prod(record.shape) == 0
        if region is not None:
            region = normalize_region(record.shape, region)
        w = _Write(record, param, tensor, region, skip)
        problems += [f"{describe_target(record.path or None, record.shape, record.init)}: {p}"
                     for p in _problems(w, out is not None)]
        writes.append(w)
    if problems:
        raise WriteError(f"{len(problems)} problem(s) before any write; nothing was written:\n- "
                         + "\n- ".join(problems))
    return writes


def check(manifest: Manifest, target: Target, regions: Regions | None = None) -> None:
    """Run every check :func:`write` runs, and write nothing."""
    _prepare(manifest, target, regions, None)


def write(
    manifest: Manifest,
    target: Target,
    regions: Regions | None = None,
    out: Allocate | None = None,
    progress: Progress | None = None,
) -> dict[str, torch.Tensor]:
    """Write every record's values into its tensor (see :meth:`Manifest.write`)."""
    writes = _prepare(manifest, target, regions, out)
    empty = [w for w in writes if math.prod(w.record.shape) == 0 and not w.record.kept]
    if empty:
        shown = ", ".join(f"{w.record.path or 'tensor'} {w.record.shape}" for w in empty[:5])
        more = f" and {len(empty) - 5} more" if len(empty) > 5 else ""
        warnings.warn(f"Initializing zero-element tensors is a no-op: {shown}{more} left as"
                      " they are", stacklevel=user_stacklevel())
    _execute([w for w in writes if not w.skip], out is None, progress)
    return {w.record.path: w.tensor for w in writes}


def _execute(writes: list[_Write], in_place: bool, progress: Progress | None) -> None:
    """Sample and write each tensor once; restore what was written if anything fails."""
    copies: list[tuple[torch.Tensor, torch.Tensor]] = []
    keep_copies = in_place and len(writes) > 1
    current = None
    try:
        with torch.no_grad():
            for current in writes:
                tensor = current.tensor
                if in_place:
                    value = current.record.sample(current.region, tensor.dtype, tensor.device,
                                                  current=tensor)
                    if keep_copies:
                        copies.append((tensor, tensor.clone()))
                    tensor.copy_(value)
                else:
                    current.record.sample(current.region, out=tensor)
                if progress is not None:
                    progress.advance(tensor.numel() * tensor.element_size())
    except BaseException as err:
        with torch.no_grad():
            for tensor, copy in reversed(copies):
                tensor.copy_(copy)
        if current is not None and hasattr(err, "add_note"):  # Python >= 3.11
            record = current.record
            restored = (f"the {len(copies)} tensor(s) written before it were restored"
                        if in_place else "nothing was installed")
            err.add_note(f"torchinit: while writing"
                         f" {describe_target(record.path or None, record.shape, record.init)};"
                         f" {restored}")
        raise


def fill(
    tensor: torch.Tensor,
    init: Initializer,
    key: Key | int | Callable[[], Key],
    fans: Fans | None = None,
) -> torch.Tensor:
    """Fill a bare tensor in place with ``init`` through the writer, and return it.

    ``key`` may be a zero-argument callable, called only once every check has passed and
    there is something to write (the ``torchinit.functional`` drop-ins draw their seed from
    torch's RNG that way, so a call that fails leaves it untouched). Meta tensors are checked
    and returned unchanged, as torch.nn.init does.
    """
    path = key.path if isinstance(key, Key) else ""
    fans = init.check(tensor.shape, tensor.dtype, fans, path or None)
    if tensor.is_meta:
        return tensor
    record = Record(path=path, shape=tuple(tensor.shape),
                    dtype=str(tensor.dtype).removeprefix("torch."),
                    module_type=type(tensor).__name__, init=init, fans=fans,
                    key=as_key(key) if not callable(key) else Key(0, path))
    target = {path: tensor}
    if callable(key) and tensor.numel():
        check(Manifest((record,)), target)
        record = replace(record, key=key())
    write(Manifest((record,)), target)
    return tensor
