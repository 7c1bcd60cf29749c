"""Residual-network and RL presets: PPO, Fixup, T-Fixup, DeepNet, ReZero, SkipInit.

No library ships these schemes as callable inits to compare against, so every expected
initializer and std is recomputed here from the paper's formula and hand-written shapes, and
checked against ``plan.explain(model)`` for every parameter of small models written here.
"""

from __future__ import annotations

import fnmatch
import math

import pytest
import torch
from torch import nn

import torchinit as ti
import torchinit.presets as presets
from torchinit.errors import ConfigError


# -- checks ------------------------------------------------------------------------------------
def expect(manifest: ti.Manifest, table: list[tuple[str, ti.Initializer, float]]) -> None:
    """Every record's (init, std) equals the first ``(glob, init, std)`` matching its path."""
    for record in manifest:
        hits = [(init, std) for glob, init, std in table
                if fnmatch.fnmatchcase(record.path, glob)]
        assert hits, f"no expectation for {record.path}"
        init, std = hits[0]
        assert record.init == init, (record.path, record.init)
        assert record.std == pytest.approx(std, rel=1e-12, abs=1e-15), record.path


def v_rows(record: ti.Record) -> tuple[ti.Initializer, float]:
    """The (init, std) of the v rows of a packed ``in_proj_weight`` (a block entry)."""
    (block,) = record.blocks
    assert block.name == "v" and (block.start, block.stop) == (2 * record.shape[1],
                                                                3 * record.shape[1])
    return block.init, block.std


def orthogonal_std(gain: float, rows: int, cols: int) -> float:
    return gain / math.sqrt(max(rows, cols))


def xavier_std(gain: float, fan_in: int, fan_out: int) -> float:
    return gain * math.sqrt(2.0 / (fan_in + fan_out))


ZERO = ti.Zeros()
ONE = ti.Ones()


# -- PPO -----------------------------------------------------------------------------------------
class ContinuousAgent(nn.Module):
    """CleanRL ``ppo_continuous_action.py``'s Agent."""

    def __init__(self, obs: int = 8, actions: int = 2) -> None:
        super().__init__()
        self.critic = nn.Sequential(nn.Linear(obs, 64), nn.Tanh(), nn.Linear(64, 64), nn.Tanh(),
                                    nn.Linear(64, 1))
        self.actor_mean = nn.Sequential(nn.Linear(obs, 64), nn.Tanh(), nn.Linear(64, 64),
                                        nn.Tanh(), nn.Linear(64, actions))
        self.actor_logstd = nn.Parameter(torch.ones(1, actions))


class AtariLSTMAgent(nn.Module):
    """CleanRL ``ppo_atari_lstm.py``'s Agent."""

    def __init__(self, actions: int = 6) -> None:
        super().__init__()
        self.network = nn.Sequential(
            nn.Conv2d(1, 32, 8, stride=4), nn.ReLU(), nn.Conv2d(32, 64, 4, stride=2), nn.ReLU(),
            nn.Conv2d(64, 64, 3, stride=1), nn.ReLU(), nn.Flatten(), nn.Linear(64 * 7 * 7, 512),
            nn.ReLU())
        self.lstm = nn.LSTM(512, 128)
        self.actor = nn.Linear(128, actions)
        self.critic = nn.Linear(128, 1)


def test_ppo_orthogonal_hidden_layers_and_scaled_heads():
    hidden = math.sqrt(2)
    manifest = presets.get("ppo").explain(ContinuousAgent())
    expect(manifest, [
        ("critic.[02].weight", ti.Orthogonal(hidden), orthogonal_std(hidden, 64, 64)),
        ("actor_mean.[02].weight", ti.Orthogonal(hidden), orthogonal_std(hidden, 64, 64)),
        ("critic.4.weight", ti.Orthogonal(1.0), orthogonal_std(1.0, 1, 64)),
        ("actor_mean.4.weight", ti.Orthogonal(0.01), orthogonal_std(0.01, 2, 64)),
        ("*.bias", ZERO, 0.0), ("actor_logstd", ZERO, 0.0),
    ])
    manifest = presets.get("ppo").explain(AtariLSTMAgent())
    expect(manifest, [
        ("network.0.weight", ti.Orthogonal(hidden), orthogonal_std(hidden, 32, 1 * 8 * 8)),
        ("network.2.weight", ti.Orthogonal(hidden), orthogonal_std(hidden, 64, 32 * 4 * 4)),
        ("network.4.weight", ti.Orthogonal(hidden), orthogonal_std(hidden, 64, 64 * 3 * 3)),
        ("network.7.weight", ti.Orthogonal(hidden), orthogonal_std(hidden, 512, 64 * 7 * 7)),
        # one orthogonal matrix over each fused (4 * 128, in) LSTM weight, gain 1
        ("lstm.weight_ih_l0", ti.Orthogonal(1.0), orthogonal_std(1.0, 4 * 128, 512)),
        ("lstm.weight_hh_l0", ti.Orthogonal(1.0), orthogonal_std(1.0, 4 * 128, 128)),
        ("actor.weight", ti.Orthogonal(0.01), orthogonal_std(0.01, 6, 128)),
        ("critic.weight", ti.Orthogonal(1.0), orthogonal_std(1.0, 1, 128)),
        ("*bias*", ZERO, 0.0),
    ])


