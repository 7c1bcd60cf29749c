"""Plans, the manifest and apply: every parameter exactly once, atomic, deterministic."""

from __future__ import annotations

import dataclasses
import json
import math
import pickle
import subprocess
import sys
import warnings
from collections import Counter

import pytest
import torch
from torch import nn
from torch.overrides import TorchFunctionMode

import torchinit as ti
from torchinit.errors import ConfigError, PlanError, TorchinitError

from .zoo import Everything, TiedLM, full_plan


class CountWrites(TorchFunctionMode):
    """Counts in-place copies into each tensor (by identity)."""

    def __init__(self) -> None:
        super().__init__()
        self.counts: Counter[int] = Counter()

    def __torch_function__(self, func, types, args=(), kwargs=None):
        if func is torch.Tensor.copy_:
            self.counts[id(args[0])] += 1
        return func(*args, **(kwargs or {}))


def _snapshot(model: nn.Module) -> dict[str, torch.Tensor]:
    return {k: v.detach().clone() for k, v in model.state_dict().items()}


def test_explain_lists_every_parameter_once_with_aliases():
    model = Everything()
    manifest = full_plan().explain(model)
    assert manifest.paths() == [p for p, _ in model.named_parameters()]
    record = manifest["lm.embed.weight"]
    assert record.aliases == ("lm.head.weight",)
    assert manifest["lm.head.weight"] is record
    assert all(not r.kept for r in manifest)


def test_apply_writes_every_tensor_exactly_once():
    model = Everything()
    with CountWrites() as mode:
        ti.apply(model, full_plan(), seed=3)
    params = {id(p) for p in model.parameters()}
    assert {i: mode.counts[i] for i in params} == {i: 1 for i in params}


def test_apply_writes_what_the_manifest_says():
    model = Everything()
    manifest = ti.apply(model, full_plan(), seed=1)
    for path, p in model.named_parameters():
        assert torch.equal(p.detach(), manifest[path].sample(dtype=p.dtype)), path
    lstm_bias = model.lstm.bias_hh_l0.detach().view(4, 6)
    assert torch.equal(lstm_bias[1], torch.ones(6)) and torch.count_nonzero(lstm_bias[[0, 2, 3]]) == 0
    assert torch.count_nonzero(model.embed.weight[3]) == 0  # padding row stays zero
    assert torch.count_nonzero(model.lm.embed.weight[0]) == 0
    w = model.lstm.weight_hh_l0.detach().double().view(4, 6, 3)
    for gate in w:  # orthogonal per gate block: 6x3 with orthonormal columns
        torch.testing.assert_close(gate.T @ gate, torch.eye(3, dtype=torch.float64), atol=1e-6,
                                   rtol=0)


def test_manifest_std_matches_semantic_fans():
    model = Everything()
    m = full_plan().explain(model)
    conv = m["cnn.1.weight"]  # Conv2d(4, 8, 3, groups=2): fan_in = 2 * 9
    assert (conv.fans.fan_in, conv.fans.fan_out) == (18, 36)
    assert conv.std == pytest.approx(math.sqrt(2 / 18), 1e-12)
    convt = m["cnn.7.weight"]  # ConvTranspose2d(8, 4, 3, groups=2)
    assert (convt.fans.fan_in, convt.fans.fan_out) == (36, 18)
    ih = m["lstm.weight_ih_l0"]
    assert [b.name for b in ih.fans.blocks] == list("ifgo")
    assert ih.std == pytest.approx(math.sqrt(2 / 5), 1e-12)


def test_digest_is_stable_across_construction_orders():
    torch.manual_seed(0)
    a = TiedLM(reverse_order=False)
    torch.manual_seed(1)
    b = TiedLM(reverse_order=True)
    ma, mb = ti.apply(a, full_plan(), seed=5), ti.apply(b, full_plan(), seed=5)
    assert ma.digest() == mb.digest() and ma.diff(mb) == []
    for (pa, xa), (pb, xb) in zip(a.named_parameters(), b.named_parameters()):
        assert pa == pb and torch.equal(xa, xb)


def test_digest_is_stable_across_processes():
    code = ("import torch, torchinit as ti; from tests.zoo import Everything, full_plan;"
            "print(full_plan().explain(Everything(), seed=2).digest())")
    out = subprocess.run([sys.executable, "-c", code], check=True, capture_output=True,
                         text=True, env={"PYTHONHASHSEED": "7", **_env()}).stdout.strip()
    assert out == full_plan().explain(Everything(), seed=2).digest()


def _env() -> dict[str, str]:
    import os

    return {k: v for k, v in os.environ.items() if k != "PYTHONHASHSEED"}


