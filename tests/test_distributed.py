"""Sharded initialization in real processes (gloo on 127.0.0.1): every rank's shard equals the
same region of a single-process build, bit for bit."""

from __future__ import annotations

import socket

import pytest
import torch.distributed as dist
import torch.multiprocessing as mp

from . import distributed_workers as workers

pytestmark = [
    pytest.mark.distributed,
    pytest.mark.skipif(not dist.is_available(), reason="torch built without distributed"),
]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return s.getsockname()[1]


def _run(fn, world: int, *args, timeout: float = 120.0) -> None:
    context = mp.start_processes(fn, args=(world, _free_port(), *args), nprocs=world,
                                 join=False, start_method="spawn")
    try:
        while not context.join(timeout=timeout):
            pass
    finally:
        for process in context.processes:
            if process.is_alive():
                process.kill()


@pytest.mark.parametrize("world", [1, 2, 3, 4])
def test_fsdp2_whole_model(world):
    _run(workers.fsdp_materialize, world, False)


@pytest.mark.parametrize("world", [2, 3])
def test_fsdp2_per_block(world):
    _run(workers.fsdp_materialize, world, True)


@pytest.mark.parametrize("world", [2, 3, 4])
def test_tensor_parallel_shards_and_replicas(world):
    _run(workers.tensor_parallel_apply, world)


def test_two_d_mesh():
    _run(workers.two_d_mesh, 4)


def test_partial_placement_is_rejected_on_every_rank():
    _run(workers.partial_is_rejected, 2)


def test_fsdp2_materialize_is_all_or_nothing():
    _run(workers.fsdp_failure_leaves_the_meta_model, 2)


@pytest.mark.parametrize("world", [2, 3])
def test_fsdp2_captured_native_init(world):
    pytest.importorskip("transformers")
    _run(workers.fsdp_native, world)


@pytest.mark.parametrize("world", [2, 3])
def test_fsdp2_loads_its_shard_of_a_checkpoint(world, tmp_path):
    """The embedding, attention and fc come from the file (regions of it per rank); the LSTM
    and the norm from the plan."""
    safetensors_torch = pytest.importorskip("safetensors.torch")
    source = workers.Uneven()
    state = {k: v.clone() for k, v in source.state_dict().items()
             if not k.startswith(("lstm.", "norm.", "head."))}  # head: tied to embed
    path = tmp_path / "partial.safetensors"
    safetensors_torch.save_file(state, str(path))
    _run(workers.fsdp_checkpoint, world, str(path))


@pytest.mark.parametrize("world", [2, 3])
def test_fsdp2_mup_equals_the_single_process_plan(world):
    _run(workers.fsdp_mup, world)
