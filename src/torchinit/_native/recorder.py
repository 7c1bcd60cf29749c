"""The recorder: every initialization a model's own code performs, seen as torch calls.

While a :class:`Recorder` is active (a ``TorchFunctionMode``), each torch call that writes a
tensor (``normal_``, ``uniform_``, ``fill_``, ``zero_``, ``copy_``, ``mul_``, ``clamp_``,
``__setitem__``, ``torch.nn.init.*``, factory functions such as ``torch.zeros`` ...) appends an
:class:`Event` to the log of the storage it writes, with the region of that storage it touches
and the module/function it came from. Calls that read a parameter's *values* are logged too,
so values computed from parameters are recognized instead of replayed wrongly. Folding the log
of a parameter's storage (:mod:`.fold`) gives what the model's code leaves in it.

Storages are told apart by their ``StorageImpl`` (shared by a tensor, its ``.data`` and its
views, on the meta device too); the recorder holds a reference to every tensor it logs, so no
storage it knows is freed and its address reused while it records.
"""

from __future__ import annotations

import math
import os
import sys
from collections.abc import Callable
from dataclasses import dataclass, field
from types import FrameType
from typing import Any, Literal, cast

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .._stack import PACKAGE_DIR
from .._storage import storage_of
from .calls import (
    AFFINE,
    CLAMPS,
    CONSTANT_WRITES,
    COPIES,
    CREATORS,
    DISPATCHED,
    DISTRIBUTIONS,
    GROUPED,
    HARMLESS_INPLACE,
    METADATA,
    Event,
    Region,
    dispatched,
    func_name,
    scalar,
    scalar_arithmetic,
    tensors,
    torch_numbers,
    zero_pad,
)

__all__ = ["Log", "Recorder", "storage_id", "region_of"]

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_PLUMBING = tuple(os.path.join(_TORCH_DIR, *f.split("/")) for f in (
    "nn/init.py", "overrides.py", "_tensor.py", "utils/_contextlib.py", "autograd/grad_mode.py",
    "nn/modules/module.py", "nn/parameter.py", "random.py", "_C")) + (PACKAGE_DIR,)
"""Files whose frames are never "where an init came from": torch's plumbing and torchinit."""


@dataclass
class Log:
    """Everything recorded for one storage, oldest first."""

    tensor: torch.Tensor
    numel: int
    events: list[Event] = field(default_factory=list)
    derived: str | None = None  # why its values depend on parameter values, if they do


def storage_id(tensor: torch.Tensor) -> int | None:
    """An identity of ``tensor``'s storage, shared by its views and ``.data`` (``None`` for a
    tensor with no storage of its own: an uninitialized lazy parameter, a sparse tensor)."""
    storage = storage_of(tensor)
    return None if storage is None else storage._cdata


def _storage_numel(tensor: torch.Tensor) -> int:
    return tensor.untyped_storage().nbytes() // max(tensor.element_size(), 1)


def region_of(tensor: torch.Tensor) -> Region | None:
    """The elements of its storage ``tensor`` covers; ``None`` for all of them."""
    numel = tensor.numel()
    if numel == _storage_numel(tensor) and tensor.storage_offset() == 0 and not any(
            size > 1 and stride == 0 for size, stride in zip(tensor.shape, tensor.stride())):
        return None
    dims: list[list[int]] = []
    for size, stride in zip(tensor.shape, tensor.stride()):
        if size == 1:
            continue
        if dims and dims[-1][1] == size * stride:  # contiguous with the previous dimension
            dims[-1] = [dims[-1][0] * size, stride]
        else:
            dims.append([size, stride])
    offset = cast(int, tensor.storage_offset())  # an int: recorded tensors are not symbolic
    return (offset, tuple(s for s, _ in dims), tuple(st for _, st in dims))


