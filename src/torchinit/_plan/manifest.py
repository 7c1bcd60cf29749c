"""The manifest: what a plan does to every parameter of a model, before and after it happens."""

from __future__ import annotations

import hashlib
import json
import math
from collections.abc import Callable, Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field, replace
from typing import TYPE_CHECKING, Any

import torch
from torch import nn

from .._fans import Fans
from .._json import json_number
from ..errors import ConfigError
from ..initializers import Initializer
from .._streams import Key, normalize_region, region_shape
from .._streams.regions import block_rows

if TYPE_CHECKING:
    from .._progress import Progress

__all__ = ["Manifest", "Record", "BlockEntry", "last_manifest", "remember", "remembered"]


@dataclass(frozen=True)
class BlockEntry:
    """A block of a fused parameter whose rows follow another rule than the whole parameter."""

    name: str
    start: int
    stop: int
    rule: int
    rule_label: str
    init: Initializer
    fans: Fans | None
    std: float | None  # None for a block with no elements, as for a record

    def to_dict(self) -> dict[str, Any]:
        return {"name": self.name, "rows": [self.start, self.stop], "rule": self.rule,
                "rule_label": self.rule_label, "init": self.init.to_config(),
                "fans": self.fans.to_dict() if self.fans else None, "std": json_number(self.std)}


