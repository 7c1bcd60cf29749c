"""Optimizer parameter groups: roles decide weight decay, every parameter exactly once."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError
from torchinit.groups import describe_groups, param_groups


def _mlp() -> nn.Sequential:
    """The model of the copied recipes: Linear + BatchNorm1d + PReLU."""
    return nn.Sequential(nn.Linear(6, 8), nn.BatchNorm1d(8), nn.PReLU(8),
                         nn.Linear(8, 8), nn.BatchNorm1d(8), nn.PReLU(), nn.Linear(8, 3))


class _Gain(nn.Module):
    """A custom layer with a learned per-channel multiplier: a 1-D weight, not a bias or norm."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gain = nn.Parameter(torch.ones(dim))

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        return x * self.gain


class _TiedLM(nn.Module):
    """Embedding and output head sharing one matrix; ``head_first`` registers the head first."""

    def __init__(self, head_first: bool = False) -> None:
        super().__init__()
        names = ["head", "embed", "norm"] if head_first else ["embed", "norm", "head"]
        parts = {"embed": nn.Embedding(20, 8), "norm": nn.LayerNorm(8),
                 "head": nn.Linear(8, 20, bias=False)}
        for name in names:
            setattr(self, name, parts[name])
        self.head.weight = self.embed.weight


def _names(groups: list[dict]) -> list[list[str]]:
    return [g["names"] for g in groups]


def _by_decay(groups: list[dict]) -> dict[float, list[str]]:
    out: dict[float, list[str]] = {}
    for g in groups:
        out.setdefault(g["weight_decay"], []).extend(g["names"])
    return out


def _assert_each_parameter_once(model: nn.Module, groups: list[dict]) -> None:
    tensors = [p for g in groups for p in g["params"]]
    unique = list(model.parameters())
    assert len(tensors) == len(unique)
    assert {id(p) for p in tensors} == {id(p) for p in unique}
    named = dict(model.named_parameters())
    for g in groups:
        assert all(named[n] is p for n, p in zip(g["names"], g["params"], strict=True))


def test_mlp_batchnorm_prelu_defaults():
    model = _mlp()
    groups = param_groups(model, weight_decay=0.1)
    assert _by_decay(groups) == {
        0.1: ["0.weight", "3.weight", "6.weight"],
        0.0: ["0.bias", "1.weight", "1.bias", "2.weight", "3.bias", "4.weight", "4.bias",
              "5.weight", "6.bias"],
    }
    assert [set(g) for g in groups] == [{"params", "names", "weight_decay"}] * 2
    _assert_each_parameter_once(model, groups)


def test_conv_groupnorm_layernorm():
    model = nn.Sequential(nn.Conv2d(3, 8, 3), nn.GroupNorm(2, 8), nn.Conv2d(8, 8, 1),
                          nn.Flatten(), nn.LayerNorm(8), nn.Linear(8, 2))
    decay = _by_decay(param_groups(model, weight_decay=0.01))
    assert decay[0.01] == ["0.weight", "2.weight", "5.weight"]
    assert decay[0.0] == ["0.bias", "1.weight", "1.bias", "2.bias", "4.weight", "4.bias",
                          "5.bias"]


def test_custom_1d_weight_stays_decayed_where_the_shape_recipe_drops_it():
    model = nn.Sequential(nn.Linear(4, 4), _Gain(4))
    recipe_no_decay = [n for n, p in model.named_parameters()
                       if "bias" in n or len(p.shape) == 1]
    assert "1.gain" in recipe_no_decay  # the copied recipe silently stops decaying it
    decay = _by_decay(param_groups(model, weight_decay=0.1))
    assert decay == {0.1: ["0.weight", "1.gain"], 0.0: ["0.bias"]}


