"""Recording activations and their gradients with hooks, in forward-execution order.

Every leaf module gets a forward hook. Each call of a module is one :class:`Entry` (a module
called twice gives two), measured inside the hook, before a later in-place operation (such as
``ReLU(inplace=True)``) can overwrite the output. A tensor hook on the output collects the
gradient with respect to it during the backward pass; hooks registered before an in-place
operation receive the gradient of the tensor as it was when the hook was registered.

Entries also record which entry produced their input (by tensor identity), which is how
:mod:`.predict` propagates moments along the model's actual data flow.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn

from .batches import first_tensor, leaf_modules

__all__ = ["Entry", "ActivationRecorder", "saturated_fraction", "tensor_std", "MODEL_INPUT"]

MODEL_INPUT = -1
"""``Entry.parent`` of an entry whose input is the model's input."""

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

    ``parent`` is the index of the entry whose output is this entry's input, ``MODEL_INPUT``
    for the model's input, ``None`` when the input came from elsewhere (a functional operation
    in the model's forward). ``consumers`` counts the entries that take this one's output.
    """

    path: str
    call: int
    module: nn.Module = field(repr=False)
    input_shape: tuple[int, ...] | None
    shape: tuple[int, ...]
    mean: float
    std: float
    abs_max: float
    zero_fraction: float
    dead_fraction: float
    saturated_fraction: float | None
    parent: int | None
    consumers: int = 0
    grad_std: float | None = None


def _wide(values: torch.Tensor) -> torch.Tensor:
    """``values`` in float32 at least, for statistics."""
    return values if values.dtype in (torch.float32, torch.float64) else values.float()


def tensor_std(values: torch.Tensor) -> float:
    """Population std of all elements (computed in float32 at least)."""
    return float(torch.var(_wide(values.detach()), correction=0).sqrt())


def _stats(module: nn.Module, output: torch.Tensor) -> dict[str, Any]:
    values = output.detach()
    var, mean = torch.var_mean(_wide(values), correction=0)
    low, high = torch.aminmax(values)
    zeros = values == 0
    # A unit is one element of the per-example output: dead when zero for every example.
    dead = zeros.reshape(zeros.shape[0], -1).all(dim=0) if values.dim() >= 2 else zeros
    return dict(shape=tuple(values.shape), mean=float(mean), std=float(var.sqrt()),
                abs_max=max(-float(low), float(high)),
                zero_fraction=int(torch.count_nonzero(zeros)) / zeros.numel(),
                dead_fraction=int(torch.count_nonzero(dead)) / dead.numel(),
                saturated_fraction=saturated_fraction(module, values))


class ActivationRecorder:
    """Context manager recording an :class:`Entry` per leaf-module call of ``model``.

    After the forward pass, ``entries`` holds the calls in execution order, ``output_entry``
    the index of the entry that produced the model's output (or ``None``); gradients arrive in
    ``Entry.grad_std`` during a backward pass run inside the block.
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self.entries: list[Entry] = []
        self.output_entry: int | None = None
        self._producers: dict[int, tuple[torch.Tensor, int]] = {}
        self._calls: dict[int, int] = {}
        self._handles: list[Any] = []

    def __enter__(self) -> ActivationRecorder:
        self._handles.append(self.model.register_forward_pre_hook(self._model_input))
        for path, module in leaf_modules(self.model):
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

    def _produced_by(self, value: Any) -> int | None:
        tensor = first_tensor(value)
        if tensor is None:
            return None
        known = self._producers.get(id(tensor))
        return known[1] if known is not None and known[0] is tensor else None

    def _model_input(self, model: nn.Module, args: tuple) -> None:
        tensor = first_tensor(args)
        if tensor is not None:
            self._producers[id(tensor)] = (tensor, MODEL_INPUT)

    def _model_output(self, model: nn.Module, args: tuple, output: Any) -> None:
        self.output_entry = self._produced_by(output)

    def _record(self, path: str, module: nn.Module, args: tuple, output: Any) -> None:
        tensor = first_tensor(output)
        if tensor is None or tensor.numel() == 0:
            return
        parent = self._produced_by(args)
        source = first_tensor(args)
        input_shape = None if source is None else tuple(source.shape)
        if parent is not None and parent != MODEL_INPUT:
            self.entries[parent].consumers += 1
        call = self._calls[id(module)] = self._calls.get(id(module), 0) + 1
        index = len(self.entries)
        self.entries.append(Entry(path, call, module, input_shape, parent=parent,
                                  **_stats(module, tensor)))
        self._producers[id(tensor)] = (tensor, index)
        if tensor.requires_grad:
            tensor.register_hook(lambda grad, index=index: self._gradient(index, grad))

    def _gradient(self, index: int, grad: torch.Tensor) -> None:
        self.entries[index].grad_std = tensor_std(grad)
