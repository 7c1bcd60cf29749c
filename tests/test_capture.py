"""ti.capture on torch layers and hand-written init code: what is captured, folded, reported."""

from __future__ import annotations

import fnmatch
import math

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit import CaptureError
from torchinit.errors import PlanError

from .native_checks import assert_bitwise_equal, assert_same_init, same_init


def _rule_for(plan: ti.Plan, path: str, block: str | None = None) -> ti.Rule:
    matching = [r for r in plan.rules if r.match.block == block and any(
        fnmatch.fnmatchcase(path, g) for g in r.match.path)]
    assert len(matching) == 1, (path, plan.rules)
    return matching[0]


class GPTLike(nn.Module):
    """A model with the init code people write: apply(fn) with .data methods, a depth-scaled
    projection, a padded embedding, a tied head, an LSTM forget-gate bias, a parameter created
    as a scalar multiple of a tensor."""

    def __init__(self, layers: int = 2, d: int = 32) -> None:
        super().__init__()
        self.embed = nn.Embedding(100, d, padding_idx=0)
        self.blocks = nn.ModuleList(nn.ModuleDict({"fc": nn.Linear(d, 4 * d),
                                                   "proj": nn.Linear(4 * d, d)})
                                    for _ in range(layers))
        self.lstm = nn.LSTM(d, d)
        self.head = nn.Linear(d, 100, bias=False)
        self.head.weight = self.embed.weight
        self.scale = nn.Parameter(torch.ones(d) * 0.1)
        self.apply(self._init)
        for name, p in self.named_parameters():
            if name.endswith("proj.weight"):
                p.data.div_(math.sqrt(2 * layers))
        for name, p in self.lstm.named_parameters():
            if "bias" in name:
                p.data.zero_()
                p.data[d:2 * d].fill_(1.0)

    @staticmethod
    def _init(m: nn.Module) -> None:
        if isinstance(m, nn.Linear):
            m.weight.data.normal_(0, 0.02)
            if m.bias is not None:
                m.bias.data.zero_()
        elif isinstance(m, nn.Embedding):
            nn.init.normal_(m.weight, std=0.02)
            m.weight.data[m.padding_idx].zero_()


def test_hand_written_init_is_captured_rule_by_rule():
    plan = ti.capture(GPTLike)
    assert _rule_for(plan, "blocks.0.proj.weight").init == ti.Normal(0.0, 0.02 / 2)
    assert _rule_for(plan, "blocks.1.fc.weight").init == ti.Normal(0.0, 0.02)
    assert _rule_for(plan, "embed.weight").init == ti.Normal(0.0, 0.02)
    assert "head.weight" in _rule_for(plan, "embed.weight").match.path  # tied: one rule
    assert _rule_for(plan, "lstm.bias_ih_l0").init == ti.Zeros()
    assert _rule_for(plan, "lstm.bias_ih_l0", block="f").init == ti.Ones()
    assert _rule_for(plan, "scale").init == ti.Constant(0.1)
    assert not plan.zero_padding  # the tied head's normal_ runs last: the padding row is drawn
    assert ti.capture(lambda: nn.Embedding(10, 4, padding_idx=2)).zero_padding
    assert "blocks.*.proj.weight" in _rule_for(plan, "blocks.0.proj.weight").match.path
    assert _rule_for(plan, "blocks.0.proj.weight").label == "native GPTLike.__init__"
    assert _rule_for(plan, "blocks.0.fc.weight").label == "native GPTLike._init"


def test_native_build_replays_the_models_init():
    torch.manual_seed(0)
    native = GPTLike(layers=2, d=128)
    built = ti.build(lambda: GPTLike(layers=2, d=128), "native", seed=3)
    assert_same_init(native, built)
    assert built.head.weight is built.embed.weight


def test_capture_then_build_is_bitwise_capture_then_apply():
    plan = ti.capture(GPTLike)
    built = ti.build(GPTLike, plan, seed=11)
    applied = GPTLike()
    ti.apply(applied, plan, seed=11)
    assert_bitwise_equal(built, applied)
    torch.set_num_threads(1)
    assert_bitwise_equal(ti.build(GPTLike, "native", seed=11), built)


