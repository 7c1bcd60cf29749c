"""Presets: each builds, fits the models it is meant for and draws the scales its source uses.

Expected scales are written out by hand from each source's formulas; sampled statistics use
tolerances of 5 standard errors (``conftest.std_tolerance``).
"""

from __future__ import annotations

import fnmatch
import math
import warnings

import pytest
import torch
from scipy import stats
from torch import nn

import torchinit as ti
import torchinit.presets as presets
from torchinit.errors import ConfigError, PlanError, UnknownNameError
from torchinit._layouts import _BUILTIN_LAYOUTS

from .conftest import std_tolerance

ALL_PRESETS = ["bert", "dcgan", "flax", "general-rule", "gpt2", "keras", "llama", "resnet", "torch",
               "vit", "convnext", "efficientnet", "mobilenet",
               "ppo", "fixup", "t-fixup", "deepnet", "rezero", "skipinit",
               "torchtitan", "megatron", "neox", "olmo", "t5", "mamba"]
REQUIRED_OPTIONS = {"gpt2": {"n_layers": 2},
                    "fixup": {"n_layers": 2}, "t-fixup": {"n_layers": 2},
                    "deepnet": {"n_layers": 2},
                    "torchtitan": {"n_layers": 2}, "megatron": {"n_layers": 2},
                    "neox": {"hidden_size": 8, "n_layers": 2},
                    "olmo": {"d_model": 8, "n_layers": 2},
                    "t5": {"d_model": 8, "d_kv": 2, "n_heads": 4, "d_ff": 16},
                    "mamba": {"dt_rank": 4}}
NO_MATCH = "ignore:rule #.* matches no parameter"


def preset(name: str, **options) -> ti.Plan:
    return presets.get(name, **{**REQUIRED_OPTIONS.get(name, {}), **options})


# -- models ------------------------------------------------------------------------------------
def dcgan_generator(nz: int = 32, ngf: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.ConvTranspose2d(nz, ngf * 4, 4, 1, 0, bias=False), nn.BatchNorm2d(ngf * 4), nn.ReLU(),
        nn.ConvTranspose2d(ngf * 4, ngf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ngf * 2),
        nn.ReLU(), nn.ConvTranspose2d(ngf * 2, 3, 4, 2, 1, bias=False), nn.Tanh())


def dcgan_discriminator(ndf: int = 32) -> nn.Sequential:
    return nn.Sequential(
        nn.Conv2d(3, ndf, 4, 2, 1, bias=False), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf, ndf * 2, 4, 2, 1, bias=False), nn.BatchNorm2d(ndf * 2), nn.LeakyReLU(0.2),
        nn.Conv2d(ndf * 2, ndf * 4, 4, 2, 1, bias=False), nn.Flatten(), nn.Linear(ndf * 4 * 4, 10))


class BasicBlock(nn.Module):
    def __init__(self, channels: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn1 = nn.BatchNorm2d(channels)
        self.conv2 = nn.Conv2d(channels, channels, 3, padding=1, bias=False)
        self.bn2 = nn.BatchNorm2d(channels)


class Bottleneck(nn.Module):
    def __init__(self, inplanes: int, width: int, groups: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(inplanes, width, 1, bias=False)
        self.bn1 = nn.BatchNorm2d(width)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, groups=groups, bias=False)
        self.bn2 = nn.BatchNorm2d(width)
        self.conv3 = nn.Conv2d(width, width * 4, 1, bias=False)
        self.bn3 = nn.BatchNorm2d(width * 4)
        self.downsample = nn.Sequential(nn.Conv2d(inplanes, width * 4, 1, bias=False),
                                        nn.BatchNorm2d(width * 4))


class TinyResNet(nn.Module):
    """torchvision's ResNet names: conv1, bn1, layer1 (BasicBlocks), layer2 (Bottleneck), fc."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 16, 7, stride=2, padding=3, bias=False)
        self.bn1 = nn.BatchNorm2d(16)
        self.layer1 = nn.Sequential(BasicBlock(16), BasicBlock(16))
        self.layer2 = nn.Sequential(Bottleneck(16, 8, groups=2))
        self.fc = nn.Linear(32, 10)


class TinyViT(nn.Module):
    """timm's ViT names: patch_embed.proj, cls_token, pos_embed, blocks, norm, head."""

    def __init__(self, dim: int = 64, patches: int = 16) -> None:
        super().__init__()
        self.patch_embed = nn.Module()
        self.patch_embed.proj = nn.Conv2d(3, dim, 4, stride=4)
        self.cls_token = nn.Parameter(torch.zeros(1, 1, dim))
        self.pos_embed = nn.Parameter(torch.zeros(1, patches + 1, dim))
        self.blocks = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(dim, 4, 4 * dim, batch_first=True, norm_first=True), 2,
            enable_nested_tensor=False)
        self.norm = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, 10)


