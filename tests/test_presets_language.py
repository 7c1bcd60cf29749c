"""Language-model presets: torchtitan, Megatron-LM, GPT-NeoX, OLMo, T5, Mamba.

Expected initializers are written out from each source's formulas; T5 and Mamba are also checked
against the init captured from transformers' own models (``ti.capture``).
"""

from __future__ import annotations

import fnmatch
import math

import pytest
import torch
from scipy import integrate, stats
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError, PlanError
from torchinit.presets._mamba import InverseSoftplusLogUniform, LogArange

from .native_checks import same_init


# -- models with each codebase's module names ----------------------------------------------------
def tree(**children: nn.Module) -> nn.Module:
    module = nn.Module()
    for name, child in children.items():
        module.add_module(name, child)
    return module


def linear(d_in: int, d_out: int) -> nn.Linear:
    return nn.Linear(d_in, d_out, bias=False)


def titan(n_layers: int = 3, dim: int = 64, hidden: int = 96, vocab: int = 500) -> nn.Module:
    """torchtitan's Llama 3 names: tok_embeddings, layers.{i} (a ModuleDict), norm, output."""
    def block() -> nn.Module:
        return tree(attention=tree(wq=linear(dim, dim), wk=linear(dim, 32), wv=linear(dim, 32),
                                   wo=linear(dim, dim)),
                    feed_forward=tree(w1=linear(dim, hidden), w2=linear(hidden, dim),
                                      w3=linear(dim, hidden)),
                    attention_norm=nn.RMSNorm(dim), ffn_norm=nn.RMSNorm(dim))
    return tree(tok_embeddings=nn.Embedding(vocab, dim),
                layers=nn.ModuleDict({str(i): block() for i in range(n_layers)}),
                norm=nn.RMSNorm(dim), output=linear(dim, vocab))


def olmo_core(n_layers: int = 3, dim: int = 64, hidden: int = 96, vocab: int = 500) -> nn.Module:
    """OLMo-core's names: embeddings, blocks.{i}.attention.w_*, feed_forward.w1-3, lm_head."""
    def block() -> nn.Module:
        return tree(attention=tree(w_q=linear(dim, dim), w_k=linear(dim, dim),
                                   w_v=linear(dim, dim), w_out=linear(dim, dim)),
                    attention_norm=nn.RMSNorm(dim),
                    feed_forward=tree(w1=linear(dim, hidden), w2=linear(hidden, dim),
                                      w3=linear(dim, hidden)),
                    feed_forward_norm=nn.RMSNorm(dim))
    return tree(embeddings=nn.Embedding(vocab, dim),
                blocks=nn.ModuleDict({str(i): block() for i in range(n_layers)}),
                lm_head=tree(norm=nn.RMSNorm(dim), w_out=linear(dim, vocab)))


def megatron_core(n_layers: int = 2, dim: int = 64, vocab: int = 500) -> nn.Module:
    """megatron.core's GPTModel names."""
    def layer() -> nn.Module:
        return tree(input_layernorm=nn.LayerNorm(dim),
                    self_attention=tree(linear_qkv=nn.Linear(dim, 3 * dim),
                                        linear_proj=nn.Linear(dim, dim)),
                    pre_mlp_layernorm=nn.LayerNorm(dim),
                    mlp=tree(linear_fc1=nn.Linear(dim, 4 * dim),
                             linear_fc2=nn.Linear(4 * dim, dim)))
    return tree(embedding=tree(word_embeddings=nn.Embedding(vocab, dim),
                               position_embeddings=nn.Embedding(32, dim)),
                decoder=tree(layers=nn.ModuleList(layer() for _ in range(n_layers)),
                             final_layernorm=nn.LayerNorm(dim)),
                output_layer=linear(dim, vocab))


# -- checks --------------------------------------------------------------------------------------
def expect(manifest: ti.Manifest, table: list[tuple[str, ti.Initializer]]) -> None:
    """Every record's initializer is the first ``(glob, initializer)`` matching its path."""
    wrong = []
    for record in manifest:
        hits = [init for glob, init in table if fnmatch.fnmatchcase(record.path, glob)]
        assert hits, f"no expectation for {record.path}"
        if record.init != hits[0]:
            wrong.append(f"{record.path}: {record.init}, expected {hits[0]}")
    assert not wrong, "\n".join(wrong)


def trunc3(std: float) -> ti.TruncatedNormal:
    return ti.TruncatedNormal(0.0, std, -3 * std, 3 * std)


def torch_trunc(std: float) -> ti.TruncatedNormal:
    return ti.TruncatedNormal(0.0, std, -2.0, 2.0)


