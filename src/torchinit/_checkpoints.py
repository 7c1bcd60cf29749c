"""Checkpoints beside a plan: what a file has is read, only what it lacks is initialized.

A checkpoint is a ``.safetensors`` file, a sharded safetensors index
(``model.safetensors.index.json``, whose ``weight_map`` names the file of every key), or a state
dict. :func:`open_checkpoint` reads only the headers; :meth:`Checkpoint.read` reads the bytes of
one region of one tensor (a whole tensor, or the shard a rank holds) with ``pread``: whole rows
in the file's dtype straight into the parameter's memory (no second copy), anything else
(another dtype, a column shard) through the safetensors package's ``"pread"`` backend in row
blocks of at most :data:`BLOCK_BYTES`, converted block by block. Nothing is memory-mapped, so the
file's pages never count against the process.

:func:`resolve` combines a plan with a checkpoint into one manifest: every parameter the
checkpoint has is loaded (``record.source == "checkpoint"``, with the file and key), every
other one is initialized by the plan; everything is checked before anything is allocated.
"""

from __future__ import annotations

import ctypes
import json
import math
import os
import sys
from collections.abc import Callable, Iterable, Mapping, Sequence
from dataclasses import dataclass, replace
from typing import Any, Union, cast

import torch
from torch import nn

from .errors import CheckpointError
from ._plan.manifest import Manifest, Record
from ._plan.plan import Plan

__all__ = ["Checkpoint", "Entry", "open_checkpoint", "resolve", "BLOCK_BYTES", "KeyMap"]

BLOCK_BYTES = 64 * 2**20
"""The most bytes read (and converted) at once: a tensor is read in row blocks of this size."""

KeyMap = Union[Mapping[str, str], Callable[[str], Union[str, None]], None]

_DTYPES = {"F64": torch.float64, "F32": torch.float32, "F16": torch.float16,
           "BF16": torch.bfloat16, "I64": torch.int64, "I32": torch.int32, "I16": torch.int16,
           "I8": torch.int8, "U8": torch.uint8, "BOOL": torch.bool}
for _name, _attr in (("F8_E4M3", "float8_e4m3fn"), ("F8_E5M2", "float8_e5m2")):
    if hasattr(torch, _attr):
        _DTYPES[_name] = getattr(torch, _attr)


@dataclass(frozen=True)
class Entry:
    """One tensor of a checkpoint: the file that holds it, its key there, shape and dtype."""

    file: str
    key: str
    shape: tuple[int, ...]
    dtype: torch.dtype
    offset: int | None = None  # where its bytes start in the file (safetensors files)


