"""Recording activations and their gradients with hooks, and the data flow between them.

Every leaf module gets a forward hook. Each call of a module is one :class:`Entry` (a module
called twice gives two), measured inside the hook, before a later in-place operation (such as
``ReLU(inplace=True)``) can overwrite the output. A tensor hook on the output collects the
gradient with respect to it during the backward pass; hooks registered before an in-place
operation receive the gradient of the tensor as it was when the hook was registered.

Between the leaf modules, a :class:`~torch.overrides.TorchFunctionMode` sees the functions the
model's own ``forward`` code calls. Sums (``out += identity``, ``x = x + f(x)``, ``torch.add``,
a difference, a tensor scaled or shifted by a number) become :class:`Sum` nodes and
concatenations (``torch.cat``, ``torch.stack``) :class:`Concat` nodes; any other in-place
operation makes its tensor's origin unknown. Functions inside a leaf module belong to its
entry. Every node (entries and merges, in execution order) records which node produced each of
its inputs, by tensor identity, which is how :mod:`.predict` propagates moments along the
model's actual data flow.
"""

from __future__ import annotations

from collections.abc import Iterator, Sequence
from contextlib import contextmanager
from dataclasses import dataclass, field
from numbers import Real
from typing import Any, TypeGuard

import torch
from torch import nn
from torch.overrides import TorchFunctionMode

from .batches import first_tensor, leaf_modules
from .report import OutputStats

__all__ = ["Entry", "Sum", "Concat", "Node", "ActivationRecorder", "saturated_fraction",
           "tensor_std", "MODEL_INPUT"]

MODEL_INPUT = -1
"""The node index (``Entry.parent``, a merge operand) of the model's input."""

SATURATION_MARGIN = 0.01
"""A bounded activation is saturated within this fraction of its output range from a bound:
there the derivative of tanh and sigmoid is below 4% of its maximum."""


def _bounds(module: nn.Module) -> tuple[float, float] | None:
    if isinstance(module, nn.ReLU6):  # its lower bound is a ReLU's zero, counted as dead
        return None
    if isinstance(module, nn.Hardtanh):
        return float(module.min_val), float(module.max_val)
    if isinstance(module, (nn.Tanh, nn.Softsign)):
        return -1.0, 1.0
    if isinstance(module, (nn.Sigmoid, nn.Hardsigmoid)):
        return 0.0, 1.0
    return None


def saturated_fraction(module: nn.Module, output: torch.Tensor) -> float | None:
    """Fraction of ``output`` within ``SATURATION_MARGIN`` of the range of a bounded
    activation from either bound; ``None`` for modules without a bounded range."""
    bounds = _bounds(module)
    if bounds is None:
        return None
    lo, hi = bounds
    margin = SATURATION_MARGIN * (hi - lo)
    near = (output <= lo + margin) | (output >= hi - margin)
    return int(torch.count_nonzero(near)) / near.numel()


@dataclass
class Entry:
    """One call of one leaf module, with its output statistics.

    ``stats`` are measured in the forward hook, ``grad_std`` arrives in the backward pass.
    ``parent`` is the index of the node whose output is this entry's input, ``MODEL_INPUT``
    for the model's input, ``None`` when the input came from elsewhere (a functional operation
    other than a merge in the model's forward). ``consumers`` counts the nodes that take this
    one's output.
    """

    path: str
    call: int
    module: nn.Module = field(repr=False)
    input_shape: tuple[int, ...] | None
    stats: OutputStats
    parent: int | None
    consumers: int = 0
    grad_std: float | None = None


@dataclass(frozen=True)
class Sum:
    """``offset + sum(coefficients[i] * operand[i])`` computed outside the leaf modules.

    ``operands`` are node indices (``MODEL_INPUT``, or ``None`` for a tensor of unknown
    origin); a residual add has two operands with coefficients 1, ``x * 0.5`` one with 0.5.
    """

    operands: tuple[int | None, ...]
    coefficients: tuple[float, ...]
    offset: float = 0.0


@dataclass(frozen=True)
class Concat:
    """Tensors joined by ``torch.cat`` or ``torch.stack`` outside the leaf modules; ``sizes``
    are the operands' element counts."""

    operands: tuple[int | None, ...]
    sizes: tuple[int, ...]


Node = Entry | Sum | Concat

_ADD = {"add", "add_", "__add__", "__radd__", "__iadd__"}
_SUB = {"sub", "sub_", "subtract", "subtract_", "__sub__", "__isub__"}
_RSUB = {"rsub", "__rsub__"}
_MUL = {"mul", "mul_", "multiply", "multiply_", "__mul__", "__rmul__", "__imul__"}
_DIV = {"div", "div_", "divide", "divide_", "true_divide", "true_divide_", "__truediv__",
        "__itruediv__"}
