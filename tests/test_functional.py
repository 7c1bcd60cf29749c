"""torchinit.functional as a drop-in for torch.nn.init: signatures, distributions, seeding,
errors."""

from __future__ import annotations

import inspect
import math
import warnings
from collections.abc import Callable

import pytest
import torch
import torch.nn.init as tinit
from scipy import stats

import torchinit.functional as init
from torchinit.errors import DTypeError, FanError, InitializerError, TorchinitError

from .conftest import std_tolerance

TORCH_FUNCTIONS = sorted(
    name
    for name in dir(tinit)
    if not name.startswith("_")
    and inspect.isfunction(getattr(tinit, name))
    and getattr(tinit, name).__module__ == tinit.__name__
)
DEPRECATED = [name for name in TORCH_FUNCTIONS if f"{name}_" in TORCH_FUNCTIONS]

# Random functions with arguments valid for any 2-D tensor.
RANDOM: list[tuple[str, dict]] = [
    ("uniform_", {"a": -1.0, "b": 2.0}),
    ("normal_", {"mean": 0.5, "std": 2.0}),
    ("trunc_normal_", {"a": -1.0, "b": 3.0}),
    ("xavier_uniform_", {"gain": 1.5}),
    ("xavier_normal_", {}),
    ("kaiming_uniform_", {"nonlinearity": "relu"}),
    ("kaiming_normal_", {"mode": "fan_out"}),
    ("orthogonal_", {"gain": 2.0}),
    ("sparse_", {"sparsity": 0.3}),
]
# Deterministic functions with a tensor shape they accept.
DETERMINISTIC: list[tuple[str, dict, tuple[int, ...]]] = [
    ("constant_", {"val": 0.3}, (7, 5)),
    ("ones_", {}, (7, 5)),
    ("zeros_", {}, (7, 5)),
    ("eye_", {}, (7, 5)),
    ("dirac_", {"groups": 2}, (6, 4, 3, 3)),
]


def gen(seed: int) -> torch.Generator:
    return torch.Generator().manual_seed(seed)


# -- API ----------------------------------------------------------------------------------------
def _parameters(function: Callable) -> list[tuple[str, inspect._ParameterKind, object]]:
    return [(p.name, p.kind, p.default) for p in inspect.signature(function).parameters.values()]


def test_torch_function_list_is_derived():
    assert {"xavier_uniform_", "kaiming_normal_", "calculate_gain", "uniform"} <= set(
        TORCH_FUNCTIONS)
    assert set(DEPRECATED) == {"uniform", "normal", "constant", "eye", "dirac", "xavier_uniform",
                               "xavier_normal", "kaiming_uniform", "kaiming_normal",
                               "orthogonal", "sparse"}


@pytest.mark.parametrize("name", TORCH_FUNCTIONS)
def test_every_torch_function_exists_with_the_same_signature(name):
    ours = getattr(init, name, None)
    assert callable(ours), f"torchinit.functional lacks torch.nn.init.{name}"
    assert name in init.__all__
    assert _parameters(ours) == _parameters(getattr(tinit, name))


@pytest.mark.parametrize("nonlinearity,param", [
    ("linear", None), ("conv2d", None), ("sigmoid", None), ("tanh", None), ("relu", None),
    ("leaky_relu", None), ("leaky_relu", 0.2), ("leaky_relu", 0), ("selu", None),
])
def test_calculate_gain_matches_torch(nonlinearity, param):
    assert init.calculate_gain(nonlinearity, param) == tinit.calculate_gain(nonlinearity, param)


# -- distributions ------------------------------------------------------------------------------
def _fans(shape: tuple[int, ...]) -> tuple[int, int]:
    receptive = math.prod(shape[2:])
    return shape[1] * receptive, shape[0] * receptive


def _gain(nonlinearity: str = "leaky_relu", a: float = 0.0) -> float:
    return tinit.calculate_gain(nonlinearity, a)


def _trunc(mean: float, std: float, a: float, b: float):
    return stats.truncnorm((a - mean) / std, (b - mean) / std, loc=mean, scale=std)


WIDE = (500, 250)  # fan_in != fan_out, so the fan mode matters
CONV = (128, 96, 3, 3)  # receptive field 9
UNIFORM_KURTOSIS = -1.2
NORMAL_KURTOSIS = 0.0

