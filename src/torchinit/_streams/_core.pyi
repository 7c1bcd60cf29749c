"""Types of the compiled CPU sampling core, ``_core.c`` (bit-identical to the reference backend)."""

from collections.abc import Sequence

ISAS: tuple[str, ...]
"""The instruction sets this CPU runs a kernel for (``"portable"``, ``"avx2"``, ``"avx512f"``)."""
ISA: str
"""The best of :data:`ISAS`, used when ``fill`` is given no ``isa``."""

def fill(address: int, out_kind: int, kind: int, params: Sequence[float], k0: int, k1: int,
         base: int, counts: Sequence[int], strides: Sequence[int], run_len: int, run_step: int,
         threads: int, isa: str | None = None, /) -> None:
    """Write the stream's values of a region into the contiguous buffer at ``address``.

    ``out_kind``: 0 float64, 1 float32, 2 bfloat16, 3 float16. ``kind``: 0 uniform, 1 normal,
    2 truncated normal. ``params``: 8 floats (see ``_core.c``). The region is the runs
    ``base + sum(i_d * strides[d]) + t * run_step``, ``t < run_len``, over the outer index
    (``i_d < counts[d]``). ``isa``: one of :data:`ISAS` (default :data:`ISA`); every one gives the
    same bits.
    """