def test_custom_parameter_can_be_excluded_by_type_or_path():
    model = nn.Sequential(nn.Linear(4, 4), _Gain(4))
    by_type = param_groups(model, weight_decay=0.1, no_decay=["bias", {"type": _Gain}])
    by_path = param_groups(model, weight_decay=0.1, no_decay=["bias", ti.Select(path="*.gain")])
    assert _by_decay(by_type) == _by_decay(by_path) == {0.1: ["0.weight"],
                                                        0.0: ["0.bias", "1.gain"]}


def test_tied_embedding_and_head_grouped_once_under_canonical_path():
    model = _TiedLM()
    groups = param_groups(model, weight_decay=0.1)
    _assert_each_parameter_once(model, groups)
    assert _by_decay(groups) == {0.1: ["embed.weight"], 0.0: ["norm.weight", "norm.bias"]}
    assert sum(len(g["params"]) for g in groups) == 3
    assert len(list(model.named_parameters(remove_duplicate=False))) == 4


@pytest.mark.parametrize("head_first", [False, True])
def test_tied_alias_that_would_group_differently_warns_and_canonical_wins(head_first):
    model = _TiedLM(head_first=head_first)
    with pytest.warns(UserWarning, match="tied parameter") as record:
        groups = param_groups(model, weight_decay=0.1, no_decay=["norm", "embedding"])
    canonical = "head.weight" if head_first else "embed.weight"
    alias = "embed.weight" if head_first else "head.weight"
    message = str(record[0].message)
    assert repr(canonical) in message and repr(alias) in message
    # The canonical owner decides: the Embedding is not decayed, the Linear head is.
    assert _by_decay(groups)[0.1 if head_first else 0.0][0] == canonical
    _assert_each_parameter_once(model, groups)


def test_lstm_and_attention_biases_not_decayed():
    model = nn.ModuleDict({"rnn": nn.LSTM(4, 6, num_layers=2),
                           "attn": nn.MultiheadAttention(6, 2)})
    decay = _by_decay(param_groups(model, weight_decay=0.1))
    assert decay[0.0] == ["rnn.bias_ih_l0", "rnn.bias_hh_l0", "rnn.bias_ih_l1",
                          "rnn.bias_hh_l1", "attn.in_proj_bias", "attn.out_proj.bias"]
    assert decay[0.1] == ["rnn.weight_ih_l0", "rnn.weight_hh_l0", "rnn.weight_ih_l1",
                          "rnn.weight_hh_l1", "attn.in_proj_weight", "attn.out_proj.weight"]


def test_embeddings_decayed_by_default_and_excludable():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 2))
    assert _by_decay(param_groups(model, weight_decay=0.1))[0.1] == ["0.weight", "1.weight"]
    excluded = param_groups(model, weight_decay=0.1, no_decay=["bias", "embedding"])
    assert _by_decay(excluded) == {0.0: ["0.weight", "1.bias"], 0.1: ["1.weight"]}


def test_empty_no_decay_decays_everything():
    model = _mlp()
    groups = param_groups(model, weight_decay=0.1, no_decay=[])
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.1
    assert groups[0]["names"] == [n for n, _ in model.named_parameters()]


def test_zero_weight_decay_gives_one_group():
    model = _mlp()
    groups = param_groups(model)
    assert len(groups) == 1 and groups[0]["weight_decay"] == 0.0
    _assert_each_parameter_once(model, groups)


def test_lr_scale_last_match_wins_with_absolute_lr():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    groups = param_groups(model, weight_decay=0.1, lr=0.01,
                          lr_scale=[({}, 0.5), ("embedding", 0.1), ({"type": "LayerNorm"}, 2)])
    summary = [(g["names"], g["weight_decay"], g["lr"]) for g in groups]
    assert summary == [(["0.weight"], 0.1, pytest.approx(0.001)),
                       (["1.weight"], 0.1, pytest.approx(0.005)),
                       (["1.bias"], 0.0, pytest.approx(0.005)),
                       (["2.weight", "2.bias"], 0.0, pytest.approx(0.02))]
    assert all("lr_scale" not in g for g in groups)