@dataclass(frozen=True)
class Record:
    """What happens to one parameter (one tensor, under its canonical path).

    ``init is None`` means the parameter keeps its values (no rule matched and the plan allows
    it). ``lr_scale`` and ``weight_decay_scale`` multiply the optimizer's base learning rate and
    weight decay for the parameter (set by a width-aware parametrization such as μP, whose class
    for the parameter is ``width``; read by :func:`torchinit.param_groups`); they do not change
    the values. ``scale`` is a data-dependent multiplier (LSUV) applied after sampling, and ``values``
    data-dependent values (the output-bias prior), or the values the model's own code gave
    (eager, a float64 tensor), that replace sampling, so replaying the record reproduces the
    weights without data.
    """

    path: str
    shape: tuple[int, ...]
    dtype: str
    module_type: str
    aliases: tuple[str, ...] = ()
    roles: tuple[str, ...] = ()
    matched: tuple[int, ...] = ()
    alias_matched: tuple[int, ...] = ()
    rule: int | None = None
    rule_label: str | None = None
    init: Initializer | None = None
    fans: Fans | None = None
    std: float | None = None
    bound: float | None = None
    key: Key | None = None
    blocks: tuple[BlockEntry, ...] = ()
    tags: tuple[str, ...] = ()
    zero_rows: tuple[int, ...] = ()
    scale: float = 1.0
    notes: tuple[str, ...] = ()
    values: tuple[float, ...] | torch.Tensor | None = None
    checkpoint: tuple[str, str] | None = None
    lr_scale: float = 1.0
    weight_decay_scale: float = 1.0
    width: str | None = None
    reader: Callable[..., torch.Tensor] | None = field(default=None, compare=False, repr=False)

    @property
    def kept(self) -> bool:
        """No rule matched: the parameter keeps all its values."""
        return self.init is None and not self.blocks and self.values is None \
            and self.checkpoint is None

    @property
    def source(self) -> str:
        """Where the values come from: ``"checkpoint"`` (``checkpoint`` names the file and
        key), ``"plan"`` (the rule), or ``"model"`` (kept, or the model's own code run)."""
        if self.checkpoint is not None:
            return "checkpoint"
        if self.init is not None or self.blocks or (self.values is not None
                                                    and self.rule is not None):
            return "plan"
        return "model"

    def sample(
        self,
        region: Sequence[slice] | None = None,
        dtype: torch.dtype | None = None,
        device: torch.device | str | None = None,
        current: torch.Tensor | None = None,
        out: torch.Tensor | None = None,
    ) -> torch.Tensor:
        """The values this record gives the parameter (or a region of it).

        ``current`` holds the region's present values; it is needed (and copied, not changed)
        when only some blocks of a fused parameter have a rule and the others keep their values.
        ``out`` is a tensor of the region's shape to write the values into.
        """
        if self.kept:
            raise ConfigError(f"parameter {self.path!r} keeps its values; there is nothing to"
                              " sample")
        norm = normalize_region(self.shape, region)
        if out is not None:
            dtype, device = out.dtype, out.device
        if self.checkpoint is not None:
            if self.reader is None:
                raise ConfigError(f"parameter {self.path!r} is loaded from {self.checkpoint[0]}"
                                  f" (key {self.checkpoint[1]!r}); pass checkpoint= again to"
                                  " read it")
            if out is None:
                out = torch.empty(region_shape(norm), dtype=dtype or torch.float32,
                                  device=device)
            return self.reader(norm, out)
        if self.values is not None:  # data-dependent values (the output-bias prior)
            given = torch.as_tensor(self.values, dtype=torch.float64).reshape(self.shape)[norm]
            if out is None:
                return given.to(dtype=dtype, device=device)
            return out.copy_(given)
        assert self.key is not None
        if self.init is not None:
            out = self.init.sample(self.shape, self.key, self.fans, norm, dtype, device, out=out)
        elif current is None:
            raise ConfigError(f"parameter {self.path!r} has rules for some blocks only; pass"
                              " current= (its present values) to sample it")
        elif out is None:
            out = current.detach().to(dtype=dtype, device=device, copy=True)
        else:
            out.copy_(current.detach())
        rows = range(norm[0].start, norm[0].stop, norm[0].step) if self.shape else range(0)
        for block in self.blocks:
            found = block_rows(rows, block.start, block.stop)
            if found is None:
                continue
            local, chosen = found
            out[local] = block.init.sample(self.shape, self.key, block.fans,
                                           (chosen, *norm[1:]), dtype, device)
        for z in self.zero_rows:
            if z in rows:
                out[rows.index(z)] = 0
        if self.scale != 1.0:
            out.mul_(self.scale)
        assert tuple(out.shape) == region_shape(norm)
        return out

    def to_dict(self) -> dict[str, Any]:
        """JSON-safe form of everything in the record."""
        return {
            "path": self.path,
            "aliases": list(self.aliases),
            "shape": list(self.shape),
            "dtype": self.dtype,
            "module_type": self.module_type,
            "roles": list(self.roles),
            "matched": list(self.matched),
            "alias_matched": list(self.alias_matched),
            "rule": self.rule,
            "rule_label": self.rule_label,
            "init": self.init.to_config() if self.init else None,
            "fans": self.fans.to_dict() if self.fans else None,
            "std": json_number(self.std),
            "bound": json_number(self.bound),
            "key": [self.key.seed, self.key.path] if self.key else None,
            "blocks": [b.to_dict() for b in self.blocks],
            "tags": list(self.tags),
            "zero_rows": list(self.zero_rows),
            "scale": self.scale,
            "lr_scale": self.lr_scale,
            "weight_decay_scale": self.weight_decay_scale,
            "width": self.width,
            "notes": list(self.notes),
            "source": self.source,
            "checkpoint": list(self.checkpoint) if self.checkpoint else None,
            "values": None if self.values is None else (
                self.values.reshape(-1).tolist() if isinstance(self.values, torch.Tensor)
                else list(self.values)),
        }

    @classmethod
    def from_dict(cls, d: dict[str, Any]) -> Record:
        """The record of a :meth:`to_dict` form, every field checked.

        Raises:
            ConfigError: naming the field that is missing or has the wrong type.
        """
        from .manifest_json import record_from_dict

        return record_from_dict(d)

    def identity(self) -> dict[str, Any]:
        """The fields that decide the values (what the digest hashes)."""
        d = self.to_dict()
        return {k: d[k] for k in ("path", "shape", "dtype", "init", "fans", "key", "blocks",
                                  "zero_rows", "scale", "values", "checkpoint")}


