"""LSUV: layer-sequential unit-variance initialization (Mishkin & Matas, "All you need is a good
init", ICLR 2016), recorded in the manifest so it replays without data.

Each visited weight's scale factor goes into its manifest record (``Record.scale``), so
``ti.apply(model, manifest)`` reproduces the weights bit for bit.
"""

from __future__ import annotations

import math
import re
import warnings
from dataclasses import dataclass, replace
from typing import Any

import torch
from torch import nn

from .._deprecation import renamed
from .._apply import apply
from .._diagnostics.batches import Batch, StopForward, call_model, first_tensor, take_batches
from ..errors import ConfigError, PlanError
from ..initializers import Orthogonal, Zeros
from .._plan.manifest import Manifest, Record
from .._plan.plan import Plan
from .._plan.rules import Rule

__all__ = ["lsuv", "VISITED"]

VISITED: tuple[type[nn.Module], ...] = (nn.Linear, nn.modules.conv._ConvNd, nn.RNNBase,
                                        nn.RNNCellBase)
"""Module types LSUV scales: dense, convolution and transposed convolution layers by their
output; recurrent layers by the projection of their input through the input-side weights of
the first layer (``weight_ih_l0`` and its reverse direction; ``weight_ih`` of cells)."""


@dataclass
class _Unit:
    """One weight LSUV scales, and how many times its module runs per forward pass."""

    module_path: str
    module: nn.Module
    name: str
    path: str
    calls: int = 0


def _weight_names(module: nn.Module) -> list[str]:
    if isinstance(module, nn.RNNBase):
        return [n for n in ("weight_ih_l0", "weight_ih_l0_reverse") if hasattr(module, n)]
    if isinstance(module, nn.RNNCellBase):
        return ["weight_ih"]
    return ["weight"]


def _run(model: nn.Module, batches: list[Batch]) -> None:
    for batch in batches:
        try:
            call_model(model, batch.input, "lsuv")
        except StopForward:
            pass


def _discover(model: nn.Module, batches: list[Batch]) -> list[_Unit]:
    """The weights to scale, in the forward order of their modules' first calls (a weight
    tied to an earlier one is scaled once, under its canonical path; a weight that is not a
    parameter, such as one computed by a parametrization, is skipped)."""
    paths = {id(p): path for path, p in model.named_parameters()}
    units: dict[int, list[_Unit]] = {}
    handles = []

    def seen(module_path: str, module: nn.Module) -> None:
        if id(module) not in units:
            weights = [(n, id(getattr(module, n))) for n in _weight_names(module)]
            units[id(module)] = [_Unit(module_path, module, n, paths[key])
                                 for n, key in weights if key in paths]
        for unit in units[id(module)]:
            unit.calls += 1

    for module_path, module in model.named_modules():
        if isinstance(module, VISITED):
            handles.append(module.register_forward_pre_hook(
                lambda m, args, p=module_path: seen(p, m)))
    try:
        _run(model, batches[:1])
    finally:
        for handle in handles:
            handle.remove()
    ordered, done = [], set()
    for unit in (u for group in units.values() for u in group):
        if unit.path not in done:
            done.add(unit.path)
            ordered.append(unit)
    return ordered


class _Moments:
    """Running count, sum and sum of squares (float64) of the measured outputs."""

    def __init__(self) -> None:
        self.n, self.total, self.squares = 0, 0.0, 0.0

    def add(self, values: torch.Tensor) -> None:
        wide = values.detach().double()
        self.n += wide.numel()
        self.total += float(wide.sum())
        self.squares += float((wide * wide).sum())

    def std(self) -> float:
        mean = self.total / max(self.n, 1)
        return math.sqrt(max(self.squares / max(self.n, 1) - mean * mean, 0.0))


