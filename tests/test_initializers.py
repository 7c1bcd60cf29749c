"""The catalog: registry, config round trip, exact formulas, statistics, regions, errors."""

from __future__ import annotations

import json
import math

import pytest
import torch
from scipy import stats

import torchinit as ti
from torchinit.errors import ConfigError, DTypeError, FanError, InitializerError, UnknownNameError

from .conftest import std_tolerance

KEY = ti.Key(7, "golden.weight")
FANS = ti.Fans(fan_in=300, fan_out=200)

# One non-default configuration of every scheme the catalog promises.
CONFIGS: dict[str, dict] = {
    "zeros": {},
    "ones": {},
    "constant": {"value": 0.5},
    "uniform": {"low": -1.0, "high": 2.0},
    "normal": {"mean": 0.5, "stddev": 2.0},
    "trunc_normal": {"mean": 0.0, "stddev": 1.0, "a": -1.0, "b": 3.0},
    "truncated_normal_std": {"stddev": 0.02},
    "xavier_uniform": {"gain": 1.5},
    "xavier_normal": {},
    "kaiming_uniform": {"nonlinearity": "relu"},
    "kaiming_normal": {"mode": "fan_out", "nonlinearity": "relu"},
    "lecun_uniform": {},
    "lecun_normal": {},
    "variance_scaling": {"scale": 2.0, "mode": "fan_avg", "distribution": "truncated_normal"},
    "general_rule": {},
    "orthogonal": {"gain": 2.0},
    "delta_orthogonal": {},
    "eye": {},
    "dirac": {"groups": 2},
    "sparse": {"sparsity": 0.5, "stddev": 0.1},
}

