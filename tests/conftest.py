"""Shared test helpers."""

from __future__ import annotations

import math

import pytest
import torch

from tests.thirdparty import define_torchvision_ops

define_torchvision_ops()  # before any test module imports transformers (see tests/thirdparty.py)


@pytest.fixture(autouse=True)
def _restore_threads():
    """Tests that change torch's thread count get it back."""
    threads = torch.get_num_threads()
    yield
    torch.set_num_threads(threads)


def std_tolerance(std: float, n: int, excess_kurtosis: float = 0.0, sigmas: float = 5.0) -> float:
    """``sigmas`` standard errors of a sample standard deviation over ``n`` i.i.d. values.

    Var(s^2) ~= sigma^4 (2 / (n - 1) + kurtosis_excess / n), so by the delta method
    se(s) ~= sigma / 2 * sqrt(2 / (n - 1) + kurtosis_excess / n).
    """
    return sigmas * std / 2.0 * math.sqrt(2.0 / (n - 1) + excess_kurtosis / n)
