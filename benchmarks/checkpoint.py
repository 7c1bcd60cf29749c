"""Loading a safetensors checkpoint with ti.build against safetensors + load_state_dict.

The 405M-parameter GPT-2-medium-like stack of ``benchmarks/build.py`` (``--layers 24``) is saved
once as a float32 ``.safetensors`` file (1.6 GB); then, each case in a fresh process (so its
peak RSS is its own), ``--repeats`` times interleaved:

- ``safetensors + load_state_dict``: ``safetensors.torch.load_file`` and
  ``load_state_dict(assign=True)`` into a model built under ``torch.device("meta")``;
- ``ti.build(checkpoint=)``: ``ti.build(factory, plan, checkpoint=file)``, every parameter
  read from the file into its final storage;
- ``... + read``: the baseline, then one pass over every parameter. ``load_file`` memory-maps the
  file and reads nothing until a tensor is used (its peak RSS shows it); this case pays the read
  that training's first step would.

Targets: ti.build <= 1.3x the time of the baseline; its peak RSS <= 1.2x the parameter bytes
+ 300 MB.

    python benchmarks/checkpoint.py [--repeats 3] [--threads 2] [--layers 24] [--dir DIR]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys
import tempfile

CASES = ("safetensors + load_state_dict", "ti.build(checkpoint=)",
         "safetensors + load_state_dict + read")

MODEL = r"""
import torch
from torch import nn

def stack(layers):
    return nn.Sequential(
        nn.Embedding(50257, 1024),
        *[nn.TransformerEncoderLayer(1024, 16, 4096, batch_first=True) for _ in range(layers)],
        nn.LayerNorm(1024), nn.Linear(1024, 50257, bias=False))
"""

SAVE = MODEL + r"""
import sys
import torchinit as ti
from safetensors.torch import save_file
layers, path = int(sys.argv[1]), sys.argv[2]
model = ti.build(lambda: stack(layers), ti.Plan([ti.Rule(init=ti.Normal(0, 0.02))]), seed=0)
save_file({k: v.contiguous() for k, v in model.state_dict().items()}, path)
"""

CHILD = MODEL + r"""
import json, resource, sys, time
import torchinit as ti
from safetensors.torch import load_file
case, layers, threads, path = sys.argv[1], int(sys.argv[2]), int(sys.argv[3]), sys.argv[4]
torch.set_num_threads(threads)
start = time.perf_counter()
if case == "baseline":
    with torch.device("meta"):
        model = stack(layers)
    model.load_state_dict(load_file(path), assign=True)
elif case == "baseline_read":
    with torch.device("meta"):
        model = stack(layers)
    model.load_state_dict(load_file(path), assign=True)
    with torch.no_grad():
        checksum = sum(float(p.sum()) for p in model.parameters())
else:
    model = ti.build(lambda: stack(layers), ti.Plan([]), checkpoint=path)
elapsed = time.perf_counter() - start
params = sum(p.numel() * p.element_size() for p in model.parameters())
peak = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
print(json.dumps({"seconds": elapsed, "param_bytes": params, "peak_rss": peak}))
"""


def _run(code: str, *args: str) -> dict:
    out = subprocess.run([sys.executable, "-c", code, *args], capture_output=True, text=True,
                         check=True)
    lines = out.stdout.strip().splitlines()
    return json.loads(lines[-1]) if lines else {}


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=24)
    parser.add_argument("--dir", default=None, help="where to write the checkpoint")
    args = parser.parse_args()
    with tempfile.TemporaryDirectory(dir=args.dir) as folder:
        path = os.path.join(folder, "stack.safetensors")
        _run(SAVE, str(args.layers), path)
        size = os.path.getsize(path)
        runs: dict[str, list[dict]] = {case: [] for case in CASES}
        for _ in range(args.repeats):
            for case, key in zip(CASES, ("baseline", "build", "baseline_read")):
                runs[case].append(_run(CHILD, key, str(args.layers), str(args.threads), path))
    med = {case: statistics.median(r["seconds"] for r in rs) for case, rs in runs.items()}
    param_bytes = runs[CASES[1]][0]["param_bytes"]
    print(f"{args.layers}-layer stack, {param_bytes / 1e9:.2f} GB of parameters, file"
          f" {size / 1e9:.2f} GB, {args.threads} threads, median of {args.repeats} fresh"
          " processes")
    for case, rs in runs.items():
        peak = statistics.median(r["peak_rss"] for r in rs)
        print(f"  {case:<32} {med[case]:7.2f} s   peak RSS {peak / 1e9:5.2f} GB"
              f" ({peak / param_bytes:.2f}x parameters)")
    ratio = med[CASES[1]] / med[CASES[0]]
    print(f"ti.build / baseline time: {ratio:.2f}x (target <= 1.3x:"
          f" {'met' if ratio <= 1.3 else 'missed'}); against the baseline that reads what it"
          f" loads: {med[CASES[1]] / med[CASES[2]]:.2f}x")
    peak = statistics.median(r["peak_rss"] for r in runs[CASES[1]])
    limit = 1.2 * param_bytes + 300e6
    print(f"ti.build peak RSS {peak / 1e9:.2f} GB vs limit {limit / 1e9:.2f} GB"
          f" (1.2x parameters + 300 MB: {'met' if peak <= limit else 'missed'})")


if __name__ == "__main__":
    main()