def test_digest_changes_with_seed_and_plan_and_diff_says_where():
    model = Everything()
    base = full_plan().explain(model, seed=0)
    assert base.digest() != full_plan().explain(model, seed=1).digest()
    other = (full_plan() + [ti.Rule(path="mlp.0.weight", init=ti.XavierUniform())]).explain(model)
    diff = base.diff(other)
    assert len(diff) == 1 and diff[0].startswith("~ mlp.0.weight: init")


def test_later_rules_win_and_matches_are_recorded():
    model = nn.Sequential(nn.Linear(4, 4))
    plan = ti.Plan([ti.Rule(init="zeros"), ti.Rule(name="weight", init="ones")])
    m = plan.explain(model)
    assert m["0.weight"].matched == (0, 1) and m["0.weight"].rule == 1
    assert m["0.bias"].rule == 0


def test_manifest_json_round_trip_and_replay():
    model = Everything()
    manifest = ti.apply(model, full_plan(), seed=4)
    state = _snapshot(model)
    again = ti.Manifest.from_json(manifest.to_json())
    assert again.digest() == manifest.digest()
    fresh = Everything()
    ti.apply(fresh, again)
    for k, v in fresh.state_dict().items():
        if k in dict(fresh.named_parameters()):
            assert torch.equal(v, state[k]), k
    assert json.loads(manifest.to_json())["records"][0]["path"] == "mlp.0.weight"


def test_table_is_readable():
    text = full_plan().explain(Everything()).table()
    assert "lm.embed.weight (= lm.head.weight)" in text
    assert "f:constant(value=1)" in text and "rows [3] = 0" in text


# --- errors: all listed, nothing written ---------------------------------------------------------

def test_unmatched_parameters_are_all_listed():
    model = Everything()
    plan = ti.Plan([ti.Rule(role="weight", init="xavier_uniform")])
    with pytest.raises(PlanError) as err:
        plan.explain(model)
    message = str(err.value)
    assert "match no rule" in message
    for path in ("mlp.0.bias", "cnn.4.weight", "mlp.1.weight", "lstm.bias_ih_l0"):
        assert path in message
    with pytest.warns(UserWarning, match="keep their values"):
        m = plan.with_options(on_unmatched="warn").explain(model)
    assert m["mlp.0.bias"].kept


def test_rule_that_cannot_serve_a_parameter_is_named():
    model = nn.Sequential(nn.Linear(4, 3))
    plan = ti.Plan([ti.Rule(init="xavier_uniform", label="xavier everywhere")])
    with pytest.raises(PlanError) as err:
        plan.explain(model)
    message = str(err.value)
    assert "xavier everywhere" in message and "'0.bias'" in message and "(3,)" in message


def test_failure_mid_plan_leaves_every_tensor_unchanged(monkeypatch):
    model = Everything()
    before = _snapshot(model)
    calls = {"n": 0}
    original = ti.Orthogonal._generate

    def failing(self, shape, key):
        calls["n"] += 1
        if calls["n"] == 3:
            raise RuntimeError("injected failure")
        return original(self, shape, key)

    monkeypatch.setattr(ti.Orthogonal, "_generate", failing)
    with pytest.raises(RuntimeError, match="injected"):
        ti.apply(model, full_plan(), seed=0)
    for k, v in model.state_dict().items():
        assert torch.equal(v, before[k]), k


def test_plan_errors_leave_the_model_untouched():
    model = Everything()
    before = _snapshot(model)
    with pytest.raises(PlanError):
        ti.apply(model, ti.Plan([ti.Rule(role="weight", init="zeros")]))
    assert all(torch.equal(v, before[k]) for k, v in model.state_dict().items())


def test_rule_matching_nothing_warns_unless_optional():
    with pytest.warns(UserWarning, match=r"rule #\d+ \(type=Conv3d path=nowhere.\* -> zeros\)"):
        (full_plan() + [ti.Rule(type="Conv3d", path="nowhere.*", init="zeros")]).explain(
            Everything())
    optional = ti.Rule(type="Conv3d", path="nowhere.*", init="zeros", optional=True)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        (full_plan() + [optional]).explain(Everything())


def test_tied_aliases_with_disagreeing_rules_are_reported():
    model = TiedLM()
    plan = full_plan() + [ti.Rule(path="head.weight", init="zeros")]
    with pytest.warns(UserWarning, match="tied parameter 'embed.weight' is also 'head.weight'"):
        m = plan.explain(model)
    assert m["embed.weight"].notes and m["embed.weight"].init == ti.Normal(0.0, 0.02)