# First six values of a (4, 6) sample ((4, 2, 3) for kernels) under KEY: any change of the
# stream definition or of a scheme's transform shows up here.
GOLDEN = {
    "zeros": [0.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    "ones": [1.0, 1.0, 1.0, 1.0, 1.0, 1.0],
    "constant": [0.5, 0.5, 0.5, 0.5, 0.5, 0.5],
    "uniform": [0.4542097, -0.7960404, 1.5621254, -0.2938426, 1.6814073, 1.1180423],
    "normal": [0.4234617, -2.4819117, 2.6078537, -0.9424483, 2.9940128, 1.5835552],
    "trunc_normal": [0.231338, 1.5678484, -0.5791043, 0.8449379, -0.6812373, -0.2388734],
    "truncated_normal_std": [-0.0008305, -0.0308179, 0.0224186, -0.0155205, 0.0262533, 0.0117041],
    "xavier_uniform": [-0.035469, -1.0039085, 0.8227188, -0.6149078, 0.9151142, 0.4787336],
    "xavier_normal": [-0.0171145, -0.6667757, 0.4713304, -0.3225413, 0.5576782, 0.2422903],
    "kaiming_uniform": [-0.0305269, -0.8640269, 0.7080836, -0.5292284, 0.7876049, 0.4120283],
    "kaiming_normal": [-0.0270604, -1.0542649, 0.7452388, -0.5099825, 0.8817667, 0.3830946],
    "lecun_uniform": [-0.0215858, -0.6109593, 0.5006907, -0.374221, 0.5569208, 0.291348],
    "lecun_normal": [-0.0156233, -0.6086802, 0.4302638, -0.2944385, 0.5090882, 0.2211798],
    "variance_scaling": [-0.0262632, -0.9745479, 0.7089373, -0.4908021, 0.8302037, 0.3701168],
    "general_rule": [-0.0124626, -0.3527375, 0.2890739, -0.2160566, 0.3215383, 0.1682098],
    "orthogonal": [-0.0320474, -1.2485596, 0.8825818, -0.6039692, 1.044271, 0.4536966],
    "delta_orthogonal": [0.0, -0.0234324, 0.0, 0.0, -0.5823513, 0.0],
    "eye": [1.0, 0.0, 0.0, 0.0, 0.0, 0.0],
    "dirac": [0.0, 1.0, 0.0, 0.0, 0.0, 0.0],
    "sparse": [-0.1102829, 0.0, 0.0, 0.0, 0.0, -0.1515556],
}

KERNEL_SCHEMES = {"dirac", "delta_orthogonal"}


def _make(name: str) -> ti.Initializer:
    return ti.initializers.get(name, **CONFIGS[name])


def _small_shape(name: str) -> tuple[int, ...]:
    return (4, 2, 3) if name in KERNEL_SCHEMES else (4, 6)


def test_catalog_is_complete():
    assert set(ti.initializers.names()) == set(CONFIGS)


@pytest.mark.parametrize(
    "alias,canonical",
    [("glorot_uniform", "xavier_uniform"), ("glorot_normal", "xavier_normal"),
     ("he_uniform", "kaiming_uniform"), ("he_normal", "kaiming_normal"),
     ("identity", "eye"), ("Xavier-Uniform", "xavier_uniform")],
)
def test_aliases(alias, canonical):
    assert ti.initializers.lookup(alias) is ti.initializers.lookup(canonical)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_config_round_trip_through_json(name):
    init = _make(name)
    config = json.loads(json.dumps(init.to_config()))
    assert config["name"] == name
    assert ti.initializers.from_config(config) == init
    assert ti.initializers.from_config(ti.initializers.get(name).to_config()) == \
        ti.initializers.get(name)


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_golden_values(name):
    values = _make(name).sample(_small_shape(name), key=KEY).reshape(-1)[:6]
    torch.testing.assert_close(values, torch.tensor(GOLDEN[name]), atol=1e-6, rtol=0)


def test_registry_errors_suggest_close_names():
    with pytest.raises(UnknownNameError, match="xavier_uniform"):
        ti.initializers.get("xavier_unifrom")
    with pytest.raises(ConfigError, match="stddev"):
        ti.initializers.get("normal", std=0.02)
    with pytest.raises(ConfigError, match="name"):
        ti.initializers.from_config({"gain": 1.0})
    with pytest.raises(ConfigError, match="already registered"):
        @ti.initializers.register
        class Clash(ti.Zeros):  # noqa: F811
            name = "zeros"


# --- exact formulas: expected values recomputed here from hand-written fans -----------------

def test_variance_scaling_formulas():
    fi, fo = FANS.fan_in, FANS.fan_out
    g = 1.5
    assert ti.XavierUniform(g).bound(FANS) == pytest.approx(g * math.sqrt(6 / (fi + fo)), 1e-12)
    assert ti.XavierUniform(g).std(FANS) == pytest.approx(g * math.sqrt(2 / (fi + fo)), 1e-12)
    assert ti.XavierNormal(g).std(FANS) == pytest.approx(g * math.sqrt(2 / (fi + fo)), 1e-12)
    relu = ti.KaimingNormal(nonlinearity="relu")
    assert relu.std(FANS) == pytest.approx(math.sqrt(2 / fi), 1e-12)
    fan_out = ti.KaimingUniform(mode="fan_out", nonlinearity="relu")
    assert fan_out.bound(FANS) == pytest.approx(math.sqrt(6 / fo), 1e-12)
    leaky = ti.KaimingNormal(negative_slope=0.2, nonlinearity="leaky_relu")
    assert leaky.std(FANS) == pytest.approx(math.sqrt(2 / (1 + 0.04)) / math.sqrt(fi), 1e-12)
    # torch's default Linear init: kaiming_uniform(a=sqrt(5)) has bound 1/sqrt(fan_in)
    torch_default = ti.KaimingUniform(negative_slope=math.sqrt(5))
    assert torch_default.bound(FANS) == pytest.approx(1 / math.sqrt(fi), 1e-12)
    assert ti.GeneralRule().bound(FANS) == pytest.approx(1 / math.sqrt(fi), 1e-12)
    assert ti.LecunNormal().std(FANS) == pytest.approx(1 / math.sqrt(fi), 1e-12)
    assert ti.LecunUniform().bound(FANS) == pytest.approx(math.sqrt(3 / fi), 1e-12)
    vs = ti.VarianceScaling(2.0, "fan_avg", "truncated_normal")
    assert vs.std(FANS) == pytest.approx(math.sqrt(2.0 / ((fi + fo) / 2)), 1e-12)
    s = math.sqrt(2.0 / ((fi + fo) / 2)) / 0.87962566103423978
    assert vs.bound(FANS) == pytest.approx(2 * s, 1e-12)
    assert ti.VarianceScaling(1.0, "fan_out", "uniform").bound(FANS) == pytest.approx(
        math.sqrt(3 / fo), 1e-12)


def test_truncated_normal_semantics():
    # torch semantics: std is pre-truncation; [-2, 2] keeps 0.8796 of it
    assert ti.TruncatedNormal().std() == pytest.approx(0.87962566103423978, 1e-12)
    t = ti.TruncatedNormal(mean=1.0, stddev=2.0, a=0.0, b=5.0)
    ref = stats.truncnorm((0 - 1) / 2, (5 - 1) / 2, loc=1, scale=2)
    assert t.std() == pytest.approx(ref.std(), 1e-9)
    assert t.mean_value() == pytest.approx(ref.mean(), 1e-9)
    assert t.bound() == 5.0
    # Keras/JAX semantics: the result has the requested std
    assert ti.TruncatedNormalStd(stddev=0.02).std() == pytest.approx(0.02, 1e-12)
    assert ti.TruncatedNormalStd(stddev=1.0, lower=-3, upper=1).std() == pytest.approx(1.0, 1e-12)


def test_structured_moments():
    assert ti.Orthogonal(2.0).std(shape=(64, 256)) == pytest.approx(2 / 16, 1e-12)
    assert ti.Orthogonal().bound(shape=(3, 3)) == 1.0
    eye = ti.Eye().sample((4, 6), key=0).double()
    assert ti.Eye().std(shape=(4, 6)) == pytest.approx(float(eye.std(unbiased=False)), 1e-12)
    dirac = ti.Dirac(groups=2).sample((6, 4, 3, 3), key=0).double()
    assert ti.Dirac(2).std(shape=(6, 4, 3, 3)) == pytest.approx(
        float(dirac.std(unbiased=False)), 1e-12)
    assert ti.Dirac(2).mean_value(shape=(6, 4, 3, 3)) == pytest.approx(float(dirac.mean()), 1e-12)


# --- statistics over 1000 x 1000 samples -------------------------------------------------------

N = 1000
BIG_FANS = ti.Fans(fan_in=N, fan_out=N)
VARIANCE_SCHEMES = [
    ti.XavierUniform(), ti.XavierNormal(1.3), ti.KaimingUniform(nonlinearity="relu"),
    ti.KaimingNormal(mode="fan_out", nonlinearity="tanh"), ti.LecunUniform(), ti.LecunNormal(),
    ti.GeneralRule(), ti.VarianceScaling(), ti.VarianceScaling(0.5, "fan_avg", "uniform"),
    ti.VarianceScaling(3.0, "fan_out", "normal"), ti.Uniform(-0.5, 1.5), ti.Normal(0.3, 0.02),
    ti.TruncatedNormal(0.0, 1.0, -1.0, 2.5), ti.TruncatedNormalStd(stddev=0.02),
]


def _scipy_dist(init: ti.Initializer, fans: ti.Fans):
    from torchinit._streams import NormalDist, TruncNormalDist, UniformDist

    d = init.distribution_for(fans)
    if isinstance(d, UniformDist):
        return stats.uniform(loc=d.low, scale=d.high - d.low), -1.2
    if isinstance(d, NormalDist):
        return stats.norm(loc=d.loc, scale=d.scale), 0.0
    assert isinstance(d, TruncNormalDist)
    ref = stats.truncnorm(d.lower, d.upper, loc=d.loc, scale=d.scale)
    return ref, float(ref.stats(moments="k"))


@pytest.mark.parametrize("init", VARIANCE_SCHEMES, ids=repr)
def test_statistics_of_a_million_values(init):
    x = init.sample((N, N), key=ti.Key(11, "stats"), fans=BIG_FANS).double().reshape(-1)
    ref, kurtosis = _scipy_dist(init, BIG_FANS)
    std = init.std(BIG_FANS)
    assert std == pytest.approx(float(ref.std()), rel=1e-9)
    assert abs(float(x.std()) - std) <= 0.01 * std  # the 1% criterion
    assert abs(float(x.std()) - std) <= std_tolerance(std, x.numel(), kurtosis)
    assert abs(float(x.mean()) - init.mean_value(BIG_FANS)) <= 5 * std / math.sqrt(x.numel())
    assert float(x.abs().max()) <= init.bound(BIG_FANS) * (1 + 1e-6)
    assert stats.kstest(x.numpy(), ref.cdf).pvalue > 1e-4


def test_orthogonal_is_orthogonal_per_block():
    fans = ti.Fans(10, 20, blocks=tuple(ti.Block(n, 20 * i, 20 * (i + 1))
                                        for i, n in enumerate("ifgo")))
    w = ti.Orthogonal(1.5).sample((80, 10), key=ti.Key(0, "lstm.weight_ih_l0"), fans=fans,
                                  dtype=torch.float64)
    for i in range(4):
        block = w[20 * i: 20 * (i + 1)]
        torch.testing.assert_close(block.T @ block, 2.25 * torch.eye(10, dtype=torch.float64),
                                   atol=1e-6, rtol=0)
    assert not torch.equal(w[:20], w[20:40])  # each block has its own sub-stream


@pytest.mark.parametrize("shape", [(30, 50), (50, 30), (16, 4, 3, 3)])
def test_orthogonal_shapes_and_low_precision(shape):
    w = ti.Orthogonal().sample(shape, key=1, dtype=torch.float64).reshape(shape[0], -1)
    small = min(w.shape)
    gram = w @ w.T if w.shape[0] == small else w.T @ w
    torch.testing.assert_close(gram, torch.eye(small, dtype=torch.float64), atol=1e-6, rtol=0)
    for dtype in (torch.bfloat16, torch.float16):
        low = ti.Orthogonal().sample(shape, key=1, dtype=dtype)
        assert low.dtype == dtype
        torch.testing.assert_close(low.double().reshape_as(w), w, atol=1e-2, rtol=0)


def test_delta_orthogonal_center_tap():
    w = ti.DeltaOrthogonal().sample((16, 8, 3, 3), key=3, dtype=torch.float64)
    center = w[:, :, 1, 1]
    torch.testing.assert_close(center.T @ center, torch.eye(8, dtype=torch.float64), atol=1e-6,
                               rtol=0)
    w[:, :, 1, 1] = 0
    assert torch.count_nonzero(w) == 0


def test_sparse_zeros_per_column():
    w = ti.Sparse(sparsity=0.3, stddev=0.5).sample((10, 40), key=4)
    assert ((w == 0).sum(dim=0) == math.ceil(0.3 * 10)).all()


def test_dirac_matches_torch():
    for groups, shape in [(1, (4, 6, 3)), (2, (6, 4, 3, 3)), (3, (6, 2, 3, 3, 3))]:
        ref = torch.nn.init.dirac_(torch.empty(shape), groups=groups)
        assert torch.equal(ti.Dirac(groups).sample(shape, key=0), ref)


# --- regions and threads: bitwise ---------------------------------------------------------------

REGIONS = [
    (slice(3, 17),),  # rows
    (slice(None), slice(5, 12)),  # columns
    (slice(2, 9), slice(1, 20)),  # block
    (slice(1, 30, 4), slice(0, 25, 3)),  # strided
]


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_region_equals_slice_of_full(name):
    init = _make(name)
    shape = (30, 12, 3) if name in KERNEL_SCHEMES else (30, 25)
    full = init.sample(shape, key=KEY)
    for region in REGIONS:
        part = init.sample(shape, key=KEY, region=region)
        assert torch.equal(part, full[region]), region


@pytest.mark.parametrize("name", sorted(CONFIGS))
def test_thread_count_does_not_change_values(name):
    init = _make(name)
    shape = (64, 32, 3) if name in KERNEL_SCHEMES else (300, 257)
    torch.set_num_threads(1)
    one = init.sample(shape, key=KEY)
    torch.set_num_threads(2)
    assert torch.equal(init.sample(shape, key=KEY), one)


def test_values_depend_on_seed_and_path_only():
    init = ti.KaimingNormal()
    a = init.sample((8, 8), key=ti.Key(1, "a"))
    assert torch.equal(a, init.sample((8, 8), key=ti.Key(1, "a")))
    assert not torch.equal(a, init.sample((8, 8), key=ti.Key(1, "b")))
    assert not torch.equal(a, init.sample((8, 8), key=ti.Key(2, "a")))


@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16, torch.float64])
def test_dtypes_round_the_float64_value_once(dtype):
    ref = ti.Normal().sample((50, 50), key=5, dtype=torch.float64)
    assert torch.equal(ti.Normal().sample((50, 50), key=5, dtype=dtype), ref.to(dtype))


