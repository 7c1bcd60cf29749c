"""The package type-checks under ``mypy --strict`` (its ``py.typed`` promises types)."""

from __future__ import annotations

import subprocess
import sys
import tempfile
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]


@pytest.mark.slow
def test_mypy_strict_is_clean():
    pytest.importorskip("mypy", reason="mypy is in the 'test' extra")
    with tempfile.TemporaryDirectory() as cache:  # a shared cache can hide errors
        done = subprocess.run([sys.executable, "-m", "mypy", "--strict", "--no-error-summary",
                               "--cache-dir", cache, "src/torchinit"], cwd=ROOT,
                              capture_output=True, text=True, timeout=900)
    assert done.returncode == 0, done.stdout[-6000:] + done.stderr[-2000:]