def test_ppo_applied_heads_are_orthogonal_with_their_gains():
    model = ContinuousAgent()
    ti.apply(model, presets.get("ppo", policy_gain=0.05, value_gain=0.5), seed=2)
    for weight, gain in ((model.actor_mean[4].weight, 0.05), (model.critic[4].weight, 0.5),
                         (model.critic[2].weight, math.sqrt(2))):
        w = weight.detach().double()
        torch.testing.assert_close(w @ w.T, gain ** 2 * torch.eye(w.shape[0], dtype=torch.double),
                                   atol=1e-6, rtol=0)
    assert torch.all(model.actor_logstd == 0) and torch.all(model.critic[0].bias == 0)


def test_ppo_head_paths_and_gains_are_options():
    model = nn.Sequential(nn.Linear(4, 16), nn.Linear(16, 3), nn.Linear(16, 1))
    plan = presets.get("ppo", hidden_gain=1.0, policy_paths="1.weight", value_paths=["2.weight"])
    expect(plan.explain(model), [
        ("0.weight", ti.Orthogonal(1.0), orthogonal_std(1.0, 16, 4)),
        ("1.weight", ti.Orthogonal(0.01), orthogonal_std(0.01, 3, 16)),
        ("2.weight", ti.Orthogonal(1.0), orthogonal_std(1.0, 1, 16)),
        ("*.bias", ZERO, 0.0),
    ])
    with pytest.warns(UserWarning, match=r"policy_paths -> orthogonal\(gain=0.01\).*matches no"):
        presets.get("ppo", value_paths="2.weight").explain(model)
    with pytest.raises(ConfigError, match="preset 'ppo': option policy_gain must be"):
        presets.get("ppo", policy_gain=0.0)


# -- Fixup ---------------------------------------------------------------------------------------
class FixupBasicBlock(nn.Module):
    """The reference code's block: scalar biases around two 3x3 convs, a scalar multiplier."""

    def __init__(self, cin: int, cout: int, stride: int = 1) -> None:
        super().__init__()
        self.bias1a = nn.Parameter(torch.ones(1))
        self.conv1 = nn.Conv2d(cin, cout, 3, stride=stride, padding=1, bias=False)
        self.bias1b = nn.Parameter(torch.ones(1))
        self.bias2a = nn.Parameter(torch.ones(1))
        self.conv2 = nn.Conv2d(cout, cout, 3, padding=1, bias=False)
        self.scale = nn.Parameter(torch.zeros(1))
        self.bias2b = nn.Parameter(torch.ones(1))
        self.downsample = (nn.Conv2d(cin, cout, 1, stride=stride, bias=False)
                           if stride != 1 or cin != cout else None)


class FixupBottleneck(nn.Module):
    def __init__(self, cin: int, width: int) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(cin, width, 1, bias=False)
        self.conv2 = nn.Conv2d(width, width, 3, padding=1, bias=False)
        self.conv3 = nn.Conv2d(width, 4 * width, 1, bias=False)
        self.scale = nn.Parameter(torch.zeros(1))
        self.bias3b = nn.Parameter(torch.ones(1))


class FixupNet(nn.Module):
    """torchvision's names: a stem ``conv1``, blocks in ``layer1``/``layer2``, ``fc``."""

    def __init__(self, block: str = "basic") -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(3, 8, 3, padding=1, bias=False)
        self.bias1 = nn.Parameter(torch.ones(1))
        if block == "basic":  # L = 3 residual branches
            self.layer1 = nn.Sequential(FixupBasicBlock(8, 8), FixupBasicBlock(8, 8))
            self.layer2 = nn.Sequential(FixupBasicBlock(8, 16, stride=2))
            self.fc = nn.Linear(16, 10)
        else:  # L = 2 bottlenecks
            self.layer1 = nn.Sequential(FixupBottleneck(8, 2), FixupBottleneck(8, 2))
            self.fc = nn.Linear(8, 10)
        self.bias2 = nn.Parameter(torch.ones(1))


