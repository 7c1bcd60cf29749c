#!/usr/bin/env bash
# Creates .venv with torch and torchinit (editable, with the test, config, plot, checkpoint and
# docs extras; pip builds the compiled sampling core with the machine's C compiler), and timm and
# torchvision for the tests that capture their models' init.
# torch is installed first and pinned, so the extras never pull a different (multi-GB) build.
# Override the version with TORCH_VERSION=...; set TORCHINIT_VENV to use another folder.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TORCHINIT_VENV:-.venv}"
torch_version="${TORCH_VERSION:-2.13.0}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_install() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
"$venv/bin/python" -c "import torch" 2>/dev/null || pip_install "torch==$torch_version"
pip_install -e ".[test,config,plot,checkpoint,docs]"
# Third-party vision models for the capture tests, without their dependencies: torch stays the
# pinned CPU build (the torchvision wheel is a CUDA build; tests/thirdparty.py explains how its
# Python models still import).
pip_install --no-deps "timm==1.0.31" "torchvision==0.29.1"
