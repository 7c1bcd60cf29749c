"""μP and the spectral parametrization: classes, inits and multipliers against Table 3 of
"Tensor Programs V" recomputed by hand, optimizer groups, files, errors and forward checks."""

from __future__ import annotations

import json
import math
import warnings

import pytest
import torch
import torch.nn.functional as F
from torch import nn

import torchinit as ti
from torchinit.errors import ConfigError, PlanError
from torchinit.initializers import Normal, Ones, Zeros
from torchinit.width import BaseShapes, MuP, Spectral, forward_requirements


def mlp(width: int) -> nn.Sequential:
    return nn.Sequential(nn.Linear(784, width), nn.ReLU(), nn.Linear(width, width), nn.ReLU(),
                         nn.Linear(width, 10))


class Block(nn.Module):
    """A pre-LN transformer block with μP's 1/head_dim attention and a 4x MLP."""

    def __init__(self, d: int, head_dim: int = 8) -> None:
        super().__init__()
        self.head_dim, self.heads = head_dim, d // head_dim
        self.scaling = 1.0 / head_dim
        self.ln1, self.ln2 = nn.LayerNorm(d), nn.LayerNorm(d)
        self.qkv = nn.Linear(d, 3 * d)
        self.proj = nn.Linear(d, d)
        self.up, self.down = nn.Linear(d, 4 * d), nn.Linear(4 * d, d)

    def forward(self, x: torch.Tensor) -> torch.Tensor:
        b, t, d = x.shape
        q, k, v = self.qkv(self.ln1(x)).view(b, t, 3, self.heads, self.head_dim).unbind(2)
        a = F.scaled_dot_product_attention(q.transpose(1, 2), k.transpose(1, 2),
                                           v.transpose(1, 2), is_causal=True, scale=self.scaling)
        x = x + self.proj(a.transpose(1, 2).reshape(b, t, d))
        return x + self.down(F.gelu(self.up(self.ln2(x))))


class TinyLM(nn.Module):
    def __init__(self, d: int, vocab: int = 50) -> None:
        super().__init__()
        self.embed = nn.Embedding(vocab, d)
        self.block = Block(d)
        self.norm = nn.LayerNorm(d)
        self.head = nn.Linear(d, vocab, bias=False)

    def forward(self, ids: torch.Tensor) -> torch.Tensor:
        return self.head(self.norm(self.block(self.embed(ids))))


# -- Table 3, recomputed by hand ---------------------------------------------------------------
# Each row: (path, class, init std (None: zeros, 1.0-ones for norm scales), Adam lr x, SGD lr x).
BASE, WIDTH = 64, 256


def mlp_table(output: str) -> list[tuple[str, str, float | None, float, float]]:
    m = WIDTH / BASE
    out_std = None if output == "zero" else (1 / math.sqrt(BASE)) / m
    return [
        ("0.weight", "input", 1 / math.sqrt(784), 1.0, m),         # fan_in finite: 1/784 var
        ("0.bias", "vector", None, 1.0, m),                        # biases: Table 3's "input"
        ("2.weight", "hidden", 1 / math.sqrt(WIDTH), 1 / m, 1.0),  # var 1/fan_in; Adam eta/n
        ("2.bias", "vector", None, 1.0, m),
        ("4.weight", "output", out_std, 1 / m, 1 / m),             # var 1/fan_in^2; eta/n both
        ("4.bias", "fixed", None, 1.0, 1.0),
    ]


