"""The output-bias prior: the last layer's bias set from the targets, so the untrained model
predicts the base rates (Lin et al., "Focal Loss for Dense Object Detection", ICCV 2017,
section 4.1, for the classification prior).

The values are stored in the bias's manifest record (``Record.values``), so ``ti.apply(model,
manifest)`` writes them again without data.
"""

from __future__ import annotations

from collections.abc import Iterable
from dataclasses import replace
from typing import Any

import torch
from torch import nn

from .._diagnostics.batches import call_model, take_batches
from ..errors import ConfigError
from .._plan.manifest import Manifest, remembered
from .._plan.plan import Plan
from .._plan.write import check_fits

__all__ = ["output_bias_prior"]


def _targets(targets: Any) -> torch.Tensor:
    """A tensor of targets from a tensor/array, or the targets of every batch of a loader."""
    if isinstance(targets, torch.Tensor):
        return targets.detach()
    if isinstance(targets, Iterable) and not isinstance(targets, (str, bytes)):
        targets = list(targets)
        if targets and all(isinstance(b, (tuple, list)) and len(b) > 1 for b in targets):
            return torch.cat([torch.as_tensor(b[1]) for b in targets])
    try:
        return torch.as_tensor(targets)
    except (TypeError, ValueError, RuntimeError) as err:
        raise ConfigError(f"output_bias_prior: targets must be a tensor, a sequence of numbers"
                          f" or a loader of (input, target) batches; got {err}") from None


def _last_linear(model: nn.Module, batch: Any) -> str:
    """Path of the last ``nn.Linear`` called in a forward pass on ``batch`` (or, without a
    batch, the last one registered)."""
    linears: list[str] = [p for p, m in model.named_modules() if isinstance(m, nn.Linear)]
    if not linears:
        raise ConfigError("output_bias_prior: the model has no nn.Linear; pass layer= (the path"
                          " of the module whose bias to set)")
    if batch is None:
        return linears[-1]
    called: list[str] = []
    handles = [module.register_forward_hook(lambda m, args, out, p=path: called.append(p))
               for path, module in model.named_modules() if isinstance(module, nn.Linear)]
    try:
        with torch.no_grad():
            call_model(model, take_batches(batch, 1, "output_bias_prior")[0].input,
                       "output_bias_prior")
    finally:
        for handle in handles:
            handle.remove()
    if not called:
        raise ConfigError("output_bias_prior: no nn.Linear ran in the forward pass; pass layer=")
    return called[-1]


def _logit(p: torch.Tensor, eps: float) -> torch.Tensor:
    p = p.clamp(eps, 1 - eps)
    return torch.log(p) - torch.log1p(-p)


def _prior_values(y: torch.Tensor, task: str, outputs: int, eps: float, where: str) -> list[float]:
    """The bias values: log priors (softmax), logit of the positive rate (one output, or
    multi-label 0/1 targets of shape (N, outputs)), or the target mean (regression)."""
    if y.dim() == 0 or y.numel() == 0:
        raise ConfigError(f"{where}: targets must have one row per example; got shape"
                          f" {tuple(y.shape)}")
    if task == "regression":
        y = y.double().reshape(y.shape[0], -1)
        if y.shape[1] != outputs:
            raise ConfigError(f"{where}: {y.shape[1]} target value(s) per example for a bias of"
                              f" {outputs}")
        return y.mean(0).tolist()
    if y.is_floating_point() and not torch.equal(y, y.round()):
        raise ConfigError(f"{where}: classification targets must be integer class labels or 0/1"
                          " multi-label rows; use task='regression' for real-valued targets")
    y = y.long()
    if y.dim() == 2 or outputs == 1:
        if (y.dim() == 2 and y.shape[1] != outputs) or not bool(((y == 0) | (y == 1)).all()):
            raise ConfigError(f"{where}: a bias of {outputs} sigmoid output(s) needs 0/1 targets"
                              f" of shape (N,{'' if outputs == 1 else f' {outputs}'})")
        return _logit(y.double().reshape(y.shape[0], -1).mean(0), eps).tolist()
    if y.dim() != 1 or int(y.min()) < 0 or int(y.max()) >= outputs:
        raise ConfigError(f"{where}: class labels must be a 1-D tensor of ints in [0,"
                          f" {outputs}) for a bias of {outputs}; got shape {tuple(y.shape)},"
                          f" range [{int(y.min())}, {int(y.max())}]")
    prior = torch.bincount(y, minlength=outputs).double() / y.numel()
    prior = prior.clamp_min(eps)
    return torch.log(prior / prior.sum()).tolist()