def test_fill_in_place():
    w = torch.nn.Parameter(torch.empty(5, 4))
    out = ti.XavierUniform().fill_(w, key=ti.Key(0, "w"))
    assert out is w and w.requires_grad
    assert torch.equal(w.detach(), ti.XavierUniform().sample((5, 4), key=ti.Key(0, "w")))


# --- bad input -----------------------------------------------------------------------------------

@pytest.mark.parametrize("name", ["xavier_uniform", "kaiming_normal", "lecun_normal",
                                  "variance_scaling", "orthogonal"])
def test_fan_schemes_refuse_biases(name):
    with pytest.raises(FanError) as err:
        ti.initializers.get(name).sample((10,), key=ti.Key(0, "fc.bias"))
    message = str(err.value)
    assert "'fc.bias'" in message and "(10,)" in message and name in message
    assert "zeros" in message  # says what would work


def test_general_rule_on_a_bias_needs_the_layer_fans():
    with pytest.raises(FanError, match="fewer than 2 dimensions"):
        ti.GeneralRule().sample((10,), key=0)
    b = ti.GeneralRule().sample((10,), key=0, fans=ti.Fans(4, 10))
    assert float(b.abs().max()) <= 0.5


@pytest.mark.parametrize("dtype", [torch.int64, torch.int8, torch.bool, torch.complex64])
def test_non_float_dtypes_are_rejected(dtype):
    with pytest.raises(DTypeError, match="floating dtype") as err:
        ti.Normal().sample((3, 3), key=ti.Key(0, "emb.weight"), dtype=dtype)
    assert isinstance(err.value, TypeError) and "'emb.weight'" in str(err.value)