def test_lr_scale_without_lr_is_recorded_as_relative():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4))
    groups = param_groups(model, lr_scale=[("embedding", 0.1)])
    assert [(g["names"], g.get("lr_scale")) for g in groups] == [
        (["0.weight"], 0.1), (["1.weight", "1.bias"], None)]
    assert all("lr" not in g for g in groups)


def test_layerwise_lr_decay_by_path():
    model = nn.Sequential(*[nn.Linear(4, 4) for _ in range(12)])
    rules = [({"path": f"{i}.*"}, 0.5 ** (11 - i)) for i in range(12)]
    groups = param_groups(model, lr=1.0, lr_scale=rules)
    assert [g["names"] for g in groups] == [[f"{i}.weight", f"{i}.bias"] for i in range(12)]
    assert [g["lr"] for g in groups] == [0.5 ** (11 - i) for i in range(12)]


def test_adamw_accepts_groups_and_decays_only_the_decay_group():
    torch.manual_seed(0)
    model = _mlp()
    lr, wd = 0.1, 0.5
    groups = param_groups(model, weight_decay=wd, lr=lr, lr_scale=[("prelu", 0.5)])
    optimizer = torch.optim.AdamW(groups, lr=1.0)
    assert [g["names"] for g in optimizer.param_groups] == [g["names"] for g in groups]
    assert [g["lr"] for g in optimizer.param_groups] == [lr, lr, lr / 2]
    before = {n: p.detach().clone() for n, p in model.named_parameters()}
    for p in model.parameters():
        p.grad = torch.zeros_like(p)  # Adam's step is 0, so only decoupled decay moves p
    optimizer.step()
    decayed = set(_by_decay(groups)[wd])
    for name, p in model.named_parameters():
        expected = before[name] * (1 - lr * wd) if name in decayed else before[name]
        torch.testing.assert_close(p.detach(), expected, rtol=1e-6, atol=0)
    assert any(not torch.equal(before[n], p) for n, p in model.named_parameters())


def test_frozen_parameters_left_out_unless_included():
    model = _mlp()
    model[0].requires_grad_(False)
    groups = param_groups(model, weight_decay=0.1)
    names = [n for g in groups for n in g["names"]]
    assert "0.weight" not in names and "0.bias" not in names
    assert sorted(names) == sorted(n for n, p in model.named_parameters() if p.requires_grad)
    everything = param_groups(model, weight_decay=0.1, include_frozen=True)
    _assert_each_parameter_once(model, everything)


def test_selector_that_matches_only_frozen_parameters_warns_and_says_why():
    model = _mlp()
    model[1].requires_grad_(False)
    model[4].requires_grad_(False)
    with pytest.warns(UserWarning, match=r"no_decay\[1\] \(role=norm\) matches no parameter"
                                         r" \(4 frozen"):
        param_groups(model, weight_decay=0.1, no_decay=["bias", "norm"])


def test_deterministic_order():
    first = param_groups(_mlp(), weight_decay=0.1, lr_scale=[("prelu", 3.0)])
    second = param_groups(_mlp(), weight_decay=0.1, lr_scale=[("prelu", 3.0)])
    assert _names(first) == _names(second)
    assert _names(first) == [["0.weight", "3.weight", "6.weight"],
                             ["0.bias", "1.weight", "1.bias", "3.bias", "4.weight", "4.bias",
                              "6.bias"],
                             ["2.weight", "5.weight"]]


@pytest.mark.parametrize("wd", [-0.1, math.nan, math.inf, True, "0.1", None])
def test_bad_weight_decay(wd):
    with pytest.raises(ConfigError, match="weight_decay must be a finite number >= 0"):
        param_groups(_mlp(), weight_decay=wd)


@pytest.mark.parametrize("lr", [-1.0, math.nan])
def test_bad_lr(lr):
    with pytest.raises(ConfigError, match="lr must be a finite number >= 0"):
        param_groups(_mlp(), lr=lr)