class Recorder(TorchFunctionMode):
    """Record, per storage, the initialization torch calls perform (see the module docstring).

    Use as a context manager around the construction (and initialization) of a model; read the
    logs with :meth:`log_of` afterwards. Parameters registered while
    :func:`torchinit._materialize.parameters_on_meta` swaps them for meta twins are linked to
    their twins by :meth:`link`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.logs: dict[int, Log] = {}
        self._groups: dict[int, tuple[FrameType, int]] = {}  # id(frame) -> (frame, group)
        self.failure: tuple[str, str, str] | None = None  # (op, where, site) of a failing call

    # -- the mode --------------------------------------------------------------------------------
    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        try:
            after = self._before(func, args, kwargs)
        except Exception as err:  # a call the recorder cannot read is not the model's fault
            after = None
            for tensor in tensors(args, kwargs)[:1]:
                self._append(tensor, Event("unknown", (f"{func_name(func)} ({err})",)))
        try:
            result = func(*args, **kwargs)
        except Exception:
            if self.failure is None:
                where, site, _ = self._origin()
                self.failure = (func_name(func), where, site)
            raise
        if after is not None:
            try:
                after(result)
            except Exception:
                pass  # the result keeps no log: it is treated as untracked values
        return result

    def _before(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any]
                ) -> Callable[[Any], None] | None:
        """Log what ``func`` is about to write; return what to do with its result."""
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if first is not None and storage_id(first) in self.logs:
            self._note_grouped_call()
        init_name = dispatched(func)
        if init_name is not None:
            self._init_function(init_name, args, kwargs)
            return None
        if func in CREATORS:
            event = CREATORS[func](*args, **kwargs)
            return lambda out: self._append(out, event, region=None) \
                if isinstance(out, torch.Tensor) else None
        name = getattr(func, "__name__", "")
        target = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if target is not None and (func in DISTRIBUTIONS or func in CONSTANT_WRITES
                                   or func in AFFINE or func in CLAMPS
                                   or func is torch.Tensor.copy_ or func is torch.Tensor.erfinv_
                                   or func is torch.Tensor.__setitem__
                                   or (name.endswith("_") and not name.startswith("__")
                                       and name not in HARMLESS_INPLACE)):
            self._append(target, self._write_event(func, name, args, kwargs))
            return None
        out_kw = kwargs.get("out")
        if isinstance(out_kw, torch.Tensor):
            self._append(out_kw, Event("unknown", (f"{func_name(func)}(out=...)",)))
            return None
        if name in METADATA:
            return None
        return lambda result: self._propagate(func, name, args, kwargs, result)

    # -- events ----------------------------------------------------------------------------------
    def _init_function(self, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> None:
        bound = DISPATCHED[name].bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        tensor = arguments.pop("tensor")
        arguments.pop("generator", None)
        if getattr(tensor, "_is_hf_initialized", False):
            return  # transformers' wrappers leave tensors loaded from a checkpoint alone
        low = torch_numbers(name, tensor, arguments)  # torch's own numbers, for the cross-check
        if low is not None:
            arguments["_low"] = low
        self._append(tensor, Event("init", (name, arguments)))

    def _write_event(self, func: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any]
                     ) -> Event:
        params = dict(kwargs)
        if func in DISTRIBUTIONS:
            a = kwargs.get("mean", kwargs.get("from", args[1] if len(args) > 1 else None))
            b = kwargs.get("std", kwargs.get("to", args[2] if len(args) > 2 else None))
            a = 0.0 if a is None else scalar(a)
            b = 1.0 if b is None else scalar(b)
            if a is None or b is None:
                return Event("unknown", (f"{func_name(func)} with tensor arguments",))
            return Event(DISTRIBUTIONS[func], (a, b))
        if func is torch.Tensor.zero_:
            return Event("fill", (0.0,))
        if func is torch.Tensor.fill_:
            value = scalar(kwargs.get("value", args[1] if len(args) > 1 else None))
            return Event("fill", (value,)) if value is not None else Event(
                "unknown", ("Tensor.fill_ with a value computed on the meta device",))
        if func in AFFINE:
            other = scalar(params.get("other", args[1] if len(args) > 1 else None))
            alpha = scalar(params.get("alpha", 1.0))
            if other is None or alpha is None:
                return Event("unknown", (f"{func_name(func)} by a tensor",))
            kind = AFFINE[func]
            if kind == "mul":
                return Event("affine", (other, 0.0))
            if kind == "div":
                return Event("affine", (1.0 / other, 0.0)) if other else Event(
                    "unknown", ("Tensor.div_ by zero",))
            return Event("affine", (1.0, other * alpha * (1.0 if kind == "add" else -1.0)))
        if func in CLAMPS:
            kind = CLAMPS[func]
            lo = params.get("min", args[1] if len(args) > 1 and kind != "max" else None)
            hi = params.get("max", args[2] if len(args) > 2 else (
                args[1] if len(args) > 1 and kind == "max" else None))
            lo_s, hi_s = (None if lo is None else scalar(lo)), (None if hi is None else scalar(hi))
            if (lo is not None and lo_s is None) or (hi is not None and hi_s is None):
                return Event("unknown", ("Tensor.clamp_ with tensor bounds",))
            return Event("clamp", (-math.inf if lo_s is None else lo_s,
                                   math.inf if hi_s is None else hi_s))
        if func is torch.Tensor.erfinv_:
            return Event("erfinv")
        if func is torch.Tensor.copy_:
            src = args[1] if len(args) > 1 else kwargs.get("src")
            return self._source_event(src, "Tensor.copy_")
        if func is torch.Tensor.__setitem__:
            value = args[2] if len(args) > 2 else None
            number = scalar(value)
            region = self._item_region(args[0], args[1])
            if region is False:
                return Event("unknown", ("Tensor.__setitem__ with a mask or index tensor",))
            if number is not None:
                return Event("fill", (number,), region=region)
            source = self._source_event(value, "Tensor.__setitem__")
            return Event(source.op, source.args, region=region)
        return Event("unknown", (func_name(func),))

    def _source_event(self, src: Any, what: str) -> Event:
        if not isinstance(src, torch.Tensor):
            value = scalar(src)
            return Event("fill", (value,)) if value is not None else Event(
                "unknown", (f"{what} of {type(src).__name__}",))
        sid = storage_id(src)
        log = None if sid is None else self.logs.get(sid)
        if log is not None and (log.events or log.derived):
            return Event("copy", (log, region_of(src), len(log.events)))
        if src.is_meta:
            return Event("unknown", (f"{what} of values computed on the meta device",))
        return Event("given", (src.detach(),))

    def _item_region(self, tensor: torch.Tensor, index: Any) -> Region | None | Literal[False]:
        if isinstance(index, torch.Tensor) and (index.dtype == torch.bool or index.dim() > 0):
            return False
        if isinstance(index, (list,)) or (isinstance(index, tuple) and any(
                isinstance(i, (torch.Tensor, list)) for i in index)):
            return False
        with torch._C.DisableTorchFunction():
            view = tensor[index]
        return region_of(view) if isinstance(view, torch.Tensor) else False

    def _append(self, tensor: torch.Tensor, event: Event,
                region: Region | None | Literal[True] = True) -> None:
        """Append ``event`` to the log of ``tensor``'s storage (``region=True``: the elements
        ``tensor`` covers), tagged with where it came from and its ``torch.nn.init`` group."""
        sid = storage_id(tensor)
        if sid is None:
            return
        log = self.logs.get(sid)
        if log is None:
            log = self.logs[sid] = Log(tensor, _storage_numel(tensor))
        where, site, frame = self._origin(sys._getframe(1))
        reg: Region | None
        if event.region is not None:
            reg = event.region
        else:
            reg = region_of(tensor) if region is True else region
        group = None
        if frame is not None:
            entry = self._groups.get(id(frame))
            if entry is None or entry[0] is not frame:
                self._enter_grouped(frame)
                entry = self._groups[id(frame)]
            group = entry[1]
        log.events.append(Event(event.op, event.args, reg, where, site, group))

    def _note_grouped_call(self) -> None:
        """If this torch call is inside a ``torch.nn.init`` function that does not dispatch to
        the mode, and the first one seen there, log that function. Every such function looks at
        its tensor first (``tensor.is_meta``, ``dim()``, ``ndimension()``), so it is seen even
        where it then skips the sampling (on meta tensors)."""
        frame: FrameType | None = sys._getframe(3)
        while frame is not None and frame.f_code.co_filename.startswith(_PLUMBING):
            if frame.f_code in GROUPED:
                entry = self._groups.get(id(frame))
                if entry is None or entry[0] is not frame:
                    self._enter_grouped(frame)
                return
            frame = frame.f_back

    def _enter_grouped(self, frame: FrameType) -> None:
        """A ``torch.nn.init`` function that does not dispatch to the mode has started: log it
        with its arguments (as its frame holds them). Calls inside it (if it makes any: on meta
        tensors torch skips the sampling) join its group."""
        name = GROUPED[frame.f_code]
        code = frame.f_code
        arguments = {n: frame.f_locals[n] for n in code.co_varnames[:code.co_argcount]
                     if n in frame.f_locals}
        tensor = arguments.pop("tensor", None)
        arguments.pop("generator", None)
        group = len(self._groups)
        self._groups[id(frame)] = (frame, group)
        if not isinstance(tensor, torch.Tensor):
            return
        sid = storage_id(tensor)
        if sid is None:
            return
        low = torch_numbers(name, tensor, arguments)
        if low is not None:
            arguments["_low"] = low
        where, site, _ = self._origin(frame.f_back)
        log = self.logs.get(sid)
        if log is None:
            log = self.logs[sid] = Log(tensor, _storage_numel(tensor))
        log.events.append(Event("init", (name, arguments), region_of(tensor), where, site, group))

    def _origin(self, frame: FrameType | None = None) -> tuple[str, str, FrameType | None]:
        """(the function of the model's code behind this call, its file:line, the frame of the
        ``torch.nn.init`` function the call is inside, if any), from ``frame`` outwards."""
        frame = sys._getframe(1) if frame is None else frame
        grouped = None
        where = site = ""
        # the first frame of the model's code, and any torch.nn.init frame inside it
        while frame is not None:
            code = frame.f_code
            if code in GROUPED and grouped is None:
                grouped = frame
            filename = code.co_filename
            name = code.co_name
            helper = name.endswith("_") and not name.startswith("__")  # normal_, trunc_normal_
            if not filename.startswith(_PLUMBING) and not helper and not name.startswith("<"):
                where = _qualname(frame)
                site = f"{os.path.basename(filename)}:{frame.f_lineno}"
                break  # a torch.nn.init frame is always inside the code that calls it
            frame = frame.f_back
        return where, site, grouped

    # -- out-of-place results ---------------------------------------------------------------------
    def _propagate(self, func: Any, name: str, args: tuple[Any, ...], kwargs: dict[str, Any],
                   result: Any) -> None:
        """Give ``result`` the log its values follow from: a copy (``clone``, ``to``), a scalar
        multiple or shift (``2 * torch.randn(n)``), or values computed from parameters."""
        if name in METADATA:
            return
        inputs = tensors(args, kwargs)
        logged = [t for t in inputs if storage_id(t) in self.logs]
        if func not in COPIES and not zero_pad(name, args, kwargs) \
                and scalar_arithmetic(name, args, logged[0] if logged else None) is None:
            for tensor in logged:  # its values are read: a scale computed from them may follow
                if isinstance(tensor, nn.Parameter):
                    self._append(tensor, Event("read", (func_name(func),)))
        if not isinstance(result, torch.Tensor):
            return
        if not logged or storage_id(result) is None or storage_id(result) in self.logs:
            return
        source = self.logs[cast(int, storage_id(logged[0]))]  # logged: its storage has a log
        if source.derived:
            self._derive(result, source.derived)
            return
        if (func in COPIES or zero_pad(name, args, kwargs)) and len(logged) == 1:
            self._append(result, _copy_of(source, logged[0]), region=None)
            return
        affine = scalar_arithmetic(name, args, logged[0])
        if affine is not None and len(logged) == 1:
            self._append(result, _copy_of(source, logged[0]), region=None)
            self._append(result, Event("affine", affine), region=None)
            return
        if any(isinstance(t, nn.Parameter) or t.is_meta for t in logged):
            self._derive(result, f"{func_name(func)} of parameter values")

    def _derive(self, tensor: torch.Tensor, why: str) -> None:
        sid = storage_id(tensor)
        if sid is not None:
            self.logs.setdefault(sid, Log(tensor, _storage_numel(tensor))).derived = why

    # -- parameters ------------------------------------------------------------------------------
    def link(self, original: nn.Parameter, twin: nn.Parameter, owner: nn.Module, name: str) \
            -> None:
        """``twin`` (meta) stands for ``original`` (real) from now on: it starts from what was
        recorded for ``original``, or from the values it holds."""
        sid = storage_id(original)
        if sid is None or storage_id(twin) is None:
            return  # a lazy parameter: its log starts when it materializes
        source = self.logs.get(sid)
        if source is not None:
            self._append(twin, _copy_of(source, original), region=None)
        elif original.numel():
            self._append(twin, Event("given", (original.detach(),)), region=None)

    def log_of(self, tensor: torch.Tensor) -> Log | None:
        sid = storage_id(tensor)
        return None if sid is None else self.logs.get(sid)


def _copy_of(log: Log, tensor: torch.Tensor) -> Event:
    """A copy of what ``log`` holds now in the elements ``tensor`` covers."""
    return Event("copy", (log, region_of(tensor), len(log.events)))


def _qualname(frame: FrameType) -> str:
    code = frame.f_code
    qual = getattr(code, "co_qualname", None)
    owner = frame.f_locals.get("self")
    if isinstance(owner, nn.Module):
        return f"{type(owner).__name__}.{code.co_name}"
    return qual or code.co_name
