"""The package builds as a wheel with its compiled core, and installs and runs in a fresh
environment that holds only torch (and what torch itself needs): no numpy, no extras."""

from __future__ import annotations

import importlib.metadata as metadata
import os
import re
import subprocess
import sys
import venv
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[1]

SMOKE = r"""
import sys, time
start = time.perf_counter()
import torch
import torchinit as ti
from torchinit._streams import backends
from torchinit._streams._core import ISA
assert backends.backend_name() == "compiled", backends.backend_name()
model = ti.build(lambda: torch.nn.Sequential(torch.nn.Linear(512, 512), torch.nn.Conv2d(8, 8, 3)),
                 ti.presets.get("torch"), seed=0)
assert "numpy" not in sys.modules or sys.modules["numpy"] is None
print("ok", ISA, ti.__version__, f"{time.perf_counter() - start:.2f}s")
"""


def _requirements(dist: str, seen: set[str]) -> set[str]:
    """``dist`` and its unconditional requirements, recursively (distribution names)."""
    name = re.split(r"[^A-Za-z0-9_.-]", dist, maxsplit=1)[0].lower().replace("_", "-")
    if name in seen:
        return seen
    seen.add(name)
    for req in metadata.requires(name) or []:
        if "extra ==" not in req:
            _requirements(req, seen)
    return seen


def _link_distribution(name: str, site: Path) -> None:
    """Symlink the top-level files and folders of an installed distribution into ``site``."""
    dist = metadata.distribution(name)
    for top in {Path(str(f)).parts[0] for f in dist.files or ()}:
        source = Path(dist.locate_file(top))
        target = site / top
        if source.exists() and not target.exists() and top != "..":
            target.symlink_to(source)


@pytest.mark.slow
def test_wheel_installs_and_runs_with_only_torch(tmp_path):
    wheels = tmp_path / "wheels"
    subprocess.run([sys.executable, "-m", "pip", "wheel", "--no-deps", "--no-build-isolation",
                    "--quiet", "-w", str(wheels), str(ROOT)], check=True, timeout=600)
    (wheel,) = wheels.glob("torchinit-*.whl")
    assert re.search(r"cp\d+-cp\d+", wheel.name), f"{wheel.name} is not a platform wheel"

    env_dir = tmp_path / "env"
    venv.EnvBuilder(with_pip=True).create(env_dir)
    python = env_dir / "bin" / "python"
    site = Path(subprocess.run([str(python), "-c", "import sysconfig; print(sysconfig"
                                ".get_paths()['purelib'])"], check=True, capture_output=True,
                               text=True).stdout.strip())
    needed = _requirements("torch", set()) - {"setuptools"}
    assert "numpy" not in needed
    for name in needed:
        _link_distribution(name, site)
    subprocess.run([str(python), "-m", "pip", "install", "--no-deps", "--no-index", "--quiet",
                    str(wheel)], check=True, timeout=300)
    clean = {k: v for k, v in os.environ.items() if not k.startswith(("PYTHON", "TORCHINIT"))}
    result = subprocess.run([str(python), "-c", SMOKE], capture_output=True, text=True,
                            timeout=300, cwd=tmp_path, env=clean)
    assert result.returncode == 0, result.stderr
    assert result.stdout.startswith("ok "), result.stdout
