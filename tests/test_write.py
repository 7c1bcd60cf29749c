"""The one writer (Manifest.write): checks before the first write, restore on any failure,
zero-size tensors, values beyond the dtype's range; apply, build and materialize all or nothing."""

from __future__ import annotations

import dataclasses
import sys
import warnings

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import torchinit as ti
import torchinit.functional as init
from torchinit.errors import ArgumentTypeError, PlanError, WriteError
from torchinit._plan.manifest import Record
from torchinit._plan.write import TAIL_STDS, largest_value

from .zoo import full_plan

PLAN = full_plan()


class Small(nn.Module):
    """Tied weights, fused LSTM blocks (one with its own rule), a conv, batch-norm buffers."""

    def __init__(self) -> None:
        super().__init__()
        self.embed = nn.Embedding(10, 4, padding_idx=0)
        self.lstm = nn.LSTM(4, 4)
        self.conv = nn.Conv1d(4, 4, 3)
        self.norm = nn.BatchNorm1d(4)
        self.head = nn.Linear(4, 10, bias=False)
        self.head.weight = self.embed.weight


WRITES = len(list(Small().parameters()))  # tied weights once


def _bits(t: torch.Tensor) -> torch.Tensor:
    return t.detach().clone().reshape(-1).view(torch.uint8)


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: _bits(v) for k, v in model.state_dict(keep_vars=True).items()}


def _assert_bitwise(model: nn.Module, before: dict[str, torch.Tensor]) -> None:
    after = _snapshot(model)
    assert after.keys() == before.keys()
    for k in before:
        assert torch.equal(after[k], before[k]), k


class FailAt:
    """Raise ``error`` at the ``k``-th call of ``owner.name`` (1-based), counting calls."""

    def __init__(self, monkeypatch: pytest.MonkeyPatch, owner: object, name: str, k: int,
                 error: BaseException) -> None:
        self.calls = 0
        original = getattr(owner, name)

        def failing(*args, **kwargs):
            self.calls += 1
            if self.calls == k:
                raise error
            return original(*args, **kwargs)

        monkeypatch.setattr(owner, name, failing)


class FailAtCopy(TorchFunctionMode):
    """Raise ``error`` at the ``k``-th ``Tensor.copy_``."""

    def __init__(self, k: int, error: BaseException) -> None:
        super().__init__()
        self.k, self.error, self.calls = k, error, 0

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.copy_:
            self.calls += 1
            if self.calls == self.k:
                raise self.error
        return func(*args, **(kwargs or {}))


ERRORS = [RuntimeError("injected"), KeyboardInterrupt()]


# --- apply: a failure at every parameter, restored bitwise ---------------------------------------

@pytest.mark.parametrize("error", ERRORS, ids=["exception", "interrupt"])
def test_apply_failing_at_any_parameter_restores_every_tensor(monkeypatch, error):
    for k in range(1, WRITES + 1):
        model = Small()
        before = _snapshot(model)
        with monkeypatch.context() as m:
            fail = FailAt(m, Record, "sample", k, error)
            with pytest.raises(type(error)) as info:
                ti.apply(model, PLAN, seed=1)
        assert fail.calls == k
        _assert_bitwise(model, before)
        if sys.version_info >= (3, 11):  # exception notes
            assert any("torchinit: while writing parameter" in n for n in info.value.__notes__)
    ti.apply(model, PLAN, seed=1)  # and the model still takes a plan afterwards
    reference = Small()
    ti.apply(reference, PLAN, seed=1)
    for (path, a), b in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(a, b), path


@pytest.mark.parametrize("error", ERRORS, ids=["exception", "interrupt"])
def test_apply_failing_in_any_copy_restores_every_tensor(error):
    k = 0
    while True:
        k += 1
        model = Small()
        before = _snapshot(model)
        mode = FailAtCopy(k, error)
        try:
            with mode:
                ti.apply(model, PLAN, seed=2)
        except type(error):
            _assert_bitwise(model, before)
            continue
        assert mode.calls < k and k > WRITES  # every copy of the write was tried
        break