class TinyLM(nn.Module):
    """A GPT-like LM from torch layers: token and position embeddings, a tied head."""

    def __init__(self, vocab: int = 1000, dim: int = 64, context: int = 32,
                 n_layers: int = 2) -> None:
        super().__init__()
        self.wte = nn.Embedding(vocab, dim)
        self.wpe = nn.Embedding(context, dim)
        self.blocks = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(dim, 4, 4 * dim, batch_first=True, norm_first=True),
            n_layers, enable_nested_tensor=False)
        self.ln_f = nn.LayerNorm(dim)
        self.head = nn.Linear(dim, vocab, bias=False)
        self.head.weight = self.wte.weight


class TinyBert(nn.Module):
    def __init__(self, vocab: int = 1000, dim: int = 64) -> None:
        super().__init__()
        self.word_embeddings = nn.Embedding(vocab, dim, padding_idx=0)
        self.position_embeddings = nn.Embedding(64, dim)
        self.token_type_embeddings = nn.Embedding(2, dim)
        self.embed_norm = nn.LayerNorm(dim)
        self.encoder = nn.TransformerEncoder(
            nn.TransformerEncoderLayer(dim, 4, 2 * dim, batch_first=True), 2,
            enable_nested_tensor=False)
        self.pooler = nn.Linear(dim, dim)


class LayerZoo(nn.Module):
    """The layers whose defaults differ between torch, Keras and Flax."""

    def __init__(self) -> None:
        super().__init__()
        self.dense = nn.Linear(30, 40)
        self.conv = nn.Conv2d(8, 16, 3, groups=2)
        self.deconv = nn.ConvTranspose2d(16, 8, 3)
        self.lstm = nn.LSTM(20, 32)
        self.gru = nn.GRU(20, 24)
        self.embed = nn.Embedding(100, 16, padding_idx=1)
        self.prelu = nn.PReLU(16)
        self.norm = nn.LayerNorm(16)
        self.attn = nn.MultiheadAttention(32, 4)


# -- checks ------------------------------------------------------------------------------------
def expected_scales(manifest: ti.Manifest, table: list[tuple[str, float, float]]) -> None:
    """Every record's (std, mean) equals the first ``(glob, std, mean)`` matching its path."""
    for record in manifest:
        hits = [(std, mean) for glob, std, mean in table if fnmatch.fnmatchcase(record.path, glob)]
        assert hits, f"no expectation for {record.path}"
        std, mean = hits[0]
        assert record.std == pytest.approx(std, rel=1e-9, abs=1e-15), record.path
        assert record.init.mean_value(record.fans, record.shape) == pytest.approx(mean), \
            record.path


def assert_drawn_as_recorded(model: nn.Module, manifest: ti.Manifest) -> None:
    """The applied values follow each record: constants exact, padding rows zero, large random
    tensors with the recorded std and mean within 5 standard errors, bounds respected."""
    params = dict(model.named_parameters())
    for record in manifest:
        value = params[record.path].detach().double()
        for row in record.zero_rows:
            assert torch.all(value[row] == 0), record.path
        keep = torch.ones(value.shape[0], dtype=torch.bool) if value.dim() else None
        if keep is not None:
            keep[list(record.zero_rows)] = False
        drawn = (value[keep] if keep is not None else value).flatten()
        if record.blocks:
            continue
        mean = record.init.mean_value(record.fans, record.shape)
        if record.std == 0:
            constant = torch.tensor(mean, dtype=params[record.path].dtype).double()
            assert torch.all(drawn == constant), record.path
            continue
        assert float(drawn.abs().max()) <= record.bound * (1 + 1e-6), record.path
        n = drawn.numel()
        if n >= 1000:
            assert abs(float(drawn.std()) - record.std) <= std_tolerance(record.std, n), \
                record.path
            assert abs(float(drawn.mean()) - mean) <= 5 * record.std / math.sqrt(n), record.path


