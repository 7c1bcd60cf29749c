"""Tests of torchinit._layouts: semantic and torch-convention fans of each layer type."""

from __future__ import annotations

import warnings

import pytest
import torch
from torch import nn
from torch.nn.init import _calculate_fan_in_and_fan_out

import torchinit
from torchinit import Block, Fans
from torchinit.errors import ConfigError, FanError
from torchinit._layouts import _LAYOUTS, fans, register_layout

ZOO = {
    "linear": lambda: nn.Linear(7, 5),
    "bilinear": lambda: nn.Bilinear(3, 4, 5),
    "conv1d_groups": lambda: nn.Conv1d(8, 12, 5, groups=4),
    "conv2d_groups": lambda: nn.Conv2d(32, 64, 3, groups=4),
    "conv2d_depthwise": lambda: nn.Conv2d(32, 32, 3, groups=32),
    "conv3d_groups": lambda: nn.Conv3d(4, 6, (1, 2, 3), groups=2),
    "convT1d_groups": lambda: nn.ConvTranspose1d(6, 9, 4, groups=3),
    "convT2d": lambda: nn.ConvTranspose2d(16, 32, 3),
    "convT3d_groups": lambda: nn.ConvTranspose3d(4, 8, 2, groups=2),
    "embedding": lambda: nn.Embedding(11, 6),
    "embedding_bag": lambda: nn.EmbeddingBag(11, 6),
    "rnn": lambda: nn.RNN(5, 7, num_layers=2),
    "lstm_bi_proj": lambda: nn.LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=6),
    "gru_bi": lambda: nn.GRU(5, 7, num_layers=2, bidirectional=True),
    "rnn_cell": lambda: nn.RNNCell(5, 7),
    "lstm_cell": lambda: nn.LSTMCell(5, 7),
    "gru_cell": lambda: nn.GRUCell(5, 7),
    "mha_packed": lambda: nn.MultiheadAttention(64, 4),
    "mha_kv_bias": lambda: nn.MultiheadAttention(16, 2, kdim=6, vdim=10, add_bias_kv=True),
    "batchnorm2d": lambda: nn.BatchNorm2d(5),
    "layernorm": lambda: nn.LayerNorm(5),
    "groupnorm": lambda: nn.GroupNorm(2, 6),
    "prelu": lambda: nn.PReLU(3),
}


def _params(model: nn.Module):
    """(owning module, direct name, parameter) for every parameter of ``model``."""
    for module in model.modules():
        for name, param in module.named_parameters(recurse=False):
            yield module, name, param


def _pair(f: Fans) -> tuple[int, int]:
    return f.fan_in, f.fan_out


@pytest.mark.parametrize("make", ZOO.values(), ids=ZOO.keys())
def test_torch_convention_matches_torch(make):
    for module, name, param in _params(make()):
        if param.dim() >= 2:
            got = fans(module, name, convention="torch")
            assert _pair(got) == _calculate_fan_in_and_fan_out(param), name
            assert got.convention == "torch" and not got.assumed


@pytest.mark.parametrize("make", ZOO.values(), ids=ZOO.keys())
def test_every_builtin_parameter_has_semantic_fans_and_exact_blocks(make):
    for module, name, param in _params(make()):
        got = fans(module, name)
        assert got.convention == "semantic" and not got.assumed, name
        if got.blocks:
            assert got.blocks[0].start == 0 and got.blocks[-1].stop == param.shape[0], name
            for before, after in zip(got.blocks, got.blocks[1:]):
                assert before.stop == after.start, name
            assert all(b.stop - b.start == got.fan_out for b in got.blocks), name


@pytest.mark.parametrize(
    "make, torch_pair, semantic_pair, receptive",
    [
        (lambda: nn.Linear(7, 5), (7, 5), (7, 5), 1),
        (lambda: nn.Bilinear(3, 4, 5), (12, 20), (12, 20), 1),
        (lambda: nn.Conv2d(32, 64, 3, groups=4), (72, 576), (72, 144), 9),
        (lambda: nn.Conv2d(32, 32, 3, groups=32), (9, 288), (9, 9), 9),
        (lambda: nn.Conv1d(8, 12, 5, groups=4), (10, 60), (10, 15), 5),
        (lambda: nn.Conv3d(4, 6, (1, 2, 3), groups=2), (12, 36), (12, 18), 6),
        (lambda: nn.ConvTranspose2d(16, 32, 3), (288, 144), (144, 288), 9),
        (lambda: nn.ConvTranspose1d(6, 9, 4, groups=3), (12, 24), (8, 12), 4),
        (lambda: nn.ConvTranspose3d(4, 8, 2, groups=2), (32, 32), (16, 32), 8),
        (lambda: nn.Embedding(11, 6), (6, 11), (1, 6), 1),
        (lambda: nn.EmbeddingBag(11, 6), (6, 11), (1, 6), 1),
    ],
)
def test_weight_reference_fans(make, torch_pair, semantic_pair, receptive):
    module = make()
    assert _pair(fans(module, "weight", "torch")) == torch_pair
    semantic = fans(module, "weight")
    assert _pair(semantic) == semantic_pair
    assert semantic.receptive_field == receptive
    assert semantic.blocks == ()