# (function, kwargs, shape, expected std from the formula, excess kurtosis of the values).
# Var(s^2) = sigma^4 (2 / (n - 1) + kurtosis / n), so the kurtosis sets the standard error of the
# sample std (see conftest.std_tolerance); the uniform's is -6/5 and a truncated normal's is
# scipy's exact value.
STD_CASES = [
    ("uniform_", {}, WIDE, 1 / math.sqrt(12), UNIFORM_KURTOSIS),
    ("uniform_", {"a": -3.0, "b": 0.5}, WIDE, 3.5 / math.sqrt(12), UNIFORM_KURTOSIS),
    ("normal_", {"mean": 0.5, "std": 2.0}, WIDE, 2.0, NORMAL_KURTOSIS),
    ("trunc_normal_", {}, WIDE, float(_trunc(0, 1, -2, 2).std()),
     float(_trunc(0, 1, -2, 2).stats("k"))),
    ("trunc_normal_", {"mean": 0.3, "std": 1.5, "a": -1.0, "b": 3.0}, WIDE,
     float(_trunc(0.3, 1.5, -1, 3).std()), float(_trunc(0.3, 1.5, -1, 3).stats("k"))),
    ("trunc_normal_", {"a": 1.0, "b": 3.0}, WIDE,  # torch's rejection branch for small mass
     float(_trunc(0, 1, 1, 3).std()), float(_trunc(0, 1, 1, 3).stats("k"))),
    ("xavier_uniform_", {}, WIDE, math.sqrt(2 / sum(_fans(WIDE))), UNIFORM_KURTOSIS),
    ("xavier_uniform_", {"gain": _gain("tanh")}, CONV,
     _gain("tanh") * math.sqrt(2 / sum(_fans(CONV))), UNIFORM_KURTOSIS),
    ("xavier_normal_", {}, WIDE, math.sqrt(2 / sum(_fans(WIDE))), NORMAL_KURTOSIS),
    ("xavier_normal_", {"gain": 0.5}, CONV, 0.5 * math.sqrt(2 / sum(_fans(CONV))),
     NORMAL_KURTOSIS),
    ("kaiming_uniform_", {}, WIDE, _gain() / math.sqrt(_fans(WIDE)[0]), UNIFORM_KURTOSIS),
    ("kaiming_uniform_", {"a": math.sqrt(5)}, CONV,
     _gain(a=math.sqrt(5)) / math.sqrt(_fans(CONV)[0]), UNIFORM_KURTOSIS),
    ("kaiming_uniform_", {"mode": "fan_out", "nonlinearity": "relu"}, WIDE,
     _gain("relu") / math.sqrt(_fans(WIDE)[1]), UNIFORM_KURTOSIS),
    ("kaiming_uniform_", {"nonlinearity": "tanh"}, CONV,
     _gain("tanh") / math.sqrt(_fans(CONV)[0]), UNIFORM_KURTOSIS),
    ("kaiming_normal_", {}, WIDE, _gain() / math.sqrt(_fans(WIDE)[0]), NORMAL_KURTOSIS),
    ("kaiming_normal_", {"mode": "fan_out", "nonlinearity": "relu"}, CONV,
     _gain("relu") / math.sqrt(_fans(CONV)[1]), NORMAL_KURTOSIS),
    ("kaiming_normal_", {"a": 0.2, "mode": "fan_out"}, WIDE,
     _gain(a=0.2) / math.sqrt(_fans(WIDE)[1]), NORMAL_KURTOSIS),
]


def _case_id(case: tuple) -> str:
    return f"{case[0]}{case[1]}{case[2]}"


def _both(name: str, kwargs: dict, shape: tuple[int, ...]) -> tuple[torch.Tensor, torch.Tensor]:
    """Fill a tensor with ours (seed 1) and a copy with torch's (seed 2); float64 numpy-ready."""
    ours = getattr(init, name)(torch.empty(shape), **kwargs, generator=gen(1))
    theirs = getattr(tinit, name)(torch.empty(shape), **kwargs, generator=gen(2))
    return ours.double().reshape(-1), theirs.double().reshape(-1)


@pytest.mark.parametrize("name,kwargs,shape,std,kurtosis", STD_CASES, ids=map(_case_id, STD_CASES))
def test_same_distribution_as_torch_and_std_from_the_formula(name, kwargs, shape, std, kurtosis):
    ours, theirs = _both(name, kwargs, shape)
    assert ours.numel() >= 100_000
    assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue > 1e-4
    assert abs(float(ours.std()) - std) <= std_tolerance(std, ours.numel(), kurtosis)