def apply_checked(model: nn.Module, plan: ti.Plan) -> ti.Manifest:
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        manifest = ti.apply(model, plan, seed=1)
    assert_drawn_as_recorded(model, manifest)
    return manifest


# -- the registry ------------------------------------------------------------------------------
def test_every_preset_is_registered_documented_and_named():
    assert set(ALL_PRESETS) <= set(presets.names())
    for name in ALL_PRESETS:
        plan = preset(name)
        assert isinstance(plan, ti.Plan) and plan.name == name
        assert plan.zero_padding
        text = presets.describe(name)
        assert "Source:" in text and "Options" in text


def test_unknown_preset_suggests_close_names():
    with pytest.raises(UnknownNameError, match="'gpt2'"):
        presets.get("gtp2", n_layers=2)


def test_unknown_option_names_the_preset_and_its_options():
    with pytest.raises(ConfigError, match=r"'bert'.*\['stdev'\].*std=0.02.*'std'"):
        presets.get("bert", stdev=0.1)
    with pytest.raises(ConfigError, match="'keras'.*no options"):
        presets.get("keras", std=0.1)


def test_missing_required_option_is_named():
    with pytest.raises(ConfigError, match=r"'gpt2' needs option\(s\) \['n_layers'\]"):
        presets.get("gpt2")


@pytest.mark.parametrize("name, options, wrong", [
    ("gpt2", {"n_layers": 0}, "n_layers"),
    ("gpt2", {"n_layers": True}, "n_layers"),
    ("gpt2", {"n_layers": 2.0}, "n_layers"),
    ("gpt2", {"n_layers": 2, "std": -0.02}, "std"),
    ("gpt2", {"n_layers": 2, "std": float("nan")}, "std"),
    ("gpt2", {"n_layers": 2, "residual_paths": []}, "residual_paths"),
    ("gpt2", {"n_layers": 2, "residual_paths": ["*.c_proj.weight", 3]}, "residual_paths"),
    ("bert", {"std": "0.02"}, "std"),
    ("resnet", {"zero_init_residual": 1}, "zero_init_residual"),
    ("resnet", {"last_bn_paths": ""}, "last_bn_paths"),
])
def test_bad_option_values_are_refused(name, options, wrong):
    with pytest.raises(ConfigError, match=f"preset '{name}': option {wrong} must be"):
        presets.get(name, **options)


def test_register_a_preset_as_decorator_and_refuse_clashes():
    @presets.register("test-zeros")
    def zeros(value: float = 0.0) -> ti.Plan:
        """Every parameter ``value``."""
        return ti.Plan([ti.Rule(init=ti.Constant(value))])

    try:
        plan = presets.get("test-zeros", value=2.0)
        assert plan.name == "test-zeros" and plan.rules[0].init == ti.Constant(2.0)
        with pytest.raises(ConfigError, match="already registered"):
            presets.register("test-zeros", lambda: ti.Plan())
        presets.register("test-zeros", lambda: "not a plan", replace=True)
        with pytest.raises(ConfigError, match="returned str, not a Plan"):
            presets.get("test-zeros")
        with pytest.raises(ConfigError, match="callable"):
            presets.register("test-other", 3)
    finally:
        presets._registry._PRESETS.pop("test-zeros")


def test_presets_survive_the_config_round_trip():
    for name in ALL_PRESETS:
        plan = preset(name)
        assert ti.Plan.from_dict(plan.to_dict()) == plan, name


# -- torch's own defaults ------------------------------------------------------------------------
def test_torch_preset_is_one_factory_rule():
    (rule,) = presets.get("torch").rules
    assert rule.init.to_config() == {"function": "torch_default"} and rule.fan_convention == "torch"