@pytest.mark.parametrize(
    "module",
    [
        nn.Linear(7, 5),
        nn.Bilinear(3, 4, 5),
        nn.Conv2d(8, 4, 3, groups=2),
        nn.ConvTranspose2d(4, 6, 3),
    ],
    ids=["linear", "bilinear", "conv2d", "convT2d"],
)
def test_bias_takes_the_weight_fans_in_both_conventions(module):
    for convention in ("semantic", "torch"):
        assert fans(module, "bias", convention) == fans(module, "weight", convention)


def test_torch_convention_pairs_named_biases_with_their_weights():
    mha = nn.MultiheadAttention(8, 2)
    assert fans(mha, "in_proj_bias", "torch") == fans(mha, "in_proj_weight", "torch")
    lstm = nn.LSTM(3, 4)
    assert fans(lstm, "bias_ih_l0", "torch") == fans(lstm, "weight_ih_l0", "torch")


def test_torch_convention_bias_bound_matches_reset_parameters():
    torch.manual_seed(0)
    layer = nn.Conv2d(8, 4, 3)
    bound = 1 / fans(layer, "bias", "torch").fan_in ** 0.5
    assert layer.bias.abs().max() <= bound
    assert bound == pytest.approx(1 / 72**0.5)


def test_lstm_reference_and_gate_blocks():
    lstm = nn.LSTM(10, 20)
    assert _pair(fans(lstm, "weight_ih_l0", "torch")) == (10, 80)
    semantic = fans(lstm, "weight_ih_l0")
    assert _pair(semantic) == (10, 20)
    assert semantic.blocks == tuple(
        Block(gate, 20 * j, 20 * (j + 1)) for j, gate in enumerate("ifgo")
    )
    assert fans(lstm, "bias_ih_l0") == semantic
    assert fans(lstm, "bias_hh_l0") == fans(lstm, "weight_hh_l0")
    assert _pair(fans(lstm, "weight_hh_l0")) == (20, 20)


def test_lstm_deeper_layer_bidirectional_and_projection():
    lstm = nn.LSTM(10, 20, num_layers=2, bidirectional=True, proj_size=6)
    assert _pair(fans(lstm, "weight_ih_l1_reverse")) == (2 * 6, 20)
    assert _pair(fans(lstm, "weight_hh_l0")) == (6, 20)
    hr = fans(lstm, "weight_hr_l1")
    assert _pair(hr) == (20, 6) and hr.blocks == ()
    no_proj = nn.LSTM(10, 20, num_layers=2, bidirectional=True)
    assert _pair(fans(no_proj, "weight_ih_l1")) == (2 * 20, 20)


def test_gru_and_rnn_blocks():
    gru = nn.GRU(5, 7)
    assert [b.name for b in fans(gru, "weight_hh_l0").blocks] == ["r", "z", "n"]
    rnn = nn.RNN(5, 7, nonlinearity="relu")
    assert fans(rnn, "weight_ih_l0") == Fans(5, 7)


@pytest.mark.parametrize(
    "cell, gates", [(nn.RNNCell(5, 7), ""), (nn.LSTMCell(5, 7), "ifgo"), (nn.GRUCell(5, 7), "rzn")]
)
def test_cells(cell, gates):
    ih = fans(cell, "weight_ih")
    assert _pair(ih) == (5, 7)
    assert "".join(b.name for b in ih.blocks) == gates
    assert _pair(fans(cell, "weight_hh")) == (7, 7)
    assert fans(cell, "bias_ih") == ih
    assert fans(cell, "bias_hh") == fans(cell, "weight_hh")