def test_integer_parameters_are_rejected_before_writing():
    model = nn.Linear(2, 2)
    model.register_parameter("steps", nn.Parameter(torch.zeros(3, dtype=torch.int64),
                                                   requires_grad=False))
    with pytest.raises(PlanError, match="'steps'.*floating dtype"):
        ti.apply(model, ti.Plan([ti.Rule(init="zeros")]))


def test_bad_plan_and_rule_arguments():
    with pytest.raises(PlanError, match="on_unmatched"):
        ti.Plan([], on_unmatched="ignore")
    with pytest.raises(ConfigError, match="needs init"):
        ti.Rule(type="Linear")
    with pytest.raises(ConfigError, match="unknown role"):
        ti.Rule(role="biass", init="zeros")
    with pytest.raises(ConfigError, match="Linear"):
        ti.Rule(type="Linera", init="zeros")
    with pytest.raises(ConfigError, match="unknown selector key 'typ'.*Did you mean 'type'"):
        ti.Rule(typ="Linear", init="zeros")
    with pytest.raises(ConfigError, match="tags must be a string or a list of strings") as info:
        ti.Rule(init="zeros", tags=3)
    assert info.value.field == ("tags",)


def test_the_match_argument_is_deprecated_for_keyword_selectors():
    with pytest.warns(DeprecationWarning, match=r"Rule\(type='Linear', role='bias', init=\.\.\.\)"):
        rule = ti.Rule(ti.Select(type="Linear", role="bias"), init="zeros")
    assert rule == ti.Rule(type="Linear", role="bias", init="zeros")
    with pytest.raises(ConfigError, match="unknown selector"):
        ti.Rule(match={"typ": "Linear"}, init="zeros")
    with pytest.raises(ConfigError, match="as keywords only"):
        ti.Rule(match={"type": "Linear"}, role="bias", init="zeros")


def test_errors_carry_the_field_they_are_about():
    cases = [({"init": {"name": "normal", "stddev": -1.0}}, ("init", "stddev")),
             ({"init": {"name": "kaiming_normal", "nonlinearity": "relux"}},
              ("init", "nonlinearity")),
             ({"init": {"name": "uniform", "low": 2.0, "high": 1.0}}, ("init", "high")),
             ({"init": "zeros", "role": "biass"}, ("role",)),
             ({"init": "zeros", "type": "Lienar"}, ("type",)),
             ({"init": "zeros", "regex": "(a)\\1"}, ("regex",)),
             ({"init": "zeros", "optional": "yes"}, ("optional",))]
    for kwargs, field in cases:
        with pytest.raises(TorchinitError) as info:
            ti.Rule(**kwargs)
        assert info.value.field == field, kwargs
    with pytest.raises(TorchinitError) as info:
        ti.Plan([{"init": "zeros"}, {"init": {"name": "normal", "mean": float("nan")}}])
    assert info.value.field == ("rules", 1, "init", "mean")
    assert pickle.loads(pickle.dumps(info.value)).field == info.value.field


def test_a_type_error_inside_a_registered_initializer_is_a_config_error(monkeypatch):
    from torchinit.initializers import _registry

    monkeypatch.setattr(_registry, "_BY_NAME", dict(_registry._BY_NAME))  # registered here only

    @ti.initializers.register
    @dataclasses.dataclass(frozen=True)
    class Shifted(ti.initializers.ElementwiseInitializer):
        shift: float = 1.0
        name = "test_shifted_normal"

        def __post_init__(self) -> None:
            self.shift + 1.0  # no check of its own: a string fails here with a TypeError

        def distribution_for(self, fans=None):
            return ti.Normal(self.shift).distribution_for()

    with pytest.raises(PlanError, match=r"^rules\[0\]\.init: test_shifted_normal: .*\['shift'\]"):
        ti.Plan.from_dict({"rules": [{"init": {"name": "test_shifted_normal", "shift": "x"}}]})
    with pytest.raises(ConfigError, match="fan_convention"):
        ti.Rule(init="zeros", fan_convention="axis")
    with pytest.warns(DeprecationWarning, match="'fans' is now 'fan_convention'"):
        assert ti.Rule(init="zeros", fans="torch").fan_convention == "torch"
    with pytest.raises(PlanError, match="Plan or a Manifest"):
        ti.apply(nn.Linear(2, 2), [ti.Rule(init="zeros")])  # type: ignore[arg-type]


def test_manifest_must_fit_the_model():
    manifest = full_plan().explain(Everything())
    with pytest.raises(PlanError, match="not in the manifest"):
        ti.apply(nn.Sequential(nn.Linear(2, 2)), manifest)