def per_layer(pattern: str, n_layers: int, init_of) -> list[tuple[str, ti.Initializer]]:
    return [(pattern.format(i=i), init_of(i)) for i in range(n_layers)]


# -- torchtitan ----------------------------------------------------------------------------------
TITAN_OUTPUTS = "layers.{i}.*[wo23].weight"  # attention.wo, feed_forward.w2 and w3


def test_torchtitan_scales_outputs_by_layer_index_with_depth_init():
    model = titan(n_layers=3)
    manifest = ti.apply(model, ti.presets.get("torchtitan", n_layers=3), seed=0)
    expect(manifest, [
        ("*norm.weight", ti.Ones()),
        *per_layer(TITAN_OUTPUTS, 3, lambda i: torch_trunc(0.02 / math.sqrt(2 * (i + 1)))),
        ("layers.*.weight", torch_trunc(0.02)),  # wq, wk, wv, w1
        ("tok_embeddings.weight", ti.Normal(0.0, 1.0)),
        ("output.weight", trunc3(64 ** -0.5)),
    ])
    out = model.output.weight.detach().double()
    assert float(out.abs().max()) <= 3 * 64 ** -0.5
    assert float(out.std()) == pytest.approx(manifest["output.weight"].std, rel=0.02)


def test_torchtitan_without_depth_init_scales_by_n_layers():
    manifest = ti.presets.get("torchtitan", n_layers=4, std=0.03, depth_init=False).explain(
        titan(n_layers=4))
    expect(manifest, [
        ("*norm.weight", ti.Ones()),
        ("layers.*.*[wo23].weight", torch_trunc(0.03 / math.sqrt(8))),
        ("layers.*.weight", torch_trunc(0.03)),
        ("tok_embeddings.weight", ti.Normal(0.0, 1.0)),
        ("output.weight", trunc3(64 ** -0.5)),
    ])


def test_depth_rules_refuse_parameters_no_layer_rule_covers():
    plan = ti.presets.get("torchtitan", n_layers=2)
    with pytest.raises(PlanError, match=r"'layers\.2\.attention\.wo\.weight' \(layer 2\).*"
                                        r"pass n_layers"):
        plan.explain(titan(n_layers=3))
    loose = tree(attention=tree(wo=linear(8, 8)))
    with pytest.raises(PlanError, match=r"'attention\.wo\.weight'.*no numeric component"):
        plan.explain(loose)
    with pytest.warns(UserWarning, match=r"wo\.weight.*per layer\) matches no parameter"):
        plan.explain(nn.Sequential(nn.Linear(4, 4)))


# -- Megatron-LM and GPT-NeoX --------------------------------------------------------------------
def test_megatron_scales_the_output_layers():
    manifest = ti.presets.get("megatron", n_layers=2, std=0.01).explain(megatron_core())
    expect(manifest, [
        ("*norm.*weight", ti.Ones()), ("*.bias", ti.Zeros()),
        ("*.linear_proj.weight", ti.Normal(0.0, 0.01 / 2)),
        ("*.linear_fc2.weight", ti.Normal(0.0, 0.01 / 2)),
        ("*weight", ti.Normal(0.0, 0.01)),
    ])


def test_neox_small_init_and_wang_init_on_gpt_neox():
    transformers = pytest.importorskip("transformers")
    config = transformers.GPTNeoXConfig(vocab_size=320, hidden_size=64, num_hidden_layers=2,
                                        num_attention_heads=4, intermediate_size=128)
    manifest = ti.presets.get("neox", hidden_size=64, n_layers=2).explain(
        transformers.GPTNeoXForCausalLM(config))
    expect(manifest, [
        ("*layernorm.weight", ti.Ones()), ("*final_layer_norm.weight", ti.Ones()),
        ("*.bias", ti.Zeros()),
        ("*.attention.dense.weight", ti.Normal(0.0, 2 / (2 * math.sqrt(64)))),
        ("*.mlp.dense_4h_to_h.weight", ti.Normal(0.0, 2 / (2 * math.sqrt(64)))),
        ("*weight", ti.Normal(0.0, math.sqrt(2 / (5 * 64)))),  # embed_in, qkv, h_to_4h, embed_out
    ])


# -- OLMo ----------------------------------------------------------------------------------------
def mitchell(fan_in: int):
    return lambda i: trunc3(1 / math.sqrt(2 * fan_in * (i + 1)))


def llama_depth(i: int) -> ti.TruncatedNormal:
    return trunc3(0.02 / math.sqrt(2 * (i + 1)))


