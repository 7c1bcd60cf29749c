"""The stream definition: Philox4x32-10, key derivation, uniforms and regions."""

from __future__ import annotations

import math
import os
import subprocess
import sys

import pytest
import torch

import torchinit as ti
from torchinit.errors import InitializerError
from torchinit._streams import NormalDist, normalize_region, region_shape, sample_distribution
from torchinit._streams import uniform53
from torchinit._streams.ndtri import log, ndtri
from torchinit._streams.philox import philox4x32, philox4x32_scalar

# Known-answer vectors of Philox4x32-10 (Salmon et al. 2011, Random123 distribution).
KAT = [
    ((0, 0, 0, 0), (0, 0), (0x6627E8D5, 0xE169C58D, 0xBC57AC4C, 0x9B00DBD8)),
    ((0xFFFFFFFF,) * 4, (0xFFFFFFFF,) * 2, (0x408F276D, 0x41C83B0E, 0xA20BC7C6, 0x6D5451FD)),
    (
        (0x243F6A88, 0x85A308D3, 0x13198A2E, 0x03707344),
        (0xA4093822, 0x299F31D0),
        (0xD16CFE09, 0x94FDCCEB, 0x5001E420, 0x24126EA1),
    ),
]


@pytest.mark.parametrize("counter,key,expected", KAT)
def test_philox_known_answers(counter, key, expected):
    assert philox4x32_scalar(counter, key) == expected
    words = [torch.tensor([c], dtype=torch.int64) for c in counter]
    assert tuple(int(w) for w in philox4x32(*words, key)) == expected


def test_philox_tensor_matches_scalar_on_many_counters():
    gen = torch.Generator().manual_seed(1)
    counters = torch.randint(0, 2**32, (4, 64), generator=gen, dtype=torch.int64)
    out = philox4x32(*counters, (0xDEADBEEF, 0x12345678))
    for j in range(64):
        ref = philox4x32_scalar(tuple(int(c[j]) for c in counters), (0xDEADBEEF, 0x12345678))
        assert tuple(int(w[j]) for w in out) == ref


def test_key_words_are_pinned():
    assert ti.Key(0, "").words == (3021596098, 2088337564)
    assert ti.Key(123, "encoder.layers.0.weight").words == (1972067007, 2999928619)
    assert ti.Key(-5, "ü").words == (1449961075, 1955433873)
    assert ti.Key(2**80, "x").words == (2960074234, 3609382368)


def test_key_words_do_not_depend_on_the_process():
    code = "import torchinit as ti; print(ti.Key(42, 'a.b.weight').words)"
    outs = set()
    for salt in ("0", "12345"):
        env = {**os.environ, "PYTHONHASHSEED": salt}
        outs.add(subprocess.run([sys.executable, "-c", code], env=env, check=True,
                                capture_output=True, text=True).stdout)
    assert outs == {f"{ti.Key(42, 'a.b.weight').words}\n"}


def test_key_validation_and_children():
    with pytest.raises(InitializerError):
        ti.Key("0", "x")  # type: ignore[arg-type]
    with pytest.raises(InitializerError):
        ti.Key(True, "x")
    assert ti.Key(1, "w").child("f") == ti.Key(1, "w", ("f",))
    assert ti.Key(1, "w").words != ti.Key(1, "w").child("f").words != ti.Key(2, "w").words


def test_uniform53_is_pinned_and_open():
    u = uniform53(ti.Key(0, "golden"), torch.tensor([0, 1, 2, 2**32 + 5]))
    expected = [0.013277599361701642, 0.7756403599767103, 0.7903516353222577,
                0.5910450643792535]
    assert u.dtype == torch.float64 and u.tolist() == expected
    many = uniform53(ti.Key(3, "x"), torch.arange(200_000))
    assert 0.0 < float(many.min()) and float(many.max()) < 1.0


