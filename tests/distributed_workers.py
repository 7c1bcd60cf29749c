"""Worker functions run in spawned processes by the distributed tests (one per rank)."""

from __future__ import annotations

import functools
import os
import sys
from collections.abc import Callable

import torch
import torch.distributed as dist
from torch import nn

import torchinit as ti

from .zoo import TiedLM, full_plan


class Uneven(nn.Module):
    """Dimensions not divisible by 2, 3 or 4; fused LSTM and attention parameters; tied."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(23, 10, padding_idx=1)
        self.lstm = nn.LSTM(10, 7)
        self.attn = nn.MultiheadAttention(10, 2)
        self.norm = nn.LayerNorm(10)
        self.fc = nn.Linear(10, 13)
        self.head = nn.Linear(10, 23, bias=False)
        self.head.weight = self.embed.weight


def _exit_after_success(fn: Callable[..., None]) -> Callable[..., None]:
    """End the rank's process right after ``fn`` returns (its checks passed and the process
    group is destroyed), skipping interpreter teardown: torch's C++ static destructors
    occasionally abort there ("terminate called without an active exception") after every
    check has passed. A failing check still raises, and the spawn framework reports it."""

    @functools.wraps(fn)
    def run(*args: object) -> None:
        fn(*args)
        sys.stdout.flush()
        sys.stderr.flush()
        os._exit(0)

    return run


def plan() -> ti.Plan:
    return full_plan() + [ti.Rule(role="recurrent", init=ti.Orthogonal(), optional=True)]


def _setup(rank: int, world: int, port: int) -> None:
    os.environ.update(MASTER_ADDR="127.0.0.1", MASTER_PORT=str(port))
    dist.init_process_group("gloo", rank=rank, world_size=world)
    torch.manual_seed(1000 + rank)  # a rank-dependent global RNG must not matter


def _distribute(model: nn.Module, mesh, placements: dict) -> None:
    """Replace each named parameter by a DTensor with the given placements."""
    from torch.distributed.tensor import distribute_tensor

    for path, placement in placements.items():
        owner, _, name = path.rpartition(".")
        module = model.get_submodule(owner)
        local = getattr(module, name).detach()
        module.register_parameter(name, nn.Parameter(distribute_tensor(local, mesh, placement)))


def _sharded_meta_uneven(world: int) -> nn.Module:
    """An :class:`Uneven` built on meta and sharded whole with FSDP2 over ``world`` ranks."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    with torch.device("meta"):
        model = Uneven()
    fully_shard(model, mesh=init_device_mesh("cpu", (world,)))
    return model


def _check_against_single_process(model: nn.Module, reference: nn.Module) -> None:
    from torchinit._sharding import local_region

    ref = dict(reference.named_parameters())
    for path, param in model.named_parameters():
        region = local_region(param, path)
        local = param.to_local() if region is not None else param
        expected = ref[path].detach()[region] if region is not None else ref[path].detach()
        assert torch.equal(local.detach(), expected), (dist.get_rank(), path)
        if region is not None:
            assert torch.equal(param.full_tensor().detach(), ref[path].detach()), path


@_exit_after_success
def fsdp_materialize(rank: int, world: int, port: int, per_block: bool) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    _setup(rank, world, port)
    try:
        mesh = init_device_mesh("cpu", (world,))
        for factory in (Uneven, TiedLM):
            with torch.device("meta"):
                model = factory()
            if per_block:  # tied parameters stay in the root's group, as FSDP2 requires
                every = [p for _, p in model.named_parameters(remove_duplicate=False)]
                tied = {id(p) for p in every if sum(q is p for q in every) > 1}
                for child in model.children():
                    own = list(child.parameters())
                    if own and not any(id(p) in tied for p in own):
                        fully_shard(child, mesh=mesh)
            fully_shard(model, mesh=mesh)
            manifest = ti.materialize(model, plan(), seed=7)
            reference = ti.build(factory, plan(), seed=7)
            _check_against_single_process(model, reference)
            digests = [None] * world
            dist.all_gather_object(digests, manifest.digest())
            assert len(set(digests)) == 1, digests
            groups = ti.param_groups(model, weight_decay=0.1)
            assert sum(len(g["params"]) for g in groups) == len(list(model.parameters()))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@_exit_after_success