TORCH_LAYERS = {
    "Linear": lambda: nn.Linear(40, 2000),
    "Bilinear": lambda: nn.Bilinear(10, 12, 2000),
    "Conv1d-groups": lambda: nn.Conv1d(8, 2000, 3, groups=4),
    "Conv2d-groups": lambda: nn.Conv2d(4, 2000, 3, groups=2),
    "Conv3d": lambda: nn.Conv3d(2, 2000, 2),
    "ConvTranspose1d": lambda: nn.ConvTranspose1d(4, 2000, 3),
    "ConvTranspose2d-groups": lambda: nn.ConvTranspose2d(4, 2000, 2, groups=2),
    "ConvTranspose3d": lambda: nn.ConvTranspose3d(2, 2000, 2),
    "Embedding-padding": lambda: nn.Embedding(2000, 8, padding_idx=3),
    "EmbeddingBag": lambda: nn.EmbeddingBag(500, 8),
    "RNN": lambda: nn.RNN(40, 100, nonlinearity="relu"),
    "LSTM-proj": lambda: nn.LSTM(40, 64, num_layers=2, proj_size=16, bidirectional=True),
    "GRU": lambda: nn.GRU(40, 64),
    "RNNCell": lambda: nn.RNNCell(40, 64),
    "LSTMCell": lambda: nn.LSTMCell(40, 64),
    "GRUCell": lambda: nn.GRUCell(40, 64),
    "MultiheadAttention": lambda: nn.MultiheadAttention(64, 4),
    "MultiheadAttention-kdim-vdim-bias_kv": lambda: nn.MultiheadAttention(
        1024, 8, kdim=32, vdim=48, add_bias_kv=True),
    **{f"{cls.__name__}": (lambda cls=cls: cls(16, affine=True)) for cls in (
        nn.BatchNorm1d, nn.BatchNorm2d, nn.BatchNorm3d, nn.SyncBatchNorm, nn.InstanceNorm1d,
        nn.InstanceNorm2d, nn.InstanceNorm3d)},
    "LayerNorm": lambda: nn.LayerNorm(16),
    "GroupNorm": lambda: nn.GroupNorm(4, 16),
    "RMSNorm": lambda: nn.RMSNorm(16),
    "PReLU": lambda: nn.PReLU(),
    "PReLU-channels": lambda: nn.PReLU(8, init=0.1),
}


def test_torch_layer_cases_cover_the_layout_registry():
    instances = [make() for make in TORCH_LAYERS.values()]
    for cls in _BUILTIN_LAYOUTS:
        assert any(isinstance(m, cls) for m in instances), cls.__name__


def _spans_uniform_support(values: torch.Tensor, bound: float) -> bool:
    """All of ``values`` in [-bound, bound] and the largest magnitude within ``10/n`` of it:
    for n draws of U(-b, b), P(max |x| < b (1 - t)) = (1 - t)^n ~ exp(-10)."""
    top = float(values.abs().max())
    return top <= bound * (1 + 1e-6) and top >= bound * (1 - 10 / values.numel())


@pytest.mark.parametrize("name", sorted(TORCH_LAYERS))
def test_torch_preset_matches_reset_parameters(name):
    """Two-sample KS test of each parameter against a freshly constructed layer; constants must
    be equal; small uniform tensors must span the same support."""
    torch.manual_seed(0)
    reference = dict(TORCH_LAYERS[name]().named_parameters())
    model = TORCH_LAYERS[name]()
    manifest = ti.apply(model, presets.get("torch"), seed=11)
    ours = dict(model.named_parameters())
    assert set(ours) == {r.path for r in manifest}
    for record in manifest:
        a = ours[record.path].detach().flatten().double()
        b = reference[record.path].detach().flatten().double()
        if record.std == 0:
            assert torch.equal(a, b), record.path
        elif a.numel() >= 1000:
            assert stats.ks_2samp(a.numpy(), b.numpy()).pvalue > 1e-4, record.path
        else:
            assert isinstance(record.init, ti.Uniform), record.path
            assert _spans_uniform_support(a, record.bound), record.path
            assert _spans_uniform_support(b, record.bound), record.path


