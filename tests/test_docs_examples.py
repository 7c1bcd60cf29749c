"""Every ```` ```python ```` block of the pages in docs/ runs as written.

The blocks of one page run in order in one namespace, so a block may use the names of the
blocks before it; each test runs the blocks before its own that have not run yet, so one test
can also be run alone. Each page runs in a folder of its own (the current directory while its
blocks run), with torch seeded once and warnings turned into errors.

Conventions of the pages, checked here:

* A block fenced with a file name as its title (```` ```yaml title="init.yaml" ````) is that
  file: it is written into the page's folder before the page's first block runs.
* ``<!-- skip: reason -->`` on the line before a block: it is not run (it needs what a test
  cannot have: a GPU, a distributed launch, files of the reader's); the test is reported as
  skipped with the reason. Later blocks of the page must not need its names.
* ``<!-- slow: reason -->`` on the line before a block: the test is marked ``slow``. The block
  sees the names of the blocks before it, but the names it defines are not kept for the blocks
  after it, so the quick suite (``-m "not slow"``) runs the other blocks exactly as the full one.

docs/recipes.md has its own test (tests/test_recipes.py): each recipe runs in a fresh namespace,
and its ```` ```python legacy ```` blocks show code as usually written, which is not run.
"""

from __future__ import annotations

import os
import re
import textwrap
import warnings
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any

import pytest
import torch

DOCS = Path(__file__).resolve().parent.parent / "docs"
DELEGATED = {"recipes.md": "tests/test_recipes.py"}
"""Pages whose ```python blocks another test runs, and that test."""

FENCE = re.compile(r"^\s*(?P<ticks>`{3,})(?P<info>[^`]*)$")
OPTION = re.compile(r'(\w+)="([^"]*)"')
MARKER = re.compile(r"^\s*<!--\s*(?P<kind>skip|slow)\s*(?::\s*(?P<reason>.*?))?\s*-->\s*$")
LOOSE_MARKER = re.compile(r"<!--\s*(skip|slow)\b")


@dataclass(frozen=True)
class Block:
    """One fenced code block of a page."""

    page: str
    index: int  # among the page's python blocks; -1 for other languages
    line: int  # the line of the opening fence, from 1
    lang: str
    options: dict[str, str]
    extra: str  # words of the info string that are neither the language nor an option
    code: str
    skip: str | None = None
    slow: str | None = None

    @property
    def where(self) -> str:
        return f"docs/{self.page}:{self.line}"


@dataclass
class Page:
    """The blocks of one page and the markers found in it."""

    name: str
    blocks: list[Block] = field(default_factory=list)
    markers: list[tuple[int, str]] = field(default_factory=list)  # (line, text)
    stray_markers: list[int] = field(default_factory=list)  # lines of markers before no block

    @property
    def python(self) -> list[Block]:
        return [b for b in self.blocks if b.index >= 0]

    @property
    def files(self) -> list[Block]:
        return [b for b in self.blocks if "title" in b.options]


def parse(name: str, text: str) -> Page:
    """Split a page into its fenced blocks, each with the marker on the line before it."""
    page = Page(name)
    lines = text.splitlines()
    number = 0
    python_index = 0
    while number < len(lines):
        line = lines[number]
        if LOOSE_MARKER.search(line):
            page.markers.append((number + 1, line.strip()))
        fence = FENCE.match(line)
        if not fence:
            number += 1
            continue
        ticks = fence["ticks"]
        words = fence["info"].strip()
        lang = words.split()[0] if words else ""
        options = dict(OPTION.findall(words))
        extra = OPTION.sub("", words[len(lang):]).strip()
        end = number + 1
        while end < len(lines) and lines[end].strip() != ticks:
            end += 1
        assert end < len(lines), f"docs/{name}:{number + 1}: code fence never closed"
        code = textwrap.dedent("\n".join(lines[number + 1:end])) + "\n"
        marker = MARKER.match(lines[number - 1]) if number else None
        skip = slow = None
        if marker and marker["kind"] == "skip":
            skip = marker["reason"] or ""
        elif marker:
            slow = marker["reason"] or "marked slow"
        is_python = lang == "python" and not extra
        page.blocks.append(Block(name, python_index if is_python else -1, number + 1, lang,
                                 options, extra, code, skip, slow))
        python_index += is_python
        number = end + 1
    fenced = {b.line - 1 for b in page.blocks}
    page.stray_markers = [n for n, _ in page.markers if n not in fenced]
    return page


PAGES = {p.name: parse(p.name, p.read_text(encoding="utf-8"))
         for p in sorted(DOCS.glob("*.md")) if p.name not in DELEGATED}
CASES = [b for page in PAGES.values() for b in page.python]


def _param(block: Block) -> Any:
    marks = [pytest.mark.slow] if block.slow else []
    return pytest.param(block, id=f"{block.page[:-3]}-{block.index}", marks=marks)