def test_multihead_attention_packed():
    mha = nn.MultiheadAttention(64, 4)
    assert _pair(fans(mha, "in_proj_weight", "torch")) == (64, 192)
    semantic = fans(mha, "in_proj_weight")
    assert _pair(semantic) == (64, 64)
    assert semantic.blocks == (Block("q", 0, 64), Block("k", 64, 128), Block("v", 128, 192))
    assert fans(mha, "in_proj_bias") == semantic
    assert _pair(fans(mha.out_proj, "weight")) == (64, 64)


def test_multihead_attention_separate_projections_and_bias_kv():
    mha = nn.MultiheadAttention(16, 2, kdim=6, vdim=10, add_bias_kv=True)
    assert _pair(fans(mha, "q_proj_weight")) == (16, 16)
    assert _pair(fans(mha, "k_proj_weight")) == (6, 16)
    assert _pair(fans(mha, "v_proj_weight")) == (10, 16)
    for name in ("bias_k", "bias_v"):
        assert _pair(fans(mha, name)) == (16, 16)
        assert _pair(fans(mha, name, "torch")) == (16, 16)


@pytest.mark.parametrize(
    "module",
    [
        nn.BatchNorm1d(3),
        nn.BatchNorm2d(3),
        nn.BatchNorm3d(3),
        nn.SyncBatchNorm(3),
        nn.InstanceNorm2d(3, affine=True),
        nn.LayerNorm(3),
        nn.GroupNorm(1, 3),
        nn.RMSNorm(3),
        nn.PReLU(3),
    ],
    ids=lambda m: type(m).__name__,
)
def test_per_feature_affine(module):
    for name, _ in module.named_parameters():
        assert fans(module, name) == Fans(1, 1)
        with pytest.raises(FanError, match=type(module).__name__):
            fans(module, name, "torch")


def test_subclasses_and_lazy_modules_inherit_layouts():
    out_proj = nn.MultiheadAttention(8, 2).out_proj
    assert type(out_proj) is not nn.Linear
    assert _pair(fans(out_proj, "weight")) == (8, 8)
    lazy = nn.LazyLinear(4)
    with pytest.raises(FanError, match="forward"):
        fans(lazy, "weight")
    lazy(torch.zeros(2, 9))
    assert _pair(fans(lazy, "weight")) == (9, 4)


class Tensor3(nn.Module):
    """A layer with no layout: a 3-D weight and a 1-D scale."""

    def __init__(self) -> None:
        super().__init__()
        self.weight = nn.Parameter(torch.zeros(4, 3, 2))
        self.bias = nn.Parameter(torch.zeros(4))
        self.scale = nn.Parameter(torch.zeros(4))


class Tensor3Child(Tensor3):
    pass


def test_fallback_is_torch_rule_marked_assumed():
    layer = Tensor3()
    weight = fans(layer, "weight")
    assert weight.assumed and weight.convention == "torch"
    assert _pair(weight) == _calculate_fan_in_and_fan_out(layer.weight)
    assert fans(layer, "bias") == weight
    with pytest.raises(FanError, match="Tensor3.*'scale'.*register_layout"):
        fans(layer, "scale")


def test_register_layout_overrides_and_is_inherited():
    registered = Fans(3, 4)

    def layout(module, name):
        return registered if name == "scale" else None

    try:
        assert register_layout(Tensor3, layout) is layout
        assert fans(Tensor3(), "scale") is registered
        assert fans(Tensor3Child(), "scale") is registered
        assert fans(Tensor3Child(), "weight").assumed  # None falls through to the fallback
    finally:
        del _LAYOUTS[Tensor3]


def test_register_layout_decorator_overrides_builtin():
    try:

        @register_layout(nn.Linear)
        def doubled(module, name):
            return Fans(2 * module.in_features, module.out_features)

        assert _pair(fans(nn.Linear(3, 5), "weight")) == (6, 5)
    finally:
        del _LAYOUTS[nn.Linear]
    assert _pair(fans(nn.Linear(3, 5), "weight")) == (3, 5)


def test_register_layout_validates_arguments():
    with pytest.raises(ConfigError, match="nn.Module"):
        register_layout(nn.Linear(2, 2), lambda m, n: None)
    with pytest.raises(ConfigError, match="callable"):
        register_layout(Tensor3, "not a function")
    assert Tensor3 not in _LAYOUTS