def he_fan_out(out_channels: int, kernel: int) -> float:
    return math.sqrt(2.0 / (out_channels * kernel * kernel))


def test_fixup_basic_blocks_scaled_zeroed_and_scalars():
    branches = 3
    manifest = presets.get("fixup", n_layers=branches).explain(FixupNet())
    he = ti.KaimingNormal(mode="fan_out", nonlinearity="relu")
    scaled = ti.VarianceScaling(2.0 / branches, "fan_out", "normal")  # m = 2: L^(-1/2) on std
    expect(manifest, [
        ("conv1.weight", he, he_fan_out(8, 3)),
        ("layer1.*.conv1.weight", scaled, he_fan_out(8, 3) * branches ** -0.5),
        ("layer2.0.conv1.weight", scaled, he_fan_out(16, 3) * branches ** -0.5),
        ("layer*.conv2.weight", ZERO, 0.0),
        ("layer2.0.downsample.weight", he, he_fan_out(16, 1)),
        ("fc.*", ZERO, 0.0),
        ("*scale", ONE, 0.0),
        ("*bias*", ZERO, 0.0),  # Fixup's scalar biases have the bias role
    ])


def test_fixup_bottleneck_paths_follow_m_and_apply():
    branches, m = 2, 3
    model = FixupNet("bottleneck")
    manifest = ti.apply(model, presets.get("fixup", n_layers=branches, m=m), seed=0)
    factor = branches ** (-1.0 / (2 * m - 2))  # L^(-1/4) on the std
    scaled = ti.VarianceScaling(2.0 * branches ** (-1.0 / (m - 1)), "fan_out", "normal")
    expect(manifest, [
        ("conv1.weight", ti.KaimingNormal(mode="fan_out", nonlinearity="relu"), he_fan_out(8, 3)),
        ("layer1.*.conv1.weight", scaled, he_fan_out(2, 1) * factor),
        ("layer1.*.conv2.weight", scaled, he_fan_out(2, 3) * factor),
        ("layer1.*.conv3.weight", ZERO, 0.0),
        ("fc.*", ZERO, 0.0), ("*scale", ONE, 0.0), ("*bias*", ZERO, 0.0),
    ])
    assert torch.all(model.layer1[1].conv3.weight == 0) and torch.all(model.fc.weight == 0)
    assert torch.all(model.layer1[0].scale == 1) and torch.all(model.layer1[0].bias3b == 0)


def test_fixup_options_and_their_errors():
    plan = presets.get("fixup", n_layers=4, branch_paths="layer1.*.conv1.weight",
                       last_paths=["layer1.*.conv2.weight", "layer2.*.conv2.weight"],
                       classifier_paths="fc.weight", scale_names=["scale"])
    manifest = plan.explain(FixupNet())
    assert manifest["layer1.0.conv1.weight"].std == pytest.approx(he_fan_out(8, 3) / 2)
    assert manifest["layer2.0.conv1.weight"].std == pytest.approx(he_fan_out(16, 3))  # not scaled
    with pytest.warns(UserWarning, match="last_paths -> zeros.*matches no parameter"):
        presets.get("fixup", n_layers=3, m=3).explain(FixupNet())  # BasicBlocks have no conv3
    with pytest.raises(ConfigError, match="preset 'fixup': option m must be an int >= 2"):
        presets.get("fixup", n_layers=3, m=1)
    with pytest.raises(ConfigError, match="preset 'fixup': option branch_paths must be"):
        presets.get("fixup", n_layers=3, branch_paths=[])


# -- T-Fixup and DeepNet -------------------------------------------------------------------------
class Seq2Seq(nn.Module):
    """Token embeddings, ``nn.Transformer`` (d_model 32, FFN 64), an output projection."""

    def __init__(self, encoder_layers: int = 2, decoder_layers: int = 2) -> None:
        super().__init__()
        self.src_embed = nn.Embedding(100, 32, padding_idx=0)
        self.tgt_embed = nn.Embedding(90, 32)
        self.transformer = nn.Transformer(32, 4, encoder_layers, decoder_layers, 64,
                                          batch_first=True)
        self.generator = nn.Linear(32, 90)