def test_torch_init_functions_keep_torchs_scheme_and_fans():
    plan = ti.capture(lambda: nn.Sequential(nn.Linear(7, 5), nn.Conv2d(3, 4, 3),
                                            nn.MultiheadAttention(8, 2)))
    weight = _rule_for(plan, "0.weight")
    assert weight.init == ti.KaimingUniform(negative_slope=math.sqrt(5)) and weight.fan_convention == "torch"
    assert _rule_for(plan, "0.bias").init == ti.Uniform(-1 / math.sqrt(7), 1 / math.sqrt(7))
    assert _rule_for(plan, "2.in_proj_weight").init == ti.XavierUniform()
    manifest = plan.explain(nn.Sequential(nn.Linear(7, 5), nn.Conv2d(3, 4, 3),
                                          nn.MultiheadAttention(8, 2)))
    assert manifest["0.weight"].bound == pytest.approx(1 / math.sqrt(7), rel=1e-12)
    assert manifest["1.weight"].bound == pytest.approx(1 / math.sqrt(27), rel=1e-12)


@pytest.mark.parametrize("factory", [
    lambda: nn.Linear(300, 200),
    lambda: nn.Conv2d(16, 32, 3, groups=4),
    lambda: nn.ConvTranspose2d(16, 8, 4),
    lambda: nn.Embedding(500, 64, padding_idx=3),
    lambda: nn.LSTM(32, 64, num_layers=2),
    lambda: nn.GRU(16, 32, bidirectional=True),
    lambda: nn.MultiheadAttention(64, 4, kdim=32, vdim=48),
    lambda: nn.TransformerEncoderLayer(64, 4, 128),
    lambda: nn.Sequential(nn.BatchNorm2d(8), nn.LayerNorm(8), nn.GroupNorm(2, 8), nn.PReLU(8)),
    lambda: nn.Bilinear(20, 30, 40),
], ids=["linear", "grouped-conv", "conv-transpose", "embedding", "lstm", "gru", "mha",
        "transformer", "norms", "bilinear"])
def test_torch_layers_replay_their_defaults(factory):
    torch.manual_seed(1)
    assert_same_init(factory(), ti.build(factory, "native", seed=2))


