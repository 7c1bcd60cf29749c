"""Philox4x32-10 counter-based generator written in torch tensor ops.

Salmon, Moraes, Dror and Shaw, "Parallel Random Numbers: As Easy as 1, 2, 3" (SC 2011).
Philox4x32-10 maps a 128-bit counter and a 64-bit key to 128 random bits with ten rounds of

    (c0, c1, c2, c3) <- (hi(M1*c2) ^ c1 ^ k0, lo(M1*c2), hi(M0*c0) ^ c3 ^ k1, lo(M0*c0))
    (k0, k1) <- (k0 + W0, k1 + W1) mod 2**32

with M0 = 0xD2511F53, M1 = 0xCD9E8D57, W0 = 0x9E3779B9, W1 = 0xBB67AE85. The words are held
in int64 tensors; the 64-bit products of two 32-bit words wrap modulo 2**64 in int64 arithmetic,
which keeps their low 64 bits exact, so ``hi`` and ``lo`` are exact on every device.
"""

from __future__ import annotations

import torch

__all__ = ["philox4x32", "philox4x32_scalar", "MASK32"]

MASK32 = 0xFFFFFFFF
M0, M1 = 0xD2511F53, 0xCD9E8D57
W0, W1 = 0x9E3779B9, 0xBB67AE85
ROUNDS = 10


def philox4x32(
    c0: torch.Tensor,
    c1: torch.Tensor,
    c2: torch.Tensor,
    c3: torch.Tensor,
    key: tuple[int, int],
) -> tuple[torch.Tensor, torch.Tensor, torch.Tensor, torch.Tensor]:
    """Apply Philox4x32-10 elementwise.

    Args:
        c0: The first counter word: an int64 tensor with values in ``[0, 2**32)``; the four
            words broadcast together.
        c1: The second counter word.
        c2: The third counter word.
        c3: The fourth counter word.
        key: The two 32-bit key words.

    Returns:
        The four output words as int64 tensors with values in ``[0, 2**32)``.
    """
    k0, k1 = key
    for _ in range(ROUNDS):
        p0 = c0 * M0
        p1 = c2 * M1
        c0, c1, c2, c3 = (
            ((p1 >> 32) & MASK32) ^ c1 ^ k0,
            p1 & MASK32,
            ((p0 >> 32) & MASK32) ^ c3 ^ k1,
            p0 & MASK32,
        )
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3


def philox4x32_scalar(counter: tuple[int, int, int, int], key: tuple[int, int]) -> tuple[int, ...]:
    """Pure-Python Philox4x32-10 of one counter: the executable definition used by the tests."""
    c0, c1, c2, c3 = counter
    k0, k1 = key
    for _ in range(ROUNDS):
        p0 = c0 * M0
        p1 = c2 * M1
        c0, c1, c2, c3 = (p1 >> 32) ^ c1 ^ k0, p1 & MASK32, (p0 >> 32) ^ c3 ^ k1, p0 & MASK32
        k0 = (k0 + W0) & MASK32
        k1 = (k1 + W1) & MASK32
    return c0, c1, c2, c3