def output_bias_prior(
    model: nn.Module,
    targets: Any,
    task: str = "classification",
    layer: str | None = None,
    manifest: Manifest | None = None,
    batch: Any = None,
    eps: float = 1e-8,
) -> Manifest:
    """Set the output layer's bias from the targets, so the untrained model predicts the
    base rates (Lin et al. 2017 initialize the classifier bias to ``-log((1 - pi) / pi)``).

    * classification, 1-D integer labels and ``C > 1`` outputs: ``b_c = log p_c`` with the
      class frequencies clipped below at ``eps`` and renormalized, so ``softmax(b) = p``;
    * classification with one output (0/1 labels), or 0/1 multi-label targets ``(N, C)``:
      ``b_c = log(pi_c / (1 - pi_c))``, ``pi_c`` clipped to ``[eps, 1 - eps]``, so
      ``sigmoid(b_c) = pi_c``;
    * regression: ``b = mean(y)`` per output.

    Args:
        model: The model; the bias is written in place.
        targets: Labels or regression targets (tensor or sequence), or a loader of
            ``(input, target)`` batches (all of it is read).
        task: ``"classification"`` or ``"regression"``.
        layer: Path of the module whose ``bias`` to set; default the last ``nn.Linear`` run
            in a forward pass on ``batch``, or without a batch the last one registered.
        manifest: The manifest to extend (default ``ti.last_manifest(model)``, else one that
            keeps every parameter).
        batch: Input for finding the last layer in forward order.
        eps: Smallest probability before the log.

    Returns:
        The manifest with the values in the bias's record (``Record.values``) and a note on
        it; ``ti.apply(model, manifest)`` writes them again without data.

    Raises:
        ConfigError: for an unknown task, a layer without bias, or targets that do not fit it.
        PlanError: for a manifest that does not describe the model.
    """
    if task not in ("classification", "regression"):
        raise ConfigError(f"output_bias_prior: task must be 'classification' or 'regression',"
                          f" got {task!r}")
    if not 0 < eps < 0.5:
        raise ConfigError(f"output_bias_prior: eps must be in (0, 0.5), got {eps!r}")
    module_path = layer if layer is not None else _last_linear(model, batch)
    try:
        module = model.get_submodule(module_path)
    except AttributeError as err:
        raise ConfigError(f"output_bias_prior: layer {module_path!r} is not a module of the"
                          f" model ({err})") from None
    bias = getattr(module, "bias", None)
    if not isinstance(bias, nn.Parameter):
        raise ConfigError(f"output_bias_prior: {module_path!r} ({type(module).__name__}) has no"
                          " bias parameter to set")
    path = next(p for p, t in model.named_parameters() if t is bias)
    where = f"output_bias_prior({path!r})"
    values = _prior_values(_targets(targets), task, bias.numel(), eps, where)
    if manifest is None:
        manifest = remembered(model)
    if manifest is None:
        manifest = Plan([], on_unmatched="keep").explain(model)
    check_fits(manifest, dict(model.named_parameters()))
    record = manifest[path]
    note = f"output_bias_prior: {task} prior from data"
    record = replace(record, values=tuple(values), notes=(*record.notes, note))
    Manifest((record,), manifest.seed).write({path: bias})
    return manifest.replace_record(record)
