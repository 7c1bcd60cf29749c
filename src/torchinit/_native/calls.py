"""What a torch call means for the values it leaves: the vocabulary of the recorder.

Tables of the tensor methods and torch functions that write (distributions, constants, scalar
affine maps, clamps), create (``torch.zeros`` ...), copy or only look at metadata; the
``torch.nn.init`` functions, by code object or by name; and readers of their arguments (numbers,
torch's own fan and gain numbers, scalar arithmetic). :class:`Event` is what one call does to
(part of) a storage, as :mod:`.recorder` logs it and :mod:`.fold` folds it.
"""

from __future__ import annotations

import inspect
import math
import types
from collections.abc import Callable
from dataclasses import dataclass
from types import CodeType
from typing import Any

import torch
from torch import nn

__all__ = ["Event", "Region", "GROUPED", "DISPATCHED", "dispatched", "DISTRIBUTIONS",
           "CONSTANT_WRITES", "AFFINE", "CLAMPS", "HARMLESS_INPLACE", "CREATORS", "COPIES",
           "METADATA", "scalar", "func_name", "tensors", "torch_numbers", "zero_pad",
           "scalar_arithmetic"]

Region = tuple[int, tuple[int, ...], tuple[int, ...]]
"""(storage offset, sizes, strides) in elements: which elements of a storage a view covers."""


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
    args: tuple[Any, ...] = ()
    region: Region | None = None
    where: str = ""
    site: str = ""
    group: int | None = None


def _init_functions() -> dict[CodeType, str]:
    """``torch.nn.init`` functions that do not dispatch to a torch-function mode themselves:
    their inner calls are grouped by their frame."""
    names = ("trunc_normal_", "xavier_uniform_", "xavier_normal_", "kaiming_normal_",
             "orthogonal_", "sparse_", "eye_", "dirac_", "ones_", "zeros_")
    return {getattr(nn.init, n).__code__: n for n in names if hasattr(nn.init, n)}


GROUPED = _init_functions()
DISPATCHED = {f.__name__: inspect.signature(f) for f in (
    nn.init.uniform_, nn.init.normal_, nn.init.constant_, nn.init.kaiming_uniform_)}
"""``torch.nn.init`` functions that hand themselves to the mode. They do so by their module
global, which code such as transformers' ``guard_torch_init_functions`` replaces with wrappers
of the same name and signature, so they are recognized by name (plain functions only, not the
``Tensor`` methods of the same name)."""


def dispatched(func: Any) -> str | None:
    name = getattr(func, "__name__", None)
    return name if name in DISPATCHED and isinstance(func, types.FunctionType) else None

_T = torch.Tensor
DISTRIBUTIONS = {_T.normal_: "normal", _T.uniform_: "uniform"}
CONSTANT_WRITES = {_T.fill_: "fill", _T.zero_: "zero"}
AFFINE = {_T.mul_: "mul", _T.div_: "div", _T.add_: "add", _T.sub_: "sub"}
CLAMPS = {_T.clamp_: "clamp", _T.clip_: "clamp", _T.clamp_min_: "min", _T.clamp_max_: "max"}
HARMLESS_INPLACE = {"requires_grad_", "retain_grad", "share_memory_", "squeeze_", "unsqueeze_",
                     "t_", "transpose_", "swapdims_", "swapaxes_", "rename_", "detach_",
                     "as_strided_", "resize_", "set_", "record_stream", "pin_memory"}
CREATORS: dict[Callable[..., Any], Callable[..., Event]] = {}
COPIES = {_T.clone, _T.to, _T.float, _T.double, _T.half, _T.bfloat16, _T.contiguous, _T.type,
           _T.cpu, _T.cuda, torch.clone}
METADATA = {
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
    CREATORS[_fn] = _event


def _full_event(*args: Any, **kwargs: Any) -> Event:
    value = kwargs.get("fill_value", args[1] if len(args) > 1 else None)
    return Event("fill", (float(value),)) if isinstance(value, (int, float)) \
        and not isinstance(value, bool) else Event("unknown", ("torch.full of a tensor value",))


CREATORS[torch.full] = _full_event
CREATORS[torch.full_like] = _full_event
CREATORS[_T.new_full] = lambda self, size, fill_value, **k: _full_event(None, fill_value)


def scalar(value: Any) -> float | None:
    """``value`` as a float if it is a number (or a real 0-dim tensor), else ``None``."""
    if isinstance(value, bool):
        return None
    if isinstance(value, (int, float)):
        return float(value)
    if isinstance(value, torch.Tensor) and value.dim() == 0 and not value.is_meta \
            and not value.is_complex():
        return float(value.item())
    return None


def func_name(func: Any) -> str:
    name = getattr(func, "__name__", None) or repr(func)
    return "Tensor." + name if getattr(func, "__objclass__", None) is not None \
        or getattr(func, "__qualname__", "").startswith(("TensorBase.", "Tensor.")) else name


def tensors(args: Any, kwargs: dict[str, Any]) -> list[torch.Tensor]:
    out = []
    for value in (*args, *kwargs.values()):
        if isinstance(value, torch.Tensor):
            out.append(value)
        elif isinstance(value, (list, tuple)):
            out.extend(v for v in value if isinstance(v, torch.Tensor))
    return out


def torch_numbers(name: str, tensor: torch.Tensor, args: dict[str, Any]) -> Any:
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


def zero_pad(name: str, args: tuple[Any, ...], kwargs: dict[str, Any]) -> bool:
    """``F.pad`` by nothing (transformers pads a tied bias to its weight's size): a copy."""
    pad = kwargs.get("pad", args[1] if len(args) > 1 else None)
    return name == "pad" and isinstance(pad, (tuple, list)) and not any(pad)


def scalar_arithmetic(name: str, args: tuple[Any, ...], tensor: torch.Tensor | None) \
        -> tuple[float, float] | None:
    """(scale, shift) of ``name(*args)`` when it is ``tensor`` times/plus/minus a number."""
    if tensor is None or (len(args) != 2 and name != "__neg__"):
        return None
    if name == "__neg__" or name == "neg":
        return (-1.0, 0.0)
    first, second = args
    other = scalar(second if first is tensor else first)
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
