"""The documentation site builds without a warning: `mkdocs build --strict`.

Strict mode fails on a broken link or anchor, a page missing from the navigation, a reference
to an object the API pages do not render, and griffe's docstring warnings (a documented
parameter the signature does not have, say).
"""

from __future__ import annotations

import importlib.util
import os
import re
import subprocess
import sys
from pathlib import Path

import pytest

import torchinit

ROOT = Path(__file__).resolve().parent.parent
NEEDED = ("mkdocs", "material", "mkdocstrings", "mkdocstrings_handlers.python")


def _missing() -> list[str]:
    missing = []
    for name in NEEDED:
        try:
            found = importlib.util.find_spec(name) is not None
        except ModuleNotFoundError:
            found = False
        if not found:
            missing.append(name)
    return missing


def _nav_pages(config: str) -> set[str]:
    """The pages the ``nav`` of mkdocs.yml names (every ``- something.md`` entry)."""
    return set(re.findall(r"^\s*-\s*(?:[^:\n]+:\s*)?(\S+\.md)\s*$", config, re.M))


def test_every_top_level_name_is_in_the_reference() -> None:
    page = (ROOT / "docs" / "api" / "index.md").read_text(encoding="utf-8")
    rendered = set(re.findall(r"^::: torchinit(?:\.\w+)*\.(\w+)\s*$", page, re.M))
    missing = [name for name in torchinit.__all__
               if name != "__version__" and name not in rendered and f"`{name}`" not in page]
    assert not missing, f"top-level names docs/api/index.md neither renders nor lists: {missing}"


def test_every_page_is_in_the_navigation() -> None:
    nav = _nav_pages((ROOT / "mkdocs.yml").read_text(encoding="utf-8"))
    pages = {p.relative_to(ROOT / "docs").as_posix() for p in (ROOT / "docs").rglob("*.md")}
    assert pages == nav, f"not in the nav: {sorted(pages - nav)}; missing: {sorted(nav - pages)}"


@pytest.mark.slow
def test_site_builds_strictly(tmp_path: Path) -> None:
    missing = _missing()
    if missing:
        pytest.skip(f"the docs extra is not installed (no {', '.join(missing)}):"
                    " pip install -e '.[docs]'")
    site = tmp_path / "site"
    env = {**os.environ, "NO_MKDOCS_2_WARNING": "1"}
    result = subprocess.run(
        [sys.executable, "-m", "mkdocs", "build", "--strict", "--site-dir", str(site)],
        cwd=ROOT, env=env, capture_output=True, text=True, timeout=600)
    assert result.returncode == 0, result.stdout + result.stderr
    assert (site / "index.html").is_file()
    assert (site / "api" / "index.html").is_file()
    assert (site / "search" / "search_index.json").is_file()
