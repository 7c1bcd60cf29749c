"""The public surface is pinned: every public name and signature, by module, is in
tests/public_api.txt. A change to it is deliberate: regenerate the file with
``python tests/test_public_api.py`` and say what changed in CHANGELOG.md."""

from __future__ import annotations

import importlib
import inspect
import sys
import warnings
from pathlib import Path

import pytest

PINNED = Path(__file__).with_name("public_api.txt")
PUBLIC_MODULES = ("torchinit", "torchinit.initializers", "torchinit.presets",
                  "torchinit.functional", "torchinit.errors", "torchinit.width")


def _signature(obj: object) -> str:
    try:
        return str(inspect.signature(obj))  # type: ignore[arg-type]
    except (TypeError, ValueError):
        return ""


def _describe(name: str, obj: object) -> list[str]:
    if inspect.ismodule(obj):
        return [f"{name}: module {obj.__name__}"]
    if inspect.isclass(obj):
        lines = [f"{name}: class{_signature(obj)}"]
        for attr, member in sorted(vars(obj).items()):
            if attr.startswith("_"):
                continue
            if isinstance(member, property):
                lines.append(f"  .{attr}: property")
            elif isinstance(member, (classmethod, staticmethod)):
                lines.append(f"  .{attr}{_signature(member.__func__)}")
            elif inspect.isfunction(member):
                lines.append(f"  .{attr}{_signature(member)}")
        return lines
    if callable(obj):
        return [f"{name}{_signature(obj)}"]
    return [f"{name}: {type(obj).__name__}"]


def surface() -> str:
    lines: list[str] = []
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for module_name in PUBLIC_MODULES:
            module = importlib.import_module(module_name)
            lines.append(f"[{module_name}]")
            for name in sorted(module.__all__):
                lines += _describe(name, getattr(module, name))
    return "\n".join(lines) + "\n"


def test_public_surface_is_the_pinned_one():
    expected = PINNED.read_text()
    actual = surface()
    if actual != expected:
        import difflib

        diff = "\n".join(difflib.unified_diff(expected.splitlines(), actual.splitlines(),
                                              "pinned", "now", lineterm="", n=1))
        pytest.fail("the public surface changed (regenerate tests/public_api.txt with"
                    f" `python tests/test_public_api.py` if it is deliberate):\n{diff}")


def test_every_public_name_is_documented():
    with warnings.catch_warnings():
        warnings.simplefilter("ignore", DeprecationWarning)
        for module_name in PUBLIC_MODULES:
            module = importlib.import_module(module_name)
            for name in module.__all__:
                obj = getattr(module, name)
                if callable(obj) and not inspect.ismodule(obj):
                    assert inspect.getdoc(obj), f"{module_name}.{name} has no docstring"


def test_implementation_modules_are_private():
    src = Path(__file__).resolve().parents[1] / "src" / "torchinit"
    public = {p.stem for p in src.iterdir() if not p.name.startswith("_")} - {"py"}
    assert public == {"errors", "functional", "initializers", "presets", "width"}
    for package in ("initializers", "presets", "width"):
        inner = {p.name for p in (src / package).iterdir()
                 if p.suffix == ".py" and not p.name.startswith("_")}
        allowed = {"families.py"} if package == "width" else set()  # a documented module
        assert inner == allowed, f"torchinit.{package} has public modules {inner}"


if __name__ == "__main__":
    sys.path.insert(0, str(Path(__file__).resolve().parents[1] / "src"))
    PINNED.write_text(surface())
    print(f"wrote {PINNED}")
