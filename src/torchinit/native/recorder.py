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

import inspect
import math
import os
import sys
import types
from collections.abc import Callable
from dataclasses import dataclass, field
from types import CodeType, FrameType
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

__all__ = ["Event", "Log", "Recorder", "Region", "storage_id"]

Region = tuple[int, tuple[int, ...], tuple[int, ...]]
"""(storage offset, sizes, strides) in elements: which elements of a storage a view covers."""

_TORCH_DIR = os.path.dirname(os.path.abspath(torch.__file__))
_PACKAGE_DIR = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
_PLUMBING = tuple(os.path.join(_TORCH_DIR, *f.split("/")) for f in (
    "nn/init.py", "overrides.py", "_tensor.py", "utils/_contextlib.py", "autograd/grad_mode.py",
    "nn/modules/module.py", "nn/parameter.py", "random.py", "_C")) + (_PACKAGE_DIR,)
"""Files whose frames are never "where an init came from": torch's plumbing and torchinit."""


@dataclass(frozen=True)
class Event:
    """One thing done to (part of) a storage.

    ``op`` is one of ``"normal"``, ``"uniform"``, ``"fill"``, ``"empty"``, ``"affine"``
    (``args = (scale, shift)``), ``"clamp"``, ``"erfinv"``, ``"copy"`` (``args = (source log,)``),
    ``"init"`` (a ``torch.nn.init`` function: ``args = (name, arguments)``), ``"given"`` (values
    a parameter was created with: ``args = (tensor,)``), ``"read"`` and ``"unknown"``.
    ``group`` ties together the inner calls of one ``torch.nn.init`` function.
    """

    op: str
    args: tuple = ()
    region: Region | None = None
    where: str = ""
    site: str = ""
    group: int | None = None


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
    if isinstance(tensor, nn.parameter.UninitializedTensorMixin) or tensor.layout != torch.strided:
        return None
    try:
        return tensor.untyped_storage()._cdata
    except (RuntimeError, NotImplementedError, TypeError):
        return None


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
    return (tensor.storage_offset(), tuple(s for s, _ in dims), tuple(st for _, st in dims))


def _init_functions() -> dict[CodeType, str]:
    """``torch.nn.init`` functions that do not dispatch to a torch-function mode themselves:
    their inner calls are grouped by their frame."""
    names = ("trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_normal_",
             "orthogonal_", "sparse_", "eye_", "dirac_", "ones_", "zeros_")
    return {getattr(nn.init, n).__code__: n for n in names if hasattr(nn.init, n)}


_GROUPED = _init_functions()
_DISPATCHED = {f.__name__: inspect.signature(f) for f in (
    nn.init.uniform_, nn.init.normal_, nn.init.constant_, nn.init.kaiming_uniform_)}
"""``torch.nn.init`` functions that hand themselves to the mode. They do so by their module
global, which code such as transformers' ``guard_torch_init_functions`` replaces with wrappers
of the same name and signature, so they are recognized by name (plain functions only, not the
``Tensor`` methods of the same name)."""


def _dispatched(func: Any) -> str | None:
    name = getattr(func, "__name__", None)
    return name if name in _DISPATCHED and isinstance(func, types.FunctionType) else None

_T = torch.Tensor
_DISTRIBUTIONS = {_T.normal_: "normal", _T.uniform_: "uniform"}
_CONSTANT_WRITES = {_T.fill_: "fill", _T.zero_: "zero"}
_AFFINE = {_T.mul_: "mul", _T.div_: "div", _T.add_: "add", _T.sub_: "sub"}
_CLAMPS = {_T.clamp_: "clamp", _T.clip_: "clamp", _T.clamp_min_: "min", _T.clamp_max_: "max"}
_HARMLESS_INPLACE = {"requires_grad_", "retain_grad", "share_memory_", "squeeze_", "unsqueeze_",
                     "t_", "transpose_", "swapdims_", "swapaxes_", "rename_", "detach_",
                     "as_strided_", "resize_", "set_", "record_stream", "pin_memory"}
_CREATORS: dict[Callable, Callable[..., Event]] = {}
_COPIES = {_T.clone, _T.to, _T.float, _T.double, _T.half, _T.bfloat16, _T.contiguous, _T.type,
           _T.cpu, _T.cuda, torch.clone}