def test_register_layout_by_qualified_name_serves_the_class_and_its_subclasses():
    by_name, by_class = Fans(3, 4), Fans(5, 6)
    name = f"{Tensor3.__module__}.Tensor3"
    try:
        register_layout(name, lambda module, param: by_name if param == "scale" else None)
        assert fans(Tensor3(), "scale") is by_name
        assert fans(Tensor3Child(), "scale") is by_name
        assert fans(Tensor3(), "weight").assumed
        register_layout(Tensor3, lambda module, param: by_class if param == "scale" else None)
        assert fans(Tensor3(), "scale") is by_class  # the class before its name
    finally:
        _LAYOUTS.pop(name, None)
        _LAYOUTS.pop(Tensor3, None)


@pytest.mark.parametrize("name", ["Tensor3", "tests..Tensor3", "tests.Tensor3.", "a.<locals>.B"])
def test_register_layout_refuses_names_that_are_not_dotted_class_names(name):
    with pytest.raises(ConfigError, match=r"'package\.module\.ClassName'"):
        register_layout(name, lambda module, param: None)
    assert name not in _LAYOUTS


def test_layout_returning_a_non_fans_is_a_config_error():
    try:
        register_layout(Tensor3, lambda module, name: (1, 2))
        with pytest.raises(ConfigError, match="Tensor3.*'weight'"):
            fans(Tensor3(), "weight")
    finally:
        del _LAYOUTS[Tensor3]


def test_bad_convention():
    with pytest.raises(ConfigError, match="semantic.*torch") as info:
        fans(nn.Linear(2, 2), "weight", convention="keras")
    assert isinstance(info.value, ValueError)


def test_unknown_parameter_names_module_and_lists_parameters():
    with pytest.raises(FanError, match=r"Linear.*'wieght'.*\['bias', 'weight'\].*'weight'") as info:
        fans(nn.Linear(2, 2), "wieght")
    assert isinstance(info.value, ValueError)
    with pytest.raises(FanError, match="submodule"):
        fans(nn.Sequential(nn.Linear(2, 2)), "0.weight")


def test_public_reexports():
    assert torchinit.fans is fans
    assert torchinit.register_layout is register_layout


@pytest.fixture
def fresh_assumed_warnings(monkeypatch):
    """Forget which module types have had the once-per-type assumed-fans warning."""
    monkeypatch.setattr("torchinit._plan.plan._WARNED_ASSUMED", set())


def _weights_plan(init: torchinit.Initializer, **rule: str) -> torchinit.Plan:
    return torchinit.Plan([torchinit.Rule(name="weight", init=init, **rule)], on_unmatched="keep")


def test_fan_based_init_on_assumed_fans_warns_once_per_module_type(fresh_assumed_warnings):
    model = nn.Sequential(Tensor3(), Tensor3(), Tensor3Child())
    plan = _weights_plan(torchinit.KaimingNormal(nonlinearity="relu"))
    with pytest.warns(UserWarning) as caught:
        manifest = plan.explain(model)
    assert [str(w.message).split(" ")[0] for w in caught] == ["Tensor3", "Tensor3Child"]
    message = str(caught[0].message)
    for part in ("parameter '0.weight' of shape (4, 3, 2) with KaimingNormal(", "fan_in=6,"
                 " fan_out=8", "torchinit.register_layout(Tensor3, fn)", "fan_convention='torch'"):
        assert part in message
    assert caught[0].filename == __file__  # points at the caller, not into torchinit
    assert manifest["1.weight"].fans.assumed  # every record still marks it
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        plan.explain(model)  # once per type per process


@pytest.mark.parametrize("plan", [
    _weights_plan(torchinit.XavierUniform(), fan_convention="torch"),
    _weights_plan(torchinit.Normal(0.0, 0.02)),
    _weights_plan(torchinit.Orthogonal()),
], ids=["fans=torch", "fanless", "structured"])
def test_no_assumed_fans_warning_without_a_fan_based_init_on_assumed_fans(
        plan, fresh_assumed_warnings):
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manifest = plan.explain(nn.Sequential(Tensor3()))
    assert manifest["0.weight"].init == plan.rules[0].init


def test_no_assumed_fans_warning_once_a_layout_is_registered(fresh_assumed_warnings):
    try:
        register_layout(Tensor3, lambda module, name: Fans(3, 8) if name == "weight" else None)
        with warnings.catch_warnings():
            warnings.simplefilter("error")
            manifest = _weights_plan(torchinit.LecunNormal()).explain(nn.Sequential(Tensor3()))
    finally:
        del _LAYOUTS[Tensor3]
    assert manifest["0.weight"].std == pytest.approx(3 ** -0.5)