def lm_table(output: str) -> list[tuple[str, str, float | None, float, float]]:
    d, m = WIDTH, WIDTH / BASE
    out_std = None if output == "zero" else (1 / math.sqrt(BASE)) / m
    return [
        ("embed.weight", "input", 1.0, 1.0, m),              # one-hot input: fan_in 1
        ("block.ln1.weight", "vector", 1.0, 1.0, m), ("block.ln1.bias", "vector", None, 1.0, m),
        ("block.ln2.weight", "vector", 1.0, 1.0, m), ("block.ln2.bias", "vector", None, 1.0, m),
        ("block.qkv.weight", "hidden", 1 / math.sqrt(d), 1 / m, 1.0),
        ("block.qkv.bias", "vector", None, 1.0, m),
        ("block.proj.weight", "hidden", 1 / math.sqrt(d), 1 / m, 1.0),
        ("block.proj.bias", "vector", None, 1.0, m),
        ("block.up.weight", "hidden", 1 / math.sqrt(d), 1 / m, 1.0),
        ("block.up.bias", "vector", None, 1.0, m),
        ("block.down.weight", "hidden", 1 / math.sqrt(4 * d), 1 / m, 1.0),
        ("block.down.bias", "vector", None, 1.0, m),
        ("norm.weight", "vector", 1.0, 1.0, m), ("norm.bias", "vector", None, 1.0, m),
        ("head.weight", "output", out_std, 1 / m, 1 / m),     # vocab fixed: fan_in grows only
    ]


def assert_normal(init: object, std: float) -> None:
    assert isinstance(init, Normal) and init.mean == 0.0, init
    assert init.stddev == pytest.approx(std, rel=1e-12), init


def check_against(manifest: ti.Manifest, table, optimizer: str) -> None:
    assert [r.path for r in manifest] == [row[0] for row in table]
    for path, kind, std, adam, sgd in table:
        record = manifest[path]
        lr = adam if optimizer == "adam" else sgd
        assert record.width == kind, path
        assert record.lr_scale == pytest.approx(lr, rel=1e-12), path
        assert record.weight_decay_scale == pytest.approx(1 / lr, rel=1e-12), path
        if std is None:
            assert record.init == Zeros(), path
        elif "scale" in record.roles:
            assert record.init == Ones(), path
        else:
            assert_normal(record.init, std)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("output", ["zero", "scaled"])
def test_mlp_follows_table_3(optimizer, output):
    plan = ti.mup(lambda: mlp(BASE), optimizer=optimizer, output=output)
    check_against(plan.explain(mlp(WIDTH)), mlp_table(output), optimizer)


@pytest.mark.parametrize("optimizer", ["adam", "sgd"])
@pytest.mark.parametrize("output", ["zero", "scaled"])
def test_small_transformer_follows_table_3(optimizer, output):
    plan = ti.mup(lambda: TinyLM(BASE), optimizer=optimizer, output=output)
    with warnings.catch_warnings():
        warnings.simplefilter("error")  # 1/head_dim attention and an untied head: no warning
        manifest = plan.explain(TinyLM(WIDTH))
    check_against(manifest, lm_table(output), optimizer)


def test_at_base_width_mup_is_the_standard_parametrization():
    manifest = ti.mup(lambda: mlp(BASE), output="scaled").explain(mlp(BASE))
    assert {r.lr_scale for r in manifest} == {1.0}
    assert manifest["2.weight"].init == Normal(0.0, 1 / math.sqrt(BASE))
    assert manifest["4.weight"].init == Normal(0.0, 1 / math.sqrt(BASE))


def test_std_at_base_width_scales_hidden_and_output_weights():
    manifest = ti.mup(lambda: mlp(BASE), std=0.02, output="scaled").explain(mlp(WIDTH))
    m = WIDTH / BASE
    assert manifest["0.weight"].init == Normal(0.0, 0.02)
    assert_normal(manifest["2.weight"].init, 0.02 / math.sqrt(m))
    assert_normal(manifest["4.weight"].init, 0.02 / m)


def test_measured_std_of_hidden_weights_matches_within_standard_error():
    model = mlp(1024)
    ti.apply(model, ti.mup(lambda: mlp(BASE)), seed=3)
    w = model[2].weight.detach().double()
    n, std = w.numel(), 1 / math.sqrt(1024)
    # the sample variance's standard error for a normal is var * sqrt(2 / (n - 1))
    assert abs(w.var().item() - std ** 2) < 5 * std ** 2 * math.sqrt(2 / (n - 1))


