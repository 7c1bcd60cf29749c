"""The fast CPU backend gives the reference backend's values bit for bit."""

from __future__ import annotations

import os

import pytest
import torch

import torchinit as ti
from torchinit.streams import NormalDist, TruncNormalDist, UniformDist, sample_distribution
from torchinit.streams import backends

pytest.importorskip("numba", reason="the fast backend needs numba (the 'fast' extra)")

DISTS = [UniformDist(-1.0, 2.0), NormalDist(0.5, 2.0), TruncNormalDist(0.0, 1.0, -2.0, 2.0),
         TruncNormalDist(1.0, 0.5, -1.0, 3.0), TruncNormalDist(0.0, 0.02, 0.5, 8.0)]
SHAPE = (301, 257)
REGIONS = [None, (slice(3, 200),), (slice(None), slice(5, 101)), (slice(1, 300, 3), slice(0, 257, 7)),
           (slice(7, 8), slice(1, 256))]


def _reference(dist, key, shape, region=None, dtype=torch.float32):
    old = os.environ.get("TORCHINIT_BACKEND")
    os.environ["TORCHINIT_BACKEND"] = "reference"
    try:
        return sample_distribution(dist, key, shape, region, dtype)
    finally:
        if old is None:
            del os.environ["TORCHINIT_BACKEND"]
        else:
            os.environ["TORCHINIT_BACKEND"] = old


@pytest.mark.parametrize("dist", DISTS, ids=repr)
@pytest.mark.parametrize("dtype", [torch.float32, torch.float64, torch.bfloat16])
def test_fast_equals_reference(dist, dtype):
    key = ti.Key(3, "layer.weight")
    assert backends.use_fast(torch.device("cpu"), SHAPE[0] * SHAPE[1])
    for region in REGIONS:
        fast = sample_distribution(dist, key, SHAPE, region, dtype)
        assert torch.equal(fast, _reference(dist, key, SHAPE, region, dtype)), region


@pytest.mark.parametrize("dist", DISTS[:3], ids=repr)
def test_fast_is_thread_invariant(dist):
    key = ti.Key(1, "w")
    torch.set_num_threads(1)
    one = sample_distribution(dist, key, (1 << 17,))
    torch.set_num_threads(2)
    assert torch.equal(sample_distribution(dist, key, (1 << 17,)), one)


def test_odd_offsets_and_segment_boundaries():
    """Regions starting at odd flat indices and rows longer than a segment."""
    key = ti.Key(2, "x")
    n = (1 << 16) + 5
    for region in [(slice(1, n),), (slice(3, n - 1),), (slice(0, n, 2),)]:
        for dist in DISTS[:2]:
            fast = sample_distribution(dist, key, (n,), region)
            assert torch.equal(fast, _reference(dist, key, (n,), region)), region


def test_extreme_tails_take_the_exact_path():
    """Far-tail and tiny-mass truncations go through the scalar AS 241 branches."""
    key = ti.Key(4, "tail")
    dist = TruncNormalDist(0.0, 1.0, 6.0, 9.0)
    assert torch.equal(sample_distribution(dist, key, (20000,)),
                       _reference(dist, key, (20000,)))


def test_out_of_reference_environment_variable(monkeypatch):
    monkeypatch.setenv("TORCHINIT_BACKEND", "reference")
    assert not backends.use_fast(torch.device("cpu"), 10**6)
    monkeypatch.setenv("TORCHINIT_BACKEND", "auto")
    assert not backends.use_fast(torch.device("meta"), 10**6)
    assert not backends.use_fast(torch.device("cpu"), 10)