def transformer_table(xavier, encoder_gain: float, decoder_gain: float, embedding: tuple
                      ) -> list[tuple[str, ti.Initializer, float]]:
    """Expected records of :class:`Seq2Seq` when the encoder's value/output/FFN weights get
    ``encoder_gain`` and the decoder's ``decoder_gain`` (whole in_proj_weight: gain 1)."""
    table = []
    for stack, gain in (("encoder", encoder_gain), ("decoder", decoder_gain)):
        prefix = f"transformer.{stack}.layers.*."
        table += [(prefix + "*attn.in_proj_weight", xavier(), xavier_std(1.0, 32, 32)),
                  (prefix + "*attn.out_proj.weight", xavier(gain), xavier_std(gain, 32, 32)),
                  (prefix + "linear1.weight", xavier(gain), xavier_std(gain, 32, 64)),
                  (prefix + "linear2.weight", xavier(gain), xavier_std(gain, 64, 32))]
    return table + [
        ("*_embed.weight", *embedding),
        ("generator.weight", xavier(), xavier_std(1.0, 32, 90)),
        ("*norm*.weight", ONE, 0.0), ("*bias", ZERO, 0.0),
    ]


def check_value_rows(manifest: ti.Manifest, xavier, encoder_gain: float,
                     decoder_gain: float) -> None:
    for record in manifest:
        if record.path.endswith("in_proj_weight"):
            gain = decoder_gain if ".decoder." in record.path else encoder_gain
            assert v_rows(record) == (xavier(gain), pytest.approx(xavier_std(gain, 32, 32)))


def test_t_fixup_scales_encoder_and_decoder_weights_and_embeddings():
    n = 3
    manifest = presets.get("t-fixup", n_layers=n).explain(Seq2Seq())
    encoder, decoder = 0.67 * n ** (-1 / 4), (9 * n) ** (-1 / 4)
    embedding = (ti.VarianceScaling((9 * n) ** -0.5, "fan_out", "normal"),
                 (9 * n) ** (-1 / 4) * 32 ** -0.5)  # N(0, d^-1/2) times (9N)^-1/4
    expect(manifest, transformer_table(ti.XavierUniform, encoder, decoder, embedding))
    check_value_rows(manifest, ti.XavierUniform, encoder, decoder)
    assert manifest["src_embed.weight"].zero_rows == (0,)


def test_t_fixup_warns_without_a_decoder():
    model = nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64), 2,
                                  enable_nested_tensor=False)
    with pytest.warns(UserWarning, match="decoder_paths -> xavier_uniform.*matches no"):
        manifest = presets.get("t-fixup", n_layers=2).explain(model)
    gain = 0.67 * 2 ** (-1 / 4)
    assert manifest["layers.1.linear2.weight"].std == pytest.approx(xavier_std(gain, 64, 32))


def test_deepnet_encoder_decoder_betas():
    n, m = 6, 3  # options, not the model's depth: the betas are functions of them only
    manifest = presets.get("deepnet", n_layers=n, architecture="encoder-decoder",
                           n_decoder_layers=m).explain(Seq2Seq())
    encoder, decoder = 0.87 * (n ** 4 * m) ** (-1 / 16), (12 * m) ** (-1 / 4)
    embedding = (ti.Normal(0.0, 1.0), 1.0)  # not in the recipe: torch's default
    expect(manifest, transformer_table(ti.XavierNormal, encoder, decoder, embedding))
    check_value_rows(manifest, ti.XavierNormal, encoder, decoder)


