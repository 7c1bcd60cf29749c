"""``ti.inspect``: one forward and one backward pass, measured and predicted per layer call."""

from __future__ import annotations

from collections import Counter
from collections.abc import Callable
from dataclasses import fields
from typing import Any

import torch
from torch import nn

from ..errors import ConfigError
from .._plan.manifest import Manifest, remembered
from .batches import Batch, call_model, first_tensor, take_batches
from .hooks import ActivationRecorder, Entry, tensor_std
from .predict import Moments, ParamMoments, Prediction, predict
from .report import LayerStats, OutputStats, ParamStats, Report, Thresholds

__all__ = ["inspect"]


def _loss(output: Any, batch: Batch, loss_fn: Callable[..., Any] | None,
          seed: int) -> torch.Tensor | None:
    """The scalar to differentiate: ``loss_fn(output[, target])``, or by default
    ``sum(output * g)`` with ``g ~ N(0, 1)`` (seeded), which sends a unit-variance gradient
    into the model's output."""
    if loss_fn is not None:
        loss = loss_fn(output) if batch.target is None else loss_fn(output, batch.target)
        if not isinstance(loss, torch.Tensor) or loss.numel() != 1:
            raise ConfigError(f"inspect: loss_fn must return a scalar tensor, got {loss!r}")
        return loss
    out = first_tensor(output)
    if out is None:
        return None
    generator = torch.Generator().manual_seed(seed)
    cotangent = torch.randn(out.shape, generator=generator, dtype=torch.float64)
    return (out * cotangent.to(device=out.device, dtype=out.dtype)).sum()


def _layer_names(entries: list[Entry]) -> list[str]:
    calls = Counter(e.path for e in entries)
    return [f"{e.path or '(model)'}#{e.call}" if calls[e.path] > 1 else e.path or "(model)"
            for e in entries]


def _layer(index: int, name: str, entry: Entry, prediction: Prediction) -> LayerStats:
    """The report's row for one leaf-module call: the entry's measured statistics, its gradient
    std and what ``prediction`` says of it."""
    measured = {f.name: getattr(entry.stats, f.name) for f in fields(OutputStats)}
    return LayerStats(index=index, layer=name, module_type=type(entry.module).__name__,
                      **measured, grad_std=entry.grad_std,
                      predicted_std=prediction.std[index],
                      predicted_grad_std=prediction.grad_std[index],
                      zero_by_plan=prediction.zero_by_plan[index],
                      feeds_zero_by_plan=prediction.feeds_zero_by_plan[index])


def _std(tensor: torch.Tensor | None) -> float | None:
    return None if tensor is None or tensor.numel() == 0 else tensor_std(tensor)


def inspect(
    model: nn.Module,
    batch: Any,
    loss_fn: Callable[..., Any] | None = None,
    manifest: Manifest | None = None,
    label: str = "",
    thresholds: Thresholds | None = None,
    seed: int = 0,
) -> Report:
    """Measure signal propagation through ``model`` on one batch, beside its prediction.

    Every leaf module's calls are recorded in forward-execution order (a module called twice
    gives ``path#1`` and ``path#2``): mean, std, abs-max, fraction of exact zeros, fraction of
    dead units, fraction saturated for bounded activations, and the gradient std with respect
    to the output. The predicted std comes from a variance recursion applied to the
    weights' moments, along the data flow
    the forward took: sums and concatenations its code computes between leaf modules (residual
    adds, in place or not) are followed too. Outputs the manifest makes exactly zero (a
    zero-initialized residual branch) are expected: they are not warned about.

    Args:
        model: The model, in the mode to diagnose (train or eval); it is not changed: buffers
            (batch-norm running statistics) are restored and parameter ``.grad`` is untouched.
        batch: A tensor, a tuple/list whose first element is the input (second: the target),
            or a loader yielding those (its first batch is used).
        loss_fn: ``loss_fn(output, target)`` (or ``loss_fn(output)`` without a target) for the
            backward pass. Default: ``sum(output * g)`` with ``g ~ N(0, 1)`` drawn from ``seed``,
            a unit-variance gradient at the output.
        manifest: Where weight moments come from (the exact std of each record's initializer
            times its scale); default ``ti.last_manifest(model)`` when set, otherwise the
            moments of the weights' values.
        label: A name for the report (plot legends).
        thresholds: When to warn (default :class:`Thresholds`).
        seed: Seed of the default loss's random gradient.

    Returns:
        The :class:`Report`.

    Raises:
        ConfigError: for data the model cannot take (naming the module where the forward
            failed), an empty loader, or a ``loss_fn`` that does not return a scalar.
    """
    data = take_batches(batch, 1, "inspect")[0]
    inputs = data.input
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
        inputs = inputs.detach().clone().requires_grad_(True)
    if manifest is None:
        manifest = remembered(model)
    saved = {name: b.detach().clone() for name, b in model.named_buffers()}
    try:
        with torch.enable_grad(), ActivationRecorder(model) as recorder:
            with recorder.tracing():
                output = call_model(model, inputs, "inspect")
            if not recorder.entries:
                raise ConfigError("inspect: no leaf module of the model produced a floating"
                                  " tensor; there is nothing to measure")
            grads = _backward(model, inputs, _loss(output, data, loss_fn, seed))
    finally:
        with torch.no_grad():
            for name, value in saved.items():
                model.get_buffer(name).copy_(value)
    entries = recorder.entries
    input_moments = None
    if isinstance(inputs, torch.Tensor) and inputs.is_floating_point():
        var, mean = torch.var_mean(inputs.detach().double(), correction=0)
        input_moments = Moments(float(mean), float(var))
    params = ParamMoments(model, manifest)
    prediction = predict(recorder.nodes, input_moments, recorder.output_node, params)
    layers = tuple(_layer(i, name, e, prediction)
                   for i, (e, name) in enumerate(zip(entries, _layer_names(entries))))
    param_stats = tuple(ParamStats(path, tuple(p.shape), _std(p), _std(grads.get(path)))
                        for path, p in model.named_parameters())
    return Report(layers, param_stats, None if input_moments is None else input_moments.std,
                  label, "+".join(sorted(params.sources)), thresholds or Thresholds())


def _backward(model: nn.Module, inputs: Any,
              loss: torch.Tensor | None) -> dict[str, torch.Tensor]:
    """Gradients of ``loss`` by parameter path (through ``autograd.grad``, so ``.grad`` is not
    touched); activation gradients reach the recorder's tensor hooks on the way."""
    named = [(path, p) for path, p in model.named_parameters() if p.requires_grad]
    wrt: list[torch.Tensor] = [p for _, p in named]
    if isinstance(inputs, torch.Tensor) and inputs.requires_grad:
        wrt.append(inputs)
    if loss is None or not loss.requires_grad or not wrt:
        return {}
    grads = torch.autograd.grad(loss, wrt, allow_unused=True)
    return {path: g for (path, _), g in zip(named, grads) if g is not None}
