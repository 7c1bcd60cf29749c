"""Initialize an FSDP2-sharded model on CPU: every rank fills only its shard, and the result is
bit-identical to a single-process build.

    torchrun --nproc_per_node 2 examples/sharded_init.py
"""

from __future__ import annotations

import torch
import torch.distributed as dist
from torch import nn
from torch.distributed.device_mesh import init_device_mesh
from torch.distributed.fsdp import fully_shard

import torchinit as ti


def model() -> nn.Module:
    return nn.Sequential(
        nn.Embedding(1000, 64),
        *[nn.TransformerEncoderLayer(64, 4, 256, batch_first=True) for _ in range(2)],
        nn.LayerNorm(64),
        nn.Linear(64, 1000, bias=False),
    )


def main() -> None:
    dist.init_process_group("gloo")
    rank, world = dist.get_rank(), dist.get_world_size()
    mesh = init_device_mesh("cpu", (world,))
    plan = ti.presets.get("gpt2", n_layers=2)

    with torch.device("meta"):
        sharded = model()
    for layer in sharded[1:3]:
        fully_shard(layer, mesh=mesh)
    fully_shard(sharded, mesh=mesh)
    manifest = ti.materialize(sharded, plan, seed=0)

    single = ti.build(model, plan, seed=0)  # what one process would build
    mismatches = [
        path for (path, p), q in zip(sharded.named_parameters(), single.parameters())
        if not torch.equal(p.full_tensor(), q)
    ]
    digests = [None] * world
    dist.all_gather_object(digests, manifest.digest())
    local = sum(p.to_local().numel() for p in sharded.parameters())
    print(f"rank {rank}/{world}: {local} of {sum(p.numel() for p in single.parameters())}"
          f" values held locally; mismatches vs single process: {mismatches or 'none'};"
          f" manifest digests agree: {len(set(digests)) == 1}")
    dist.barrier()
    dist.destroy_process_group()


if __name__ == "__main__":
    main()