def test_torch_preset_leaves_unknown_module_types_unmatched():
    class Scale(nn.Module):
        def __init__(self) -> None:
            super().__init__()
            self.gain = nn.Parameter(torch.ones(4))

    with pytest.raises(PlanError, match=r"(?s)match no rule.*1\.gain \(4,\) \(Scale\)"):
        presets.get("torch").explain(nn.Sequential(nn.Linear(4, 4), Scale()))


# -- recipes on the models they are meant for ----------------------------------------------------
def test_dcgan_generator_and_discriminator():
    table = [("*.bias", 0.0, 0.0), ("[14].weight", 0.02, 1.0), ("*.weight", 0.02, 0.0)]
    expected_scales(apply_checked(dcgan_generator(), presets.get("dcgan")), table)
    table = [("*.bias", 0.0, 0.0), ("3.weight", 0.02, 1.0), ("*.weight", 0.02, 0.0)]
    expected_scales(apply_checked(dcgan_discriminator(), presets.get("dcgan")), table)


def test_resnet_kaiming_fan_out_and_zeroed_last_block_norms():
    def he_fan_out(out_channels: int, kernel: int) -> float:
        return math.sqrt(2.0 / (out_channels * kernel * kernel))

    model = TinyResNet()
    manifest = apply_checked(model, presets.get("resnet"))
    fc = 1.0 / math.sqrt(3 * 32)  # torch default U(+-1/sqrt(32))
    expected_scales(manifest, [
        ("conv1.weight", he_fan_out(16, 7), 0.0),
        ("layer1.*.conv*.weight", he_fan_out(16, 3), 0.0),
        ("layer2.0.conv1.weight", he_fan_out(8, 1), 0.0),
        ("layer2.0.conv2.weight", he_fan_out(8, 3), 0.0),  # groups=2 ignored, as in torch
        ("layer2.0.*conv3.weight", he_fan_out(32, 1), 0.0),
        ("layer2.0.downsample.0.weight", he_fan_out(32, 1), 0.0),
        ("layer1.*.bn2.weight", 0.0, 0.0), ("layer2.0.bn3.weight", 0.0, 0.0), ("fc.*", fc, 0.0),
        ("*.bias", 0.0, 0.0), ("*bn*.weight", 0.0, 1.0), ("*downsample.1.weight", 0.0, 1.0),
    ])
    assert torch.all(model.layer2[0].bn2.weight == 1)  # a Bottleneck's bn2 is not its last


def test_resnet_options_turn_off_or_move_the_zeroed_norms():
    manifest = presets.get("resnet", zero_init_residual=False).explain(TinyResNet())
    assert all(r.init != ti.Zeros() for r in manifest if r.path.endswith("weight"))
    manifest = presets.get("resnet", last_bn_paths="layer2.*.bn3.weight").explain(TinyResNet())
    assert manifest["layer2.0.bn3.weight"].init == ti.Zeros()
    assert manifest["layer1.0.bn2.weight"].init == ti.Ones()


@pytest.mark.parametrize("function, where", [("keras_attention", "MultiheadAttention"),
                                              ("last_norm_zero", "normalization layer")])
def test_preset_init_functions_refuse_parameters_they_do_not_serve(function, where):
    plan = ti.Plan([ti.Rule(init={"function": function})])
    with pytest.raises(PlanError, match=f"(?s)'{function}'.*{where}.*'0.weight' \\(Linear\\)"):
        plan.explain(nn.Sequential(nn.Linear(2, 2, bias=False)))


def test_recipe_rules_that_carry_the_recipe_warn_when_they_match_nothing():
    with pytest.warns(UserWarning, match="last_norm_zero.*matches no parameter"):
        presets.get("resnet").explain(nn.Sequential(nn.Conv2d(3, 4, 3), nn.BatchNorm2d(4)))
    with pytest.warns(UserWarning, match=r"matches no parameter"):
        presets.get("gpt2", n_layers=2).explain(nn.Sequential(nn.Linear(4, 4)))