@dataclass(frozen=True)
class Manifest:
    """One :class:`Record` per parameter, in ``named_parameters()`` order.

    Records are indexed by path and alias when the manifest is made, so ``manifest[path]``
    and ``path in manifest`` take constant time.

    Raises:
        ConfigError: if two records claim one path (as path or alias).
    """

    records: tuple[Record, ...]
    seed: int = 0
    data: dict[str, Any] = field(default_factory=dict)
    _index: dict[str, int] = field(default_factory=dict, init=False, repr=False, compare=False)

    def __post_init__(self) -> None:
        records = tuple(self.records)
        index: dict[str, int] = {}
        for i, record in enumerate(records):
            for path in (record.path, *record.aliases):
                if index.setdefault(path, i) != i:
                    raise ConfigError(f"manifest: path {path!r} names records[{index[path]}] and"
                                      f" records[{i}]; each parameter path names one record")
        object.__setattr__(self, "records", records)
        object.__setattr__(self, "_index", index)

    def __iter__(self) -> Iterator[Record]:
        return iter(self.records)

    def __len__(self) -> int:
        return len(self.records)

    def __getitem__(self, path: str) -> Record:
        """The record of ``path`` (its canonical path or an alias)."""
        return self.records[self._index[path]]

    def __contains__(self, path: object) -> bool:
        return path in self._index

    def paths(self) -> list[str]:
        return [r.path for r in self.records]

    def replace_records(self, records: Iterable[Record]) -> Manifest:
        """A copy with the records of the given paths replaced, in one pass (used by the
        data-dependent steps).

        Raises:
            KeyError: for a record whose path the manifest does not have.
        """
        new = list(self.records)
        for record in records:
            new[self._index[record.path]] = record
        return replace(self, records=tuple(new))

    def replace_record(self, record: Record) -> Manifest:
        """A copy with the record of ``record.path`` replaced (see :meth:`replace_records`)."""
        return self.replace_records((record,))

    # -- writing ---------------------------------------------------------------------------------
    def write(
        self,
        target: nn.Module | Mapping[str, torch.Tensor],
        *,
        regions: Mapping[str, Sequence[slice] | None] | None = None,
        out: Callable[[Record, torch.Tensor], torch.Tensor] | None = None,
        progress: Progress | None = None,
    ) -> dict[str, torch.Tensor]:
        """Write every record's values into its tensor: the one place that writes parameter
        storage (``ti.apply``, ``ti.build``, ``ti.materialize``, ``Plan.as_fn``, LSUV, the
        output-bias prior, ``Initializer.fill_`` and ``torchinit.functional`` call it).

        Every target is checked before the first write (see :meth:`check`). Each tensor is
        then written once, under ``no_grad``; in place, a copy of it is taken just before, and
        if anything fails or is interrupted every tensor already written is restored, so the
        tensors are bitwise as before (the error gets a note naming the parameter).
        Zero-size tensors are left alone with a warning; records that keep their values are
        not written.

        Args:
            target: A model (the manifest must describe exactly its parameters) or a mapping
                from parameter path (or alias) to tensor, for some of the records.
            regions: The global region each tensor holds, by path (default: a DTensor's local
                shard, else the whole tensor).
            out: Allocation hook ``out(record, tensor) -> storage``: the values go into the new
                storage it returns (of the tensor's local shape), and the given tensors are not
                touched; the caller installs the storage.
            progress: A progress bar advanced by the bytes of each tensor.

        Returns:
            Path -> the tensor that holds the values (the local shard, or the new storage).
            Written into a model, the manifest is also what :func:`last_manifest` returns for
            it.

        Raises:
            WriteError: (before any write) naming every tensor that cannot be written.
            PlanError: for a model the manifest does not describe.
        """
        from .write import write

        written = write(self, target, regions, out, progress)
        if isinstance(target, nn.Module):
            remember(target, self)
        return written

    def check(
        self,
        target: nn.Module | Mapping[str, torch.Tensor],
        *,
        regions: Mapping[str, Sequence[slice] | None] | None = None,
    ) -> None:
        """Raise what :meth:`write` would raise before its first write, and write nothing:
        a tensor on the meta device where values are expected, an inference tensor outside
        ``torch.inference_mode()``, self-overlapping storage (``expand``), a non-floating
        dtype, a region that does not fit, or values beyond the dtype's range (bounded
        schemes by their bound, normals by ``|mean| + 10 std``).

        Raises:
            WriteError: naming every offender, its path, shape, initializer and what would work.
        """
        from .write import check

        check(self, target, regions)

    # -- output ----------------------------------------------------------------------------------
    def summary(self) -> dict[str, Any]:
        """Tensors and bytes by source (``"checkpoint"``, ``"plan"``, ``"model"``), with the
        checkpoint keys the model does not have (``strict=False``)."""
        out: dict[str, Any] = {s: {"tensors": 0, "bytes": 0} for s in ("checkpoint", "plan",
                                                                       "model")}
        for r in self.records:
            out[r.source]["tensors"] += 1
            out[r.source]["bytes"] += math.prod(r.shape) * getattr(torch, r.dtype).itemsize
        out["unexpected_keys"] = list(self.data.get("checkpoint", {}).get("unexpected", []))
        return out

    def to_records(self) -> list[dict[str, Any]]:
        return [r.to_dict() for r in self.records]

    def to_json(self, indent: int | None = 2) -> str:
        return json.dumps({"seed": self.seed, "records": self.to_records(), "data": self.data},
                          indent=indent)

    @classmethod
    def from_json(cls, text: str) -> Manifest:
        """The manifest of :meth:`to_json` text.

        Raises:
            ConfigError: for text that is not such a manifest, naming the field path
                (e.g. ``records[3].shape``).
        """
        from .manifest_json import manifest_from_json

        return manifest_from_json(text)

    def digest(self) -> str:
        """SHA-256 over what decides the values of every parameter, sorted by path: equal
        digests mean equal initialization, whatever the construction order or process."""
        body = sorted((r.identity() for r in self.records), key=lambda d: d["path"])
        return hashlib.sha256(json.dumps(body, sort_keys=True).encode()).hexdigest()

    def diff(self, other: Manifest) -> list[str]:
        """Human-readable differences from ``other`` (empty when the digests are equal)."""
        mine = {r.path: r.identity() for r in self.records}
        theirs = {r.path: r.identity() for r in other.records}
        out = [f"- {p}: only in this manifest" for p in sorted(set(mine) - set(theirs))]
        out += [f"+ {p}: only in the other manifest" for p in sorted(set(theirs) - set(mine))]
        for p in sorted(set(mine) & set(theirs)):
            for k, v in mine[p].items():
                if theirs[p][k] != v:
                    out.append(f"~ {p}: {k} {v!r} -> {theirs[p][k]!r}")
        return out

    def table(self) -> str:
        """A fixed-width table for people: path, shape, initializer, fans, std, rule."""
        scaled = any(r.width is not None or r.lr_scale != 1.0 for r in self.records)
        rows: list[tuple[str, ...]] = [
            ("parameter", "shape", "init", "fans in/out", "std", "rule")]
        if scaled:
            rows[0] += ("lr",)
        for r in self.records:
            init = "(kept)" if r.init is None else _short(r.init.to_config())
            if r.checkpoint is not None:
                init = f"checkpoint[{r.checkpoint[1]}]"
            if r.blocks:
                init += " + " + ", ".join(f"{b.name}:{_short(b.init.to_config())}"
                                          for b in r.blocks)
            if r.zero_rows:
                init += f" (rows {list(r.zero_rows)} = 0)"
            if r.scale != 1.0:
                init += f" x{r.scale:.4g}"
            fans = "-" if r.fans is None else f"{r.fans.fan_in}/{r.fans.fan_out}" + (
                "*" if r.fans.assumed else "")
            std = "-" if r.std is None else f"{r.std * r.scale:.4g}"
            path = r.path + (f" (= {', '.join(r.aliases)})" if r.aliases else "")
            row: tuple[str, ...] = (path, "x".join(map(str, r.shape)) or "scalar", init, fans,
                                    std, r.rule_label or "-")
            if scaled:
                row += (f"x{r.lr_scale:.4g}" + (f" ({r.width})" if r.width else ""),)
            rows.append(row)
        widths = [max(len(row[i]) for row in rows) for i in range(len(rows[0]))]
        lines = ["  ".join(c.ljust(w) for c, w in zip(row, widths)).rstrip() for row in rows]
        lines.insert(1, "  ".join("-" * w for w in widths))
        if any(r.fans is not None and r.fans.assumed for r in self.records):
            lines.append("* fans assumed from torch's axis order (no layout registered)")
        return "\n".join(lines)


