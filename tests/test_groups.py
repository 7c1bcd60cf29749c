"""Optimizer parameter groups: roles decide weight decay, every parameter exactly once."""

from __future__ import annotations

import math
import warnings

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError
from torchinit._groups import DEFAULT_NO_DECAY, declared_no_decay, describe_groups, param_groups


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


class _Temperature(nn.Module):
    """A learned scalar (0-D) temperature."""

    def __init__(self) -> None:
        super().__init__()
        self.tau = nn.Parameter(torch.tensor(1.0))


class _Table(nn.Module):
    """A custom layer with a learned 2-D table: no role, decayed by default."""

    def __init__(self) -> None:
        super().__init__()
        self.table = nn.Parameter(torch.zeros(3, 4))


class _LayerScale2d(nn.Module):
    """A ``(C, 1, 1)`` layer scale, as in timm's FastViT and torchvision's ConvNeXt."""

    def __init__(self, dim: int) -> None:
        super().__init__()
        self.gamma = nn.Parameter(torch.full((dim, 1, 1), 1e-6))


class _TinyViT(nn.Module):
    """Declares its position embedding, class token and stem as timm models do."""

    def __init__(self) -> None:
        super().__init__()
        self.stem = nn.Conv2d(3, 4, 2)
        self.pos_embed = nn.Parameter(torch.zeros(1, 5, 4))
        self.cls_token = nn.Parameter(torch.zeros(1, 1, 4))
        self.blocks = nn.ModuleList([nn.Linear(4, 4) for _ in range(2)])
        self.rel_bias = nn.ParameterList([nn.Parameter(torch.zeros(3, 2)) for _ in range(2)])
        self.head = nn.Linear(4, 2)

    def no_weight_decay(self) -> set[str]:
        return {"pos_embed", "cls_token", "dist_token", "stem"}

    def no_weight_decay_keywords(self) -> set[str]:
        return {"rel_bias"}


class _Wrapper(nn.Module):
    """A model around a declaring backbone; declares nothing itself."""

    def __init__(self) -> None:
        super().__init__()
        self.backbone = _TinyViT()
        self.extra = nn.Parameter(torch.zeros(2, 2))


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


def test_1d_and_scalar_parameters_of_custom_layers_not_decayed_by_default():
    model = nn.Sequential(nn.Linear(4, 4), _Gain(4), _Temperature(), _Table())
    decay = _by_decay(param_groups(model, weight_decay=0.1))
    assert decay == {0.1: ["0.weight", "3.table"], 0.0: ["0.bias", "1.gain", "2.tau"]}


def test_no_decay_replaces_the_shape_rule_too():
    model = nn.Sequential(nn.Linear(4, 4), _Gain(4))
    decay = _by_decay(param_groups(model, weight_decay=0.1, no_decay=["bias"]))
    assert decay == {0.1: ["0.weight", "1.gain"], 0.0: ["0.bias"]}


def test_roles_catch_what_the_shape_rule_misses():
    attn = nn.MultiheadAttention(4, 2, add_bias_kv=True)  # bias_k, bias_v: (1, 1, 4)
    model = nn.ModuleDict({"attn": attn, "ls": _LayerScale2d(4)})
    decay = _by_decay(param_groups(model, weight_decay=0.1))
    assert decay[0.1] == ["attn.in_proj_weight", "attn.out_proj.weight"]
    assert decay[0.0] == ["attn.in_proj_bias", "attn.bias_k", "attn.bias_v",
                          "attn.out_proj.bias", "ls.gamma"]


def test_custom_parameter_can_be_excluded_by_type_or_path():
    model = nn.Sequential(nn.Linear(4, 4), _Table())
    by_type = param_groups(model, weight_decay=0.1, no_decay=["bias", {"type": _Table}])
    by_path = param_groups(model, weight_decay=0.1, no_decay=["bias", ti.Select(path="*.table")])
    by_extra = param_groups(model, weight_decay=0.1, no_decay_extra=[{"path": "*.table"}])
    assert _by_decay(by_type) == _by_decay(by_path) == _by_decay(by_extra) == {
        0.1: ["0.weight"], 0.0: ["0.bias", "1.table"]}


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


_VIT_DECAYED = ["blocks.0.weight", "blocks.1.weight", "head.weight"]


def test_model_declarations_not_decayed_by_default():
    model = _TinyViT()
    decay = _by_decay(param_groups(model, weight_decay=0.1))
    assert decay[0.1] == _VIT_DECAYED
    assert decay[0.0] == ["pos_embed", "cls_token", "stem.weight", "stem.bias",
                          "blocks.0.bias", "blocks.1.bias", "rel_bias.0", "rel_bias.1",
                          "head.bias"]


def test_declarations_of_a_wrapped_model_apply_under_its_path():
    decay = _by_decay(param_groups(_Wrapper(), weight_decay=0.1))
    assert decay[0.1] == ["extra"] + [f"backbone.{n}" for n in _VIT_DECAYED]
    assert "backbone.pos_embed" in decay[0.0] and "backbone.rel_bias.1" in decay[0.0]


class _Forwarding(nn.Module):
    """Forwards unknown attributes to the module it wraps, as ``torch.compile``'s
    ``OptimizedModule`` does with its ``_orig_mod``."""

    def __init__(self, inner: nn.Module) -> None:
        super().__init__()
        self._orig_mod = inner

    def __getattr__(self, name: str):
        try:
            return super().__getattr__(name)
        except AttributeError:
            return getattr(self._orig_mod, name)


