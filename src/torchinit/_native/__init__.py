"""``ti.capture`` and ``ti.build(factory, "native")``: the initialization a model's own code
performs, as an ordinary plan.

The model is constructed with its parameters on the meta device while a recorder
(:mod:`.recorder`) notes every torch call that writes a tensor: ``torch.nn.init`` functions
with their arguments, tensor methods on a parameter, its ``.data`` or a view (``normal_``,
``uniform_``, ``fill_``, ``zero_``, ``copy_`` of a constant, ``mul_``/``div_``/``add_``/``sub_``
by numbers, ``clamp_``, ``erfinv_``), row writes (``weight.data[padding_idx].zero_()``) and
tensors created by ``torch.zeros``/``ones``/``full``/``randn``/``rand`` (and scalar multiples of
them). The last write wins; scalar post-ops fold into the scheme (:mod:`.fold`). The result
(:mod:`.assemble`) is a :class:`~torchinit.Plan` with one rule per distinct initializer, each
labelled with the model's function it came from; ``ti.apply``/``ti.build``/``ti.materialize``
replay it with torchinit's keyed streams: the same values for any construction order, thread
count, device or sharding.

Where a ``torch.nn.init`` function was called, the rule is that function's scheme with torch's
fan convention (``fan_convention="torch"``), so the numbers are torch's exactly; ``Manifest`` shows where
semantic fans would differ.
"""

from __future__ import annotations

from collections.abc import Callable
from typing import Any

import torch
from torch import nn

from .._construct import FactoryError, construct
from ..errors import PlanError
from .._plan.plan import Plan
from .assemble import Captured, Miss, captured_params, plan_from
from .instance import captured_instance
from .recorder import Recorder

__all__ = ["capture", "CaptureError", "record_factory", "native_plan", "captured_params",
           "Captured", "Miss"]

FALLBACKS = ("error", "eager")


class CaptureError(PlanError):
    """Some parameters' initialization cannot be replayed from a catalog scheme (listed with
    the call and the model's function behind each), or the model's code fails on meta."""


def record_factory(factory: Callable[[], nn.Module], example_inputs: Any = None,
                   what: str = "ti.capture") -> tuple[nn.Module, Recorder]:
    """Construct ``factory()`` on meta while recording; return the model and the recording."""
    recorder = Recorder()
    model = construct(factory, example_inputs, recorder, what=what)
    return model, recorder


def native_plan(model: nn.Module, captured: list[Captured], fallback: str = "error") -> Plan:
    """The plan of what was captured of ``model``'s parameters (:func:`captured_params`).

    Raises:
        CaptureError: with ``fallback="error"``, listing every parameter that cannot be
            captured (with ``"eager"`` they get ``init="keep"`` rules instead).
    """
    if fallback not in FALLBACKS:
        raise PlanError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    misses = [c for c in captured if c.init is None]
    if misses and fallback == "error":
        raise CaptureError(_report(misses, type(model).__name__))
    return plan_from(model, captured, name=f"native {type(model).__name__}")


def _report(misses: list[Captured], model: str) -> str:
    lines = [f"{c.path} {c.shape} ({c.module_type}): {c.miss.describe() if c.miss else ''}"
             for c in misses]
    return (f"the initialization of {len(misses)} parameter(s) of {model} cannot be replayed"
            " from a catalog scheme:\n  " + "\n  ".join(lines)
            + "\nGive them explicit rules (ti.capture(..., fallback='eager') + [ti.Rule(path=...,"
            " init=...)]), or pass fallback='eager' to keep the values the model's own code"
            " gives them (run for real on the CPU when built; not shard-invariant).")


def capture(
    factory_or_model: Callable[[], nn.Module] | nn.Module,
    *,
    example_inputs: Any = None,
    fallback: str = "error",
) -> Plan:
    """The plan that replays a model's own initialization, parameter by parameter.

    Args:
        factory_or_model: A callable returning the model (``lambda: GPT(config)``,
            ``lambda: AutoModel.from_config(cfg)``), constructed with its parameters on the
            meta device while its ``__init__``, ``reset_parameters``, ``post_init``/
            ``_init_weights`` (transformers), ``init_weights`` (timm) and any ``apply(fn)``
            inside the factory run and are recorded; or a model, whose modules'
            ``reset_parameters`` and model-level init (transformers ``_init_weights``, an
            ``init_weights()`` method) are run again on meta twins (a factory sees more: code
            in ``__init__`` that is not in such a method).
        example_inputs: What the forward takes, for models with lazy modules.
        fallback: ``"error"`` raises :class:`CaptureError` listing every parameter whose init
            has no catalog equivalent (a table copied in, ``orthogonal_`` of part of a
            tensor, an in-place op with no equivalent, values computed from parameters);
            ``"eager"`` gives those parameters ``init="keep"`` rules, so ``ti.build`` keeps
            the values the model's own code gives them (run for real on the CPU; recorded as
            not shard-invariant in the manifest) and ``ti.apply`` the values they have.

    Returns:
        A :class:`~torchinit.Plan` with one rule per distinct captured initializer (paths of
        repeated layers folded to ``*`` where that selects exactly the same parameters),
        labelled ``native <module type>.<function>``; serializable with ``plan.to_file``.

    Raises:
        CaptureError: see ``fallback``; also when the model's code fails on the meta device
            (naming the call and the function), unless ``fallback="eager"``, which then
            records the model constructed for real.

    Example:
        >>> factory = lambda: AutoModelForCausalLM.from_config(cfg)  # doctest: +SKIP
        >>> plan = ti.capture(factory)  # doctest: +SKIP
        >>> model = ti.build(factory, plan, seed=0)  # doctest: +SKIP
    """
    if fallback not in FALLBACKS:
        raise PlanError(f"fallback must be one of {FALLBACKS}, got {fallback!r}")
    if isinstance(factory_or_model, nn.Module):
        return native_plan(factory_or_model, captured_instance(factory_or_model), fallback)
    if not callable(factory_or_model):
        raise PlanError(f"ti.capture takes a model or a factory returning one, got"
                        f" {type(factory_or_model).__name__}")
    try:
        model, recorder = record_factory(factory_or_model, example_inputs)
    except PlanError as err:
        if fallback != "eager" or not isinstance(err, FactoryError):
            raise CaptureError(str(err)) from err
        model, recorder = _record_for_real(factory_or_model)
    return native_plan(model, captured_params(model, recorder), fallback)


def _record_for_real(factory: Callable[[], nn.Module]) -> tuple[nn.Module, Recorder]:
    """The recording of ``factory()`` constructed for real (its parameters allocated and
    initialized by its own code), for models whose code cannot run on meta."""
    recorder = Recorder()
    with torch.random.fork_rng(devices=[]), recorder:
        model = factory()
    return model, recorder
