"""The write audit: which parameters and buffers a block of code leaves uninitialized, and which
it writes more than once.

:class:`WriteAudit` watches every tensor operation in the block (a ``TorchDispatchMode``) and
every export of a tensor's memory to NumPy (a ``TorchFunctionMode``):

* **Uninitialized memory.** Every tensor allocated without values in the block (``empty``,
  ``empty_like``, ``empty_strided``, ``new_empty``..., as ``Module.to_empty`` does) is filled
  with a poison pattern right after allocation: a signalling-NaN bit pattern for floating
  dtypes (``0x7FA5A5A5`` for 4-byte elements, ``0x7FF5A5A5A5A5A5A5`` for 8, ``0x7FA5`` for 2,
  ``0xA5`` for 1). At the end, an element of an audited tensor that still holds the pattern was
  never written, however the writes happened (torch operations, NumPy, compiled kernels). No
  initializer produces NaN, so for floating tensors the test is exact; an integer buffer that
  legitimately holds the pattern's value would be reported. Elements of 16-byte dtypes are not
  poisoned. Values a tensor had before the block count as written.
* **Write passes.** Each operation that writes a tensor (an argument the operator's schema marks
  as written: in-place ops, ``out=``, ``copy_``, the random fills), each tensor created with
  values, and each NumPy export of a tensor (the array can write its memory; the compiled
  samplers fill tensors that way) is a write event on the tensor's storage. A *write pass* is a
  run of events on one audited tensor with no event on another audited tensor in between:
  filling a tensor may take several operations (sample, scale, zero a padding row), which make
  one pass. A tensor with two or more passes was written more than once: a default
  ``reset_parameters`` followed by a plan, a tied weight written under both names. Two writes
  of the same tensor back to back, with nothing else written between, count as one pass.

Audited tensors are resolved when the block ends, by module path and attribute name, so a block
may replace them (``to_empty``, materialization): what is audited is each parameter and buffer
the model holds at the end, with the storage it holds then.
"""

from __future__ import annotations

from dataclasses import dataclass, field
from typing import Any

import torch
from torch import nn
from torch.overrides import TorchFunctionMode
from torch.utils._python_dispatch import TorchDispatchMode
from torch.utils._pytree import tree_leaves

from ._storage import storage_of
from .errors import PlanError

__all__ = ["WriteAudit", "AuditReport", "POISON"]

POISON: dict[int, tuple[torch.dtype, int]] = {
    1: (torch.uint8, 0xA5),
    2: (torch.int16, 0x7FA5),
    4: (torch.int32, 0x7FA5A5A5),
    8: (torch.int64, 0x7FF5A5A5A5A5A5A5),
}
"""Element size in bytes -> (integer view dtype, poison bit pattern)."""

_ALLOCATIONS = frozenset({"empty", "empty_like", "empty_strided", "new_empty",
                          "new_empty_strided", "empty_permuted"})
# Ways a tensor's memory leaves torch's sight: the compiled sampling core writes through the
# address ``data_ptr`` gives it, other code through NumPy or DLPack.
_EXPORTS = (torch.Tensor.numpy, torch.Tensor.__array__, torch.Tensor.__dlpack__,
            torch.Tensor.data_ptr)

StorageKey = tuple[str, int]


def _storage_key(tensor: torch.Tensor) -> StorageKey | None:
    """(device, address) of a tensor's storage; ``None`` for meta tensors and tensor
    subclasses without a storage of their own."""
    storage = storage_of(tensor) if tensor.device.type != "meta" else None
    return None if storage is None else (str(tensor.device), storage.data_ptr())


def _poison_view(tensor: torch.Tensor) -> tuple[torch.Tensor, int] | None:
    """``tensor``'s elements viewed as integers of its element size, and the poison pattern."""
    spec = POISON.get(tensor.element_size())
    if spec is None:
        return None
    return tensor.detach().view(spec[0]), spec[1]


@dataclass(frozen=True)
class AuditReport:
    """What a :class:`WriteAudit` found, by parameter/buffer path.

    Attributes:
        never_written: Tensors none of whose elements were written (uninitialized memory, or a
            meta/uninitialized tensor without values).
        partially_written: Tensors with some elements never written: path -> how many.
        written_more_than_once: Tensors written in more than one pass: path -> passes.
        unaudited: Tensors whose storage cannot be inspected (tensor subclasses such as
            DTensor).
        audited: How many tensors were audited.
    """

    never_written: list[str] = field(default_factory=list)
    written_more_than_once: dict[str, int] = field(default_factory=dict)
    partially_written: dict[str, int] = field(default_factory=dict)
    unaudited: list[str] = field(default_factory=list)
    audited: int = 0

    @property
    def ok(self) -> bool:
        """No tensor left (partly) unwritten and none written more than once."""
        return not (self.never_written or self.partially_written or self.written_more_than_once)

    def table(self) -> str:
        """One line per problem, or a line saying there is none."""
        lines = [f"{p}: never written (uninitialized)" for p in self.never_written]
        lines += [f"{p}: {n} element(s) never written" for p, n in self.partially_written.items()]
        lines += [f"{p}: written in {n} passes" for p, n in self.written_more_than_once.items()]
        lines += [f"{p}: not audited (no inspectable storage)" for p in self.unaudited]
        head = f"write audit of {self.audited} tensor(s): " + ("ok" if self.ok else "problems")
        return "\n".join([head, *("  " + line for line in lines)])

    def raise_if_problems(self) -> None:
        """Raise :class:`PlanError` listing every problem, unless :attr:`ok`."""
        if not self.ok:
            raise PlanError(self.table() + "\nEvery parameter and buffer must be written exactly"
                            " once: give the plan a rule for the unwritten ones, let buffers"
                            " keep the values their module computes (ti.build), and do not"
                            " initialize twice")