def _measure(model: nn.Module, unit: _Unit, batches: list[Batch]) -> float:
    """Std of ``unit``'s output over all its calls on all batches; the forward pass stops
    once its last call is measured (before any later in-place operation)."""
    moments, calls = _Moments(), [0]

    def count() -> None:
        calls[0] += 1
        if calls[0] == unit.calls:
            raise StopForward

    def output_hook(module: nn.Module, args: tuple[Any, ...], output: Any) -> None:
        values = first_tensor(output)
        assert values is not None  # a layer with a weight outputs a floating tensor
        moments.add(values)
        count()

    def input_hook(module: nn.Module, args: tuple[Any, ...]) -> None:
        inputs = first_tensor(args)
        assert inputs is not None  # a recurrent layer is called with a floating tensor
        moments.add(nn.functional.linear(inputs, getattr(module, unit.name)))
        count()

    recurrent = isinstance(unit.module, (nn.RNNBase, nn.RNNCellBase))
    handle = (unit.module.register_forward_pre_hook(input_hook) if recurrent
              else unit.module.register_forward_hook(output_hook))
    try:
        for batch in batches:
            calls[0] = 0
            _run(model, [batch])
    finally:
        handle.remove()
    return moments.std()


def _exact(path: str) -> str:
    """A regex that matches ``path`` only."""
    return f"^{re.escape(path)}$"


def _start_manifest(model: nn.Module, units: list[_Unit], init: Plan | Manifest | None,
                    orthogonal_first: bool, seed: int) -> Manifest:
    """The manifest LSUV starts from: given, resolved from a plan, or the default (zero
    biases for the visited dense and conv layers, everything else kept); with
    ``orthogonal_first`` the visited weights' records become ``Orthogonal()``."""
    if init is None:
        paths = {id(p): path for path, p in model.named_parameters()}
        biases = [paths[id(u.module.bias)] for u in units
                  if u.name == "weight" and getattr(u.module, "bias", None) is not None]
        init = Plan([Rule(regex=_exact(b), init=Zeros()) for b in biases], on_unmatched="keep",
                    name="lsuv default")
    manifest = init if isinstance(init, Manifest) else init.explain(model, seed)
    if orthogonal_first:
        orthogonal = Plan([Rule(regex=_exact(u.path), init=Orthogonal()) for u in units],
                          on_unmatched="keep").explain(model, seed)
        manifest = manifest.replace_records(orthogonal[u.path] for u in units)
    kept = [u.path for u in units if manifest[u.path].kept]
    if kept:
        raise PlanError(
            f"lsuv records a scale on each visited weight's manifest record, so the result"
            f" replays without data; these weights have no record to scale (they keep their"
            f" values): {kept}. Use orthogonal_first=True, a plan= with rules for them, or"
            f" manifest=ti.apply(model, plan)")
    return manifest


def _check_options(target_std: float, tol: float, max_iter: int) -> None:
    for name, value in (("target_std", target_std), ("tol", tol)):
        if isinstance(value, bool) or not isinstance(value, (int, float)) \
                or not math.isfinite(value) or value <= 0:
            raise ConfigError(f"lsuv: {name} must be a positive finite number, got {value!r}")
    if isinstance(max_iter, bool) or not isinstance(max_iter, int) or max_iter < 1:
        raise ConfigError(f"lsuv: max_iter must be an int >= 1, got {max_iter!r}")