# -- idempotence, entry points, files ----------------------------------------------------------
def test_applying_twice_gives_the_same_tensors_and_build_agrees():
    plan = ti.mup(lambda: mlp(BASE), output="scaled")
    model = mlp(WIDTH)
    ti.apply(model, plan, seed=9)
    first = [p.detach().clone() for p in model.parameters()]
    ti.apply(model, plan, seed=9)
    assert all(torch.equal(a, b) for a, b in zip(first, model.parameters()))
    built = ti.build(lambda: mlp(WIDTH), plan, seed=9)
    assert all(torch.equal(a, b) for a, b in zip(first, built.parameters()))


def test_base_as_model_factory_file_and_bare_shapes_agree(tmp_path):
    base = mlp(BASE)
    from_factory = ti.mup(lambda: mlp(BASE)).explain(mlp(WIDTH))
    from_model = ti.mup(base).explain(mlp(WIDTH))
    path = tmp_path / "base.json"
    BaseShapes.of(base).save(path)
    from_file = ti.mup(str(path)).explain(mlp(WIDTH))
    bare = tmp_path / "bare.json"
    bare.write_text(json.dumps({n: list(p.shape) for n, p in base.named_parameters()}))
    from_bare = ti.mup(bare).explain(mlp(WIDTH))
    for other in (from_model, from_file, from_bare):
        assert [(r.init, r.lr_scale, r.width) for r in other] == \
            [(r.init, r.lr_scale, r.width) for r in from_factory]


def test_plan_file_and_manifest_json_round_trip(tmp_path):
    plan = ti.mup(lambda: mlp(BASE), optimizer="sgd")
    path = tmp_path / "mup.json"
    plan.to_file(str(path))
    assert ti.Plan.from_file(str(path)) == plan
    manifest = ti.apply(mlp(WIDTH), plan, seed=1)
    again = ti.Manifest.from_json(manifest.to_json())
    assert again.digest() == manifest.digest()
    assert [(r.lr_scale, r.weight_decay_scale, r.width) for r in again] == \
        [(r.lr_scale, r.weight_decay_scale, r.width) for r in manifest]
    assert "x0.25 (hidden)" not in manifest.table()  # SGD's hidden multiplier is 1
    assert "x4 (input)" in manifest.table()


def test_a_later_rule_changes_the_init_and_keeps_the_multipliers():
    plan = ti.mup(lambda: mlp(BASE)) + [ti.Rule(path="2.weight", init=ti.Orthogonal())]
    record = plan.explain(mlp(WIDTH))["2.weight"]
    assert record.init == ti.Orthogonal()
    assert (record.width, record.lr_scale) == ("hidden", BASE / WIDTH)
    assert any("the init is rule #1" in n for n in record.notes)


# -- optimizer groups --------------------------------------------------------------------------
def test_param_groups_apply_lr_and_decay_multipliers():
    plan = ti.mup(lambda: mlp(BASE))
    model = ti.build(lambda: mlp(WIDTH), plan)
    groups = ti.param_groups(model, plan=plan, lr=1e-3, weight_decay=0.1)
    by_name = {n: g for g in groups for n in g["names"]}
    m = WIDTH / BASE
    assert by_name["0.weight"]["lr"] == pytest.approx(1e-3)
    assert by_name["0.weight"]["weight_decay"] == pytest.approx(0.1)
    for hidden_or_output in ("2.weight", "4.weight"):
        assert by_name[hidden_or_output]["lr"] == pytest.approx(1e-3 / m)
        # lr x weight decay is width-independent: AdamW shrinks every weight alike
        assert by_name[hidden_or_output]["weight_decay"] == pytest.approx(0.1 * m)
    assert by_name["2.bias"]["weight_decay"] == 0.0  # biases stay out of decay
    manifest_groups = ti.param_groups(model, plan=plan.explain(model), lr=1e-3,
                                      weight_decay=0.1)
    assert [g["names"] for g in manifest_groups] == [g["names"] for g in groups]
    torch.optim.AdamW(groups).step()  # standard torch optimizers take them