OLMO_EXPECTED = {
    "normal": [("*weight", trunc3(0.02))],
    "llama": [
        ("embeddings.weight", ti.Normal(0.0, 1.0)), ("lm_head.w_out.weight", trunc3(64 ** -0.5)),
        ("*.w_out.weight", trunc3(0.02 / math.sqrt(6))),
        ("*.w[23].weight", trunc3(0.02 / math.sqrt(6))),
        ("*weight", trunc3(0.02)),
    ],
    "llama_depth": [
        ("embeddings.weight", ti.Normal(0.0, 1.0)), ("lm_head.w_out.weight", trunc3(64 ** -0.5)),
        *per_layer("blocks.{i}.*.w_out.weight", 3, llama_depth),
        *per_layer("blocks.{i}.*.w[23].weight", 3, llama_depth),
        ("*weight", trunc3(0.02)),
    ],
    "mitchell": [
        *per_layer("blocks.{i}.*.w_out.weight", 3, mitchell(64)),
        *per_layer("blocks.{i}.*.w2.weight", 3, mitchell(96)),
        ("*weight", trunc3(64 ** -0.5)),  # inputs (w3 too), embeddings, lm_head
    ],
}


@pytest.mark.parametrize("scheme", sorted(OLMO_EXPECTED))
def test_olmo_schemes(scheme):
    manifest = ti.presets.get("olmo", d_model=64, n_layers=3, scheme=scheme).explain(olmo_core())
    expect(manifest, [("*norm.weight", ti.Ones()), *OLMO_EXPECTED[scheme]])


# -- T5 and Mamba against transformers' own init ------------------------------------------------
def _moments(record) -> tuple[float, float]:
    return record.init.mean_value(record.fans, record.shape), record.std


def assert_same_scheme(preset: ti.Manifest, native: ti.Manifest) -> list[str]:
    """Every captured parameter gets the model's scheme, or one with its mean and std; returns
    the paths the capture keeps (no catalog equivalent)."""
    different, kept = [], []
    for theirs in native:
        if theirs.init is None:
            kept.append(theirs.path)
            continue
        ours = preset[theirs.path]
        if ours.init != theirs.init and not all(
                math.isclose(a, b, rel_tol=1e-12, abs_tol=1e-15)
                for a, b in zip(_moments(ours), _moments(theirs))):
            different.append(f"{theirs.path}: preset {ours.init}, model {theirs.init}")
    assert not different, "\n".join(different)
    return kept


T5_SIZES = dict(vocab_size=320, d_model=64, d_kv=8, d_ff=128, num_layers=2,
                num_decoder_layers=2, num_heads=4)
T5_CASES = {
    "t5": ("T5Config", "T5ForConditionalGeneration", dict(initializer_factor=0.5)),
    "t5-gated-untied": ("T5Config", "T5ForConditionalGeneration",
                        dict(feed_forward_proj="gated-gelu", tie_word_embeddings=False)),
    "t5-qa": ("T5Config", "T5ForQuestionAnswering", dict(initializer_factor=2.0)),
    "mt5": ("MT5Config", "MT5ForConditionalGeneration", {}),
    "umt5": ("UMT5Config", "UMT5ForConditionalGeneration", {}),
}


@pytest.mark.parametrize("case", sorted(T5_CASES))
def test_t5_from_config_matches_the_models_own_init(case):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config_class, model_class, extra = T5_CASES[case]
    config = getattr(transformers, config_class)(**T5_SIZES, **extra)

    def factory() -> nn.Module:
        return getattr(transformers, model_class)(config)

    model = factory()
    plan = ti.presets.from_config(config)
    assert plan.name == "t5"
    assert assert_same_scheme(plan.explain(model), ti.capture(factory).explain(model)) == []


MAMBA_SIZES = dict(vocab_size=320, hidden_size=64, state_size=8, num_hidden_layers=2)


@pytest.mark.parametrize("extra", [{}, dict(rescale_prenorm_residual=True,
                                            time_step_init_scheme="constant",
                                            time_step_scale=2.0, initializer_range=0.05)])