_ATTRIBUTE = "torchinit_manifest"


def remember(model: nn.Module, manifest: Manifest) -> None:
    """Keep ``manifest`` on ``model`` as the record of its last initialization."""
    object.__setattr__(model, _ATTRIBUTE, manifest)


def remembered(model: nn.Module) -> Manifest | None:
    """The manifest :func:`remember` kept on ``model``, if any."""
    manifest = model.__dict__.get(_ATTRIBUTE)
    return manifest if isinstance(manifest, Manifest) else None


def last_manifest(model: nn.Module) -> Manifest:
    """The manifest of the last initialization of ``model`` by ``ti.apply``, ``ti.build``,
    ``ti.materialize``, LSUV or the output-bias prior.

    One answer for every entry point: ``apply`` and ``materialize`` also return it, and
    ``build`` returns the model (what a factory's caller wants), so this is how a built
    model's manifest is read. It is kept as the attribute ``model.torchinit_manifest``.

    Raises:
        ConfigError: if torchinit has not initialized ``model``.
    """
    manifest = remembered(model)
    if manifest is None:
        raise ConfigError(f"{type(model).__name__} has not been initialized by torchinit"
                          " (ti.apply, ti.build or ti.materialize), so it has no manifest")
    return manifest


def _short(config: dict[str, Any]) -> str:
    args = ", ".join(f"{k}={v:.4g}" if isinstance(v, float) else f"{k}={v}"
                     for k, v in config.items() if k != "name")
    return f"{config['name']}({args})"
