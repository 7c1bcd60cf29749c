"""Sampling throughput of torchinit's backends against torch's own in-place samplers.

Prints, for 1e8 float32 values (``--n``) written into the same preallocated buffer, the median
rate of each sampler over ``--repeats`` runs and its ratio to torch's ``uniform_`` measured in
the same run, plus the thread scaling (1 vs 2 threads) of torchinit's fast backend.

    python benchmarks/sampling.py [--n 100000000] [--repeats 5]
"""

from __future__ import annotations

import argparse
import os
from collections.abc import Callable

import torch

import torchinit as ti
from torchinit.experiments.bench import median_seconds
from torchinit.streams import NormalDist, TruncNormalDist, UniformDist, sample_distribution


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--n", type=int, default=100_000_000)
    parser.add_argument("--repeats", type=int, default=5)
    args = parser.parse_args()
    n, key = args.n, ti.Key(0, "bench")
    buf = torch.empty(n)
    cases: dict[str, Callable[[], object]] = {
        "torch uniform_": lambda: buf.uniform_(-1, 1),
        "torch normal_": lambda: buf.normal_(0, 1),
        "torch trunc_normal_": lambda: torch.nn.init.trunc_normal_(buf, std=0.02),
        "torchinit uniform": lambda: sample_distribution(UniformDist(-1, 1), key, (n,), out=buf),
        "torchinit normal": lambda: sample_distribution(NormalDist(0, 1), key, (n,), out=buf),
        "torchinit truncated normal": lambda: sample_distribution(
            TruncNormalDist(0, 0.02, -2, 2), key, (n,), out=buf),
    }
    seconds = {name: median_seconds(fn, args.repeats) for name, fn in cases.items()}
    base = seconds["torch uniform_"]
    print(f"threads={torch.get_num_threads()} n={n:.0e} backend="
          f"{os.environ.get('TORCHINIT_BACKEND', 'auto')} (medians of {args.repeats})")
    print(f"{'sampler':28s} {'M values/s':>11s} {'vs torch uniform_':>18s}")
    for name, s in seconds.items():
        print(f"{name:28s} {n / s / 1e6:11.0f} {base / s:17.2f}x")
    scaling = {}
    for threads in (1, 2):
        torch.set_num_threads(threads)
        scaling[threads] = median_seconds(cases["torchinit normal"], args.repeats)
    print(f"torchinit normal, 2 threads vs 1: {scaling[1] / scaling[2]:.2f}x")


if __name__ == "__main__":
    main()
