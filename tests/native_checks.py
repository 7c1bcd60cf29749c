"""Checks that a replayed initialization is the model's own: same values where they are fixed,
same distribution where they are random."""

from __future__ import annotations

import math

import torch
from scipy import stats
from torch import nn

KS_P = 1e-4
SAMPLE = 200_000  # KS on a strided subsample of larger tensors


def _sample(t: torch.Tensor) -> torch.Tensor:
    flat = t.detach().double().reshape(-1)
    step = max(1, flat.numel() // SAMPLE)
    return flat[::step]


def same_init(native: torch.Tensor, replay: torch.Tensor) -> str | None:
    """``None`` if ``replay`` could be a draw of the scheme that gave ``native``, else why not.

    Constant tensors (and constant rows: zero padding rows) must be equal exactly. Random
    ones: a two-sample KS test with p > 1e-4, and, for >= 10^4 elements, the standard
    deviations within 5 standard errors of their difference.
    """
    a, b = native.detach().double(), replay.detach().double()
    if a.shape != b.shape:
        return f"shape {tuple(a.shape)} vs {tuple(b.shape)}"
    if a.numel() == 0:
        return None
    flat = a.reshape(-1)
    if bool((flat == flat[0]).all()):
        return None if torch.equal(a, b) else f"constant {flat[0].item()} not replayed exactly"
    if a.dim() >= 2:  # rows the model sets to a constant (padding_idx) are constant here too
        rows = a.reshape(a.shape[0], -1)
        fixed = [i for i in range(rows.shape[0])
                 if rows.shape[1] > 1 and bool((rows[i] == rows[i, 0]).all())]
        for i in fixed:
            if not torch.equal(rows[i], b.reshape(b.shape[0], -1)[i]):
                return f"constant row {i} not replayed exactly"
    x, y = _sample(a), _sample(b)
    p = stats.ks_2samp(x.numpy(), y.numpy()).pvalue
    if p <= KS_P:
        return f"KS p={p:.2g} (std {a.std().item():.4g} vs {b.std().item():.4g})"
    n = a.numel()
    if n >= 10_000:
        sa, sb = a.std().item(), b.std().item()
        kurt = float(stats.kurtosis(x.numpy()))
        se = math.sqrt(2) * sa / 2 * math.sqrt(2 / (n - 1) + max(kurt, 0.0) / n)
        if abs(sa - sb) > 5 * se + 1e-12:
            return f"std {sa:.5g} vs {sb:.5g} (5 SE = {5 * se:.2g})"
    return None


def assert_same_init(native: nn.Module, replay: nn.Module) -> None:
    """Every parameter of ``replay`` is drawn like ``native``'s, and every buffer is equal."""
    theirs = dict(replay.named_parameters())
    problems = []
    for path, param in native.named_parameters():
        why = same_init(param, theirs[path])
        if why:
            problems.append(f"{path}: {why}")
    buffers = dict(replay.named_buffers())
    for path, buf in native.named_buffers():
        if not torch.equal(buf, buffers[path]):
            problems.append(f"buffer {path} differs")
    assert not problems, "\n".join(problems)


def assert_bitwise_equal(a: nn.Module, b: nn.Module) -> None:
    sa, sb = a.state_dict(), b.state_dict()
    assert sa.keys() == sb.keys()
    different = [k for k in sa if not torch.equal(sa[k], sb[k])]
    assert not different, different
