"""A quick sampling benchmark: torchinit's counter-based samplers against torch's in-place
samplers of the same distribution, timed one after the other in the same process.

Each case fills a preallocated float32 tensor of ``n`` values; the time is the median of
``repeats`` runs after one warm-up run. The ratio is
torch's time over torchinit's: above 1, torchinit is faster.
"""

from __future__ import annotations

import statistics
import time
from collections.abc import Callable
from dataclasses import dataclass
from typing import Any

import torch

from ..errors import ConfigError
from .._streams import Distribution, Key, NormalDist, TruncNormalDist, UniformDist
from .._streams import sample_distribution
from .._streams.backends import backend_name

__all__ = ["BenchCase", "run_benchmark", "median_seconds"]


@dataclass(frozen=True)
class BenchCase:
    """One distribution: torchinit's and torch's median seconds for ``n`` values."""

    distribution: str
    torch_op: str
    torchinit_seconds: float
    torch_seconds: float
    n: int

    @property
    def ratio(self) -> float:
        """torch's time / torchinit's time."""
        return self.torch_seconds / self.torchinit_seconds

    def to_dict(self) -> dict[str, Any]:
        return {"distribution": self.distribution, "torch_op": self.torch_op, "n": self.n,
                "torchinit_seconds": self.torchinit_seconds,
                "torch_seconds": self.torch_seconds, "ratio": self.ratio,
                "torchinit_values_per_second": self.n / self.torchinit_seconds,
                "torch_values_per_second": self.n / self.torch_seconds}


def median_seconds(fn: Callable[[], object], repeats: int) -> float:
    """Median wall time of ``repeats`` calls of ``fn`` after one warm-up call."""
    fn()
    times = []
    for _ in range(repeats):
        start = time.perf_counter()
        fn()
        times.append(time.perf_counter() - start)
    return statistics.median(times)


def backend() -> str:
    """The sampling backend the benchmark measures (see ``TORCHINIT_BACKEND``)."""
    return backend_name()


def run_benchmark(n: int = 10_000_000, repeats: int = 3) -> list[BenchCase]:
    """Time uniform, normal and truncated normal sampling, torchinit against torch.

    Args:
        n: Values per sample (float32).
        repeats: Timed runs per case (the median is kept).

    Raises:
        ConfigError: for ``n < 1`` or ``repeats < 1``.
    """
    for name, value in (("n", n), ("repeats", repeats)):
        if isinstance(value, bool) or not isinstance(value, int) or value < 1:
            raise ConfigError(f"bench: {name} must be an int >= 1, got {value!r}")
    key, out = Key(0, "bench"), torch.empty(n)
    cases: tuple[tuple[str, str, Distribution, Callable[[], object]], ...] = (
        ("uniform(-1, 1)", "Tensor.uniform_", UniformDist(-1.0, 1.0),
         lambda: out.uniform_(-1.0, 1.0)),
        ("normal(0, 1)", "Tensor.normal_", NormalDist(0.0, 1.0), lambda: out.normal_(0.0, 1.0)),
        ("truncated normal(0, 0.02, +-2 std)", "nn.init.trunc_normal_",
         TruncNormalDist(0.0, 0.02, -2.0, 2.0),
         lambda: torch.nn.init.trunc_normal_(out, std=0.02, a=-0.04, b=0.04)),
    )
    results = []
    for name, op, dist, torch_fill in cases:
        def ours_fill(d: Distribution = dist) -> torch.Tensor:
            return sample_distribution(d, key, (n,), out=out)

        ours = median_seconds(ours_fill, repeats)
        theirs = median_seconds(torch_fill, repeats)
        results.append(BenchCase(name, op, ours, theirs, n))
    return results