@pytest.mark.parametrize("name,kwargs", [
    ("orthogonal_", {}), ("orthogonal_", {"gain": 2.0}),
    ("sparse_", {"sparsity": 0.3, "std": 1.0}),
])
def test_structured_values_have_the_distribution_of_torch(name, kwargs):
    ours, theirs = _both(name, kwargs, (400, 400))
    assert stats.ks_2samp(ours.numpy(), theirs.numpy()).pvalue > 1e-4


# -- deterministic ------------------------------------------------------------------------------
@pytest.mark.parametrize("name,kwargs,shape", DETERMINISTIC + [
    ("constant_", {"val": -2.5}, (3,)),
    ("eye_", {}, (5, 7)),
    ("dirac_", {}, (4, 6, 5)),
    ("dirac_", {"groups": 3}, (6, 2, 3, 3)),
    ("dirac_", {}, (4, 8, 3, 3, 3)),
])
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_deterministic_functions_equal_torch_exactly(name, kwargs, shape, dtype):
    noise = torch.randn(shape, generator=gen(0)).to(dtype)
    ours = getattr(init, name)(noise.clone(), **kwargs)
    theirs = getattr(tinit, name)(noise.clone(), **kwargs)
    assert ours.dtype == dtype
    assert torch.equal(ours, theirs)


# -- structured ---------------------------------------------------------------------------------
@pytest.mark.parametrize("shape", [(300, 100), (100, 300), (50, 10, 8), (64, 64)])
@pytest.mark.parametrize("gain", [1.0, 2.0])
def test_orthogonal_rows_or_columns_are_orthonormal(shape, gain):
    w = init.orthogonal_(torch.empty(shape, dtype=torch.float64), gain, generator=gen(3))
    m = w.reshape(shape[0], -1)
    gram = m @ m.T if m.shape[0] <= m.shape[1] else m.T @ m
    eye = torch.eye(gram.shape[0], dtype=torch.float64)
    assert torch.allclose(gram, gain**2 * eye, rtol=0, atol=1e-6)


@pytest.mark.parametrize("dtype", [torch.bfloat16, torch.float16])
def test_orthogonal_low_precision_is_the_float64_matrix_rounded_once(dtype):
    low = init.orthogonal_(torch.empty(64, 128, dtype=dtype), generator=gen(4))
    high = init.orthogonal_(torch.empty(64, 128, dtype=torch.float64), generator=gen(4))
    assert low.dtype == dtype
    assert torch.equal(low, high.to(dtype))
    gram = low.double() @ low.double().T
    assert torch.allclose(gram, torch.eye(64, dtype=torch.float64), rtol=0, atol=2e-2)


@pytest.mark.parametrize("rows,cols,sparsity", [(100, 40, 0.25), (10, 30, 0.33), (7, 3, 0.0),
                                                (9, 4, 1.0)])
def test_sparse_zeros_exactly_ceil_sparsity_rows_per_column(rows, cols, sparsity):
    w = init.sparse_(torch.empty(rows, cols), sparsity, std=1.0, generator=gen(5))
    zeros = (w == 0).sum(dim=0)
    assert torch.equal(zeros, torch.full((cols,), math.ceil(sparsity * rows)))


# -- seeding ------------------------------------------------------------------------------------
def _call(name: str, kwargs: dict, generator: torch.Generator | None = None,
          dtype: torch.dtype = torch.float32) -> torch.Tensor:
    return getattr(init, name)(torch.empty(40, 30, dtype=dtype), **kwargs, generator=generator)


@pytest.mark.parametrize("name,kwargs", RANDOM)
def test_generator_state_determines_the_values_and_is_advanced(name, kwargs):
    g1, g2 = gen(9), gen(9)
    first = _call(name, kwargs, g1)
    assert torch.equal(first, _call(name, kwargs, g2))
    assert not torch.equal(g1.get_state(), gen(9).get_state())
    assert not torch.equal(first, _call(name, kwargs, g1))


