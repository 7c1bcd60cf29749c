"""The compiled CPU core gives the reference backend's values bit for bit, from any thread."""

from __future__ import annotations

import threading
import warnings

import pytest
import torch
from torch import nn

import torchinit as ti
from torchinit.errors import InitializerError
from torchinit._streams import NormalDist, TruncNormalDist, UniformDist, sample_distribution
from torchinit._streams import backends
from torchinit._streams import _core
from torchinit._streams.compiled import runs, sample_compiled
from torchinit._streams.regions import normalize_region

DISTS = [UniformDist(-1.0, 2.0), NormalDist(0.5, 2.0), TruncNormalDist(0.0, 1.0, -2.0, 2.0),
         TruncNormalDist(1.0, 0.5, -1.0, 3.0), TruncNormalDist(0.0, 0.02, 0.5, 8.0),
         TruncNormalDist(0.0, 0.02, -100.0, 100.0)]
DTYPES = [torch.float32, torch.float64, torch.bfloat16, torch.float16]
SHAPE = (301, 257)
REGIONS = [None, (slice(3, 200),), (slice(None), slice(5, 101)),
           (slice(1, 300, 3), slice(0, 257, 7)), (slice(7, 8), slice(1, 256)),
           (slice(None), slice(3, 4)), (slice(0, 301, 2),)]


def _reference(monkeypatch, *args):
    with monkeypatch.context() as m:
        m.setenv("TORCHINIT_BACKEND", "reference")
        return sample_distribution(*args)


def _compiled(*args):
    assert backends.use_compiled(torch.device("cpu"), 1 << 20)
    return sample_distribution(*args)


def test_the_core_is_built():
    """CI builds the extension from source; a silent fallback would hide a broken build."""
    assert backends.compiled_available()
    assert backends.backend_name() == "compiled"


@pytest.mark.parametrize("dist", DISTS, ids=repr)
@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_compiled_equals_reference(monkeypatch, dist, dtype):
    key = ti.Key(3, "layer.weight")
    for region in REGIONS:
        ours = _compiled(dist, key, SHAPE, region, dtype)
        assert torch.equal(ours, _reference(monkeypatch, dist, key, SHAPE, region, dtype)), region


@pytest.mark.parametrize("isa", _core.ISAS)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float16], ids=str)
def test_every_kernel_equals_reference(monkeypatch, isa, dtype):
    """Each instruction set's kernel (portable, AVX2, AVX-512 where the CPU has them)."""
    key = ti.Key(8, "w")
    for dist in DISTS:
        for region in REGIONS:
            norm = normalize_region(SHAPE, region)
            out = torch.empty([len(range(s.start, s.stop, s.step)) for s in norm], dtype=dtype)
            sample_compiled(dist, key, SHAPE, norm, out, isa=isa)
            assert torch.equal(out, _reference(monkeypatch, dist, key, SHAPE, region, dtype))


@pytest.mark.parametrize("shape,region", [
    ((64, 64, 3, 3), None),                                      # a conv kernel: one run
    ((512, 96, 1, 1), (slice(100, 300),)),                       # a Shard(0) slice
    ((96, 128), (slice(None), slice(64, 128))),                  # a Shard(1) slice: a run per row
    ((8, 6, 5, 7), (slice(1, 7, 2), slice(None), slice(1, 4))),  # strided outer, partial inner
    ((8, 6, 5, 7), (slice(None), slice(2, 3), slice(None), slice(3, 4))),  # a column
    (((1 << 15) + 3,), None),
    (((1 << 15) + 3,), (slice(1, None),)),                      # starts at an odd index
])
def test_layouts_equal_reference(monkeypatch, shape, region):
    key = ti.Key(5, "conv.weight")
    for dist in DISTS[:3]:
        for dtype in (torch.float32, torch.bfloat16):
            ours = _compiled(dist, key, shape, region, dtype)
            assert torch.equal(ours, _reference(monkeypatch, dist, key, shape, region, dtype))


def test_runs_merge_whole_trailing_dimensions():
    def r(shape, region=None):
        return runs(shape, normalize_region(shape, region))

    assert r((512, 4608, 1, 1)) == (0, (), (), 512 * 4608, 1)
    assert r((64, 64, 3, 3)) == (0, (), (), 64 * 64 * 9, 1)
    assert r((4096, 4096), (slice(1024, 2048),)) == (1024 * 4096, (), (), 1024 * 4096, 1)
    assert r((4096, 4096), (slice(None), slice(2048, 4096))) == (2048, (4096,), (4096,), 2048, 1)
    assert r((10, 20), (slice(None), slice(3, 4))) == (3, (), (), 10, 20)  # a column is one run
    assert r((10, 20), (slice(None), slice(0, 20, 2))) == (0, (10,), (20,), 10, 2)
    assert r(()) == (0, (), (), 1, 1)


@pytest.mark.parametrize("dist", DISTS[:3], ids=repr)
def test_thread_count_does_not_change_values(dist):
    key = ti.Key(1, "w")
    results = []
    for threads in (1, 2, 3, 5):
        torch.set_num_threads(threads)
        results.append(sample_distribution(dist, key, ((1 << 18) + 7,)))
    assert all(torch.equal(results[0], r) for r in results[1:])


