"""Replaying a model's own initialization (``ti.build(factory, "native")``) against the model's
own code, on a ~1.1B-parameter Llama built from a transformers config.

Cases, each in a fresh process (so its time includes everything a new user meets: imports
aside, which both pay), ``--repeats`` times interleaved; the script prints median wall times,
the ratio the target names, and the cost of ``ti.capture`` alone (construction on meta and the
recording):

- ``from_config``: ``AutoModelForCausalLM.from_config(cfg)``, the model's own init on full
  tensors (torch's default init of every layer, then transformers' ``_init_weights``);
- ``native build``: ``ti.build(lambda: AutoModelForCausalLM.from_config(cfg), "native")``;
- ``capture``: ``ti.capture(lambda: AutoModelForCausalLM.from_config(cfg))``.

Targets: native build >= 5x faster than from_config; capture < 2 s.

    python benchmarks/native.py [--repeats 3] [--threads 2] [--layers 22]
"""

from __future__ import annotations

import argparse
import json
import os
import statistics
import subprocess
import sys

CASES = ("from_config", "native build", "capture")

CHILD = r"""
import json, sys, time, warnings
warnings.filterwarnings("ignore")
import torch
sys.path.insert(0, sys.argv[4])
from tests.thirdparty import define_torchvision_ops
define_torchvision_ops()  # a CUDA torchvision wheel beside CPU torch would break the import
import transformers
import torchinit as ti

case, layers, threads = sys.argv[1], int(sys.argv[2]), int(sys.argv[3])
torch.set_num_threads(threads)
transformers.logging.set_verbosity_error()
cfg = transformers.LlamaConfig(hidden_size=2048, intermediate_size=5632, num_hidden_layers=layers,
                               num_attention_heads=32, num_key_value_heads=4, vocab_size=32000)
factory = lambda: transformers.AutoModelForCausalLM.from_config(cfg)
start = time.perf_counter()
if case == "from_config":
    model = factory()
elif case == "native build":
    model = ti.build(factory, "native", seed=0)
else:
    model = ti.capture(factory)
elapsed = time.perf_counter() - start
params = sum(p.numel() for p in model.parameters()) if case != "capture" else 0
print(json.dumps({"seconds": elapsed, "params": params}))
"""


def _run(case: str, layers: int, threads: int) -> dict:
    root = os.path.dirname(os.path.dirname(os.path.abspath(__file__)))
    out = subprocess.run([sys.executable, "-c", CHILD, case, str(layers), str(threads), root],
                         capture_output=True, text=True, check=True)
    return json.loads(out.stdout.strip().splitlines()[-1])


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--threads", type=int, default=2)
    parser.add_argument("--layers", type=int, default=22)
    args = parser.parse_args()
    times: dict[str, list[float]] = {case: [] for case in CASES}
    params = 0
    for _ in range(args.repeats):
        for case in CASES:
            result = _run(case, args.layers, args.threads)
            times[case].append(result["seconds"])
            params = max(params, result["params"])
    med = {case: statistics.median(ts) for case, ts in times.items()}
    print(f"Llama, {args.layers} layers, {params / 1e9:.2f}B parameters, {args.threads} threads,"
          f" median of {args.repeats} fresh processes")
    for case in CASES:
        print(f"  {case:<14} {med[case]:8.2f} s   (runs: {', '.join(f'{t:.2f}' for t in times[case])})")
    speedup = med["from_config"] / med["native build"]
    print(f"native build is {speedup:.2f}x faster than from_config (target >= 5x:"
          f" {'met' if speedup >= 5 else 'missed'})")
    print(f"capture costs {med['capture']:.2f} s (target < 2 s:"
          f" {'met' if med['capture'] < 2 else 'missed'})")


if __name__ == "__main__":
    main()