def test_zero_element_tensor_warns():
    with pytest.warns(UserWarning, match="zero-element"):
        ti.XavierUniform().fill_(torch.empty(0, 3), key=0)


@pytest.mark.parametrize(
    "build,match",
    [
        (lambda: ti.Normal(stddev=-1.0), "stddev must be >= 0"),
        (lambda: ti.Normal(stddev=float("nan")), "finite"),
        (lambda: ti.Uniform(1.0, 1.0), "low < high"),
        (lambda: ti.Uniform(0.0, float("inf")), "finite"),
        (lambda: ti.TruncatedNormal(a=2.0, b=1.0), "a < b"),
        (lambda: ti.TruncatedNormal(mean=0.0, stddev=1.0, a=50.0, b=60.0), "no probability"),
        (lambda: ti.XavierUniform(gain=-1.0), "gain must be >= 0"),
        (lambda: ti.KaimingNormal(mode="fan_avg"), "mode must be one of"),
        (lambda: ti.KaimingNormal(nonlinearity="rleu"), "relu"),
        (lambda: ti.VarianceScaling(distribution="gaussian"), "normal"),
        (lambda: ti.VarianceScaling(scale=0.0), "scale must be > 0"),
        (lambda: ti.Sparse(sparsity=1.5), r"\[0, 1\]"),
        (lambda: ti.Dirac(groups=0), "positive int"),
        (lambda: ti.Constant(value=float("nan")), "finite"),
        (lambda: ti.Constant(value="1"), "real number"),
    ],
)
def test_bad_arguments(build, match):
    with pytest.raises(InitializerError, match=match):
        build()