def test_post_ops_fold_into_the_scheme():
    class Folded(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.a = nn.Parameter(torch.empty(100, 100))
            self.b = nn.Parameter(torch.empty(100, 100))
            self.c = nn.Parameter(torch.empty(100, 100))
            self.d = nn.Parameter(torch.randn(100) * 3 - 1)
            with torch.no_grad():
                self.a.normal_(0, 0.02).div_(math.sqrt(8)).add_(1.0)
                self.b.uniform_(-1, 1).mul_(-2).sub_(0.5)
                # the trunc_normal_ recipe of timm and many codebases
                lo, hi = (1 + math.erf(-2 / math.sqrt(2))) / 2, (1 + math.erf(2 / math.sqrt(2))) / 2
                self.c.uniform_(2 * lo - 1, 2 * hi - 1).erfinv_().mul_(0.05 * math.sqrt(2))
                self.c.add_(0.1).clamp_(min=0.1 - 0.1, max=0.1 + 0.1)

    plan = ti.capture(Folded)
    assert _rule_for(plan, "a").init == ti.Normal(1.0, 0.02 / math.sqrt(8))
    assert _rule_for(plan, "b").init == ti.Uniform(-2.5, 1.5)
    c = _rule_for(plan, "c").init
    assert isinstance(c, ti.TruncatedNormal)
    assert (c.mean, c.stddev, c.a, c.b) == pytest.approx((0.1, 0.05, 0.0, 0.2), rel=1e-9)
    assert _rule_for(plan, "d").init == ti.Normal(-1.0, 3.0)
    torch.manual_seed(0)
    assert_same_init(Folded(), ti.build(Folded, plan, seed=0))


def test_a_clamp_that_cuts_a_real_tail_is_not_guessed():
    class Clipped(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.empty(10, 10))
            with torch.no_grad():
                self.w.normal_(0, 1).clamp_(-1, 1)

    with pytest.raises(CaptureError, match=r"w \(10, 10\).*clamp_\(-1, 1\) cuts the distribution"):
        ti.capture(Clipped)


class Table(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.pos = nn.Parameter(torch.empty(16, 8))
        table = torch.sin(torch.arange(16.0)[:, None] * torch.arange(8.0)[None])
        self.pos.data.copy_(table)
        self.lin = nn.Linear(8, 8)


def test_what_cannot_be_captured_is_reported_with_the_call_and_the_function():
    with pytest.raises(CaptureError) as err:
        ti.capture(Table)
    text = str(err.value)
    assert "pos (16, 8) (Table): created from computed values" in text
    assert "Table.__init__, test_capture.py:" in text and "fallback='eager'" in text
    assert "lin.weight" not in text


def test_eager_fallback_keeps_the_models_own_values():
    plan = ti.capture(Table, fallback="eager")
    keep = _rule_for(plan, "pos")
    assert keep.init is ti._plan.rules.KEEP
    built = ti.build(Table, plan, seed=1)
    assert torch.equal(built.pos, Table().pos)
    record = built.torchinit_manifest["pos"]
    assert record.rule_label.startswith("eager") and "not shard-invariant" in record.notes[-1]
    applied = Table()
    before = applied.pos.detach().clone()
    ti.apply(applied, plan, seed=1)
    assert torch.equal(applied.pos, before)
    again = ti.build(Table, plan, seed=1)
    assert_bitwise_equal(built, again)


def test_row_writes_that_no_rule_can_select_are_reported():
    class Slices(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.w = nn.Parameter(torch.empty(12, 4))
            for i in range(3):
                nn.init.orthogonal_(self.w.data[4 * i: 4 * (i + 1)])

    with pytest.raises(CaptureError, match=r"w \(12, 4\).*rows 0:4 separately"):
        ti.capture(Slices)


def test_init_that_reads_parameter_values_is_detected():
    class Normalized(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(4, 4)
            self.lin.weight.data = self.lin.weight.data / self.lin.weight.data.norm(
                dim=1, keepdim=True)

    with pytest.raises(CaptureError, match="computed from parameter values"):
        ti.capture(Normalized)
    with pytest.raises(CaptureError, match="computed from parameter values"):
        ti.capture(lambda: nn.utils.parametrizations.weight_norm(nn.Linear(4, 4)))


class ReadsItem(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(4, 4)
        peak = self.lin.weight.abs().max().item()
        self.lin.weight.data.mul_(1 / peak)


def test_a_factory_that_fails_on_meta_names_the_call_and_suggests_eager():
    with pytest.raises(CaptureError, match=r"at Tensor\.item in ReadsItem\.__init__ "
                                           r"\(test_capture\.py:\d+\).*fallback='eager'"):
        ti.capture(ReadsItem)
    with pytest.raises(PlanError, match=r"Tensor\.item in ReadsItem\.__init__"):
        ti.build(ReadsItem, "native")
    plan = ti.capture(ReadsItem, fallback="eager")  # recorded for real
    assert _rule_for(plan, "lin.weight").init is ti._plan.rules.KEEP
    assert "after its values were read" in _rule_for(plan, "lin.weight").label
    assert _rule_for(plan, "lin.bias").init == ti.Uniform(-0.5, 0.5)


def test_capture_of_a_model_reruns_its_init_methods_on_meta():
    model = nn.Sequential(nn.Linear(4, 5), nn.LayerNorm(5))
    before = [p.detach().clone() for p in model.parameters()]
    plan = ti.capture(model)
    assert all(torch.equal(a, p) for a, p in zip(before, model.parameters()))
    assert _rule_for(plan, "0.weight").init == ti.KaimingUniform(negative_slope=math.sqrt(5))
    assert _rule_for(plan, "1.weight").init == ti.Ones()


def test_lazy_modules_are_captured_after_the_dry_run():
    def factory() -> nn.Module:
        return nn.Sequential(nn.LazyLinear(6), nn.ReLU(), nn.LazyLinear(2))

    plan = ti.capture(factory, example_inputs=torch.zeros(2, 3))
    assert _rule_for(plan, "0.bias").init == ti.Uniform(-1 / math.sqrt(3), 1 / math.sqrt(3))
    model = ti.build(factory, "native", example_inputs=torch.zeros(2, 3))
    assert model[2].weight.shape == (2, 6)


def test_captured_plans_round_trip_through_files(tmp_path):
    plan = ti.capture(GPTLike)
    for suffix in ("yaml", "json", "toml"):
        path = tmp_path / f"native.{suffix}"
        plan.to_file(str(path))
        again = ti.Plan.from_file(str(path))
        assert again == plan, suffix
    assert_bitwise_equal(ti.build(GPTLike, again, seed=4), ti.build(GPTLike, plan, seed=4))


def test_keep_in_build_is_the_models_own_init():
    class Own(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.lin = nn.Linear(50, 60)
            self.token = nn.Parameter(torch.zeros(1, 1, 4000))
            nn.init.trunc_normal_(self.token, std=0.02)

    plan = ti.Plan([ti.Rule(type="Linear", init="zeros")], on_unmatched="keep")
    built = ti.build(Own, plan, seed=0)
    record = built.torchinit_manifest["token"]
    assert record.init == ti.TruncatedNormal(0.0, 0.02, -2.0, 2.0)
    assert "own init (captured)" in record.notes[-1]
    assert same_init(Own().token, built.token) is None


def test_a_bad_plan_name_is_a_clear_error():
    with pytest.raises(PlanError, match="'nativ' is not a plan.*'native'"):
        ti.build(GPTLike, "nativ")
    with pytest.raises(PlanError, match="fallback must be one of"):
        ti.capture(GPTLike, fallback="guess")


class PositionBuffer(nn.Module):
    """A buffer computed on the device of a parameter, as timm's Swin does."""

    def __init__(self, hook: bool) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self._hook = hook
        self.register_buffer("index", torch.arange(6, device=self.lin.weight.device) * 2,
                             persistent=False)

    def init_non_persistent_buffers(self) -> None:
        self.index = torch.arange(6, device=self.lin.weight.device) * 2


class Holder(nn.Module):
    def __init__(self, hook: bool) -> None:
        super().__init__()
        self.inner = PositionBuffer(hook) if hook else _NoHook()


class _NoHook(nn.Module):
    def __init__(self) -> None:
        super().__init__()
        self.lin = nn.Linear(3, 3)
        self.register_buffer("index", torch.arange(6, device=self.lin.weight.device) * 2)


@pytest.mark.parametrize("hook", [True, False], ids=["init_non_persistent_buffers", "rebuild"])
def test_buffers_computed_on_a_parameters_device_are_recovered(hook):
    model = ti.build(lambda: Holder(hook), ti.presets.get("torch"), seed=0)
    assert torch.equal(model.inner.index, torch.arange(6) * 2)


def test_unrecoverable_buffers_name_the_buffer_and_the_ways_out():
    class Unrecoverable(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.register_buffer("mask", torch.zeros(2, device="meta"))

    with pytest.raises(PlanError, match=r"\['mask'\].*init_non_persistent_buffers.*"
                                        r"unrecoverable_buffers='zeros'"):
        ti.build(Unrecoverable, ti.Plan([]))
    with pytest.warns(UserWarning, match="filled with zeros"):
        model = ti.build(Unrecoverable, ti.Plan([]), unrecoverable_buffers="zeros")
    assert torch.equal(model.mask, torch.zeros(2))


def test_the_manifest_says_where_semantic_fans_would_differ():
    def factory() -> nn.Module:
        return nn.ConvTranspose2d(16, 8, 4, groups=2)

    record = ti.capture(factory).explain(factory())["weight"]
    assert record.fans.fan_in == 64  # torch's axis order, as kaiming_uniform_ computed it
    assert "semantic fans are 128/64" in record.notes[-1]