def test_param_groups_without_lr_carry_the_scale_and_combine_with_lr_scale():
    plan = ti.mup(lambda: mlp(BASE))
    model = mlp(WIDTH)
    groups = ti.param_groups(model, plan=plan, lr_scale=[({"path": "2.*"}, 0.5)])
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["2.weight"]["lr_scale"] == pytest.approx(0.5 * BASE / WIDTH)
    assert by_name["2.bias"]["lr_scale"] == pytest.approx(0.5)
    assert "lr_scale" not in by_name["0.weight"]


def test_param_groups_refuse_a_manifest_of_another_model():
    manifest = ti.mup(lambda: mlp(BASE)).explain(mlp(WIDTH))
    with pytest.raises(ConfigError, match="no record"):
        ti.param_groups(TinyLM(32), plan=manifest)
    with pytest.raises(ConfigError, match="Plan or a Manifest"):
        ti.param_groups(mlp(8), plan="mup")


# -- spectral ----------------------------------------------------------------------------------
@pytest.mark.parametrize("optimizer", ["sgd", "adam"])
def test_spectral_preset_formulas(optimizer):
    manifest = ti.presets.get("spectral", optimizer=optimizer).explain(mlp(WIDTH))
    for path, (fan_in, fan_out) in {"0.weight": (784, WIDTH), "2.weight": (WIDTH, WIDTH),
                                    "4.weight": (WIDTH, 10)}.items():
        record = manifest[path]
        std = min(1.0, math.sqrt(fan_out / fan_in)) / math.sqrt(fan_in)
        assert_normal(record.init, std)
        lr = fan_out / fan_in if optimizer == "sgd" else 1 / fan_in
        assert record.lr_scale == pytest.approx(lr, rel=1e-12), path
    bias = manifest["0.bias"]
    assert bias.init == Zeros()
    assert bias.lr_scale == pytest.approx(WIDTH if optimizer == "sgd" else 1.0)


def test_spectral_groups_and_config():
    plan = ti.presets.get("spectral")
    model = ti.build(lambda: mlp(32), plan)
    groups = ti.param_groups(model, plan=plan, lr=0.1)
    by_name = {n: g for g in groups for n in g["names"]}
    assert by_name["2.weight"]["lr"] == pytest.approx(0.1)
    assert by_name["4.weight"]["lr"] == pytest.approx(0.1 * 10 / 32)
    assert ti.Plan.from_dict(plan.to_dict()) == plan
    with pytest.raises(ConfigError, match="optimizer"):
        Spectral("rmsprop")  # type: ignore[arg-type]


# -- errors ------------------------------------------------------------------------------------
def test_a_parameter_missing_from_the_base_is_named():
    plan = ti.mup(lambda: mlp(BASE))
    extra = mlp(WIDTH)
    extra.append(nn.Linear(10, 3))
    with pytest.raises(PlanError, match=r"'5.weight'.*not in the base model"):
        plan.explain(extra)


def test_a_different_number_of_dimensions_is_refused():
    class Flat(nn.Module):
        def __init__(self, shape: tuple[int, ...]) -> None:
            super().__init__()
            self.table = nn.Parameter(torch.zeros(shape))

    with pytest.raises(PlanError, match="number of dimensions"):
        ti.mup(Flat((4, 8))).explain(Flat((4, 8, 2)))


def test_a_vector_that_is_neither_bias_nor_norm_asks_for_a_rule_and_keeps_its_lr():
    class Gated(nn.Module):
        def __init__(self, d: int) -> None:
            super().__init__()
            self.fc = nn.Linear(d, d)
            self.gain = nn.Parameter(torch.ones(d))

    plan = ti.mup(Gated(8))
    with pytest.raises(PlanError, match=r"'gain'.*neither a bias nor a normalization scale"):
        plan.explain(Gated(32))
    fixed = (plan + [ti.Rule(path="gain", init=ti.Constant(0.5))]).explain(Gated(32))
    assert fixed["gain"].init == ti.Constant(0.5)
    assert fixed["gain"].width == "vector"