_METADATA = {
    "size", "dim", "ndimension", "numel", "nelement", "stride", "storage_offset", "element_size",
    "is_contiguous", "is_floating_point", "is_complex", "get_device", "data_ptr",
    "untyped_storage", "__len__", "__get__", "__set__", "__getitem__", "view", "view_as",
    "reshape", "reshape_as", "t", "transpose", "permute", "narrow", "chunk", "split", "unbind",
    "unsqueeze", "squeeze", "flatten", "unflatten", "expand", "expand_as", "select", "as_strided",
    "movedim", "swapdims", "swapaxes", "detach", "new_empty", "new_zeros", "new_ones", "new_full",
    "new_tensor", "empty_like", "zeros_like", "ones_like", "full_like", "__repr__", "__format__",
    "requires_grad_", "_is_view", "is_set_to", "__hash__", "__eq__", "__bool__", "type_as",
    "__reduce_ex__", "__deepcopy__", "__setstate__", "_make_subclass", "__torch_function__",
    "__new__", "__init__", "_has_compatible_shallow_copy_type", "has_names", "__contains__",
}


def _creator(op: str, *args: Any) -> Callable[..., Event]:
    return lambda *a, **k: Event(op, args)


for _fn, _event in (
    (torch.zeros, _creator("fill", 0.0)), (torch.zeros_like, _creator("fill", 0.0)),
    (torch.ones, _creator("fill", 1.0)), (torch.ones_like, _creator("fill", 1.0)),
    (torch.empty, _creator("empty")), (torch.empty_like, _creator("empty")),
    (torch.randn, _creator("normal", 0.0, 1.0)), (torch.randn_like, _creator("normal", 0.0, 1.0)),
    (torch.rand, _creator("uniform", 0.0, 1.0)), (torch.rand_like, _creator("uniform", 0.0, 1.0)),
    (_T.new_zeros, _creator("fill", 0.0)), (_T.new_ones, _creator("fill", 1.0)),
    (_T.new_empty, _creator("empty")),
):
    _CREATORS[_fn] = _event


def _full_event(*args: Any, **kwargs: Any) -> Event:
    value = kwargs.get("fill_value", args[1] if len(args) > 1 else None)
    return Event("fill", (float(value),)) if isinstance(value, (int, float)) \
        and not isinstance(value, bool) else Event("unknown", ("torch.full of a tensor value",))


_CREATORS[torch.full] = _full_event
_CREATORS[torch.full_like] = _full_event
_CREATORS[_T.new_full] = lambda self, size, fill_value, **k: _full_event(None, fill_value)