def test_extreme_tails_take_the_exact_path(monkeypatch):
    """Far-tail and tiny-mass truncations go through the scalar AS 241 branches."""
    key = ti.Key(4, "tail")
    for dist in (TruncNormalDist(0.0, 1.0, 6.0, 9.0), TruncNormalDist(0.0, 1.0, -40.0, -38.0)):
        ours = _compiled(dist, key, (20000,))
        assert torch.equal(ours, _reference(monkeypatch, dist, key, (20000,)))


def test_low_precision_rounds_like_torch(monkeypatch):
    """Overflow to inf, subnormals and ties of float16/bfloat16 match torch's casts."""
    key = ti.Key(6, "lp")
    for dist in (UniformDist(-70000.0, 70000.0), UniformDist(-1e-6, 1e-6), NormalDist(0.0, 1e-5)):
        for dtype in (torch.float16, torch.bfloat16):
            ours = _compiled(dist, key, (50000,), None, dtype)
            assert torch.equal(ours, _reference(monkeypatch, dist, key, (50000,), None, dtype))


@pytest.mark.parametrize("dtype", DTYPES, ids=str)
def test_truncated_normal_rounds_into_its_bounds(dtype):
    """0.04 rounds up to 0.0400390625 in bfloat16; no sample may exceed the bound."""
    dist = TruncNormalDist(0.0, 0.02, -2.0, 2.0)
    values = sample_distribution(dist, ti.Key(0, "w"), (400000,), dtype=dtype).double()
    assert values.max() <= 0.04 and values.min() >= -0.04
    edge = sample_distribution(TruncNormalDist(0.0, 0.02, 1.999, 2.0), ti.Key(0, "w"),
                               (20000,), dtype=dtype).double()
    assert edge.max() <= 0.04


def test_out_tensors_of_any_layout(monkeypatch):
    key, dist = ti.Key(2, "x"), NormalDist(0.0, 1.0)
    expected = _reference(monkeypatch, dist, key, (300, 200))
    transposed = torch.empty(200, 300).t()
    sample_distribution(dist, key, (300, 200), out=transposed)
    assert torch.equal(transposed, expected)
    as_double = torch.empty(300, 200, dtype=torch.float64)
    sample_distribution(dist, key, (300, 200), out=as_double)
    assert torch.equal(as_double.float(), expected)


def _models(seed: int) -> list[nn.Module]:
    torch.manual_seed(seed)
    return [nn.Sequential(nn.Linear(300, 400), nn.ReLU(), nn.Linear(400, 50)),
            nn.Sequential(nn.Conv2d(16, 64, 3), nn.Conv2d(64, 64, 1)),
            nn.LSTM(64, 128, num_layers=2),
            nn.TransformerEncoderLayer(128, 4, 256)]


def test_concurrent_calls_from_python_threads():
    """Four threads sampling different models at once get exactly the serial results."""
    plan = ti.presets.get("torch")
    serial = [ti.apply(m, plan, seed=7) and {k: v.clone() for k, v in m.state_dict().items()}
              for m in _models(0)]
    models = _models(1)
    errors: list[BaseException] = []

    def work(model: nn.Module) -> None:
        try:
            for _ in range(3):
                ti.apply(model, plan, seed=7)
        except BaseException as err:  # reported below
            errors.append(err)

    threads = [threading.Thread(target=work, args=(m,)) for m in models]
    for t in threads:
        t.start()
    for t in threads:
        t.join(timeout=120)
    assert not errors
    for model, expected in zip(models, serial):
        for name, value in model.state_dict().items():
            assert torch.equal(value, expected[name]), name


def test_backend_choice_from_the_environment(monkeypatch):
    monkeypatch.setenv("TORCHINIT_BACKEND", "reference")
    assert not backends.use_compiled(torch.device("cpu"), 10**6)
    assert backends.backend_name() == "reference"
    monkeypatch.setenv("TORCHINIT_BACKEND", "auto")
    assert not backends.use_compiled(torch.device("meta"), 10**6)
    assert backends.use_compiled(torch.device("cpu"), 10)  # a call costs less than torch ops
    monkeypatch.setenv("TORCHINIT_BACKEND", "numba")
    with pytest.raises(InitializerError, match="TORCHINIT_BACKEND"):
        backends.use_compiled(torch.device("cpu"), 10**6)


def test_missing_core_warns_once_and_falls_back(monkeypatch):
    monkeypatch.setattr(backends, "compiled_available", lambda: False)
    monkeypatch.setattr(backends, "_warned", threading.Event())
    with pytest.warns(UserWarning, match="compiled sampling core is not installed"):
        assert not backends.use_compiled(torch.device("cpu"), 10**6)
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        assert not backends.use_compiled(torch.device("cpu"), 10**6)
    monkeypatch.setenv("TORCHINIT_BACKEND", "compiled")
    with pytest.raises(InitializerError, match="compiled core"):
        backends.use_compiled(torch.device("cpu"), 10**6)


@pytest.mark.cuda
def test_cuda_gives_the_cpu_bits():
    if not torch.cuda.is_available():
        pytest.skip("no CUDA device on this machine")
    key = ti.Key(9, "w")
    for dist in DISTS:
        for dtype in (torch.float32, torch.float64):
            cpu = sample_distribution(dist, key, SHAPE, None, dtype)
            gpu = sample_distribution(dist, key, SHAPE, None, dtype, device="cuda")
            assert gpu.device.type == "cuda"
            assert torch.equal(gpu.cpu(), cpu), (dist, dtype)