class Checkpoint:
    """The tensors of a checkpoint by *model* key (after ``key_map``), read on demand.

    Use as a context manager (or call :meth:`close`) to release the open files.
    """

    def __init__(self, entries: dict[str, Entry], opener: Callable[[str], Any],
                 tensors: Mapping[str, torch.Tensor] | None = None) -> None:
        self.entries = entries
        self._opener = opener
        self._open: dict[str, Any] = {}
        self._maps: dict[str, torch.UntypedStorage] = {}
        self._tensors = tensors

    def __enter__(self) -> Checkpoint:
        return self

    def __exit__(self, *exc: Any) -> None:
        self.close()

    def close(self) -> None:
        """Close the open files (tensors mapped from them keep their mappings)."""
        for handle in self._open.values():
            handle.__exit__(None, None, None)
        self._open.clear()
        self._maps.clear()

    def mapped(self, entry: Entry, dtype: torch.dtype) -> torch.Tensor | None:
        """``entry`` as a tensor over a private (copy-on-write) memory map of its file: no
        bytes are read or copied until used, and writes (training) go to private pages, never
        to the file. ``None`` where that cannot be (another dtype, misaligned bytes, a state
        dict)."""
        itemsize = entry.dtype.itemsize
        if entry.offset is None or dtype != entry.dtype or entry.offset % itemsize \
                or sys.byteorder != "little":
            return None
        if entry.file not in self._maps:
            # the stub types from_file as returning any storage; on UntypedStorage it is one
            self._maps[entry.file] = cast(torch.UntypedStorage, torch.UntypedStorage.from_file(
                entry.file, shared=False, nbytes=os.path.getsize(entry.file)))
        strides = [1] * len(entry.shape)
        for i in range(len(entry.shape) - 2, -1, -1):
            strides[i] = strides[i + 1] * max(entry.shape[i + 1], 1)
        return torch.empty(0, dtype=dtype).set_(self._maps[entry.file], entry.offset // itemsize,
                                                entry.shape, tuple(strides))

    def _slice(self, entry: Entry) -> Any:
        if entry.file not in self._open:
            handle = self._opener(entry.file)
            self._open[entry.file] = handle.__enter__()
        return self._open[entry.file].get_slice(entry.key)

    def read(self, entry: Entry, region: Sequence[slice], out: torch.Tensor) -> torch.Tensor:
        """Read ``region`` of ``entry`` into ``out`` (converting its dtype), in row blocks.

        Raises:
            CheckpointError: naming the file and key when the bytes cannot be read (a
                truncated or corrupt file).
        """
        region = tuple(region)
        if self._tensors is not None:
            return out.copy_(self._tensors[entry.key][region])
        if _direct(entry, region, out):
            return self._read_into(entry, region, out)
        if not entry.shape:
            return out.copy_(self._read(entry, ()))
        rows = region[0]
        row_bytes = math.prod(s.stop - s.start for s in region[1:]) * entry.dtype.itemsize
        step = max(1, BLOCK_BYTES // max(row_bytes, 1))
        count = len(range(rows.start, rows.stop, rows.step or 1))
        for first in range(0, count, step):
            last = min(count, first + step)
            start = rows.start + first * (rows.step or 1)
            stop = rows.start + (last - 1) * (rows.step or 1) + 1
            block = (slice(start, stop, rows.step), *region[1:])
            out[first:last].copy_(self._read(entry, block))
        return out

    def _read_into(self, entry: Entry, region: tuple[slice, ...],
                   out: torch.Tensor) -> torch.Tensor:
        """Whole rows of the file's dtype: ``pread`` straight into ``out``'s memory."""
        assert entry.offset is not None
        rows = region[0] if region else slice(0, 1)
        row_bytes = out.element_size() * math.prod(entry.shape[1:])
        start = entry.offset + rows.start * row_bytes
        total = out.numel() * out.element_size()
        buffer = (ctypes.c_char * total).from_address(out.data_ptr()) if total else b""
        view = memoryview(buffer).cast("B")
        done = 0
        with open(entry.file, "rb", buffering=0) as f:
            while done < total:
                n = os.preadv(f.fileno(), [view[done:done + _PREAD_BYTES]], start + done)
                if n <= 0:
                    raise CheckpointError(f"checkpoint {entry.file}: {entry.key!r} ends early"
                                          f" ({done} of {total} bytes); the file is truncated")
                done += n
        return out

    def _read(self, entry: Entry, region: tuple[slice, ...]) -> torch.Tensor:
        try:
            # safetensors' slices opened with framework="pt" give tensors
            tensor: torch.Tensor = \
                self._slice(entry)[region] if region else self._slice(entry)[...]
            return tensor
        except Exception as err:  # safetensors' own errors, I/O errors
            raise CheckpointError(f"checkpoint {entry.file}: cannot read {entry.key!r}"
                                  f" ({type(err).__name__}: {err}); the file may be truncated or"
                                  " corrupt") from None


_PREAD_BYTES = 2**30


def _direct(entry: Entry, region: tuple[slice, ...], out: torch.Tensor) -> bool:
    """Whether ``region`` of ``entry`` is whole contiguous rows in the file's dtype that can be
    read straight into ``out``."""
    if entry.offset is None or out.dtype != entry.dtype or not out.is_contiguous() \
            or out.device.type != "cpu" or sys.byteorder != "little":
        return False
    if entry.shape and region and region[0].step not in (None, 1):
        return False
    return all(s.start == 0 and s.stop == n and s.step in (None, 1)
               for s, n in zip(region[1:], entry.shape[1:]))


def _map_key(key: str, key_map: KeyMap) -> str | None:
    if key_map is None:
        return key
    if callable(key_map):
        mapped = key_map(key)
        if mapped is not None and not isinstance(mapped, str):
            raise CheckpointError(f"key_map returned {type(mapped).__name__} for {key!r};"
                                  " it must return the model's key (a str) or None to skip it")
        return mapped
    best = max((p for p in key_map if key.startswith(p)), key=len, default=None)
    return key if best is None else key_map[best] + key[len(best):]


def _safetensors() -> Any:
    try:
        import safetensors
    except ImportError:
        raise CheckpointError("reading .safetensors checkpoints needs the safetensors package:"
                              " pip install 'torchinit[checkpoint]'") from None
    return safetensors


def _data_offsets(path: str) -> dict[str, int]:
    """Where each tensor's bytes start, from the file's header (the safetensors format: an
    8-byte little-endian header length, a JSON header with ``data_offsets`` relative to the end
    of the header). The package has already validated the header when this runs."""
    with open(path, "rb") as f:
        size = int.from_bytes(f.read(8), "little")
        header = json.loads(f.read(size))
    return {k: 8 + size + int(v["data_offsets"][0]) for k, v in header.items()
            if k != "__metadata__"}


def _file_entries(path: str, keys: Iterable[str] | None = None) -> dict[str, Entry]:
    safetensors = _safetensors()
    try:
        with safetensors.safe_open(path, framework="pt", backend="pread") as f:
            wanted = list(f.keys()) if keys is None else list(keys)
            offsets = _data_offsets(path)
            out = {}
            for key in wanted:
                sl = f.get_slice(key)
                dtype = sl.get_dtype()
                if dtype not in _DTYPES:
                    raise CheckpointError(f"checkpoint {path}: {key!r} has dtype {dtype}, which"
                                          " torchinit cannot read")
                out[key] = Entry(path, key, tuple(sl.get_shape()), _DTYPES[dtype],
                                 offsets.get(key))
            return out
    except CheckpointError:
        raise
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint {path} does not exist") from None
    except Exception as err:
        raise CheckpointError(f"checkpoint {path} is not a readable safetensors file"
                              f" ({type(err).__name__}: {err}); it may be truncated or"
                              " corrupt") from None


def _index_entries(path: str) -> dict[str, Entry]:
    try:
        with open(path, encoding="utf-8") as f:
            weight_map = json.load(f)["weight_map"]
        if not isinstance(weight_map, dict):
            raise TypeError("weight_map is not a mapping")
    except FileNotFoundError:
        raise CheckpointError(f"checkpoint index {path} does not exist") from None
    except (ValueError, KeyError, TypeError) as err:
        raise CheckpointError(f"checkpoint index {path} is not a safetensors index (a JSON"
                              f" object with a 'weight_map' of key -> file): {err}") from None
    folder = os.path.dirname(os.path.abspath(path))
    by_file: dict[str, list[str]] = {}
    for key, name in weight_map.items():
        if not isinstance(name, str) or os.path.isabs(name) or ".." in name.split("/"):
            raise CheckpointError(f"checkpoint index {path}: {key!r} names the file {name!r};"
                                  " files must be relative to the index, inside its folder")
        by_file.setdefault(os.path.join(folder, name), []).append(key)
    entries: dict[str, Entry] = {}
    for file, keys in by_file.items():
        entries.update(_file_entries(file, keys))
    return entries


def open_checkpoint(source: str | os.PathLike[str] | Mapping[str, torch.Tensor],
                    key_map: KeyMap = None) -> Checkpoint:
    """The checkpoint ``source`` (a ``.safetensors`` file, a ``*.index.json`` of a sharded one,
    or a state dict), its keys renamed by ``key_map``: a dict of key prefixes to replace
    (``{"module.": ""}``, the longest matching prefix wins) or a callable returning the model's
    key (``None`` drops the key).

    Raises:
        CheckpointError: for a missing, truncated or corrupt file (naming it), or two keys that
            map to the same model key.
    """
    if isinstance(source, Mapping):
        bad = [k for k, v in source.items() if not isinstance(v, torch.Tensor)]
        if bad:
            raise CheckpointError(f"a state dict checkpoint maps keys to tensors; {bad[:3]} are"
                                  " not tensors")
        raw = {k: Entry("<state dict>", k, tuple(v.shape), v.dtype) for k, v in source.items()}
        tensors: Mapping[str, torch.Tensor] | None = source
    else:
        path = os.fspath(source)
        raw = _index_entries(path) if path.endswith(".json") else _file_entries(path)
        tensors = None
    entries: dict[str, Entry] = {}
    for key, entry in raw.items():
        mapped = _map_key(key, key_map)
        if mapped is None:
            continue
        if mapped in entries:
            raise CheckpointError(f"checkpoint keys {entries[mapped].key!r} and {key!r} both map"
                                  f" to {mapped!r}; fix key_map")
        entries[mapped] = entry

    def opener(file: str) -> Any:
        return _safetensors().safe_open(file, framework="pt", backend="pread")

    return Checkpoint(entries, opener, tensors)


def _persistent_buffers(model: nn.Module) -> dict[str, torch.Tensor]:
    out = {}
    for path, module in model.named_modules():
        for name, buf in module._buffers.items():
            if buf is not None and name not in module._non_persistent_buffers_set:
                out[f"{path}.{name}" if path else name] = buf
    return out


def _mismatch(path: str, entry: Entry, shape: tuple[int, ...], dtype: torch.dtype) -> str | None:
    if entry.shape != shape:
        return (f"{path}: the checkpoint's {entry.key!r} has shape {entry.shape}, the model"
                f" {shape}; rename keys with key_map=, or give {path!r} a rule and leave it out"
                " of the checkpoint (key_map returning None)")
    if entry.dtype.is_floating_point != dtype.is_floating_point or (
            not dtype.is_floating_point and entry.dtype != dtype):
        return (f"{path}: the checkpoint's {entry.key!r} is {entry.dtype}, the model's tensor"
                f" {dtype}; only floating dtypes convert into each other")
    return None


def resolve(plan: Plan, model: nn.Module, seed: int, checkpoint: Checkpoint,
            strict: bool = True) -> tuple[Manifest, dict[str, Entry]]:
    """The manifest of ``model`` with every parameter ``checkpoint`` has loaded from it and the
    rest initialized by ``plan``, and the persistent buffers to load.

    Raises:
        CheckpointError: listing every problem at once, before anything is allocated: shape or
            dtype mismatches, keys the model does not have (unless ``strict=False``), rules
            that would only ever write loaded parameters (unless they say ``override=True``),
            parameters neither loaded nor matched by a rule under ``on_unmatched="error"``.
    """
    manifest = plan.with_options(on_unmatched="keep").explain(model, seed)
    params = dict(model.named_parameters())
    buffers = _persistent_buffers(model)
    entries = checkpoint.entries
    problems: list[str] = []
    used: set[str] = set()
    records: list[Record] = []
    for record in manifest:
        name = next((p for p in (record.path, *record.aliases) if p in entries), None)
        if name is None:
            continue
        used.add(name)
        rule = plan.rules[record.rule] if record.rule is not None else None
        if rule is not None and rule.override:
            records.append(replace(record, notes=(
                *record.notes, f"rule #{record.rule} overrides the checkpoint's {name!r}")))
            continue
        entry = entries[name]
        why = _mismatch(record.path, entry, record.shape, params[record.path].dtype)
        if why:
            problems.append(why)
            continue
        records.append(replace(
            record, init=None, fans=None, std=None, bound=None, key=None, blocks=(),
            zero_rows=(), rule=None, rule_label=f"checkpoint {os.path.basename(entry.file)}",
            checkpoint=(entry.file, entry.key),
            reader=_reader(checkpoint, entry), notes=(*record.notes, _loaded_note(record, rule))))
    loaded = {r.path for r in records if r.checkpoint is not None}
    problems += _only_loaded_rules(plan, manifest, loaded)
    load_buffers: dict[str, Entry] = {}
    for path, buf in buffers.items():
        if path in entries:
            used.add(path)
            why = _mismatch(path, entries[path], tuple(buf.shape), buf.dtype)
            if why:
                problems.append(why)
            else:
                load_buffers[path] = entries[path]
    unexpected = sorted(set(entries) - used)
    if unexpected and strict:
        problems.append(f"{len(unexpected)} checkpoint key(s) the model does not have:"
                        f" {_listed(unexpected)}; rename them with key_map=, or pass strict=False"
                        " to ignore them (they are listed in the manifest)")
    missing = [r for r in manifest if r.path not in loaded and r.init is None and r.rule is None
               and not r.blocks]
    if missing and plan.on_unmatched == "error":
        problems.append(f"{len(missing)} parameter(s) neither in the checkpoint nor matched by a"
                        f" rule: {_listed([r.path for r in missing])}; add rules for them, or use"
                        " on_unmatched='keep' (the model's own init)")
    if problems:
        raise CheckpointError("the checkpoint cannot be loaded into this model (nothing was"
                              " allocated):\n- " + "\n- ".join(problems))
    data = {**manifest.data, "checkpoint": {"unexpected": unexpected}} if unexpected \
        else manifest.data
    return replace(manifest.replace_records(records), data=data), load_buffers


def _listed(items: list[str], most: int = 20) -> str:
    more = f" and {len(items) - most} more" if len(items) > most else ""
    return ", ".join(items[:most]) + more


def _loaded_note(record: Record, rule: Any) -> str:
    if rule is None:
        return "loaded from the checkpoint"
    return f"loaded from the checkpoint; rule #{record.rule} ({rule.describe()}) not used"


def _only_loaded_rules(plan: Plan, manifest: Manifest, loaded: set[str]) -> list[str]:
    """Rules (not optional, no ``override``) whose every matched parameter is loaded: they
    would only ever write what the checkpoint has."""
    matched: dict[int, list[str]] = {}
    for record in manifest:
        for i in (*record.matched, *record.alias_matched):
            matched.setdefault(i, []).append(record.path)
    out = []
    for i, paths in sorted(matched.items()):
        rule = plan.rules[i]
        if rule.optional or rule.override or not all(p in loaded for p in paths):
            continue
        out.append(f"rule #{i} ({rule.describe()}) matches only parameters the checkpoint has"
                   f" ({_listed(paths, 5)}); it would overwrite them: add override=True to"
                   " re-initialize them, or remove the rule")
    return out


class _Source:
    """A record's reader: reads a region of its entry into a tensor (nothing to read when the
    tensor is the entry's own memory map, see :meth:`mapped`)."""

    def __init__(self, checkpoint: Checkpoint, entry: Entry) -> None:
        self.checkpoint, self.entry = checkpoint, entry
        self._view: torch.Tensor | None = None

    def mapped(self, dtype: torch.dtype) -> torch.Tensor | None:
        self._view = self.checkpoint.mapped(self.entry, dtype)
        return self._view

    def __call__(self, region: Sequence[slice], out: torch.Tensor) -> torch.Tensor:
        view = self._view
        if view is not None and out.data_ptr() == view.data_ptr() and out.shape == view.shape:
            return out  # the parameter is the file's mapping: its values are there
        return self.checkpoint.read(self.entry, region, out)


def _reader(checkpoint: Checkpoint, entry: Entry) -> _Source:
    return _Source(checkpoint, entry)


def load_buffers(model: nn.Module, checkpoint: Checkpoint, entries: Mapping[str, Entry]) -> None:
    """Read the persistent buffers the checkpoint has into the model's (real) buffers."""
    with torch.no_grad():
        for path, entry in entries.items():
            owner, _, name = path.rpartition(".")
            buf = model.get_submodule(owner)._buffers[name]
            assert buf is not None  # a persistent buffer in the checkpoint's keys is a tensor
            checkpoint.read(entry, tuple(slice(0, s) for s in buf.shape), buf)