def test_options_and_block_rules_are_checked():
    with pytest.raises(ConfigError, match="optimizer"):
        ti.mup(mlp(8), optimizer="lion")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="output"):
        ti.mup(mlp(8), output="tied")  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="std"):
        ti.mup(mlp(8), std=-1.0)
    with pytest.raises(ConfigError, match="base"):
        ti.mup(42)  # type: ignore[arg-type]
    with pytest.raises(ConfigError, match="one block of a fused"):
        ti.Rule(type="LSTM", block="f", init=MuP(mlp(8)))
    with pytest.raises(ConfigError, match="format"):
        BaseShapes.from_dict({"format": "other/2", "parameters": {}})


# -- the forward pass --------------------------------------------------------------------------
def test_multihead_attention_cannot_be_rescaled_and_says_how_to_work_around():
    base = nn.TransformerEncoderLayer(32, 4, dim_feedforward=64, batch_first=True)
    target = nn.TransformerEncoderLayer(64, 4, dim_feedforward=128, batch_first=True)
    with pytest.warns(UserWarning, match=r"MultiheadAttention 'self_attn'.*scale=1/head_dim"):
        ti.apply(target, ti.mup(base))


def test_sqrt_scaled_attention_attribute_is_reported_with_its_fix():
    model = TinyLM(32)
    model.block.scaling = model.block.head_dim ** -0.5
    messages = forward_requirements(model, ti.mup(TinyLM(16)))
    assert len(messages) == 1 and "module.scaling = 1 / module.head_dim" in messages[0]
    model.block.scaling = 1 / model.block.head_dim
    assert forward_requirements(model, ti.mup(TinyLM(16))) == []


def test_a_readout_tied_to_the_embedding_needs_an_output_multiplier():
    def tied(d: int) -> TinyLM:
        model = TinyLM(d)
        model.head.weight = model.embed.weight
        return model

    messages = forward_requirements(tied(64), ti.mup(lambda: tied(16)))
    assert len(messages) == 1
    assert "embed.weight (input), head.weight (output)" in messages[0]
    assert "output multiplier" in messages[0]


# -- a delta model fixes which fans grow --------------------------------------------------------
def test_with_a_delta_the_base_width_model_is_classified_too():
    plan = ti.mup(lambda: mlp(BASE), delta=lambda: mlp(2 * BASE))
    at_base = plan.explain(mlp(BASE))
    assert [r.width for r in at_base] == ["input", "vector", "hidden", "vector", "output",
                                          "fixed"]
    assert at_base["4.weight"].init == Zeros()  # output="zero" at every width
    assert {r.lr_scale for r in at_base} == {1.0}
    check_against(plan.explain(mlp(WIDTH)), mlp_table("zero"), "adam")


def test_delta_growth_is_saved_and_enforced(tmp_path):
    shapes = BaseShapes.of(lambda: mlp(BASE), delta=lambda: mlp(2 * BASE))
    assert shapes["2.weight"].grows == (True, True)
    assert shapes["4.bias"].grows == (False, False)
    path = tmp_path / "base.json"
    shapes.save(path)
    assert BaseShapes.load(path) == shapes

    class Wider(nn.Sequential):  # its fixed 10-way readout became 20-way
        def __init__(self) -> None:
            super().__init__(nn.Linear(784, WIDTH), nn.ReLU(), nn.Linear(WIDTH, WIDTH),
                             nn.ReLU(), nn.Linear(WIDTH, 20))

    with pytest.raises(PlanError, match=r"'4.weight'.*does not grow with width"):
        ti.mup(path).explain(Wider())
    with pytest.raises(ConfigError, match="not the base's"):
        BaseShapes.of(mlp(BASE), delta=TinyLM(8))
