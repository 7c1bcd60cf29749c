#!/usr/bin/env bash
# Creates .venv with torch and torchinit (editable, with the test, config and plot extras; pip
# builds the compiled sampling core with the machine's C compiler).
# torch is installed first and pinned, so the extras never pull a different (multi-GB) build.
# Override the version with TORCH_VERSION=...; set TORCHINIT_VENV to use another folder.
set -euo pipefail
cd "$(dirname "$0")/.."
venv="${TORCHINIT_VENV:-.venv}"
torch_version="${TORCH_VERSION:-2.13.0}"
[ -x "$venv/bin/python" ] || python3 -m venv "$venv"
pip_install() { "$venv/bin/python" -m pip install --quiet --disable-pip-version-check "$@"; }
"$venv/bin/python" -c "import torch" 2>/dev/null || pip_install "torch==$torch_version"
pip_install -e ".[test,config,plot]"