def test_vit_timm_default_mode():
    model = TinyViT()
    manifest = apply_checked(model, presets.get("vit"))
    patch = 1.0 / math.sqrt(3 * 3 * 16)  # torch default for the patch conv: U(+-1/sqrt(48))
    expected_scales(manifest, [
        ("patch_embed.proj.*", patch, 0.0), ("cls_token", 1e-6, 0.0), ("pos_embed", 0.02, 0.0),
        ("*norm*.weight", 0.0, 1.0), ("*bias", 0.0, 0.0), ("*weight", 0.02, 0.0),
    ])
    assert manifest["pos_embed"].init == ti.TruncatedNormal(0.0, 0.02, -2.0, 2.0)


def test_gpt2_scales_residual_projections_and_ties_the_head():
    model = TinyLM(n_layers=3)
    manifest = apply_checked(model, presets.get("gpt2", n_layers=3, std=0.03))
    residual = 0.03 / math.sqrt(2 * 3)
    expected_scales(manifest, [
        ("*.out_proj.weight", residual, 0.0), ("*.linear2.weight", residual, 0.0),
        ("*norm*.weight", 0.0, 1.0), ("ln_f.weight", 0.0, 1.0), ("*bias", 0.0, 0.0),
        ("*weight", 0.03, 0.0),
    ])
    assert manifest["head.weight"].path == "wte.weight"
    assert model.head.weight is model.wte.weight


def test_gpt2_residual_paths_option_replaces_the_defaults():
    manifest = presets.get("gpt2", n_layers=2, residual_paths=["*.linear1.weight"]).explain(
        TinyLM())
    assert manifest["blocks.layers.0.linear1.weight"].std == pytest.approx(0.01)
    assert manifest["blocks.layers.0.linear2.weight"].std == pytest.approx(0.02)


def test_bert_std_option_and_padding_row():
    model = TinyBert()
    manifest = apply_checked(model, presets.get("bert", std=0.05))
    expected_scales(manifest, [("*norm*.weight", 0.0, 1.0), ("*bias", 0.0, 0.0),
                               ("*weight", 0.05, 0.0)])
    assert manifest["word_embeddings.weight"].zero_rows == (0,)


# -- framework defaults --------------------------------------------------------------------------
def test_keras_defaults():
    model = LayerZoo()
    manifest = apply_checked(model, presets.get("keras"))
    glorot = lambda fan_in, fan_out: math.sqrt(2.0 / (fan_in + fan_out))  # noqa: E731
    keras_uniform = lambda fan_sum: math.sqrt(6.0 / fan_sum) / math.sqrt(3)  # noqa: E731
    expected_scales(manifest, [
        ("dense.weight", glorot(30, 40), 0.0),
        ("conv.weight", glorot(4 * 9, 16 * 9), 0.0),  # Keras kernel (3, 3, 4, 16)
        ("deconv.weight", glorot(8 * 9, 16 * 9), 0.0),  # Keras kernel (3, 3, 8, 16)
        ("lstm.weight_ih_l0", glorot(20, 4 * 32), 0.0),  # fused kernel (20, 128)
        ("lstm.weight_hh_l0", 1 / math.sqrt(4 * 32), 0.0),  # one orthogonal (32, 128)
        ("gru.weight_ih_l0", glorot(20, 3 * 24), 0.0),
        ("gru.weight_hh_l0", 1 / math.sqrt(3 * 24), 0.0),
        ("embed.weight", 0.05 / math.sqrt(3), 0.0),
        ("attn.in_proj_weight", keras_uniform(32 * (4 + 8)), 0.0),  # kernels (32, 4, 8)
        ("attn.out_proj.weight", keras_uniform(4 * (8 + 32)), 0.0),  # kernel (4, 8, 32)
        ("norm.weight", 0.0, 1.0), ("prelu.weight", 0.0, 0.0), ("*bias*", 0.0, 0.0),
    ])
    for name in ("lstm.weight_hh_l0", "gru.weight_hh_l0"):
        w = dict(model.named_parameters())[name].detach().double()
        torch.testing.assert_close(w.T @ w, torch.eye(w.shape[1], dtype=torch.double),
                                   atol=1e-5, rtol=0)
    forget = torch.zeros(4 * 32)
    forget[32:64] = 1.0
    assert torch.equal(model.lstm.bias_ih_l0.detach(), forget)
    assert torch.equal(model.lstm.bias_hh_l0.detach(), torch.zeros(4 * 32))