def test_unknown_role_suggests_close_match():
    with pytest.raises(ConfigError, match=r"no_decay\[1\]: 'biass' is not a role.*"
                                          r"Did you mean 'bias'"):
        param_groups(_mlp(), weight_decay=0.1, no_decay=["norm", "biass"])


def test_path_like_string_points_to_path_selector():
    with pytest.raises(ConfigError, match=r"use \{'path': 'encoder\.\*'\}"):
        param_groups(_mlp(), lr_scale=[("encoder.*", 0.1)])


@pytest.mark.parametrize("factor", [0, -1.0, math.nan, math.inf, "2", True])
def test_bad_factor(factor):
    with pytest.raises(ConfigError, match=r"lr_scale\[0\] factor must be a finite number > 0"):
        param_groups(_mlp(), lr_scale=[("bias", factor)])


@pytest.mark.parametrize("lr_scale, message", [
    ([("bias",)], r"lr_scale\[0\] must be a \(selector, factor\) pair"),
    ({"bias": 0.1}, "lr_scale must be a list of"),
    ([(None, 0.1)], r"lr_scale\[0\] must be a role name, a Select or a dict"),
    ([({"role": "bias", "kind": "x"}, 0.1)], r"lr_scale\[0\]: unknown selector key"),
    ([({"block": "f"}, 0.1)], "optimizer group holds whole tensors"),
])
def test_malformed_lr_scale(lr_scale, message):
    with pytest.raises(ConfigError, match=message):
        param_groups(_mlp(), lr_scale=lr_scale)


def test_single_selector_instead_of_list_is_rejected():
    with pytest.raises(ConfigError, match=r"no_decay must be a list of selectors"):
        param_groups(_mlp(), no_decay="bias")


def test_given_selectors_that_match_nothing_warn_defaults_do_not():
    model = nn.Sequential(nn.Linear(4, 4))  # no norm, no PReLU
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        param_groups(model, weight_decay=0.1)
    with pytest.warns(UserWarning) as record:
        param_groups(model, weight_decay=0.1, no_decay=["bias", "prelu"],
                     lr_scale=[({"type": "Embedding"}, 0.1)])
    messages = sorted(str(w.message) for w in record)
    assert messages == ["param_groups: lr_scale[0] (type=Embedding) matches no parameter",
                        "param_groups: no_decay[1] (role=prelu) matches no parameter"]


def test_describe_groups_table():
    model = _mlp()
    groups = param_groups(model, weight_decay=0.1, lr_scale=[("prelu", 0.5)])
    lines = describe_groups(groups).splitlines()
    assert lines[0].split() == ["group", "weight_decay", "lr", "tensors", "elements", "names"]
    assert lines[1].split()[:5] == ["0", "0.1", "default", "3", str(6 * 8 + 8 * 8 + 8 * 3)]
    assert lines[2].split()[:5] == ["1", "0", "default", "7", str(8 + 4 * 8 + 8 + 3)]
    assert lines[2].endswith("0.bias, 1.weight, 1.bias, ... (+4)")
    assert lines[3].split() == ["2", "0", "x0.5", "2", "9", "2.weight,", "5.weight"]
    optimizer = torch.optim.SGD(groups, lr=0.01)
    assert describe_groups(optimizer.param_groups).splitlines()[3].split()[2] == "0.01"


def test_describe_groups_rejects_non_groups():
    with pytest.raises(ConfigError, match="parameter group 0 must be a dict with 'params'"):
        describe_groups([[torch.zeros(2)]])


def test_meta_parameters_are_grouped_without_reading_data():
    with torch.device("meta"):
        model = _mlp()
    groups = param_groups(model, weight_decay=0.1)
    assert _names(groups) == _names(param_groups(_mlp(), weight_decay=0.1))
    _assert_each_parameter_once(model, groups)