_NEG = {"neg", "neg_", "negative", "negative_", "__neg__"}
_JOIN = {"cat", "concat", "concatenate", "stack"}
_SUMS, _SCALE = _ADD | _SUB | _RSUB, _MUL | _DIV
_IN_PLACE_DUNDERS = {"__iadd__", "__isub__", "__imul__", "__itruediv__", "__ifloordiv__",
                     "__imod__", "__ipow__", "__iand__", "__ior__", "__ixor__", "__ilshift__",
                     "__irshift__", "__imatmul__", "__setitem__", "__set__"}
_KEEPS_VALUES = {"requires_grad_"}


def _is_number(value: Any) -> TypeGuard[Real]:
    return isinstance(value, Real) and not isinstance(value, bool)


def _mutated(name: str, args: Sequence[Any], kwargs: dict[str, Any]) -> list[torch.Tensor]:
    """The tensors a function writes in place: ``out=``, or the first argument of an in-place
    method (``add_``, ``+=``, ``x[i] = ...``)."""
    out = kwargs.get("out")
    if out is not None:
        return [t for t in (out if isinstance(out, (tuple, list)) else [out])
                if isinstance(t, torch.Tensor)]
    in_place = name in _IN_PLACE_DUNDERS or (
        name.endswith("_") and not name.endswith("__") and name not in _KEEPS_VALUES)
    return [args[0]] if in_place and args and isinstance(args[0], torch.Tensor) else []


def _terms(name: str, args: Sequence[Any],
           kwargs: dict[str, Any]) -> tuple[list[tuple[torch.Tensor, float]], float] | None:
    """``([(tensor, coefficient), ...], offset)`` of a function that sums its arguments with
    constant coefficients, ``None`` for any other function."""
    x = args[0] if args else kwargs.get("input")
    y = args[1] if len(args) > 1 else kwargs.get("other")
    if not isinstance(x, torch.Tensor):
        return None
    if name in _NEG:
        return [(x, -1.0)], 0.0
    if name in _SCALE:
        if not _is_number(y) or (name in _DIV and (y == 0 or kwargs.get("rounding_mode"))):
            return None
        return [(x, float(y) if name in _MUL else 1.0 / float(y))], 0.0
    alpha = kwargs.get("alpha", 1)
    if name not in _SUMS or not _is_number(alpha):
        return None
    if name in _RSUB:  # other - alpha * input
        cx, cy = -float(alpha), 1.0
    else:
        cx, cy = 1.0, (-1.0 if name in _SUB else 1.0) * float(alpha)
    if isinstance(y, torch.Tensor):
        return [(x, cx), (y, cy)], 0.0
    return ([(x, cx)], cy * float(y)) if _is_number(y) else None


def _wide(values: torch.Tensor) -> torch.Tensor:
    """``values`` in float32 at least, for statistics."""
    return values if values.dtype in (torch.float32, torch.float64) else values.float()


def tensor_std(values: torch.Tensor) -> float:
    """Population std of all elements (computed in float32 at least)."""
    return float(torch.var(_wide(values.detach()), correction=0).sqrt())


def _stats(module: nn.Module, output: torch.Tensor) -> OutputStats:
    values = output.detach()
    var, mean = torch.var_mean(_wide(values), correction=0)
    low, high = torch.aminmax(values)
    zeros = values == 0
    # A unit is one element of the per-example output: dead when zero for every example.
    dead = zeros.reshape(zeros.shape[0], -1).all(dim=0) if values.dim() >= 2 else zeros
    return OutputStats(shape=tuple(values.shape), mean=float(mean), std=float(var.sqrt()),
                       abs_max=max(-float(low), float(high)),
                       zero_fraction=int(torch.count_nonzero(zeros)) / zeros.numel(),
                       dead_fraction=int(torch.count_nonzero(dead)) / dead.numel(),
                       saturated_fraction=saturated_fraction(module, values))


def _gradient(entry: Entry, grad: torch.Tensor) -> None:
    entry.grad_std = tensor_std(grad)


