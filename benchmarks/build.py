"""Building a 405M-parameter GPT-2-medium-like stack: ti.build against plain PyTorch.

Each case runs in a fresh process (so its peak RSS is its own), ``--repeats`` times; the
script prints median wall times, ratios against the plain-PyTorch cases measured in the same
run, and peak RSS against the parameter bytes.

    python benchmarks/build.py [--repeats 3] [--threads 2] [--layers 24]
"""

from __future__ import annotations

import argparse
import json
import statistics
import subprocess
import sys

CASES = {
    "default construction": "default",
    "default + apply(trunc_normal_)": "default_apply",
    "meta + to_empty + reset_parameters": "meta_reset",
    "zeros of the same bytes": "zeros",
    "ti.build (trunc normal 0.02)": "build",
}

CHILD = r"""
import json, resource, sys, time
import torch
from torch import nn
import torchinit as ti

case, layers, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)

def stack():
    return nn.Sequential(
        nn.Embedding(50257, 1024),
        *[nn.TransformerEncoderLayer(1024, 16, 4096, batch_first=True) for _ in range(layers)],
        nn.LayerNorm(1024), nn.Linear(1024, 50257, bias=False))

plan = ti.Plan([ti.Rule(init=ti.TruncatedNormal(stddev=0.02, a=-0.04, b=0.04)),
                ti.Rule(role="bias", init="zeros"), ti.Rule(role="scale", init="ones"),
                ti.Rule(role="norm", name="bias", init="zeros")])
start = time.perf_counter()
if case == "default":
    model = stack()
elif case == "default_apply":
    model = stack()
    with torch.no_grad():
        for p in model.parameters():
            nn.init.trunc_normal_(p, std=0.02, a=-0.04, b=0.04)
elif case == "meta_reset":
    with torch.device("meta"):
        model = stack()
    model.to_empty(device="cpu")
    for m in model.modules():
        if hasattr(m, "reset_parameters") and m is not model:
            m.reset_parameters()
elif case == "zeros":
    with torch.device("meta"):
        model = stack()
    sizes = [p.shape for p in model.parameters()]
    model = [torch.zeros(s) for s in sizes]
elif case == "build":
    model = ti.build(stack, plan, seed=0)
seconds = time.perf_counter() - start
params = model if isinstance(model, list) else list(model.parameters())
n = sum(p.numel() for p in params)
rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": seconds, "params": n, "rss": rss}))
"""


def run(case: str, layers: int, threads: int) -> dict:
    out = subprocess.run([sys.executable, "-c", CHILD, case, str(layers), str(threads)],
                         check=True, capture_output=True, text=True).stdout
    return json.loads(out.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=24)
    args = parser.parse_args()
    results: dict[str, list[dict]] = {name: [] for name in CASES}
    for _ in range(args.repeats):  # interleaved, so load changes hit every case alike
        for name, case in CASES.items():
            results[name].append(run(case, args.layers, args.threads))
    median = {name: statistics.median(r["seconds"] for r in rs) for name, rs in results.items()}
    rss = {name: max(r["rss"] for r in rs) for name, rs in results.items()}
    params = results["ti.build (trunc normal 0.02)"][0]["params"]
    built = median["ti.build (trunc normal 0.02)"]
    print(f"{params / 1e6:.0f}M parameters ({params * 4 / 1e9:.2f} GB float32), "
          f"threads={args.threads}, medians of {args.repeats}")
    print(f"{'case':38s} {'seconds':>8s} {'ti.build speed-up':>18s} {'peak RSS GB':>12s}")
    for name in CASES:
        print(f"{name:38s} {median[name]:8.2f} {median[name] / built:17.2f}x "
              f"{rss[name] / 1e9:12.2f}")
    print(f"ti.build peak RSS / parameter bytes: "
          f"{rss['ti.build (trunc normal 0.02)'] / (params * 4):.2f} "
          f"(target <= 1.15 x params + 300 MB = {(1.15 * params * 4 + 3e8) / 1e9:.2f} GB)")


if __name__ == "__main__":
    main()