# the base of UninitializedParameter and UninitializedBuffer; torch's stub leaves it out
_UNINITIALIZED: type = nn.parameter.UninitializedTensorMixin  # type: ignore[attr-defined]


class _Dispatch(TorchDispatchMode):  # type: ignore[no-untyped-call]  # torch: untyped hook
    def __init__(self, audit: WriteAudit) -> None:
        super().__init__()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        self.audit = audit

    def __torch_dispatch__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        kwargs = kwargs or {}
        out = func(*args, **kwargs)
        self.audit._observe(func, args, kwargs, out)
        return out


class _Exports(TorchFunctionMode):
    def __init__(self, audit: WriteAudit) -> None:
        super().__init__()
        self.audit = audit

    def __torch_function__(self, func: Any, types: Any, args: tuple[Any, ...] = (),
                           kwargs: dict[str, Any] | None = None) -> Any:
        if func in _EXPORTS and args and isinstance(args[0], torch.Tensor):
            self.audit._write(args[0])
        return func(*args, **(kwargs or {}))


class WriteAudit:
    """Context manager recording writes to ``model``'s parameters and buffers in its block.

    >>> with WriteAudit(model) as audit:
    ...     model.to_empty(device="cpu")
    ...     ti.apply(model, plan)
    >>> audit.report().never_written     # e.g. a buffer to_empty left uninitialized
    """

    def __init__(self, model: nn.Module) -> None:
        self.model = model
        self._generation: dict[StorageKey, int] = {}
        self._generations_made = 0
        self._poisoned: set[int] = set()
        self._events: list[int] = []
        self._modes: tuple[Any, ...] = ()
        self._report: AuditReport | None = None

    def __enter__(self) -> WriteAudit:
        self._modes = (_Exports(self), _Dispatch(self))
        for mode in self._modes:
            mode.__enter__()  # type: ignore[no-untyped-call]  # torch leaves it unannotated
        return self

    def __exit__(self, *exc: object) -> None:
        for mode in reversed(self._modes):
            mode.__exit__(None, None, None)
        self._report = self._build_report()

    def report(self) -> AuditReport:
        """The findings (after the block has ended)."""
        if self._report is None:
            raise PlanError("WriteAudit.report() is available after the with-block ends")
        return self._report

    # -- recording ---------------------------------------------------------------------------
    def _new_generation(self, key: StorageKey) -> int:
        """A new identity for the storage at ``key`` (memory is reused once freed)."""
        self._generations_made += 1
        self._generation[key] = self._generations_made
        return self._generations_made

    def _write(self, tensor: torch.Tensor) -> None:
        key = _storage_key(tensor)
        if key is not None:
            generation = self._generation.get(key) or self._new_generation(key)
            self._events.append(generation)

    def _observe(self, func: Any, args: tuple[Any, ...], kwargs: dict[str, Any],
                 out: Any) -> None:
        schema = func._schema
        for i, arg in enumerate(schema.arguments):
            if arg.alias_info is None or not arg.alias_info.is_write:
                continue
            value = kwargs.get(arg.name) if arg.kwarg_only or i >= len(args) else args[i]
            for tensor in tree_leaves(value):
                if isinstance(tensor, torch.Tensor):
                    self._write(tensor)
        inputs = {_storage_key(t) for t in tree_leaves((args, kwargs))
                  if isinstance(t, torch.Tensor)}
        outputs = out if isinstance(out, (tuple, list)) else (out,)
        for ret, tensor in zip(schema.returns, outputs):
            if ret.alias_info is not None or not isinstance(tensor, torch.Tensor):
                continue
            key = _storage_key(tensor)
            if key is None or key in inputs:
                continue
            generation = self._new_generation(key)
            if func.overloadpacket.__name__ in _ALLOCATIONS:
                view = _poison_view(tensor)
                if view is not None:
                    view[0].fill_(view[1])
                    self._poisoned.add(generation)
            else:
                self._events.append(generation)  # created with values: one write

    # -- findings ----------------------------------------------------------------------------
    def _tensors(self) -> list[tuple[str, torch.Tensor]]:
        """Every parameter (tied ones once) and buffer the model holds now, by path."""
        return [*self.model.named_parameters(), *self.model.named_buffers()]

    def _build_report(self) -> AuditReport:
        never: list[str] = []
        partial: dict[str, int] = {}
        unaudited: list[str] = []
        generations: dict[str, int | None] = {}
        for path, tensor in self._tensors():
            if isinstance(tensor, _UNINITIALIZED) or tensor.device.type == "meta":
                never.append(path)
                continue
            if tensor.numel() == 0:
                continue
            key = _storage_key(tensor)
            if key is None:
                unaudited.append(path)
                continue
            generations[path] = self._generation.get(key)
            view = _poison_view(tensor)
            if generations[path] in self._poisoned and view is not None:
                unwritten = int(torch.count_nonzero(view[0] == view[1]))
                if unwritten == tensor.numel():
                    never.append(path)
                elif unwritten:
                    partial[path] = unwritten
        audited = len(generations) + sum(p not in generations for p in never)
        return AuditReport(never, self._passes(generations), partial, unaudited, audited)

    def _passes(self, generations: dict[str, int | None]) -> dict[str, int]:
        """Write passes per audited tensor with more than one."""
        audited = {g for g in generations.values() if g is not None}
        runs: dict[int, int] = {}
        previous = None
        for generation in self._events:
            if generation not in audited:
                continue
            if generation != previous:
                runs[generation] = runs.get(generation, 0) + 1
            previous = generation
        return {p: runs[g] for p, g in generations.items() if g is not None and runs.get(g, 0) > 1}