def test_declarations_forwarded_by_a_wrapper_apply_under_the_wrapped_path():
    wrapper = _Forwarding(_TinyViT())
    assert callable(wrapper.no_weight_decay)
    decay = _by_decay(param_groups(wrapper, weight_decay=0.1))
    assert decay[0.1] == [f"_orig_mod.{n}" for n in _VIT_DECAYED]


def test_a_declaring_model_speaks_for_its_layers():
    class Parent(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.child = _TinyViT()
            self.table = nn.Parameter(torch.zeros(2, 2))

        def no_weight_decay(self) -> set[str]:
            return {"table"}  # does not forward the child's names

    decayed = _by_decay(param_groups(Parent(), weight_decay=0.1))[0.1]
    assert "child.pos_embed" in decayed and "child.stem.weight" in decayed
    assert "child.rel_bias.0" not in decayed  # keywords are a declaration of their own
    assert "table" not in decayed


def test_declared_name_globs_and_literal_paths():
    class Model(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.pos = nn.Linear(2, 2)
            self.odd = nn.ParameterDict({"t[0]": nn.Parameter(torch.zeros(2, 2)),
                                         "t0": nn.Parameter(torch.zeros(2, 2))})

        def no_weight_decay(self) -> list[str]:
            return ["pos.*", "odd.t[0]"]  # an fnmatch glob, and an exact name with brackets

    assert _by_decay(param_groups(Model(), weight_decay=0.1))[0.1] == ["odd.t0"]


def test_declared_no_decay_selects_exact_paths_and_composes():
    (declared,) = declared_no_decay(_TinyViT())
    assert declared.path == ("pos_embed", "cls_token", "stem.weight", "stem.bias",
                             "rel_bias.0", "rel_bias.1")
    assert declared_no_decay(_mlp()) == ()
    groups = param_groups(_TinyViT(), weight_decay=0.1,
                          no_decay=["bias", *declared_no_decay(_TinyViT())])
    assert _by_decay(groups)[0.1] == _VIT_DECAYED


def test_no_decay_replaces_the_declarations():
    decayed = _by_decay(param_groups(_TinyViT(), weight_decay=0.1, no_decay=["bias"]))[0.1]
    assert decayed == ["pos_embed", "cls_token", "stem.weight", "blocks.0.weight",
                       "blocks.1.weight", "rel_bias.0", "rel_bias.1", "head.weight"]


def test_non_method_declaration_attributes_are_ignored():
    model = nn.Sequential(nn.Linear(2, 2))
    model.no_weight_decay = {"0.weight"}
    assert _by_decay(param_groups(model, weight_decay=0.1))[0.1] == ["0.weight"]


@pytest.mark.parametrize("returned, message", [
    ("pos_embed", r"_Bad.no_weight_decay\(\) of module 'inner' must return a collection of"
                  r" parameter names, e.g. \{'pos_embed', 'cls_token'\}, got 'pos_embed'"),
    (None, r"must return a collection of parameter names.*got None"),
    ({"pos_embed", 3}, r"_Bad.no_weight_decay\(\) of module 'inner' must return parameter"
                       r" names \(strings\), but it holds 3"),
])
def test_malformed_declaration(returned, message):
    class _Bad(nn.Linear):
        def no_weight_decay(self):
            return returned

    model = nn.Sequential()
    model.add_module("inner", _Bad(2, 2))
    with pytest.raises(ConfigError, match=message):
        param_groups(model, weight_decay=0.1)


def test_no_decay_extra_adds_to_the_defaults():
    model = nn.Sequential(nn.Embedding(10, 4), nn.Linear(4, 4), nn.LayerNorm(4))
    decay = _by_decay(param_groups(model, weight_decay=0.1, no_decay_extra=["embedding"]))
    assert decay == {0.0: ["0.weight", "1.bias", "2.weight", "2.bias"], 0.1: ["1.weight"]}


def test_no_decay_extra_warns_only_for_its_own_selectors():
    model = nn.Sequential(nn.Linear(4, 4))  # no norm, PReLU, layer scale or declaration
    with pytest.warns(UserWarning) as record:
        param_groups(model, weight_decay=0.1, no_decay_extra=["embedding", "bias"])
    assert [str(w.message) for w in record] == [
        "param_groups: no_decay_extra[0] (role=embedding) matches no parameter"]


def test_no_decay_and_no_decay_extra_together_are_refused():
    with pytest.raises(ConfigError, match="no_decay replaces the default selectors and"
                                          " no_decay_extra adds to them; give one"):
        param_groups(_mlp(), weight_decay=0.1, no_decay=["bias"], no_decay_extra=["embedding"])


@pytest.mark.parametrize("extra, message", [
    ("embedding", "no_decay_extra must be a list of selectors"),
    (["embeding"], r"no_decay_extra\[0\]: 'embeding' is not a role.*'embedding'"),
])
def test_malformed_no_decay_extra(extra, message):
    with pytest.raises(ConfigError, match=message):
        param_groups(_mlp(), weight_decay=0.1, no_decay_extra=extra)


def test_default_no_decay_selectors():
    assert DEFAULT_NO_DECAY == ("bias", "norm", "prelu", "layer_scale", ti.Select(ndim=(0, 1)))
