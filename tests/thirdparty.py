"""Third-party model libraries for the tests: transformers, and timm/torchvision where they import.

The torchvision wheels on PyPI are CUDA builds: their compiled ops library cannot load beside a
CPU-only torch, and ``import torchvision`` (which transformers and timm do) then fails while
registering fake kernels for ``torchvision::nms``. Defining the schemas of the two ops it
registers first, with ``torch.library``, lets ``torchvision.models`` and timm import; no test
calls those ops. Imported by ``conftest.py`` before any test module.
"""

from __future__ import annotations

import importlib.util

import torch

_LIBRARY = None


def define_torchvision_ops() -> None:
    """Define ``torchvision::nms`` and ``torchvision::qnms`` unless torchvision's own library
    has (a CPU build of torchvision, or an earlier call)."""
    global _LIBRARY
    if _LIBRARY is not None or importlib.util.find_spec("torchvision") is None:
        return
    try:
        torch._C._dispatch_find_schema_or_throw("torchvision::nms", "")
        return
    except RuntimeError:
        pass
    _LIBRARY = torch.library.Library("torchvision", "DEF")  # kept alive: it owns the schemas
    _LIBRARY.define("nms(Tensor dets, Tensor scores, float iou_threshold) -> Tensor")
    _LIBRARY.define("qnms(Tensor qdets, Tensor qscores, float iou_threshold) -> Tensor")


def importable(name: str) -> bool:
    """Whether ``name`` imports here (timm and torchvision are optional for the tests)."""
    try:
        importlib.import_module(name)
    except Exception:  # a broken install is as good as none here
        return False
    return True