@pytest.mark.parametrize("name,kwargs", RANDOM)
def test_global_seed_reproduces_and_consecutive_calls_differ(name, kwargs):
    torch.manual_seed(0)
    first, second = _call(name, kwargs), _call(name, kwargs)
    torch.manual_seed(0)
    assert torch.equal(first, _call(name, kwargs))
    assert not torch.equal(first, second)


@pytest.mark.parametrize("name,kwargs", RANDOM)
def test_a_given_generator_leaves_the_global_rng_alone(name, kwargs):
    before = torch.get_rng_state()
    _call(name, kwargs, gen(1))
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("name,kwargs,shape", DETERMINISTIC)
def test_deterministic_functions_draw_no_seed(name, kwargs, shape):
    before = torch.get_rng_state()
    getattr(init, name)(torch.empty(shape), **kwargs)
    assert torch.equal(torch.get_rng_state(), before)


def test_a_failing_call_draws_no_seed():
    before = torch.get_rng_state()
    with pytest.raises(FanError):
        init.xavier_uniform_(torch.empty(5))
    with pytest.raises(DTypeError):
        init.normal_(torch.empty(5, dtype=torch.int32))
    assert torch.equal(torch.get_rng_state(), before)


@pytest.mark.parametrize("name,kwargs", RANDOM)
@pytest.mark.parametrize("dtype", [torch.float16, torch.bfloat16])
def test_low_precision_is_the_float64_draw_rounded_once(name, kwargs, dtype):
    low = _call(name, kwargs, gen(6), dtype)
    assert low.dtype == dtype
    assert torch.equal(low, _call(name, kwargs, gen(6), torch.float64).to(dtype))


@pytest.mark.skipif(not torch.cuda.is_available(), reason="needs CUDA")
def test_cuda_seed_comes_from_the_cuda_generator():
    cpu_before = torch.get_rng_state()
    torch.cuda.manual_seed(0)
    first = init.kaiming_normal_(torch.empty(40, 30, device="cuda"))
    torch.cuda.manual_seed(0)
    assert torch.equal(first, init.kaiming_normal_(torch.empty(40, 30, device="cuda")))
    assert torch.equal(torch.get_rng_state(), cpu_before)
    g1, g2 = torch.Generator("cuda").manual_seed(1), torch.Generator("cuda").manual_seed(1)
    a = init.orthogonal_(torch.empty(40, 30, device="cuda"), generator=g1)
    assert a.device.type == "cuda"
    assert torch.equal(a, init.orthogonal_(torch.empty(40, 30, device="cuda"), generator=g2))


# -- errors -------------------------------------------------------------------------------------
@pytest.mark.parametrize("name", ["xavier_uniform_", "xavier_normal_", "kaiming_uniform_",
                                  "kaiming_normal_", "orthogonal_"])
def test_fan_schemes_reject_1d_tensors_naming_shape_and_scheme(name):
    with pytest.raises(FanError, match=r"\(5,\)") as info:
        getattr(init, name)(torch.empty(5))
    assert isinstance(info.value, ValueError)
    assert name.rstrip("_") in str(info.value)


@pytest.mark.parametrize("dtype", [torch.int64, torch.bool])
def test_integer_tensors_raise_dtype_error(dtype):
    with pytest.raises(DTypeError, match=r"\(3, 4\).*XavierUniform") as info:
        init.xavier_uniform_(torch.zeros(3, 4, dtype=dtype))
    assert isinstance(info.value, TypeError)


@pytest.mark.parametrize("call", [
    lambda: init.uniform_(torch.empty(3), 2.0, 1.0),
    lambda: init.sparse_(torch.empty(4, 3, 2), 0.1),
    lambda: init.dirac_(torch.empty(5, 3, 3), groups=2),
    lambda: init.dirac_(torch.empty(4, 4)),
    lambda: init.dirac_(torch.empty(2, 2, 1, 1, 1, 1)),
    lambda: init.eye_(torch.empty(3, 3, 3)),
    lambda: init.eye_(torch.empty(3)),
    lambda: init.kaiming_normal_(torch.empty(3, 3), mode="fan_avg"),
], ids=["uniform_a_gt_b", "sparse_3d", "dirac_groups", "dirac_2d", "dirac_6d",
        "eye_3d", "eye_1d", "kaiming_mode"])
def test_invalid_arguments_raise_torchinit_value_errors(call):
    with pytest.raises(InitializerError) as info:
        call()
    assert isinstance(info.value, TorchinitError) and isinstance(info.value, ValueError)