def test_uniform53_follows_the_definition():
    """Elements 2j and 2j+1 share Philox block j (words x0, x1 and x2, x3); indices beyond
    2**33 reach the counter's second word."""
    key = ti.Key(5, "big")
    for i in (0, 1, 6, 7, 2**33 + 6, 2**33 + 7, 2**40 + 3):
        j = i >> 1
        words = philox4x32_scalar((j & 0xFFFFFFFF, j >> 32, 0, 0), key.words)
        hi, lo = words[2:] if i & 1 else words[:2]
        expected = (((hi >> 5) * 2**26 + (lo >> 6)) + 0.5) * 2.0**-53
        assert float(uniform53(key, torch.tensor([i]))) == expected, i


def test_region_of_a_huge_shape_generates_only_the_region():
    """A 2 x 2**32 tensor is never allocated; a few elements past 2**32 are sampled directly."""
    shape = (2, 2**32)
    part = sample_distribution(NormalDist(0.0, 1.0), ti.Key(1, "w"), shape,
                               region=(slice(1, 2), slice(5, 9)))
    assert part.shape == (1, 4)
    idx = torch.arange(4) + 2**32 + 5
    expected = ndtri(uniform53(ti.Key(1, "w"), idx)).float()
    assert torch.equal(part.reshape(-1), expected)


def test_region_normalization():
    assert normalize_region((4, 5), None) == (slice(0, 4, 1), slice(0, 5, 1))
    assert normalize_region((4, 5), (slice(-2, None),)) == (slice(2, 4, 1), slice(0, 5, 1))
    assert region_shape(normalize_region((4, 5), (slice(0, 4, 3), slice(9, 10)))) == (2, 0)
    with pytest.raises(InitializerError, match="positive step"):
        normalize_region((4,), (slice(None, None, -1),))
    with pytest.raises(InitializerError, match="slices"):
        normalize_region((4,), (1,))  # type: ignore[arg-type]
    with pytest.raises(InitializerError, match="dimensions"):
        normalize_region((4,), (slice(None), slice(None)))


def test_chunking_does_not_change_values():
    """Rows longer than a chunk and many short rows produce the same stream."""
    from torchinit._streams import regions

    key = ti.Key(9, "c")
    full = sample_distribution(NormalDist(0.0, 1.0), key, (3, 1000))
    pieces = []
    for offset, idx in regions.flat_index_chunks((3, 1000), normalize_region((3, 1000), None),
                                                 torch.device("cpu"), chunk=64):
        pieces.append((offset, idx))
    flat = torch.cat([i for _, i in pieces])
    assert torch.equal(flat, torch.arange(3000))
    assert [o for o, _ in pieces] == sorted(o for o, _ in pieces)
    assert torch.equal(ndtri(uniform53(key, flat)).float().reshape(3, 1000), full)


def test_ndtri_matches_scipy_to_a_few_ulps():
    from scipy.special import ndtri as reference

    gen = torch.Generator().manual_seed(0)
    p = torch.rand(200_000, generator=gen, dtype=torch.float64).clamp_min(2.0**-53)
    p = torch.cat([p, torch.tensor([2.0**-54, 1e-300, 1e-20, 0.075, 0.925, 0.5, 1 - 2.0**-53],
                                    dtype=torch.float64)])
    z = ndtri(p)
    ref = torch.from_numpy(reference(p.numpy()))
    spacing = torch.nextafter(ref.abs(), torch.tensor(math.inf, dtype=torch.float64)) - ref.abs()
    assert float(((z - ref).abs() / spacing.clamp_min(2.0**-1074)).max()) <= 8
    assert float(z[-2]) == 0.0


def test_log_is_accurate():
    gen = torch.Generator().manual_seed(1)
    x = torch.cat([torch.rand(100_000, generator=gen, dtype=torch.float64),
                   torch.tensor([1e-300, 2.0**-1074, 0.5, 1.0, 2.0**-54], dtype=torch.float64)])
    torch.testing.assert_close(log(x), torch.log(x), rtol=1e-15, atol=1e-300)