# --- selectors -----------------------------------------------------------------------------------

@pytest.mark.parametrize(
    "select,expected",
    [
        ({"type": "Conv?d"}, {"cnn.0.weight", "cnn.0.bias", "cnn.1.weight", "cnn.1.bias",
                             "cnn.2.weight", "cnn.2.bias", "cnn.3.weight", "cnn.3.bias"}),
        ({"type": "ConvTranspose2d", "name": "weight"}, {"cnn.7.weight"}),
        ({"path": "mlp.*.bias"}, {"mlp.0.bias", "mlp.2.bias", "mlp.3.bias"}),
        ({"regex": r"^cells\.1\."}, {"cells.1.weight_ih", "cells.1.weight_hh", "cells.1.bias_ih",
                                     "cells.1.bias_hh"}),
        ({"role": "norm", "name": "bias"}, {"mlp.3.bias", "cnn.4.bias", "cnn.5.bias",
                                           "lm.norm.bias", "lm.encoder.layers.0.norm1.bias",
                                           "lm.encoder.layers.0.norm2.bias",
                                           "lm.encoder.layers.1.norm1.bias",
                                           "lm.encoder.layers.1.norm2.bias"}),
        ({"ndim": 5}, {"cnn.3.weight", "cnn.8.weight"}),
        ({"type": "Linear", "within": "MultiheadAttention", "path": "attn.*"},
         {"attn.out_proj.weight", "attn.out_proj.bias"}),
        ({"role": "projection"}, {f"lstm.weight_hr_l{i}{s}" for i in (0, 1)
                                  for s in ("", "_reverse")}),
        ({"type": nn.GRU, "block": "z"}, {"gru.weight_ih_l0", "gru.weight_hh_l0",
                                          "gru.bias_ih_l0", "gru.bias_hh_l0"}),
    ],
)
def test_selectors(select, expected):
    plan = ti.Plan([ti.Rule(**select, init="zeros")], on_unmatched="keep")
    got = {r.path for r in plan.explain(Everything()) if not r.kept}
    assert got == expected


def test_block_rule_alone_leaves_other_blocks_unmatched():
    model = nn.LSTM(3, 4)
    plan = ti.Plan([ti.Rule(name="bias_*", block="f", init="ones")], on_unmatched="error")
    with pytest.raises(PlanError, match=r"bias_ih_l0 \(16,\)"):
        plan.explain(model)


def test_as_fn_for_module_apply():
    model = Everything()
    reference = Everything()
    model.load_state_dict(reference.state_dict())
    with CountWrites() as mode:
        model.apply(full_plan().as_fn(model, seed=9))
    assert all(mode.counts[id(p)] == 1 for p in model.parameters())
    ti.apply(reference, full_plan(), seed=9)
    for (k, a), b in zip(model.named_parameters(), reference.parameters()):
        assert torch.equal(a, b), k


def test_block_rule_alone_with_keep_writes_only_that_block():
    model = nn.LSTM(3, 4)
    before = model.bias_ih_l0.detach().clone()
    plan = ti.Plan([ti.Rule(name="bias_*", block="f", init="ones")], on_unmatched="keep")
    manifest = ti.apply(model, plan)
    after = model.bias_ih_l0.detach()
    assert torch.equal(after[4:8], torch.ones(4))
    assert torch.equal(after[:4], before[:4]) and torch.equal(after[8:], before[8:])
    assert "blocks ['i', 'g', 'o'] match no rule" in manifest["bias_ih_l0"].notes[-1]
    assert manifest["weight_ih_l0"].kept


def test_unregistered_classes_in_selectors_and_lazy_modules():
    class Block(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.fc = nn.Linear(2, 2)

    model = nn.Sequential(Block())
    plan = ti.Plan([ti.Rule(type=nn.Linear, within=Block, init="zeros")])
    manifest = plan.explain(model)  # describing the rule needs no registered name
    assert manifest["0.fc.weight"].rule_label == "type=Linear within=Block -> zeros"
    with pytest.raises(PlanError, match="lazy module"):
        full_plan().explain(nn.Sequential(nn.LazyLinear(3)))


def test_registering_a_redefined_class_again_is_allowed():
    def define():
        class Cell(nn.Module):
            pass
        return Cell

    first, second = define(), define()
    ti.register_module_type(first, name="RedefinedCell")
    ti.register_module_type(second, name="RedefinedCell")
    with pytest.raises(ConfigError, match="already registered"):
        ti.register_module_type(nn.Linear, name="RedefinedCell")