def _scalar(value: Any) -> float | None:
    """``value`` as a float if it is a number (or a real 0-dim tensor), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_meta \
            and not value.is_complex():
        return float(value.item())
    return None


def _func_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    return "Tensor." + name if getattr(func, "__objclass__", None) is not None \
        or getattr(func, "__qualname__", "").startswith(("TensorBase.", "Tensor.")) else name


def _tensors(args: Any, kwargs: dict) -> list[torch.Tensor]:
    out = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, torch.Tensor))
    return out


class Recorder(TorchFunctionMode):
    """Record, per storage, the initialization torch calls perform (see the module docstring).

    Use as a context manager around the construction (and initialization) of a model; read the
    logs with :meth:`log_of` afterwards. Parameters registered while
    :func:`torchinit.materialize.parameters_on_meta` swaps them for meta twins are linked to
    their twins by :meth:`link`.
    """

    def __init__(self) -> None:
        super().__init__()
        self.logs: dict[int, Log] = {}
        self._groups: dict[int, tuple[FrameType, int]] = {}  # id(frame) -> (frame, group)
        self.registered: list[tuple[nn.Parameter, str, str]] = []  # (twin, owner type, name)
        self.failure: tuple[str, str, str] | None = None  # (op, where, site) of a failing call

    # -- the mode --------------------------------------------------------------------------------
    def __torch_function__(self, func, types, args=(), kwargs=None):  # type: ignore[no-untyped-def]
        kwargs = kwargs or {}
        try:
            after = self._before(func, args, kwargs)
        except Exception as err:  # a call the recorder cannot read is not the model's fault
            after = None
            for tensor in _tensors(args, kwargs)[:1]:
                self._append(tensor, Event("unknown", (f"{_func_name(func)} ({err})",)))
        try:
            result = func(*args, **kwargs)
        except Exception:
            if self.failure is None:
                where, site, _ = self._origin()
                self.failure = (_func_name(func), where, site)
            raise
        if after is not None:
            try:
                after(result)
            except Exception:
                pass  # the result keeps no log: it is treated as untracked values
        return result

    def _before(self, func: Any, args: tuple, kwargs: dict) -> Callable[[Any], None] | None:
        """Log what ``func`` is about to write; return what to do with its result."""
        first = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if first is not None and storage_id(first) in self.logs:
            self._note_grouped_call()
        dispatched = _dispatched(func)
        if dispatched is not None:
            self._init_function(dispatched, args, kwargs)
            return None
        if func in _CREATORS:
            event = _CREATORS[func](*args, **kwargs)
            return lambda out: self._append(out, event, region=None) \
                if isinstance(out, torch.Tensor) else None
        name = getattr(func, "__name__", "")
        target = args[0] if args and isinstance(args[0], torch.Tensor) else None
        if target is not None and (func in _DISTRIBUTIONS or func in _CONSTANT_WRITES
                                   or func in _AFFINE or func in _CLAMPS
                                   or func is _T.copy_ or func is _T.erfinv_
                                   or func is _T.__setitem__
                                   or (name.endswith("_") and not name.startswith("__")
                                       and name not in _HARMLESS_INPLACE)):
            self._append(target, self._write_event(func, name, args, kwargs))
            return None
        out_kw = kwargs.get("out")
        if isinstance(out_kw, torch.Tensor):
            self._append(out_kw, Event("unknown", (f"{_func_name(func)}(out=...)",)))
            return None
        if name in _METADATA:
            return None
        return lambda result: self._propagate(func, name, args, kwargs, result)

    # -- events ----------------------------------------------------------------------------------
    def _init_function(self, name: str, args: tuple, kwargs: dict) -> None:
        bound = _DISPATCHED[name].bind(*args, **kwargs)
        bound.apply_defaults()
        arguments = dict(bound.arguments)
        tensor = arguments.pop("tensor")
        arguments.pop("generator", None)
        if getattr(tensor, "_is_hf_initialized", False):
            return  # transformers' wrappers leave tensors loaded from a checkpoint alone
        low = _torch_numbers(name, tensor, arguments)  # torch's own numbers, for the cross-check
        if low is not None:
            arguments["_low"] = low
        self._append(tensor, Event("init", (name, arguments)))

    def _write_event(self, func: Any, name: str, args: tuple, kwargs: dict) -> Event:
        params = dict(kwargs)
        if func in _DISTRIBUTIONS:
            a = kwargs.get("mean", kwargs.get("from", args[1] if len(args) > 1 else None))
            b = kwargs.get("std", kwargs.get("to", args[2] if len(args) > 2 else None))
            a = 0.0 if a is None else _scalar(a)
            b = 1.0 if b is None else _scalar(b)
            if a is None or b is None:
                return Event("unknown", (f"{_func_name(func)} with tensor arguments",))
            return Event(_DISTRIBUTIONS[func], (a, b))
        if func is _T.zero_:
            return Event("fill", (0.0,))
        if func is _T.fill_:
            value = _scalar(kwargs.get("value", args[1] if len(args) > 1 else None))
            return Event("fill", (value,)) if value is not None else Event(
                "unknown", ("Tensor.fill_ with a value computed on the meta device",))
        if func in _AFFINE:
            other = _scalar(params.get("other", args[1] if len(args) > 1 else None))
            alpha = _scalar(params.get("alpha", 1.0))
            if other is None or alpha is None:
                return Event("unknown", (f"{_func_name(func)} by a tensor",))
            kind = _AFFINE[func]
            if kind == "mul":
                return Event("affine", (other, 0.0))
            if kind == "div":
                return Event("affine", (1.0 / other, 0.0)) if other else Event(
                    "unknown", ("Tensor.div_ by zero",))
            return Event("affine", (1.0, other * alpha * (1.0 if kind == "add" else -1.0)))
        if func in _CLAMPS:
            kind = _CLAMPS[func]
            lo = params.get("min", args[1] if len(args) > 1 and kind != "max" else None)
            hi = params.get("max", args[2] if len(args) > 2 else (
                args[1] if len(args) > 1 and kind == "max" else None))
            lo_s, hi_s = (None if lo is None else _scalar(lo)), (None if hi is None else _scalar(hi))
            if (lo is not None and lo_s is None) or (hi is not None and hi_s is None):
                return Event("unknown", ("Tensor.clamp_ with tensor bounds",))
            return Event("clamp", (-math.inf if lo_s is None else lo_s,
                                   math.inf if hi_s is None else hi_s))
        if func is _T.erfinv_:
            return Event("erfinv")
        if func is _T.copy_:
            src = args[1] if len(args) > 1 else kwargs.get("src")
            return self._source_event(src, "Tensor.copy_")
        if func is _T.__setitem__:
            value = args[2] if len(args) > 2 else None
            scalar = _scalar(value)
            region = self._item_region(args[0], args[1])
            if region is False:
                return Event("unknown", ("Tensor.__setitem__ with a mask or index tensor",))
            if scalar is not None:
                return Event("fill", (scalar,), region=region)
            source = self._source_event(value, "Tensor.__setitem__")
            return Event(source.op, source.args, region=region)
        return Event("unknown", (_func_name(func),))

    def _source_event(self, src: Any, what: str) -> Event:
        if not isinstance(src, torch.Tensor):
            value = _scalar(src)
            return Event("fill", (value,)) if value is not None else Event(
                "unknown", (f"{what} of {type(src).__name__}",))
        log = self.logs.get(storage_id(src))
        if log is not None and (log.events or log.derived):
            return Event("copy", (log, region_of(src), len(log.events)))
        if src.is_meta:
            return Event("unknown", (f"{what} of values computed on the meta device",))
        return Event("given", (src.detach(),))

    def _item_region(self, tensor: torch.Tensor, index: Any) -> Region | None | bool:
        if isinstance(index, torch.Tensor) and (index.dtype == torch.bool or index.dim() > 0):
            return False
        if isinstance(index, (list,)) or (isinstance(index, tuple) and any(
                isinstance(i, (torch.Tensor, list)) for i in index)):
            return False
        with torch._C.DisableTorchFunction():
            view = tensor[index]
        return region_of(view) if isinstance(view, torch.Tensor) else False

    def _append(self, tensor: torch.Tensor, event: Event, region: Region | None | bool = True) \
            -> None:
        """Append ``event`` to the log of ``tensor``'s storage (``region=True``: the elements
        ``tensor`` covers), tagged with where it came from and its ``torch.nn.init`` group."""
        sid = storage_id(tensor)
        if sid is None:
            return
        log = self.logs.get(sid)
        if log is None:
            log = self.logs[sid] = Log(tensor, _storage_numel(tensor))
        where, site, frame = self._origin(sys._getframe(1))
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
        frame = sys._getframe(3)
        while frame is not None and frame.f_code.co_filename.startswith(_PLUMBING):
            if frame.f_code in _GROUPED:
                entry = self._groups.get(id(frame))
                if entry is None or entry[0] is not frame:
                    self._enter_grouped(frame)
                return
            frame = frame.f_back

    def _enter_grouped(self, frame: FrameType) -> None:
        """A ``torch.nn.init`` function that does not dispatch to the mode has started: log it
        with its arguments (as its frame holds them). Calls inside it (if it makes any: on meta
        tensors torch skips the sampling) join its group."""
        name = _GROUPED[frame.f_code]
        code = frame.f_code
        arguments = {n: frame.f_locals[n] for n in code.co_varnames[:code.co_argcount]
                     if n in frame.f_locals}
        tensor = arguments.pop("tensor", None)
        arguments.pop("generator", None)
        group = len(self._groups)
        self._groups[id(frame)] = (frame, group)
        if not isinstance(tensor, torch.Tensor) or storage_id(tensor) is None:
            return
        low = _torch_numbers(name, tensor, arguments)
        if low is not None:
            arguments["_low"] = low
        where, site, _ = self._origin(frame.f_back)
        sid = storage_id(tensor)
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
            if code in _GROUPED and grouped is None:
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
    def _propagate(self, func: Any, name: str, args: tuple, kwargs: dict, result: Any) -> None:
        """Give ``result`` the log its values follow from: a copy (``clone``, ``to``), a scalar
        multiple or shift (``2 * torch.randn(n)``), or values computed from parameters."""
        if name in _METADATA:
            return
        inputs = _tensors(args, kwargs)
        logged = [t for t in inputs if storage_id(t) in self.logs]
        if func not in _COPIES and not _zero_pad(name, args, kwargs) \
                and _scalar_arithmetic(name, args, logged[0] if logged else None) is None:
            for tensor in logged:  # its values are read: a scale computed from them may follow
                if isinstance(tensor, nn.Parameter):
                    self._append(tensor, Event("read", (_func_name(func),)))
        if not isinstance(result, torch.Tensor):
            return
        if not logged or storage_id(result) is None or storage_id(result) in self.logs:
            return
        source = self.logs[storage_id(logged[0])]
        if source.derived:
            self._derive(result, source.derived)
            return
        if (func in _COPIES or _zero_pad(name, args, kwargs)) and len(logged) == 1:
            self._append(result, _copy_of(source, logged[0]), region=None)
            return
        affine = _scalar_arithmetic(name, args, logged[0])
        if affine is not None and len(logged) == 1:
            self._append(result, _copy_of(source, logged[0]), region=None)
            self._append(result, Event("affine", affine), region=None)
            return
        if any(isinstance(t, nn.Parameter) or t.is_meta for t in logged):
            self._derive(result, f"{_func_name(func)} of parameter values")

    def _derive(self, tensor: torch.Tensor, why: str) -> None:
        sid = storage_id(tensor)
        if sid is not None:
            self.logs.setdefault(sid, Log(tensor, _storage_numel(tensor))).derived = why

    # -- parameters ------------------------------------------------------------------------------
    def link(self, original: nn.Parameter, twin: nn.Parameter, owner: nn.Module, name: str) \
            -> None:
        """``twin`` (meta) stands for ``original`` (real) from now on: it starts from what was
        recorded for ``original``, or from the values it holds."""
        self.registered.append((twin, type(owner).__name__, name))
        if storage_id(original) is None or storage_id(twin) is None:
            return  # a lazy parameter: its log starts when it materializes
        source = self.logs.get(storage_id(original))
        if source is not None:
            self._append(twin, _copy_of(source, original), region=None)
        elif original.numel():
            self._append(twin, Event("given", (original.detach(),)), region=None)

    def log_of(self, tensor: torch.Tensor) -> Log | None:
        sid = storage_id(tensor)
        return None if sid is None else self.logs.get(sid)


def _torch_numbers(name: str, tensor: torch.Tensor, args: dict[str, Any]) -> Any:
    """What torch's variance-scaling function draws for ``tensor``, by torch's own fan and
    gain helpers: a uniform ``(-bound, bound)`` or normal ``(0, std)``, as ``("uniform" |
    "normal", bound or std)``; ``None`` for other functions."""
    if name in ("xavier_uniform_", "xavier_normal_"):
        fan_in, fan_out = nn.init._calculate_fan_in_and_fan_out(tensor)
        std = float(args["gain"]) * math.sqrt(2.0 / float(fan_in + fan_out)) \
            if fan_in + fan_out else math.inf
    elif name in ("kaiming_uniform_", "kaiming_normal_"):
        fan = nn.init._calculate_correct_fan(tensor, args["mode"])
        std = nn.init.calculate_gain(args["nonlinearity"], args["a"]) / math.sqrt(fan) \
            if fan else math.inf
    else:
        return None
    if name.endswith("uniform_"):
        return ("uniform", math.sqrt(3.0) * std)
    return ("normal", std)


def _zero_pad(name: str, args: tuple, kwargs: dict) -> bool:
    """``F.pad`` by nothing (transformers pads a tied bias to its weight's size): a copy."""
    pad = kwargs.get("pad", args[1] if len(args) > 1 else None)
    return name == "pad" and isinstance(pad, (tuple, list)) and not any(pad)


def _copy_of(log: Log, tensor: torch.Tensor) -> Event:
    """A copy of what ``log`` holds now in the elements ``tensor`` covers."""
    return Event("copy", (log, region_of(tensor), len(log.events)))


def _scalar_arithmetic(name: str, args: tuple, tensor: torch.Tensor | None) \
        -> tuple[float, float] | None:
    """(scale, shift) of ``name(*args)`` when it is ``tensor`` times/plus/minus a number."""
    if tensor is None or (len(args) != 2 and name != "__neg__"):
        return None
    if name == "__neg__" or name == "neg":
        return (-1.0, 0.0)
    first, second = args
    other = _scalar(second if first is tensor else first)
    if other is None:
        return None
    mine_first = first is tensor
    table = {
        "__mul__": (other, 0.0), "__rmul__": (other, 0.0), "mul": (other, 0.0),
        "__add__": (1.0, other), "__radd__": (1.0, other), "add": (1.0, other),
        "__sub__": (1.0, -other) if mine_first else (-1.0, other),
        "__rsub__": (-1.0, other), "sub": (1.0, -other) if mine_first else None,
        "__truediv__": (1.0 / other, 0.0) if mine_first and other else None,
        "div": (1.0 / other, 0.0) if mine_first and other else None,
    }
    return table.get(name)


def _qualname(frame: FrameType) -> str:
    code = frame.f_code
    qual = getattr(code, "co_qualname", None)
    owner = frame.f_locals.get("self")
    if isinstance(owner, nn.Module):
        return f"{type(owner).__name__}.{code.co_name}"
    return qual or code.co_name
