"""Sampling throughput of torchinit's compiled core against torch's own in-place samplers.

All figures come from one process and one run (medians of ``--repeats``), so the ratios hold on
a shared, noisy machine:

* rates: ``--n`` float32 values (default 2e7) written into one preallocated buffer, torchinit's
  uniform / normal / truncated normal against torch's ``uniform_``, ``normal_`` and
  ``nn.init.trunc_normal_``, with the ratios the targets name;
* layouts: the normal sampler on conv weights, a 1-D tensor and a ``Shard(1)`` region, each
  against the rate of a contiguous 2-D tensor of the same sampler;
* threads: the normal sampler on 2 threads against 1.

    python benchmarks/sampling.py [--n 20000000] [--repeats 5] [--threads 2]
"""

from __future__ import annotations

import argparse
import math
from collections.abc import Callable

import torch

import torchinit as ti
from torchinit._experiments.bench import median_seconds
from torchinit._streams import NormalDist, TruncNormalDist, UniformDist, sample_distribution
from torchinit._streams.backends import backend_name

LAYOUTS = {
    "conv (512, 4608, 1, 1)": ((512, 4608, 1, 1), None),
    "conv (64, 64, 3, 3)": ((64, 64, 3, 3), None),
    "1-D (10000000,)": ((10_000_000,), None),
    "Shard(1) of (4096, 4096)": ((4096, 4096), (slice(None), slice(2048, 4096))),
}


def _verdict(value: float, target: float) -> str:
    return "met" if value >= target else "missed"


def _rates(n: int, repeats: int) -> dict[str, float]:
    key, buf = ti.Key(0, "bench"), torch.empty(n)
    cases: dict[str, Callable[[], object]] = {
        "torch uniform_": lambda: buf.uniform_(-1, 1),
        "torch normal_": lambda: buf.normal_(0, 1),
        "torch trunc_normal_": lambda: torch.nn.init.trunc_normal_(buf, std=0.02),
        "torchinit uniform": lambda: sample_distribution(UniformDist(-1, 1), key, (n,), out=buf),
        "torchinit normal": lambda: sample_distribution(NormalDist(0, 1), key, (n,), out=buf),
        "torchinit truncated normal": lambda: sample_distribution(
            TruncNormalDist(0, 0.02, -2, 2), key, (n,), out=buf),
    }
    return {name: n / median_seconds(fn, repeats) for name, fn in cases.items()}


def _layout_rate(shape: tuple[int, ...], region: tuple[slice, ...] | None, repeats: int) -> float:
    key, dist = ti.Key(0, "layout"), NormalDist(0.0, 0.02)
    local = [len(range(*s.indices(d))) for s, d in zip(region, shape)] if region else shape
    out = torch.empty(local)
    seconds = median_seconds(lambda: sample_distribution(dist, key, shape, region, out=out),
                             repeats)
    return math.prod(local) / seconds


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=20_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    parser.add_argument("--threads", type=int, default=2)
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    rates = _rates(args.n, args.repeats)
    print(f"backend={backend_name()} threads={args.threads} n={args.n:.0e} float32"
          f" (medians of {args.repeats})")
    print(f"{'sampler':28s} {'M values/s':>11s}")
    for name, rate in rates.items():
        print(f"{name:28s} {rate / 1e6:11.0f}")
    print("targets (ratio in this run):")
    for ours, theirs, target in (("torchinit uniform", "torch uniform_", 3.0),
                                 ("torchinit normal", "torch normal_", 2.0),
                                 ("torchinit truncated normal", "torch normal_", 2.0),
                                 ("torchinit truncated normal", "torch trunc_normal_", 2.0)):
        ratio = rates[ours] / rates[theirs]
        print(f"  {ours} / {theirs}: {ratio:.2f}x (target >= {target:g}x: "
              f"{_verdict(ratio, target)})")
    print(f"  normal / uniform (moonshot 1.0): "
          f"{rates['torchinit normal'] / rates['torchinit uniform']:.2f}")

    contiguous = _layout_rate((4096, 4096), None, args.repeats)
    print(f"layouts, normal sampler, against a contiguous (4096, 4096) at "
          f"{contiguous / 1e6:.0f} M/s:")
    for name, (shape, region) in LAYOUTS.items():
        rate = _layout_rate(shape, region, args.repeats)
        ratio = rate / contiguous
        print(f"  {name:26s} {rate / 1e6:6.0f} M/s {ratio:5.2f}x (target >= 0.8x: "
              f"{_verdict(ratio, 0.8)})")

    scaling = {}
    for threads in (1, args.threads):
        torch.set_num_threads(threads)
        scaling[threads] = _layout_rate((args.n,), None, args.repeats)
    ratio = scaling[args.threads] / scaling[1]
    print(f"normal sampler, {args.threads} threads vs 1: {ratio:.2f}x (target >= 1.8x for 2:"
          f" {_verdict(ratio, 1.8)})")


if __name__ == "__main__":
    main()
