"""Building models with ti.build against plain PyTorch, each case in a fresh process.

Two models: a 405M-parameter GPT-2-medium-like stack (``--layers 24``) and a resnet50-shaped CNN
(25.6M parameters, bottleneck blocks [3, 4, 6, 3], written here from torch.nn so no other
package is needed). Each case runs in a fresh process (so its peak RSS is its own),
``--repeats`` times, interleaved; the script prints median wall times, the ratios the targets
name (against the plain-PyTorch cases of the same run) and peak RSS against parameter bytes.

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
    "resnet50: default construction": "cnn_default",
    "resnet50: ti.build (kaiming normal fan_out)": "cnn_build",
}
BUILD = "ti.build (trunc normal 0.02)"

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

class Bottleneck(nn.Module):
    def __init__(self, cin, width, stride):
        super().__init__()
        cout = width * 4
        self.body = nn.Sequential(
            nn.Conv2d(cin, width, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, width, 3, stride, 1, bias=False), nn.BatchNorm2d(width), nn.ReLU(),
            nn.Conv2d(width, cout, 1, bias=False), nn.BatchNorm2d(cout))
        self.down = (nn.Sequential(nn.Conv2d(cin, cout, 1, stride, bias=False),
                                   nn.BatchNorm2d(cout)) if stride != 1 or cin != cout else None)

    def forward(self, x):
        return torch.relu(self.body(x) + (x if self.down is None else self.down(x)))

def resnet50():
    layers, cin = [nn.Conv2d(3, 64, 7, 2, 3, bias=False), nn.BatchNorm2d(64), nn.ReLU()], 64
    for width, blocks, stride in ((64, 3, 1), (128, 4, 2), (256, 6, 2), (512, 3, 2)):
        for b in range(blocks):
            layers.append(Bottleneck(cin, width, stride if b == 0 else 1))
            cin = width * 4
    return nn.Sequential(*layers, nn.Flatten(), nn.Linear(2048, 1000))

plan = ti.Plan([ti.Rule(init=ti.TruncatedNormal(stddev=0.02, a=-0.04, b=0.04)),
                ti.Rule(role="bias", init="zeros"), ti.Rule(role="scale", init="ones"),
                ti.Rule(role="norm", name="bias", init="zeros")])
cnn_plan = ti.Plan([ti.Rule(type="Conv2d", init=ti.KaimingNormal(mode="fan_out")),
                    ti.Rule(type="Linear", name="weight", init="kaiming_uniform"),
                    ti.Rule(role="bias", init="zeros"), ti.Rule(role="norm", name="weight",
                                                                init="ones"),
                    ti.Rule(role="norm", name="bias", init="zeros")])
start = time.perf_counter()
if case == "cnn_default":
    model = resnet50()
elif case == "cnn_build":
    model = ti.build(resnet50, cnn_plan, seed=0)
elif case == "default":
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
    params = results[BUILD][0]["params"]
    print(f"stack: {params / 1e6:.0f}M parameters ({params * 4 / 1e9:.2f} GB float32), resnet50:"
          f" {results['resnet50: ti.build (kaiming normal fan_out)'][0]['params'] / 1e6:.1f}M;"
          f" threads={args.threads}, medians of {args.repeats}")
    print(f"{'case':46s} {'seconds':>8s} {'peak RSS GB':>12s}")
    for name in CASES:
        print(f"{name:46s} {median[name]:8.2f} {rss[name] / 1e9:12.2f}")

    def target(label: str, value: float, bound: float, at_most: bool) -> None:
        ok = value <= bound if at_most else value >= bound
        sign = "<=" if at_most else ">="
        print(f"  {label}: {value:.2f} (target {sign} {bound:g}: {'met' if ok else 'missed'})")

    print("targets:")
    target("ti.build / zeros of the same bytes", median[BUILD] / median["zeros of the same bytes"],
           1.25, True)
    target("default + apply(trunc_normal_) / ti.build",
           median["default + apply(trunc_normal_)"] / median[BUILD], 8.0, False)
    target("resnet50 ti.build / default construction",
           median["resnet50: ti.build (kaiming normal fan_out)"]
           / median["resnet50: default construction"], 1.0, True)
    bound = 1.15 * params * 4 + 3e8
    print(f"  ti.build peak RSS: {rss[BUILD] / 1e9:.2f} GB = {rss[BUILD] / (params * 4):.2f} x"
          f" parameter bytes (target <= 1.15 x params + 300 MB = {bound / 1e9:.2f} GB:"
          f" {'met' if rss[BUILD] <= bound else 'missed'})")


if __name__ == "__main__":
    main()