def test_the_failing_parameter_is_named(monkeypatch):
    model = Small()
    FailAt(monkeypatch, Record, "sample", 3, RuntimeError("injected"))
    with pytest.raises(RuntimeError) as info:
        ti.apply(model, PLAN)
    path = [p for p, _ in model.named_parameters()][2]
    if sys.version_info >= (3, 11):  # exception notes
        note = info.value.__notes__[-1]
        assert repr(path) in note and "2 tensor(s) written before it were restored" in note


def test_restore_copies_only_what_is_overwritten(monkeypatch):
    """A copy of each tensor is taken just before it is written: a failure at parameter k
    has made k - 1 copies (not a copy of the whole model up front)."""
    clones = []
    original = torch.Tensor.clone

    def clone(t, *args, **kwargs):
        if isinstance(t, nn.Parameter):
            clones.append(t.shape)
        return original(t, *args, **kwargs)

    monkeypatch.setattr(torch.Tensor, "clone", clone)
    FailAt(monkeypatch, Record, "sample", 4, RuntimeError("injected"))
    with pytest.raises(RuntimeError):
        ti.apply(Small(), PLAN)
    assert len(clones) == 3


def test_as_fn_failing_in_a_module_restores_that_module(monkeypatch):
    model = Small()
    before = _snapshot(model)
    fn = PLAN.as_fn(model)
    FailAt(monkeypatch, Record, "sample", 2, KeyboardInterrupt())
    with pytest.raises(KeyboardInterrupt):
        fn(model.lstm)  # 4 parameters; the second fails
    _assert_bitwise(model, before)


# --- build and materialize: all or nothing ------------------------------------------------------

def _meta_state(model: nn.Module) -> list[tuple[str, int, str]]:
    return [(path, id(t), t.device.type) for path, t in
            [*model.named_parameters(), *model.named_buffers()]]


@pytest.mark.parametrize("error", ERRORS, ids=["exception", "interrupt"])
def test_materialize_failing_at_any_parameter_leaves_the_meta_model(monkeypatch, error):
    for k in range(1, WRITES + 1):
        with torch.device("meta"):
            model = Small()
        before = _meta_state(model)
        with monkeypatch.context() as m:
            FailAt(m, Record, "sample", k, error)
            with pytest.raises(type(error)):
                ti.materialize(model, PLAN, seed=3)
        assert _meta_state(model) == before  # same objects, all still on meta
        assert not hasattr(model, "torchinit_manifest")
    ti.materialize(model, PLAN, seed=3)
    assert torch.equal(model.norm.running_var, torch.ones(4))


def test_materialize_failing_at_its_third_sample_leaves_no_real_buffers(monkeypatch):
    """The report: batch-norm buffers were left real but uninitialized."""
    with torch.device("meta"):
        model = nn.Sequential(nn.Linear(3, 4), nn.BatchNorm1d(4), nn.Linear(4, 2))
    FailAt(monkeypatch, Record, "sample", 3, RuntimeError("injected"))
    with pytest.raises(RuntimeError, match="injected"):
        ti.materialize(model, PLAN)
    assert all(b.is_meta for b in model.buffers()) and all(p.is_meta for p in model.parameters())


@pytest.mark.parametrize("error", ERRORS, ids=["exception", "interrupt"])
def test_materialize_failing_after_the_writes_leaves_the_meta_model(monkeypatch, error):
    with torch.device("meta"):
        model = Small()
    before = _meta_state(model)
    FailAt(monkeypatch, nn.BatchNorm1d, "reset_running_stats", 1, error)
    with pytest.raises(type(error)):
        ti.materialize(model, PLAN)
    assert _meta_state(model) == before