@pytest.mark.parametrize(
    "init,shape,match",
    [
        (ti.Orthogonal(), (5,), "at least 2 dimensions"),
        (ti.Sparse(), (3, 4, 5), "at most 2 dimensions"),
        (ti.Eye(), (3, 4, 5), "at most 2 dimensions"),
        (ti.Dirac(groups=4), (6, 3, 3), "not divisible by groups=4"),
        (ti.Dirac(), (6, 3), "at least 3 dimensions"),
        (ti.DeltaOrthogonal(), (6, 3), "at least 3 dimensions"),
    ],
)
def test_shapes_a_scheme_cannot_fill(init, shape, match):
    with pytest.raises(InitializerError, match=match):
        init.sample(shape, key=ti.Key(0, "conv.weight"))


def test_variance_scaling_truncated_normal_is_truncated_normal_std_bitwise():
    """Keras's name "truncated_normal" in VarianceScaling means the std-corrected variant."""
    fans = ti.Fans(fan_in=48, fan_out=24)
    scaling = ti.VarianceScaling(scale=2.0, mode="fan_in", distribution="truncated_normal")
    corrected = ti.TruncatedNormalStd(stddev=math.sqrt(2.0 / 48))
    assert torch.equal(scaling.sample((24, 48), 3, fans=fans), corrected.sample((24, 48), 3))


def test_the_misleading_keras_alias_warns_and_says_what_keras_means():
    with pytest.warns(DeprecationWarning, match=r"trunc_normal\(stddev=s, a=-2s, b=2s\)"):
        assert ti.initializers.get("truncated_normal_keras") == ti.TruncatedNormalStd()
    assert "truncated_normal_keras" not in ti.initializers.names(include_aliases=True)
