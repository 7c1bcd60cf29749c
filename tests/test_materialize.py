"""ti.build and ti.materialize: no wasted init, buffers and ties intact, same values as apply."""

from __future__ import annotations

import threading

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError, DTypeError, PlanError

from .zoo import Everything, TiedLM, full_plan


class Rotary(nn.Module):
    """Buffers computed in __init__: rotary frequencies and a causal mask."""

    def __init__(self, dim: int = 8, length: int = 6) -> None:
        super().__init__()
        self.proj = nn.Linear(dim, dim)
        inv_freq = 1.0 / (10000 ** (torch.arange(0, dim, 2).float() / dim))
        self.register_buffer("inv_freq", inv_freq, persistent=False)
        self.register_buffer("mask", torch.tril(torch.ones(length, length, dtype=torch.bool)))


class Scaled(nn.Parameter):
    """A Parameter subclass with an attribute."""


class Custom(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.w = Scaled(torch.ones(4, 3))
        self.w.lr_scale = 0.1
        self.frozen = nn.Parameter(torch.ones(4, 3), requires_grad=False)


PLAN = full_plan()


def _assert_same(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    for k in sa:
        assert torch.equal(sa[k], sb[k]), k


@pytest.mark.parametrize("threads", [1, 2])
def test_build_equals_apply_bitwise(threads):
    torch.set_num_threads(threads)
    built = ti.build(Everything, PLAN, seed=11)
    reference = Everything()
    ti.apply(reference, PLAN, seed=11)
    _assert_same(built, reference)
    assert built.torchinit_manifest.digest() == PLAN.explain(reference, seed=11).digest()


def test_no_default_initialization_runs_on_real_memory(monkeypatch):
    real_inits = []
    original = nn.init.kaiming_uniform_

    def spy(tensor, *args, **kwargs):
        if tensor.device.type != "meta":
            real_inits.append(tuple(tensor.shape))
        return original(tensor, *args, **kwargs)

    monkeypatch.setattr(nn.init, "kaiming_uniform_", spy)
    ti.build(Everything, PLAN)
    assert real_inits == []
    Everything()
    assert real_inits  # the spy does see torch's default init in a normal construction


def test_buffers_keep_the_values_init_computed():
    model = ti.build(Rotary, ti.Plan([ti.Rule(role="weight", init="xavier_uniform"),
                                      ti.Rule(role="bias", init="zeros")]))
    expected = Rotary()
    assert torch.equal(model.inv_freq, expected.inv_freq)
    assert torch.equal(model.mask, expected.mask)
    bn = ti.build(Everything, PLAN).mlp[3]
    assert torch.equal(bn.running_var, torch.ones(4)) and int(bn.num_batches_tracked) == 0


def test_tied_parameters_stay_tied():
    model = ti.build(TiedLM, PLAN, seed=1)
    assert model.head.weight is model.embed.weight
    assert model.embed.weight.device.type == "cpu"
    assert torch.count_nonzero(model.embed.weight[0]) == 0  # padding row


def test_parameter_subclasses_attributes_and_requires_grad_are_kept():
    plan = ti.Plan([ti.Rule(init=ti.Normal(0.0, 0.5))])
    model = ti.build(Custom, plan)
    assert type(model.w) is Scaled and model.w.lr_scale == 0.1 and model.w.requires_grad
    assert not model.frozen.requires_grad and model.frozen.device.type == "cpu"
    reference = Custom()
    ti.apply(reference, plan)
    _assert_same(model, reference)


def test_lazy_modules_get_shapes_from_a_meta_dry_run():
    def factory():
        return nn.Sequential(nn.LazyLinear(8), nn.ReLU(), nn.LazyLinear(3), nn.LazyBatchNorm1d())

    plan = ti.Plan([ti.Rule(role="weight", init="kaiming_normal"),
                    ti.Rule(role="bias", init="zeros"), ti.Rule(role="scale", init="ones")])
    model = ti.build(factory, plan, seed=2, example_inputs=torch.randn(2, 5))
    assert model[0].weight.shape == (8, 5) and type(model[0]) is nn.Linear
    assert torch.equal(model[3].running_var, torch.ones(3))
    eager = factory().eval()  # eval: the shaping forward must not touch running statistics
    eager(torch.randn(2, 5))
    eager.train()
    ti.apply(eager, plan, seed=2)
    _assert_same(model, eager)
    assert model(torch.randn(4, 5)).shape == (4, 3)


def test_lazy_without_or_with_wrong_example_inputs():
    def factory():
        return nn.Sequential(nn.LazyLinear(4), nn.Linear(3, 2))

    with pytest.raises(PlanError, match="example_inputs"):
        ti.build(factory, full_plan())
    with pytest.raises(PlanError, match="dry run"):
        ti.build(factory, full_plan(), example_inputs=torch.randn(2, 5))


def test_factory_that_needs_real_values_fails_clearly():
    class ReadsWeights(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)
            self.norm = float(self.fc.weight.detach().norm())

    with pytest.raises(PlanError, match="ti.apply"):
        ti.build(ReadsWeights, full_plan())


def test_dtype_and_device_options():
    model = ti.build(Rotary, PLAN, dtype=torch.bfloat16)
    assert model.proj.weight.dtype == torch.bfloat16 and model.inv_freq.dtype == torch.bfloat16
    assert model.mask.dtype == torch.bool
    reference = Rotary().to(torch.bfloat16)
    ti.apply(reference, PLAN)
    assert torch.equal(model.proj.weight, reference.proj.weight)
    with pytest.raises(DTypeError, match="floating dtype"):
        ti.build(Rotary, PLAN, dtype=torch.int32)


def test_plan_errors_come_before_any_allocation():
    with pytest.raises(PlanError, match="match no rule"):
        ti.build(Everything, ti.Plan([ti.Rule(role="weight", init="zeros")]))


def test_materialize_a_meta_model():
    with torch.device("meta"):
        model = Everything()
    manifest = ti.materialize(model, PLAN, seed=11)
    reference = Everything()
    ti.apply(reference, PLAN, seed=11)
    for (name, p), q in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(p, q), name
    assert torch.equal(model.mlp[3].running_var, torch.ones(4))  # reset_running_stats
    assert manifest.digest() == PLAN.explain(reference, seed=11).digest()


def test_materialize_flags_buffers_it_cannot_recover():
    plan = ti.Plan([ti.Rule(role="weight", init="xavier_uniform"),
                    ti.Rule(role="bias", init="zeros")])
    with torch.device("meta"):
        model = Rotary()
    with pytest.raises(PlanError, match="inv_freq"):
        ti.materialize(model, plan)
    with torch.device("meta"):
        model = Rotary()
    with pytest.warns(UserWarning, match="inv_freq"):
        ti.materialize(model, plan, unrecoverable_buffers="zeros")
    assert model.inv_freq.device.type == "cpu" and torch.count_nonzero(model.inv_freq) == 0
    with pytest.raises(PlanError, match="meta device"):
        ti.materialize(Rotary(), plan)


def test_progress_bar_draws_when_enabled(capsys):
    ti.build(Rotary, PLAN, progress=True)
    err = capsys.readouterr().err
    assert "materializing" in err and "100%" in err
    ti.build(Rotary, PLAN)
    assert capsys.readouterr().err == ""


def test_kept_parameters_get_the_models_own_init_on_meta():
    """on_unmatched='keep' has nothing to keep on the meta device: the model's own init is
    captured and replayed (and noted), so no uninitialized memory is left; a parameter created
    with values the model computed (no scheme) gets exactly those values, run for real."""
    plan = ti.Plan([ti.Rule(type="Linear", init="zeros")], on_unmatched="keep")
    model = ti.build(lambda: nn.Sequential(nn.Linear(4, 4), nn.LayerNorm(4), nn.PReLU()), plan,
                     audit=True)
    assert torch.equal(model[1].weight, torch.ones(4)) and torch.equal(model[2].weight,
                                                                        torch.tensor([0.25]))
    assert model.torchinit_audit.ok, model.torchinit_audit.table()
    assert "model's own init (captured)" in model.torchinit_manifest["1.weight"].notes[-1]

    class Table(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.arange(3.0))
            self.ones = nn.Parameter(torch.ones(3))

    built = ti.build(Table, ti.Plan([], on_unmatched="keep"))
    assert torch.equal(built.gain, torch.arange(3.0)) and torch.equal(built.ones, torch.ones(3))
    assert built.torchinit_manifest["gain"].rule_label.startswith("eager")
    assert built.torchinit_manifest["ones"].init == ti.Ones()
    with torch.device("meta"):
        meta = Table()
    with pytest.raises(PlanError, match="cannot be captured"):
        ti.materialize(meta, ti.Plan([], on_unmatched="keep"))


def test_builds_on_several_threads_leave_no_patch_behind():
    """Two builds overlap (the first to start ends first); meanwhile a third thread constructs
    an ordinary nn.Linear, which gets real weights; afterwards nothing is patched."""
    register = nn.Module.register_parameter
    both_inside = threading.Barrier(3, timeout=30)
    release = {"a": threading.Event(), "b": threading.Event()}
    results: dict[str, object] = {}

    def build(name: str) -> None:
        def factory() -> nn.Module:
            model = nn.Linear(3, 4)
            both_inside.wait()
            release[name].wait(30)
            return model

        try:
            results[name] = ti.build(factory, PLAN, seed=5)
        except BaseException as err:  # reported by the main thread
            results[name] = err

    def plain() -> None:
        both_inside.wait()
        results["plain"] = nn.Linear(3, 4)

    threads = {name: threading.Thread(target=build, args=(name,)) for name in ("a", "b")}
    threads["plain"] = threading.Thread(target=plain)
    for thread in threads.values():
        thread.start()
    threads["plain"].join(30)
    release["a"].set()
    threads["a"].join(30)
    release["b"].set()
    threads["b"].join(30)
    assert results["plain"].weight.device.type == "cpu"  # type: ignore[union-attr]
    reference = nn.Linear(3, 4)
    ti.apply(reference, PLAN, seed=5)
    for name in ("a", "b"):
        model = results[name]
        assert isinstance(model, nn.Linear), model
        assert torch.equal(model.weight, reference.weight), name
    assert nn.Module.register_parameter is register
    assert nn.Linear(2, 2).weight.device.type == "cpu"


def test_a_failing_factory_leaves_no_patch_behind():
    register = nn.Module.register_parameter

    def factory() -> nn.Module:
        nn.Linear(2, 2)
        raise ValueError("broken factory")

    with pytest.raises(PlanError, match="broken factory"):
        ti.build(factory, PLAN)
    assert nn.Module.register_parameter is register


@pytest.mark.skipif(torch.cuda.device_count() > 7, reason="this machine has a cuda:7")
def test_a_device_this_machine_lacks_fails_before_anything_is_built():
    calls = []

    def factory() -> nn.Module:
        calls.append(1)
        return nn.Linear(2, 2)

    with pytest.raises(ConfigError, match="'cuda:7' is not available"):
        ti.build(factory, PLAN, device="cuda:7")
    assert calls == []
    with torch.device("meta"):
        model = nn.Linear(2, 2)
    with pytest.raises(ConfigError, match="cuda:7"):
        ti.materialize(model, PLAN, device="cuda:7")
    assert model.weight.is_meta
    with pytest.raises(ConfigError, match="not a torch device"):
        ti.build(factory, PLAN, device="gpu please")