def test_dirac_groups_error_explains():
    with pytest.raises(InitializerError, match=r"\(5, 3, 3\).*groups=2"):
        init.dirac_(torch.empty(5, 3, 3), groups=2)


@pytest.mark.parametrize("name,kwargs", RANDOM + [(n, k) for n, k, _ in DETERMINISTIC
                                                  if n != "dirac_"])
def test_zero_element_tensors_warn_and_are_returned(name, kwargs):
    tensor = torch.empty(0, 4)
    with pytest.warns(UserWarning, match="zero-element tensors is a no-op"):
        assert getattr(init, name)(tensor, **kwargs) is tensor


def test_zero_element_tensors_are_still_validated():
    with pytest.raises(FanError):
        init.xavier_uniform_(torch.empty(0))


def test_meta_tensors_are_validated_and_returned():
    tensor = torch.empty(30, 20, device="meta")
    assert init.orthogonal_(tensor) is tensor
    with pytest.raises(FanError):
        init.kaiming_uniform_(torch.empty(5, device="meta"))


# -- deprecated names ---------------------------------------------------------------------------
DEPRECATED_ARGS: dict[str, tuple[tuple[int, ...], dict]] = {
    "uniform": ((6, 5), {}),
    "normal": ((6, 5), {}),
    "constant": ((6, 5), {"val": 0.5}),
    "eye": ((6, 5), {}),
    "dirac": ((6, 5, 3), {}),
    "xavier_uniform": ((6, 5), {}),
    "xavier_normal": ((6, 5), {}),
    "kaiming_uniform": ((6, 5), {}),
    "kaiming_normal": ((6, 5), {}),
    "orthogonal": ((6, 5), {}),
    "sparse": ((6, 5), {"sparsity": 0.5}),
}


@pytest.mark.parametrize("name", DEPRECATED)
def test_deprecated_names_warn_and_fill_like_the_new_ones(name):
    shape, kwargs = DEPRECATED_ARGS[name]
    random = "generator" in inspect.signature(getattr(init, f"{name}_")).parameters

    def seeded() -> dict:
        return {"generator": gen(8)} if random else {}

    tensor = torch.full(shape, math.nan)
    message = rf"`torchinit\.functional\.{name}` .* `torchinit\.functional\.{name}_`"
    with pytest.warns(FutureWarning, match=message):
        assert getattr(init, name)(tensor, **kwargs, **seeded()) is tensor
    expected = getattr(init, f"{name}_")(torch.empty(shape), **kwargs, **seeded())
    assert torch.equal(tensor, expected)


# -- in place, autograd -------------------------------------------------------------------------
ALL_CALLS = RANDOM + [(n, k) for n, k, _ in DETERMINISTIC]


def _shape_for(name: str) -> tuple[int, ...]:
    return (6, 4, 3, 3) if name == "dirac_" else (12, 8)


@pytest.mark.parametrize("name,kwargs", ALL_CALLS)
def test_parameters_are_filled_in_place_without_autograd_errors(name, kwargs):
    param = torch.nn.Parameter(torch.full(_shape_for(name), math.nan))
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert getattr(init, name)(param, **kwargs) is param
    assert param.requires_grad and param.is_leaf and param.grad_fn is None
    assert torch.isfinite(param).all()
    (param * 2).sum().backward()
    assert torch.equal(param.grad, torch.full_like(param, 2.0))


@pytest.mark.parametrize("name,kwargs", ALL_CALLS)
def test_non_contiguous_views_write_through(name, kwargs):
    base = torch.full(tuple(reversed(_shape_for(name)[:2])) + _shape_for(name)[2:], math.nan)
    view = base.transpose(0, 1)
    assert getattr(init, name)(view, **kwargs) is view
    assert torch.isfinite(base).all()


# --- torch's fan helpers, a == b, 0-d tensor arguments -------------------------------------------

@pytest.mark.parametrize("shape", [(2, 3), (4, 3, 5), (2, 3, 4, 5), (6, 2, 1, 3, 2), (0, 3),
                                   (3, 0, 2)])
def test_fan_helpers_match_torch(shape):
    tensor = torch.empty(shape)
    assert init._calculate_fan_in_and_fan_out(tensor) == tinit._calculate_fan_in_and_fan_out(
        tensor)
    for mode in ("fan_in", "fan_out", "FAN_IN", "Fan_Out"):
        assert init._calculate_correct_fan(tensor, mode) == tinit._calculate_correct_fan(
            tensor, mode)


