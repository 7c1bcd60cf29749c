"""Explain + apply time against the number of parameters, and the cost of the restore copy.

Models of many small parameters (an ``nn.ModuleList`` of ``nn.Linear(2, 2)``: a weight and a
bias each, as MoE models have 10^4-10^5 tensors). For each size the script times
``plan.explain(model)`` (``Plan.resolve``) and ``ti.apply(model, manifest)`` (the writer), and,
inside apply, the sampling alone (``Record.sample`` of every record) and the restore copies alone
(a clone of every parameter), then prints the time per parameter and the growth from the
smallest size. Issue 11's targets: 20,000 within 12x of 2,000; 100,000 in at most 10 s.

The restore copy on large tensors (``--restore-mb`` MB of float32 weights) is printed as a
share of apply: in place, the writer copies each tensor just before overwriting it.

    python benchmarks/manifest_scale.py [--sizes 2000 20000 100000] [--restore-mb 64]
"""

from __future__ import annotations

import argparse
import gc
import time
from collections.abc import Callable

import torch
from torch import nn

import torchinit as ti

PLAN = ti.Plan([ti.Rule(role="weight", init="xavier_uniform"),
                ti.Rule(role="bias", init="zeros")])


def _seconds(fn: Callable[[], object]) -> float:
    gc.collect()
    start = time.perf_counter()
    fn()
    return time.perf_counter() - start


def _sample_all(manifest: ti.Manifest, model: nn.Module) -> None:
    for record, param in zip(manifest, model.parameters()):
        record.sample(None, param.dtype, param.device)


def _clone_all(model: nn.Module) -> None:
    with torch.no_grad():
        for param in model.parameters():
            param.clone()


def scale(sizes: list[int]) -> None:
    print(f"{'parameters':>10}  {'explain s':>9}  {'apply s':>8}  {'total s':>8}"
          f"  {'us/param':>8}  {'sampling s':>10}  {'restore copies s':>16}")
    PLAN.explain(nn.Linear(2, 2))  # warm up
    totals = {}
    for n in sizes:
        model = nn.ModuleList(nn.Linear(2, 2) for _ in range(n // 2))
        gc.collect()
        start = time.perf_counter()
        manifest = PLAN.explain(model)
        explain = time.perf_counter() - start
        apply = _seconds(lambda: ti.apply(model, manifest))
        sampling = _seconds(lambda: _sample_all(manifest, model))
        copies = _seconds(lambda: _clone_all(model))
        totals[n] = explain + apply
        print(f"{n:>10}  {explain:>9.3f}  {apply:>8.3f}  {totals[n]:>8.3f}"
              f"  {totals[n] / n * 1e6:>8.1f}  {sampling:>10.3f}  {copies:>16.3f}")
        del model, manifest
    first = sizes[0]
    for n in sizes[1:]:
        print(f"{n}/{first}: {totals[n] / totals[first]:.2f}x time for {n / first:.0f}x"
              " parameters")


def restore_cost(megabytes: int) -> None:
    side = 1024
    count = max(1, megabytes * 2**20 // (side * side * 4))
    model = nn.Sequential(*(nn.Linear(side, side, bias=False) for _ in range(count)))
    plan = ti.Plan([ti.Rule(init=ti.Normal(0.0, 0.02))])
    manifest = plan.explain(model)
    ti.apply(model, manifest)  # warm up
    apply = min(_seconds(lambda: ti.apply(model, manifest)) for _ in range(3))
    copies = min(_seconds(lambda: _clone_all(model)) for _ in range(3))
    size = count * side * side * 4 / 2**20
    print(f"restore copies on {count} x {side}x{side} float32 ({size:.0f} MB):"
          f" {copies * 1e3:.1f} ms of {apply * 1e3:.1f} ms apply ({copies / apply:.1%});"
          " extra peak memory: one copy of the model, plus one tensor's sample")


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--sizes", type=int, nargs="+", default=[2000, 20000, 100000])
    parser.add_argument("--restore-mb", type=int, default=64)
    parser.add_argument("--threads", type=int, default=torch.get_num_threads())
    args = parser.parse_args()
    torch.set_num_threads(args.threads)
    scale(sorted(args.sizes))
    if args.restore_mb > 0:
        restore_cost(args.restore_mb)


if __name__ == "__main__":
    main()