@pytest.mark.parametrize("error", ERRORS, ids=["exception", "interrupt"])
def test_build_failing_at_any_parameter_returns_nothing_and_leaves_nothing(monkeypatch, error):
    register = nn.Module.register_parameter
    fresh = dict(Small().named_buffers())
    for k in range(1, WRITES + 1):
        made: list[nn.Module] = []
        with monkeypatch.context() as m:
            FailAt(m, Record, "sample", k, error)
            with pytest.raises(type(error)):
                ti.build(lambda: made.append(Small()) or made[-1], PLAN)
        assert all(p.is_meta for p in made[0].parameters())
        for path, buf in made[0].named_buffers():  # the values __init__ computed, untouched
            assert torch.equal(buf, fresh[path]), path
        assert nn.Module.register_parameter is register
    assert nn.Linear(2, 2).weight.device.type == "cpu"


def test_build_interrupted_while_constructing_leaves_no_patch():
    register = nn.Module.register_parameter

    def factory():
        nn.Linear(2, 2)
        raise KeyboardInterrupt

    with pytest.raises(KeyboardInterrupt):
        ti.build(factory, PLAN)
    assert nn.Module.register_parameter is register


# --- checks before the first write ---------------------------------------------------------------

def test_apply_on_a_meta_model_raises_naming_every_parameter():
    with torch.device("meta"):
        model = nn.Linear(3, 2)
    with pytest.raises(WriteError) as info:
        ti.apply(model, PLAN)
    message = str(info.value)
    assert "'weight' of shape (2, 3)" in message and "'bias' of shape (2,)" in message
    assert "meta device" in message and "ti.materialize" in message


def test_every_offender_is_named_and_nothing_is_written():
    model = nn.Sequential(nn.Linear(3, 4), nn.Linear(4, 4), nn.Linear(4, 2))
    with torch.inference_mode():
        model[0].weight = nn.Parameter(torch.zeros(4, 3))
    model[1].weight = nn.Parameter(torch.zeros(1, 4).expand(4, 4))
    model[2].half()
    before = _snapshot(model)
    plan = ti.Plan([ti.Rule(role="weight", init=ti.Normal(0.0, 1e5)),
                    ti.Rule(role="bias", init="zeros")])
    with pytest.raises(WriteError) as info:
        ti.apply(model, plan)
    message = str(info.value)
    assert "3 problem(s)" in message and "nothing was written" in message
    assert "'0.weight' of shape (4, 3)" in message and "inference_mode" in message
    assert "'1.weight' of shape (4, 4)" in message and "expand" in message
    assert "'2.weight' of shape (2, 4) with Normal(" in message and "torch.float16" in message
    assert f"{TAIL_STDS * 1e5:.4g}" in message and "65504" in message
    _assert_bitwise(model, before)
    with torch.inference_mode():  # inference tensors can be written inside inference mode
        ti.apply(model[0], ti.Plan([ti.Rule(init="ones")]))
    assert torch.equal(model[0].weight, torch.ones(4, 3))


@pytest.mark.parametrize("init_,dtype,ok", [
    (ti.Normal(0.0, 1e6), torch.float16, False),
    (ti.Constant(1e5), torch.float16, False),
    (ti.Normal(0.0, 6550.0), torch.float16, True),   # |mean| + 10 std = 65500 <= 65504
    (ti.Normal(0.0, 6551.0), torch.float16, False),
    (ti.Normal(0.0, 1e6), torch.bfloat16, True),
    (ti.Uniform(-7e4, 7e4), torch.float16, False),
    (ti.Normal(0.0, 1e38), torch.float32, False),
])
def test_values_beyond_the_dtype_range_are_an_error(init_, dtype, ok):
    model = nn.Linear(3, 2).to(dtype)
    before = _snapshot(model)
    plan = ti.Plan([ti.Rule(init=init_)])
    if ok:
        ti.apply(model, plan)
        assert not torch.isnan(model.weight).any()
        return
    with pytest.raises(WriteError, match=rf"'weight' of shape \(2, 3\) with .*{dtype}"):
        ti.apply(model, plan)
    _assert_bitwise(model, before)
    with pytest.raises(WriteError, match=str(dtype)):
        ti.build(lambda: nn.Linear(3, 2), plan, dtype=dtype)