class PageRun:
    """The namespace of one page and which of its blocks have run."""

    def __init__(self, page: Page, folder: Path) -> None:
        self.page = page
        self.folder = folder
        self.namespace: dict[str, Any] = {"__name__": "docs_example"}
        self.status: dict[int, str] = {}  # block index -> "ok" | "failed"
        self.started = False

    def _start(self) -> None:
        self.started = True
        torch.manual_seed(0)
        for block in self.page.files:
            path = self.folder / block.options["title"]
            path.parent.mkdir(parents=True, exist_ok=True)
            path.write_text(block.code, encoding="utf-8")

    def _exec(self, block: Block) -> None:
        # Leading newlines put the block's lines at their line numbers in the page.
        code = compile("\n" * block.line + block.code, str(DOCS / block.page), "exec")
        namespace = dict(self.namespace) if block.slow else self.namespace
        cwd = os.getcwd()
        os.chdir(self.folder)
        try:
            with warnings.catch_warnings():
                warnings.simplefilter("error")
                exec(code, namespace)  # noqa: S102 - the page's own examples
        except BaseException:
            self.status[block.index] = "failed"
            raise
        finally:
            os.chdir(cwd)
        self.status[block.index] = "ok"

    def run_until(self, target: Block) -> None:
        """Run the blocks before ``target`` that have not run, then ``target``.

        Skipped and slow blocks are not run for a later block: it does not see their names.
        """
        if not self.started:
            self._start()
        for block in self.page.python[:target.index]:
            if block.skip is not None or block.slow:
                continue
            state = self.status.get(block.index)
            if state == "failed":
                pytest.skip(f"needs the names of {block.where}, which failed")
            if state is None:
                try:
                    self._exec(block)
                except Exception as error:
                    pytest.fail(f"{block.where}, run before {target.where}, failed: {error!r}")
        self._exec(target)


def _registries() -> list[dict]:
    """The library's registries that a page may add to (a preset, a layout, a module type)."""
    from torchinit import _layouts as layouts
    from torchinit._plan import init_functions, module_types
    from torchinit.initializers import _registry as initializers
    from torchinit.presets import _registry as presets

    return [presets._PRESETS, layouts._LAYOUTS, initializers._BY_NAME, init_functions._FUNCTIONS,
            module_types._BY_NAME]


@pytest.fixture(scope="module")
def page_runs(tmp_path_factory: pytest.TempPathFactory):
    """One PageRun per page; the registries get their contents back when the module ends."""
    saved = [(registry, dict(registry)) for registry in _registries()]
    runs: dict[str, PageRun] = {}

    def get(name: str) -> PageRun:
        if name not in runs:
            runs[name] = PageRun(PAGES[name], tmp_path_factory.mktemp(name[:-3]))
        return runs[name]

    yield get
    for registry, contents in saved:
        registry.clear()
        registry.update(contents)


@pytest.mark.parametrize("block", [_param(b) for b in CASES])
def test_docs_example_runs(block: Block, page_runs) -> None:
    if block.skip is not None:
        pytest.skip(f"{block.where}: {block.skip}")
    page_runs(block.page).run_until(block)


def test_every_page_is_run_here_or_by_its_own_test() -> None:
    pages = {p.name for p in DOCS.glob("*.md")}
    assert set(PAGES) | set(DELEGATED) == pages
    for name, test in DELEGATED.items():
        assert name in pages and (DOCS.parent / test).is_file(), (name, test)


def test_markers_are_well_formed() -> None:
    problems = []
    for page in PAGES.values():
        for number, text in page.markers:
            if not MARKER.match(text):
                problems.append(f"docs/{page.name}:{number}: malformed marker {text!r}")
        problems += [f"docs/{page.name}:{n}: marker not on the line before a code fence"
                     for n in page.stray_markers]
        for block in page.blocks:
            if block.skip == "":
                problems.append(f"{block.where}: a skip needs a reason")
            if block.lang == "python" and block.extra:
                problems.append(f"{block.where}: unknown words in the fence: {block.extra!r}")
            if (block.skip is not None or block.slow) and block.index < 0:
                problems.append(f"{block.where}: skip and slow mark python blocks only")
    assert not problems, "\n".join(problems)


def test_file_blocks_have_distinct_names() -> None:
    for page in PAGES.values():
        names = [b.options["title"] for b in page.files]
        assert len(names) == len(set(names)), (page.name, names)
        for name in names:
            assert not Path(name).is_absolute() and ".." not in Path(name).parts, name


def test_parser() -> None:
    sample = (
        "Text\n```python\na = 1\n```\n<!-- skip: needs a GPU -->\n```python\ncuda()\n```\n"
        '```yaml title="plan.yaml"\nversion: 1\n```\n- item:\n\n  <!-- slow: trains -->\n'
        "  ```python\n  b = a + 1\n  ```\n"
    )
    page = parse("sample.md", sample)
    assert [(b.lang, b.index, b.skip, b.slow) for b in page.blocks] == [
        ("python", 0, None, None), ("python", 1, "needs a GPU", None),
        ("yaml", -1, None, None), ("python", 2, None, "trains")]
    assert page.blocks[3].code == "b = a + 1\n"
    assert [b.options for b in page.files] == [{"title": "plan.yaml"}]
    assert page.stray_markers == []
