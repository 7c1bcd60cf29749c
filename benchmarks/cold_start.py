"""First-call cost: every sampler x dtype x layout, each in a fresh Python process.

What a new user meets: the time of the first ``init.sample`` of a process (after ``import
torchinit``, which is timed separately), against the same call made a second time in that
process, and against torch's own in-place sampler of the same size on its first call.
Target: every first call <= 1 s, one-time set-up included.

    python benchmarks/cold_start.py
"""

from __future__ import annotations

import argparse
import itertools
import json
import subprocess
import sys

SAMPLERS = ("uniform", "normal", "trunc_normal")
DTYPES = ("float32", "float64", "bfloat16")
LAYOUTS = {"2-D (1000, 1000)": (1000, 1000), "1-D (1000000,)": (1000000,),
           "4-D conv (64, 64, 3, 3)": (64, 64, 3, 3)}

CHILD = r"""
import json, sys, time
start = time.perf_counter()
import torch
import torchinit as ti
imported = time.perf_counter() - start
sampler, dtype, shape = sys.argv[1], getattr(torch, sys.argv[2]), tuple(json.loads(sys.argv[3]))
init = {"uniform": ti.Uniform(-0.1, 0.1), "normal": ti.Normal(0.0, 0.02),
        "trunc_normal": ti.TruncatedNormal(0.0, 0.02, -0.04, 0.04)}[sampler]
torch_op = {"uniform": lambda t: t.uniform_(-0.1, 0.1), "normal": lambda t: t.normal_(0, 0.02),
            "trunc_normal": lambda t: torch.nn.init.trunc_normal_(t, 0, 0.02, -0.04, 0.04)}
t0 = time.perf_counter()
init.sample(shape, ti.Key(0, "w"), dtype=dtype)
first = time.perf_counter() - t0
t0 = time.perf_counter()
init.sample(shape, ti.Key(1, "w"), dtype=dtype)
second = time.perf_counter() - t0
t0 = time.perf_counter()
torch_op[sampler](torch.empty(shape, dtype=dtype))
torch_first = time.perf_counter() - t0
print(json.dumps({"import": imported, "first": first, "second": second,
                  "torch_first": torch_first}))
"""


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.parse_args()
    print(f"{'sampler':13s} {'dtype':9s} {'layout':24s} {'import s':>8s} {'first s':>8s}"
          f" {'second s':>9s} {'torch first s':>13s}")
    worst = 0.0
    for sampler, dtype, (layout, shape) in itertools.product(SAMPLERS, DTYPES, LAYOUTS.items()):
        out = subprocess.run([sys.executable, "-c", CHILD, sampler, dtype, json.dumps(shape)],
                             check=True, capture_output=True, text=True).stdout
        r = json.loads(out.strip().splitlines()[-1])
        worst = max(worst, r["first"])
        print(f"{sampler:13s} {dtype:9s} {layout:24s} {r['import']:8.2f} {r['first']:8.3f}"
              f" {r['second']:9.3f} {r['torch_first']:13.3f}")
    print(f"slowest first call: {worst:.3f} s (target <= 1 s: {'met' if worst <= 1 else 'missed'})")


if __name__ == "__main__":
    main()