def test_largest_value_rule():
    model = nn.Linear(3, 2)
    manifest = ti.Plan([ti.Rule(role="weight", init=ti.Normal(1.0, 2.0)),
                        ti.Rule(role="bias", init=ti.Uniform(-3.0, 0.5))]).explain(model)
    assert largest_value(manifest["weight"]) == 1.0 + TAIL_STDS * 2.0
    assert largest_value(manifest["bias"]) == 3.0
    assert largest_value(dataclasses.replace(manifest["bias"], scale=2.0)) == 6.0


def test_functional_overflow_fails_before_drawing_the_seed():
    tensor = torch.zeros(3, dtype=torch.float16)
    state = torch.get_rng_state()
    with pytest.raises(WriteError, match=r"tensor of shape \(3,\).*float16"):
        init.normal_(tensor, 0.0, 1e6)
    assert torch.equal(torch.get_rng_state(), state) and not tensor.any()
    with pytest.raises(WriteError, match="1e\\+05"):
        init.constant_(tensor, 1e5)


def test_write_checks_its_targets():
    model = nn.Linear(3, 2)
    manifest = PLAN.explain(model)
    with pytest.raises(ArgumentTypeError, match="mapping"):
        manifest.write("model")  # type: ignore[arg-type]
    with pytest.raises(WriteError, match="no record"):
        manifest.write({"nope": torch.zeros(2)})
    with pytest.raises(WriteError, match=r"manifest says shape \(2, 3\)"):
        manifest.write({"weight": torch.zeros(3, 3)})
    with pytest.raises(PlanError, match="not in the manifest"):
        manifest.write(nn.Sequential(nn.Linear(3, 2)))


def test_apply_takes_a_model_first():
    with pytest.raises(ArgumentTypeError, match="nn.Module") as info:
        ti.apply("model", PLAN)  # type: ignore[arg-type]
    assert isinstance(info.value, TypeError)


# --- zero-size tensors: a warning and no write, in every path -------------------------------------

ZERO_PLAN = ti.Plan([ti.Rule(role="weight", init=ti.Normal(0.0, 0.1)),
                     ti.Rule(role="bias", init="ones")])


def test_zero_size_parameters_warn_and_are_not_written():
    model = nn.Linear(0, 5)
    with pytest.warns(UserWarning, match=r"zero-element tensors is a no-op: weight \(5, 0\)"):
        ti.apply(model, ZERO_PLAN)
    assert torch.equal(model.bias, torch.ones(5))
    with pytest.warns(UserWarning, match="zero-element"):
        built = ti.build(lambda: nn.Linear(0, 5), ZERO_PLAN)
    assert built.weight.shape == (5, 0) and built.weight.device.type == "cpu"
    with torch.device("meta"):
        meta = nn.Linear(0, 5)
    with pytest.warns(UserWarning, match="zero-element"):
        ti.materialize(meta, ZERO_PLAN)
    assert torch.equal(meta.bias, torch.ones(5))


def test_zero_size_warning_points_at_the_caller():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's own, from nn.Linear's reset_parameters
        model = nn.Linear(0, 5)
    with warnings.catch_warnings(record=True) as caught:
        warnings.simplefilter("always")
        ti.apply(model, ZERO_PLAN)
    assert [w.filename for w in caught] == [__file__]


def test_fill_through_the_writer():
    tensor = torch.zeros(2, 3)
    assert ti.Normal(0.0, 1.0).fill_(tensor, ti.Key(0, "w")) is tensor and tensor.any()
    with pytest.raises(WriteError, match="expand"):
        ti.Ones().fill_(torch.zeros(1, 3).expand(2, 3), 0)
    meta = torch.empty(2, 3, device="meta")
    assert ti.Ones().fill_(meta, 0) is meta
