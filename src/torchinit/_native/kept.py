"""What "keep" means for a parameter on the meta device: the model's own initialization.

A record that keeps its values (no rule matched under ``on_unmatched="keep"``/``"warn"``, or a
rule with ``init="keep"``) has nothing to keep while its parameter is on meta. It gets what the
model's own code gives it instead: the captured scheme where there is one (a keyed stream, so
shard-invariant like every rule), else *eager* values: the model constructed again with just
those parameters real, so their modules' own code runs for real on the CPU, with torch's
generator seeded from the seed. Eager values are computed in full (every rank of a sharded
model computes the whole tensor and takes its part), depend on the torch version and are not
keyed streams; the manifest says so.
"""

from __future__ import annotations

from collections.abc import Callable
from dataclasses import replace

import torch
from torch import nn

from .._construct import META, Rebuild
from ..errors import PlanError
from .._plan.manifest import Manifest, Record
from .._sharding import local_tensor
from .assemble import Captured, plan_from

__all__ = ["native_for_kept", "EAGER_NOTE"]

EAGER_NOTE = ("eager: the model's own code run for real on the CPU (torch's generator seeded"
              " from the seed); computed in full, not a keyed stream, so not shard-invariant")



def native_for_kept(
    model: nn.Module,
    manifest: Manifest,
    seed: int,
    captured: Callable[[], list[Captured]],
    again: Rebuild | None,
) -> Manifest:
    """``manifest`` with every kept record of a meta parameter given the model's own init.

    Args:
        captured: What the model's own code does to its parameters (called only if needed).
        again: Constructs the model again with the given parameters real (``None`` without a
            factory: then parameters whose init cannot be captured are an error).

    Raises:
        PlanError: naming parameters whose own init cannot be captured, when ``again`` is
            ``None``.
    """
    on_meta = {path for path, p in model.named_parameters() if local_tensor(p).device == META}
    needy = [r for r in manifest if r.kept and r.path in on_meta]
    if not needy:
        return manifest
    native = plan_from(model, captured()).with_options(on_unmatched="keep")
    theirs = native.explain(model, seed)
    replaced, eager = [], []
    for record in needy:
        own = theirs[record.path]
        if own.init is None:
            eager.append(record)
            continue
        replaced.append(replace(
            record, init=own.init, fans=own.fans, std=own.std, bound=own.bound, key=own.key,
            zero_rows=own.zero_rows, blocks=own.blocks,
            rule_label=f"{record.rule_label or 'unmatched'}: kept as {own.rule_label}",
            notes=(*record.notes, "keeps the model's own init (captured)")))
    if eager:
        replaced += _eager(model, eager, theirs, again)
    return manifest.replace_records(replaced)


def _eager(model: nn.Module, records: list[Record], theirs: Manifest,
           again: Rebuild | None) -> list[Record]:
    reasons = {r.path: theirs[r.path].rule_label or "" for r in records}
    if again is None:
        raise PlanError(
            "these parameters keep their values, but they are on the meta device and their"
            " module's own init cannot be captured:\n  "
            + "\n  ".join(f"{p}: {why}" for p, why in reasons.items())
            + "\nBuild the model with ti.build(factory, plan), which runs that code for real,"
            " or give them rules")
    params = dict(model.named_parameters())
    real = dict(again([params[r.path] for r in records]).named_parameters())
    out = []
    for record in records:
        value = real.get(record.path)
        if value is None or value.device == META or tuple(value.shape) != record.shape:
            raise PlanError(f"{record.path}: constructing the model again did not give it real"
                            " values of its shape; give it a rule")
        out.append(replace(record, values=value.detach().to(torch.float64).clone(),
                           rule_label=f"eager ({reasons[record.path]})",
                           notes=(*record.notes, EAGER_NOTE)))
    return out