def tensor_parallel_apply(rank: int, world: int, port: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Replicate, Shard

    _setup(rank, world, port)
    try:
        mesh = init_device_mesh("cpu", (world,))
        model = Uneven()
        _distribute(model, mesh, {
            "fc.weight": [Shard(0)], "fc.bias": [Shard(0)], "attn.in_proj_weight": [Shard(1)],
            "lstm.weight_ih_l0": [Shard(0)], "lstm.weight_hh_l0": [Shard(1)],
            "norm.weight": [Replicate()]})
        ti.apply(model, plan(), seed=3)
        reference = Uneven()
        ti.apply(reference, plan(), seed=3)
        _check_against_single_process(model, reference)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@_exit_after_success
def two_d_mesh(rank: int, world: int, port: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import Shard

    _setup(rank, world, port)
    try:
        mesh = init_device_mesh("cpu", (2, world // 2), mesh_dim_names=("dp", "tp"))
        model = Uneven()
        _distribute(model, mesh, {"fc.weight": [Shard(0), Shard(1)],
                                  "attn.in_proj_weight": [Shard(1), Shard(0)],
                                  "lstm.weight_ih_l0": [Shard(0), Shard(1)]})
        ti.apply(model, plan(), seed=5)
        reference = Uneven()
        ti.apply(reference, plan(), seed=5)
        _check_against_single_process(model, reference)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@_exit_after_success
def partial_is_rejected(rank: int, world: int, port: int) -> None:
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.tensor import DTensor, Partial

    from torchinit.errors import PlanError

    _setup(rank, world, port)
    try:
        mesh = init_device_mesh("cpu", (world,))
        model = nn.Linear(4, 4)
        model.weight = nn.Parameter(DTensor.from_local(torch.zeros(4, 4), mesh, [Partial()]))
        before = model.bias.detach().clone()
        try:
            ti.apply(model, ti.Plan([ti.Rule(init="xavier_uniform", role="weight"),
                                     ti.Rule(init="ones", role="bias")]))
        except PlanError as err:
            assert "Partial" in str(err) and "'weight'" in str(err)
        else:
            raise AssertionError("Partial placement was accepted")
        assert torch.equal(model.bias.detach(), before)  # nothing written on any rank
        try:  # an unresolvable plan fails on every rank alike, with no collective to hang on
            ti.apply(nn.Linear(2, 2), ti.Plan([ti.Rule(role="weight", init="zeros")]))
        except PlanError as err:
            assert "match no rule" in str(err)
        dist.barrier()
    finally:
        dist.destroy_process_group()


@_exit_after_success
def fsdp_failure_leaves_the_meta_model(rank: int, world: int, port: int) -> None:
    """A failure while sampling a shard, or while swapping the real shards into the parameters,
    leaves every parameter the same (meta) object; a later materialize then works."""
    from torchinit._plan.manifest import Record

    _setup(rank, world, port)
    try:
        model = _sharded_meta_uneven(world)
        before = [(path, id(p)) for path, p in model.named_parameters()]
        for owner, name, k in ((Record, "sample", 3), (torch.utils, "swap_tensors", 4)):
            original = getattr(owner, name)
            calls = [0]

            def failing(*args, original=original, calls=calls, **kwargs):
                calls[0] += 1
                if calls[0] == k:
                    raise KeyboardInterrupt
                return original(*args, **kwargs)

            setattr(owner, name, failing)
            try:
                ti.materialize(model, plan(), seed=7)
            except KeyboardInterrupt:
                pass
            else:
                raise AssertionError(f"the failure in {name} was not raised")
            finally:
                setattr(owner, name, original)
            assert [(path, id(p)) for path, p in model.named_parameters()] == before
            assert all(p.device.type == "meta" for p in model.parameters()), name
        ti.materialize(model, plan(), seed=7)
        _check_against_single_process(model, ti.build(Uneven, plan(), seed=7))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@_exit_after_success
def fsdp_native(rank: int, world: int, port: int) -> None:
    """A captured plan (a tiny transformers Llama's own init) materialized shard by shard
    equals the single-process build, on every rank."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    from torchinit._materialize import parameters_on_meta

    from .thirdparty import define_torchvision_ops

    define_torchvision_ops()
    import transformers

    _setup(rank, world, port)
    try:
        config = transformers.LlamaConfig(hidden_size=48, intermediate_size=80, vocab_size=101,
                                          num_hidden_layers=2, num_attention_heads=4,
                                          num_key_value_heads=2)

        def factory() -> nn.Module:
            return transformers.LlamaForCausalLM(config)

        plan = ti.capture(factory)
        with parameters_on_meta():  # buffers (rotary frequencies) keep their values
            model = factory()
        mesh = init_device_mesh("cpu", (world,))
        for layer in model.model.layers:
            fully_shard(layer, mesh=mesh)
        fully_shard(model, mesh=mesh)
        ti.materialize(model, plan, seed=3)
        _check_against_single_process(model, ti.build(factory, plan, seed=3))
        dist.barrier()
    finally:
        dist.destroy_process_group()


@_exit_after_success
def fsdp_checkpoint(rank: int, world: int, port: int, path: str) -> None:
    """Each rank reads only its shard of every tensor the checkpoint has and initializes its
    shard of the rest; the result equals the single-process build."""
    _setup(rank, world, port)
    try:
        model = _sharded_meta_uneven(world)
        manifest = ti.materialize(model, plan(), seed=7, checkpoint=path)
        assert manifest["fc.weight"].source == "checkpoint"
        assert manifest["lstm.weight_hh_l0"].source == "plan"
        reference = ti.build(Uneven, plan(), seed=7, checkpoint=path)
        _check_against_single_process(model, reference)
        dist.barrier()
    finally:
        dist.destroy_process_group()


class WidthMLP(nn.Module):
    """784 -> width -> width -> 10 with a LayerNorm: input, hidden, output and vector
    parameters under μP, sizes not divisible by the world size."""

    def __init__(self, width: int) -> None:
        super().__init__()
        self.inp = nn.Linear(13, width)
        self.hidden = nn.Linear(width, width)
        self.norm = nn.LayerNorm(width)
        self.out = nn.Linear(width, 5)


@_exit_after_success
def fsdp_mup(rank: int, world: int, port: int) -> None:
    """A μP plan materialized on FSDP2 shards equals the single-process plan: the same values,
    and multipliers from the global shapes (the manifest and the optimizer groups)."""
    from torch.distributed.device_mesh import init_device_mesh
    from torch.distributed.fsdp import fully_shard

    _setup(rank, world, port)
    try:
        plan = ti.mup(lambda: WidthMLP(8))
        with torch.device("meta"):
            model = WidthMLP(37)
        mesh = init_device_mesh("cpu", (world,))
        fully_shard(model.hidden, mesh=mesh)
        fully_shard(model, mesh=mesh)
        sharded = ti.materialize(model, plan, seed=5)
        reference = WidthMLP(37)
        single = ti.apply(reference, plan, seed=5)
        _check_against_single_process(model, reference)
        for record in single:
            other = sharded[record.path]
            assert (other.lr_scale, other.weight_decay_scale, other.width) == (
                record.lr_scale, record.weight_decay_scale, record.width), record.path
        assert sharded["hidden.weight"].width == "hidden"
        assert sharded["hidden.weight"].lr_scale == 8 / 37

        def summary(groups: list[dict]) -> list[tuple]:
            return [(g["names"], g["lr"], g["weight_decay"]) for g in groups]

        assert summary(ti.param_groups(model, plan=plan, lr=1e-2, weight_decay=0.1)) == \
            summary(ti.param_groups(reference, plan=plan, lr=1e-2, weight_decay=0.1))
        dist.barrier()
    finally:
        dist.destroy_process_group()