def test_flax_defaults():
    model = LayerZoo()
    manifest = apply_checked(model, presets.get("flax"))
    expected_scales(manifest, [
        ("dense.weight", 1 / math.sqrt(30), 0.0),
        ("conv.weight", 1 / math.sqrt(4 * 9), 0.0),
        ("deconv.weight", 1 / math.sqrt(16 * 9), 0.0),  # Flax kernel (3, 3, 16, 8): fan_in 144
        ("lstm.weight_ih_l0", 1 / math.sqrt(20), 0.0),
        ("lstm.weight_hh_l0", 1 / math.sqrt(32), 0.0),  # one orthogonal (32, 32) per gate
        ("gru.weight_ih_l0", 1 / math.sqrt(20), 0.0),
        ("gru.weight_hh_l0", 1 / math.sqrt(24), 0.0),
        ("embed.weight", 1 / math.sqrt(16), 0.0),
        ("attn.*proj_weight", 1 / math.sqrt(32), 0.0),
        ("attn.out_proj.weight", 1 / math.sqrt(32), 0.0),
        ("norm.weight", 0.0, 1.0), ("prelu.weight", 0.0, 0.01), ("*bias*", 0.0, 0.0),
    ])
    assert manifest["dense.weight"].init == ti.VarianceScaling(1.0, "fan_in", "truncated_normal")
    for w, hidden in ((model.lstm.weight_hh_l0, 32), (model.gru.weight_hh_l0, 24)):
        for gate in w.detach().double().split(hidden):
            torch.testing.assert_close(gate.T @ gate, torch.eye(hidden, dtype=torch.double),
                                       atol=1e-5, rtol=0)


def test_general_rule_defaults():
    manifest = apply_checked(LayerZoo(), presets.get("general-rule"))
    rule = lambda fan_in: 1 / math.sqrt(3 * fan_in)  # noqa: E731  U(+-1/sqrt(fan_in))
    expected_scales(manifest, [
        ("dense.weight", rule(30), 0.0), ("conv.weight", rule(4 * 9), 0.0),
        ("deconv.weight", rule(16 * 9), 0.0),
        ("lstm.weight_ih_l0", rule(20), 0.0), ("lstm.weight_hh_l0", rule(32), 0.0),
        ("gru.weight_ih_l0", rule(20), 0.0), ("gru.weight_hh_l0", rule(24), 0.0),
        ("embed.weight", 1.0, 0.0), ("attn.*weight", rule(32), 0.0),
        ("norm.weight", 0.0, 1.0), ("prelu.weight", 0.0, 0.25), ("*bias*", 0.0, 0.0),
    ])


# -- composition and padding ---------------------------------------------------------------------
def test_rules_added_after_a_preset_override_it():
    plan = presets.get("bert") + [ti.Rule(type="Linear", role="bias", init=ti.Constant(0.1))]
    manifest = apply_checked(TinyBert(), plan)
    assert manifest["pooler.bias"].init == ti.Constant(0.1)
    assert manifest["pooler.weight"].init == ti.Normal(0.0, 0.02)
    assert plan.name == "bert"
    plan = presets.get("resnet") + [ti.Rule(path="layer1.0.bn2.weight", init="ones")]
    assert plan.explain(TinyResNet())["layer1.0.bn2.weight"].init == ti.Ones()


@pytest.mark.filterwarnings(NO_MATCH)
@pytest.mark.parametrize("name", ALL_PRESETS)
def test_padding_rows_stay_zero(name):
    model = nn.Sequential(nn.Embedding(50, 8, padding_idx=2), nn.EmbeddingBag(40, 8, padding_idx=5))
    ti.apply(model, preset(name), seed=3)
    assert torch.all(model[0].weight[2] == 0) and torch.all(model[1].weight[5] == 0)
    assert model[0].weight[3].abs().sum() > 0