class _MergeTracer(TorchFunctionMode):
    """Hands the recorder every torch function the forward pass calls, after the call (the
    recorder ignores those inside leaf modules)."""

    def __init__(self, recorder: ActivationRecorder) -> None:
        super().__init__()
        self.recorder = recorder

    def __torch_function__(self, func: Any, types: Any, args: Sequence[Any] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        result = func(*args, **kwargs)
        self.recorder._follow(getattr(func, "__name__", ""), args, kwargs, result)
        return result


class ActivationRecorder:
    """Context manager recording an :class:`Entry` per leaf-module call of ``model``.

    After the forward pass, ``nodes`` holds the entries and, where the forward ran inside
    :meth:`tracing`, the merges, in execution order; ``entries`` the entries alone;
    ``output_node`` the index of the node that produced the model's output (or ``None``).
    Gradients arrive in ``Entry.grad_std`` during a backward pass run inside the block.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.nodes: list[Node] = []
        self.output_node: int | None = None
        self._producers: dict[int, tuple[torch.Tensor, int]] = {}
        self._calls: dict[int, int] = {}
        self._inside = 0  # leaf-module forwards running: their own functions are not merges
        self._handles: list[Any] = []

    @property
    def entries(self) -> list[Entry]:
        return [n for n in self.nodes if isinstance(n, Entry)]

    def __enter__(self) -> ActivationRecorder:
        self._handles.append(self.model.register_forward_pre_hook(self._model_input))
        for path, module in leaf_modules(self.model):
            self._handles.append(module.register_forward_pre_hook(self._enter_leaf))
            self._handles.append(module.register_forward_hook(
                lambda m, args, out, path=path: self._record(path, m, args, out)))
        # After the leaf hooks, so a model that is itself a leaf has recorded its output.
        self._handles.append(self.model.register_forward_hook(self._model_output))
        return self

    def __exit__(self, *exc: object) -> None:
        for handle in self._handles:
            handle.remove()
        self._handles.clear()
        self._producers.clear()

    @contextmanager
    def tracing(self) -> Iterator[None]:
        """Record the merges the block's forward code computes between leaf modules (run the
        forward pass, not the loss or the backward pass, inside it)."""
        with _MergeTracer(self):
            yield

    def _produced_by(self, value: Any) -> int | None:
        tensor = first_tensor(value)
        if tensor is None:
            return None
        known = self._producers.get(id(tensor))
        return known[1] if known is not None and known[0] is tensor else None

    def _add(self, node: Node, tensor: torch.Tensor, operands: Sequence[int | None]) -> None:
        """Append ``node``, the producer of ``tensor`` from now on, and count it as a consumer
        of its operands."""
        for operand in operands:
            source = self.nodes[operand] if operand not in (None, MODEL_INPUT) else None
            if isinstance(source, Entry):
                source.consumers += 1
        self._producers[id(tensor)] = (tensor, len(self.nodes))
        self.nodes.append(node)

    def _model_input(self, model: nn.Module, args: tuple[Any, ...]) -> None:
        tensor = first_tensor(args)
        if tensor is not None:
            self._producers[id(tensor)] = (tensor, MODEL_INPUT)

    def _model_output(self, model: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        self.output_node = self._produced_by(output)

    def _enter_leaf(self, module: nn.Module, args: tuple[Any, ...]) -> None:
        self._inside += 1

    def _record(self, path: str, module: nn.Module, args: tuple[Any, ...],
                output: Any) -> None:
        try:
            tensor = first_tensor(output)
            if tensor is None or tensor.numel() == 0:
                return
            parent = self._produced_by(args)
            source = first_tensor(args)
            input_shape = None if source is None else tuple(source.shape)
            call = self._calls[id(module)] = self._calls.get(id(module), 0) + 1
            entry = Entry(path, call, module, input_shape, _stats(module, tensor), parent)
            self._add(entry, tensor, [parent])
            if tensor.requires_grad:
                tensor.register_hook(  # type: ignore[no-untyped-call]  # torch: unannotated
                    lambda grad, entry=entry: _gradient(entry, grad))
        finally:
            self._inside -= 1

    def _follow(self, name: str, args: Sequence[Any], kwargs: dict[str, Any],
                  result: Any) -> None:
        """Follow one function called outside the leaf modules: a merge becomes a node (the
        producer of its result), any other in-place write makes the written tensor's origin
        unknown."""
        if self._inside:
            return
        merge = self._merge(name, args, kwargs)
        for tensor in _mutated(name, args, kwargs):
            self._producers.pop(id(tensor), None)
        if merge is not None and isinstance(result, torch.Tensor) \
                and result.is_floating_point() and any(o is not None for o in merge.operands):
            self._add(merge, result, merge.operands)

    def _merge(self, name: str, args: Sequence[Any],
               kwargs: dict[str, Any]) -> Sum | Concat | None:
        """The merge a function computes, its operands resolved to nodes (before an in-place
        merge overwrites its first operand)."""
        if name in _JOIN:
            tensors = args[0] if args else kwargs.get("tensors")
            if not isinstance(tensors, (tuple, list)) or not all(
                    isinstance(t, torch.Tensor) for t in tensors):
                return None
            return Concat(tuple(self._produced_by(t) for t in tensors),
                          tuple(t.numel() for t in tensors))
        terms = _terms(name, args, kwargs)
        if terms is None:
            return None
        return Sum(tuple(self._produced_by(t) for t, _ in terms[0]),
                   tuple(c for _, c in terms[0]), terms[1])
