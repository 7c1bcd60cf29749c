"""Sharded initialization: per-rank time and memory of ti.materialize on an FSDP2 model
(gloo, CPU, W processes) against a single-process ti.build of the same model and plan.

Every process uses ``--threads`` threads; the single-process build is measured with the same
thread count and (to show the whole-machine view) with W times as many. Medians of
``--repeats`` runs, interleaved.

    python benchmarks/sharded.py [--world 2] [--layers 8] [--width 1024] [--repeats 3]
"""

from __future__ import annotations

import argparse
import json
import os
import resource
import socket
import statistics
import subprocess
import sys
import time

import torch
import torch.distributed as dist
from torch import nn

import torchinit as ti


def model(layers: int, width: int) -> nn.Module:
    return nn.Sequential(*[nn.TransformerEncoderLayer(width, 16, 4 * width, batch_first=True)
                           for _ in range(layers)])


PLAN = ti.Plan([ti.Rule(init=ti.TruncatedNormal(stddev=0.02, a=-0.04, b=0.04)),
                ti.Rule(role="bias", init="zeros"), ti.Rule(role="norm", name="weight",
                                                             init="ones")])


def rank_main(rank: int, world: int, port: int, layers: int, width: int, threads: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.set_num_threads(threads)
    mesh = init_device_mesh("cpu", (world,))
    with torch.device("meta"):
        m = model(layers, width)
    for layer in m:
        fully_shard(layer, mesh=mesh)
    fully_shard(m, mesh=mesh)
    dist.barrier()
    start = time.perf_counter()
    ti.materialize(m, PLAN, seed=0)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    local = sum(p.to_local().numel() for p in m.parameters())
    print(json.dumps({"rank": rank, "seconds": seconds, "rss": rss, "local": local}))
    dist.barrier()
    dist.destroy_process_group()


def single_main(layers: int, width: int, threads: int) -> None:
    torch.set_num_threads(threads)
    start = time.perf_counter()
    m = ti.build(lambda: model(layers, width), PLAN, seed=0)
    seconds = time.perf_counter() - start
    rss = resource.getrusage(resource.RUSAGE_SELF).ru_maxrss * 1024
    print(json.dumps({"seconds": seconds, "rss": rss,
                      "params": sum(p.numel() for p in m.parameters())}))


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _child(*args: str) -> list[dict]:
    out = subprocess.run([sys.executable, __file__, *args], check=True, capture_output=True,
                         text=True).stdout
    return [json.loads(line) for line in out.splitlines() if line.startswith("{")]


def main() -> None:
    parser = argparse.ArgumentParser(description=__doc__.splitlines()[0])
    parser.add_argument("--world", type=int, default=2)
    parser.add_argument("--layers", type=int, default=8)
    parser.add_argument("--width", type=int, default=1024)
    parser.add_argument("--threads", type=int, default=1)
    parser.add_argument("--repeats", type=int, default=3)
    parser.add_argument("--role", default="driver")
    args = parser.parse_args()
    shape = (str(args.layers), str(args.width))
    if args.role == "ranks":
        import torch.multiprocessing as mp

        mp.spawn(rank_main, args=(args.world, _free_port(), args.layers, args.width,
                                  args.threads), nprocs=args.world)
        return
    if args.role == "single":
        single_main(args.layers, args.width, args.threads)
        return
    ranks, single, single_all = [], [], []
    common = ["--layers", shape[0], "--width", shape[1]]
    for _ in range(args.repeats):
        ranks.append(_child("--role", "ranks", "--world", str(args.world), "--threads",
                            str(args.threads), *common))
        single.append(_child("--role", "single", "--threads", str(args.threads), *common)[0])
        single_all.append(_child("--role", "single", "--threads",
                                 str(args.threads * args.world), *common)[0])
    per_rank = statistics.median(max(r["seconds"] for r in run) for run in ranks)
    one = statistics.median(r["seconds"] for r in single)
    whole = statistics.median(r["seconds"] for r in single_all)
    params = single[0]["params"]
    rank_rss = max(r["rss"] for run in ranks for r in run)
    print(f"{params / 1e6:.0f}M parameters, W={args.world}, {args.threads} thread(s) per"
          f" process, medians of {args.repeats}")
    print(f"single process, {args.threads} thread(s):  {one:6.2f} s   peak RSS"
          f" {max(r['rss'] for r in single) / 1e9:.2f} GB")
    print(f"single process, {args.threads * args.world} thread(s):  {whole:6.2f} s")
    print(f"slowest rank of W={args.world}:          {per_rank:6.2f} s   peak RSS"
          f" {rank_rss / 1e9:.2f} GB per rank")
    print(f"per-rank / single-process time: {per_rank / one:.2f} (same threads per process),"
          f" {per_rank / whole:.2f} (same threads in all); target <= 0.6")


if __name__ == "__main__":
    main()