class SeparateProjectionLayer(nn.Module):
    """A layer whose attention has separate q/k/v weights (``kdim``, ``vdim`` != ``E``)."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(32, 4, kdim=16, vdim=24)
        self.linear1 = nn.Linear(32, 64)
        self.linear2 = nn.Linear(64, 32)


@pytest.mark.parametrize("architecture", ["encoder", "decoder"])
def test_deepnet_single_stack_beta_and_separate_value_projection(architecture):
    n = 4
    model = nn.Module()
    model.layers = nn.ModuleList([SeparateProjectionLayer(), SeparateProjectionLayer()])
    manifest = presets.get("deepnet", n_layers=n, architecture=architecture).explain(model)
    beta, x = (8 * n) ** (-1 / 4), ti.XavierNormal
    expect(manifest, [
        ("*.q_proj_weight", x(), xavier_std(1.0, 32, 32)),
        ("*.k_proj_weight", x(), xavier_std(1.0, 16, 32)),
        ("*.v_proj_weight", x(beta), xavier_std(beta, 24, 32)),
        ("*.out_proj.weight", x(beta), xavier_std(beta, 32, 32)),
        ("*.linear1.weight", x(beta), xavier_std(beta, 32, 64)),
        ("*.linear2.weight", x(beta), xavier_std(beta, 64, 32)),
        ("*bias", ZERO, 0.0),
    ])


def test_deepnet_option_errors():
    with pytest.raises(ConfigError, match="option architecture must be one of"):
        presets.get("deepnet", n_layers=2, architecture="gpt")
    with pytest.raises(ConfigError, match="n_decoder_layers applies to architecture="):
        presets.get("deepnet", n_layers=2, n_decoder_layers=2)
    with pytest.raises(ConfigError, match="option n_decoder_layers must be an int > 0"):
        presets.get("deepnet", n_layers=2, architecture="encoder-decoder", n_decoder_layers=0)
    with pytest.warns(UserWarning, match="decoder_paths.*matches no parameter"):
        presets.get("deepnet", n_layers=2, architecture="encoder-decoder").explain(
            nn.TransformerEncoder(nn.TransformerEncoderLayer(32, 4, 64), 1,
                                  enable_nested_tensor=False))


# -- ReZero and SkipInit -------------------------------------------------------------------------
class ReZeroLayer(nn.Module):
    """The reference code's ``RZTXEncoderLayer``: no norms, one residual weight."""

    def __init__(self) -> None:
        super().__init__()
        self.self_attn = nn.MultiheadAttention(16, 2)
        self.linear1 = nn.Linear(16, 32)
        self.linear2 = nn.Linear(32, 16)
        self.resweight = nn.Parameter(torch.ones(1))


class SkipInitBlock(nn.Module):
    """timm NF-Net style: a 0-dim ``skipinit_gain`` at the end of the branch."""

    def __init__(self) -> None:
        super().__init__()
        self.conv1 = nn.Conv2d(8, 8, 3, padding=1)
        self.conv2 = nn.Conv2d(8, 8, 3, padding=1)
        self.skipinit_gain = nn.Parameter(torch.tensor(1.0))


def torch_uniform(fan_in: int) -> tuple[ti.Initializer, float]:
    """torch's Linear/Conv default ``U(+-1/sqrt(fan_in))`` and its std."""
    bound = 1.0 / math.sqrt(fan_in)
    return ti.Uniform(-bound, bound), bound / math.sqrt(3)


def test_rezero_zeroes_residual_weights_on_top_of_torch_defaults():
    model = nn.Sequential(ReZeroLayer(), ReZeroLayer())
    manifest = ti.apply(model, presets.get("rezero"), seed=0)
    attention = math.sqrt(6.0 / (3 * 16 + 16))  # xavier_uniform_ on the (48, 16) in_proj
    expect(manifest, [
        ("*.resweight", ZERO, 0.0),
        ("*.in_proj_weight", ti.Uniform(-attention, attention), attention / math.sqrt(3)),
        ("*.out_proj.weight", *torch_uniform(16)), ("*proj_bias", ZERO, 0.0),
        ("*.out_proj.bias", ZERO, 0.0),
        ("*.linear1.*", *torch_uniform(16)), ("*.linear2.*", *torch_uniform(32)),
    ])
    assert all(torch.all(layer.resweight == 0) for layer in model)


def test_skipinit_zeroes_branch_multipliers():
    model = nn.Sequential(SkipInitBlock(), SkipInitBlock())
    manifest = ti.apply(model, presets.get("skipinit"), seed=0)
    expect(manifest, [("*.skipinit_gain", ZERO, 0.0), ("*.conv*", *torch_uniform(8 * 9))])
    assert all(float(block.skipinit_gain.detach()) == 0.0 for block in model)


@pytest.mark.parametrize("name", ["rezero", "skipinit"])
def test_zero_gain_presets_name_option_and_warning(name):
    model = nn.Module()
    model.block = SkipInitBlock()
    model.block.gate = nn.Parameter(torch.ones(1))
    assert presets.get(name, gain_names=["gate", "skipinit_gain"]).explain(
        model)["block.gate"].init == ZERO
    with pytest.warns(UserWarning, match="gain_names -> zeros.*matches no parameter"):
        presets.get(name).explain(nn.Linear(2, 2))
    with pytest.raises(ConfigError, match=f"preset '{name}': option gain_names must be"):
        presets.get(name, gain_names="")