def lsuv(
    model: nn.Module,
    batch_or_loader: Any,
    init: Plan | Manifest | None = None,
    target_std: float = 1.0,
    tol: float = 0.05,
    max_iter: int = 10,
    orthogonal_first: bool = True,
    seed: int = 0,
    n_batches: int = 1,
    *,
    manifest: Manifest | None = None,
    plan: Plan | None = None,
) -> Manifest:
    """Layer-sequential unit-variance initialization (Mishkin & Matas 2016), replayable.

    The starting manifest is applied first. Then, in the forward order of the layers' first
    calls, each visited weight (see ``VISITED``) is rescaled until its layer's output std is
    within ``tol`` (relative) of ``target_std``: with ``s`` the running product of the factors
    ``target_std / std``, the weight is rewritten each time as ``base * s`` from its record's
    unscaled values ``base``, so it is exactly what ``record.sample()`` gives with
    ``record.scale = s``. The output is measured in a forward hook, before any in-place
    operation; a module called several times is measured over all its calls.

    Args:
        model: The model; it runs in eval mode under ``no_grad``, and every module's
            train/eval flag is restored afterwards (``requires_grad`` is not touched).
        batch_or_loader: A batch (tensor, or tuple/list whose first element is the input) or a
            loader of batches.
        init: What to start from, as ``ti.apply`` takes it: a plan, or a manifest (e.g. what
            ``ti.apply`` returned). Default: a plan that zeroes the biases of the visited
            dense and conv layers and keeps every other parameter.
        target_std: The output std to reach.
        tol: Relative tolerance ``|std / target_std - 1| <= tol`` (0.05 on the std is about the
            paper's 0.1 on the variance).
        max_iter: Most rescalings per weight; a weight that does not converge is warned about.
        orthogonal_first: Re-initialize the visited weights with ``Orthogonal()`` first, as
            the paper does.
        seed: Seed of the records resolved here (default plan, orthogonal records).
        n_batches: How many batches of a loader to use; their outputs are pooled.
        manifest: Deprecated: pass the manifest as ``init``.
        plan: Deprecated: pass the plan as ``init``.

    Returns:
        The manifest: each visited weight's record has ``scale`` set and a note; ``data["lsuv"]``
        holds the settings and each weight's scale, final std, iterations and convergence.

    Raises:
        ConfigError: for bad options, data the model cannot take (naming the module), an empty
            loader, or a model with no layer to visit.
        PlanError: when a visited weight has no record to scale (``orthogonal_first=False``
            without an ``init`` covering it).
    """
    for old, value in (("manifest", manifest), ("plan", plan)):
        if value is not None:
            if init is not None:
                raise ConfigError(f"lsuv: give the starting point once, as init=, not also as"
                                  f" {old}=")
            init = renamed("lsuv", old, "init", value)
    if init is not None and not isinstance(init, (Plan, Manifest)):
        raise ConfigError(f"lsuv: init must be a Plan or a Manifest, got {type(init).__name__}")
    _check_options(target_std, tol, max_iter)
    batches = take_batches(batch_or_loader, n_batches, "lsuv")
    modes = {module: module.training for module in model.modules()}
    model.eval()
    try:
        with torch.no_grad():
            units = _discover(model, batches)
            if not units:
                raise ConfigError(f"lsuv: the forward pass calls no layer it can scale; it"
                                  f" visits {[t.__name__ for t in VISITED]} and subclasses")
            manifest = _start_manifest(model, units, init, orthogonal_first, seed)
            apply(model, manifest)
            records, layers = [], []
            for unit in units:
                record, details = _scale(model, unit, manifest, batches, target_std, tol,
                                         max_iter)
                records.append(record)
                layers.append(details)
            manifest = manifest.replace_records(records)
    finally:
        for module, training in modes.items():
            module.training = training
    summary = {"target_std": target_std, "tol": tol, "max_iter": max_iter,
               "n_batches": len(batches), "layers": layers}
    return replace(manifest, data={**manifest.data, "lsuv": summary})


def _scale(model: nn.Module, unit: _Unit, manifest: Manifest, batches: list[Batch],
           target_std: float, tol: float, max_iter: int) -> tuple[Record, dict[str, Any]]:
    """Rescale one weight; return its new record and a JSON-safe summary.

    Each try writes the weight through :meth:`Manifest.write` from its record with the scale
    so far, so the weight is always exactly what the returned record replays."""
    param = getattr(unit.module, unit.name)
    record = replace(manifest[unit.path], scale=1.0)

    def write(scale: float) -> None:
        Manifest((replace(record, scale=scale),), manifest.seed).write({unit.path: param})

    scale, iterations = 1.0, 0
    write(scale)
    std = _measure(model, unit, batches)
    while math.isfinite(std) and std > 0 and abs(std / target_std - 1) > tol \
            and iterations < max_iter:
        scale *= target_std / std
        iterations += 1
        write(scale)
        std = _measure(model, unit, batches)
    converged = math.isfinite(std) and std > 0 and abs(std / target_std - 1) <= tol
    if not converged:
        warnings.warn(f"lsuv: {unit.path} output std {std:.4g} after {iterations} rescalings,"
                      f" not within {tol} of {target_std}", stacklevel=3)
    note = f"lsuv: output std {std:.3f} after {iterations} iterations"
    details = {"path": unit.path, "module": unit.module_path, "scale": scale, "std": std,
               "iterations": iterations, "converged": converged}
    return replace(record, scale=scale, notes=(*record.notes, note)), details