@pytest.mark.parametrize("call", [
    lambda f: f._calculate_fan_in_and_fan_out(torch.empty(3)),
    lambda f: f._calculate_fan_in_and_fan_out(torch.empty(())),
    lambda f: f._calculate_correct_fan(torch.empty(2, 3), "fan_avg"),
    lambda f: f._calculate_correct_fan(torch.empty(3), "fan_in"),
], ids=["1d", "0d", "mode", "mode_1d"])
def test_fan_helpers_fail_where_torch_does(call):
    with pytest.raises(ValueError) as theirs:
        call(tinit)
    with pytest.raises(InitializerError) as ours:
        call(init)
    assert isinstance(ours.value, ValueError) and str(theirs.value) in str(ours.value)


@pytest.mark.parametrize("a,b", [(-0.0, 0.0), (0, 0), (5.0, 5.0), (-2.5, -2.5)])
def test_uniform_with_equal_bounds_fills_like_torch(a, b):
    ours, theirs = init.uniform_(torch.empty(3, 4), a, b), tinit.uniform_(torch.empty(3, 4), a, b)
    assert torch.equal(ours.view(torch.int32), theirs.view(torch.int32))  # -0.0 stays -0.0


def test_torch_layers_built_with_torchinit_functional(monkeypatch):
    """nn.Linear's reset_parameters calls kaiming_uniform_, _calculate_fan_in_and_fan_out and
    uniform_(bias, -bound, bound), with bound 0 for nn.Linear(0, n)."""
    monkeypatch.setattr(torch.nn.modules.linear, "init", init)
    monkeypatch.setattr(torch.nn.modules.conv, "init", init)
    with pytest.warns(UserWarning, match="zero-element"):
        empty = torch.nn.Linear(0, 5)
    assert torch.equal(empty.bias, torch.zeros(5))
    layer = torch.nn.Linear(16, 4)
    assert layer.bias.abs().max() <= 1 / 4 and layer.weight.abs().max() <= 1 / 4
    conv = torch.nn.Conv2d(3, 8, 3)
    assert conv.weight.abs().max() <= 1 / math.sqrt(27)


SCALAR_ARGUMENTS = [
    ("uniform_", {"a": -0.5, "b": 0.25}),
    ("normal_", {"mean": 0.5, "std": 0.25}),
    ("trunc_normal_", {"mean": 0.5, "std": 2.0, "a": -1.0, "b": 3.0}),
    ("constant_", {"val": 0.75}),
    ("xavier_uniform_", {"gain": 1.5}),
    ("xavier_normal_", {"gain": 0.5}),
    ("orthogonal_", {"gain": 2.0}),
    ("sparse_", {"sparsity": 0.5, "std": 0.25}),
]


@pytest.mark.parametrize("name,kwargs", SCALAR_ARGUMENTS)
def test_zero_dim_tensor_arguments_are_accepted_where_torch_accepts_them(name, kwargs):
    as_tensors = {k: torch.tensor(v) for k, v in kwargs.items()}
    with warnings.catch_warnings():
        warnings.simplefilter("ignore")  # torch's trunc_normal_ warns about new_tensor
        getattr(tinit, name)(torch.empty(6, 4), **as_tensors)  # torch takes them
    torch.manual_seed(3)
    expected = getattr(init, name)(torch.empty(6, 4), **kwargs)
    torch.manual_seed(3)
    got = getattr(init, name)(torch.empty(6, 4), **as_tensors)
    assert torch.equal(got, expected)


def test_tensor_arguments_torch_rejects_are_rejected():
    with pytest.raises(TypeError):
        tinit.normal_(torch.empty(3), std=torch.tensor([0.5]))
    with pytest.raises(TypeError, match=r"0-d tensor, got a tensor of shape \(1,\)"):
        init.normal_(torch.empty(3), std=torch.tensor([0.5]))
    torch.manual_seed(0)
    a = init.orthogonal_(torch.empty(3, 3), gain=torch.tensor([2.0]))  # torch takes this one
    torch.manual_seed(0)
    assert torch.equal(a, init.orthogonal_(torch.empty(3, 3), gain=2.0))