def test_mamba_from_config_matches_the_models_own_init(extra):
    transformers = pytest.importorskip("transformers")
    transformers.logging.set_verbosity_error()
    config = transformers.MambaConfig(**MAMBA_SIZES, **extra)

    def factory() -> nn.Module:
        return transformers.MambaForCausalLM(config)

    torch.manual_seed(0)
    theirs = factory()  # built for real: A_log and dt_proj.bias, which capture cannot replay
    ours = factory()
    manifest = ti.apply(ours, ti.presets.from_config(config), seed=5)
    kept = assert_same_scheme(manifest, ti.capture(factory, fallback="eager").explain(ours))
    assert sorted(kept) == sorted(f"backbone.layers.{i}.mixer.{name}" for i in range(2)
                                  for name in ("A_log", "dt_proj.bias"))
    params = dict(ours.named_parameters())
    for path, native in theirs.named_parameters():
        if path.endswith("A_log"):
            torch.testing.assert_close(params[path], native, rtol=1e-6, atol=0)

    def dt_bias(model: nn.Module) -> torch.Tensor:
        return torch.cat([layer.mixer.dt_proj.bias for layer in model.backbone.layers])

    assert same_init(dt_bias(theirs), dt_bias(ours)) is None


def test_mamba_from_config_refuses_another_dt_range():
    transformers = pytest.importorskip("transformers")
    with pytest.raises(ConfigError, match=r"time_step_min.*0\.01"):
        ti.presets.from_config(transformers.MambaConfig(**MAMBA_SIZES, time_step_min=0.01))


# -- Mamba's initializers ------------------------------------------------------------------------
def softplus_inverse_of_log_uniform(u: torch.Tensor, dt_min: float, dt_max: float) -> torch.Tensor:
    """Mamba's formula on uniforms ``u`` in (0, 1)."""
    dt = torch.exp(u * (math.log(dt_max) - math.log(dt_min)) + math.log(dt_min))
    return dt + torch.log(-torch.expm1(-dt))


def test_dt_bias_moments_bounds_and_draws_follow_the_formula():
    init = InverseSoftplusLogUniform(1e-3, 1e-1)

    def f(u: float) -> float:
        return float(softplus_inverse_of_log_uniform(torch.tensor(u, dtype=torch.float64),
                                                     1e-3, 1e-1))

    mean = integrate.quad(f, 0, 1, epsabs=1e-13)[0]
    var = integrate.quad(lambda u: (f(u) - mean) ** 2, 0, 1, epsabs=1e-13)[0]
    assert init.mean_value() == pytest.approx(mean, rel=1e-10)
    assert init.std() == pytest.approx(math.sqrt(var), rel=1e-10)
    assert init.bound() == pytest.approx(-f(0.0), rel=1e-12)
    drawn = init.sample((200_000,), ti.Key(3, "dt_proj.bias"), dtype=torch.float64)
    assert float(drawn.min()) >= -init.bound() and float(drawn.max()) <= f(1.0)
    reference = softplus_inverse_of_log_uniform(
        torch.rand(200_000, dtype=torch.float64, generator=torch.Generator().manual_seed(0)),
        1e-3, 1e-1)
    assert stats.ks_2samp(drawn.numpy(), reference.numpy()).pvalue > 1e-4


def test_mamba_initializers_fill_regions_as_the_whole_tensor():
    key = ti.Key(1, "mixer.A_log")
    for init, shape in ((InverseSoftplusLogUniform(), (64, 4)), (LogArange(), (12, 16))):
        whole = init.sample(shape, key, dtype=torch.float64)
        region = (slice(3, 40, 2), slice(1, 4))
        assert torch.equal(init.sample(shape, key, region=region, dtype=torch.float64),
                           whole[region])
    table = LogArange().sample((2, 5), key, dtype=torch.float64)
    assert torch.equal(table, torch.arange(1.0, 6.0, dtype=torch.float64).log().expand(2, 5))
    assert LogArange().std(shape=(2, 5)) == pytest.approx(float(table[0].std(correction=0)))


# -- options -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name, options, wrong", [
    ("olmo", {"d_model": 64, "n_layers": 2, "scheme": "lama"}, "scheme"),
    ("mamba", {"dt_rank": 4, "dt_init": "uniform"}, "dt_init"),
    ("mamba", {"dt_rank": 4, "n_layers": 0}, "n_layers"),
    ("torchtitan", {"n_layers": 2, "depth_init": 1}, "depth_init"),
    ("t5", {"d_model": 8, "d_kv": 2, "n_heads": 4, "d_ff": 16, "factor": 0.0}, "factor"),
    ("neox", {"hidden_size": 64.0, "n_layers": 2}, "hidden_size"),
])
def test_bad_option_values_are_refused(name, options, wrong):
    with pytest.raises(ConfigError, match=f"preset '{name}': option {wrong} must be"):
        ti.presets.get(name, **options)
    if wrong == "scheme":
        with pytest.raises(ConfigError, match="'llama'"):
            ti.presets.get(name, **options)


def test_from_config_knows_the_new_model_types():
    assert {"t5", "mt5", "umt5", "mamba"} <= set(ti.presets._configs.config_types())
