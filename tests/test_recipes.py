"""Every torchinit example of docs/recipes.md runs and its assertions hold.

The page pairs each recipe as users write it (fenced ```` ```python legacy ````, not run) with its
torchinit equivalent (fenced ```` ```python ````, run here). Each example runs in a fresh
namespace with warnings turned into errors, so an example that starts warning (a rule that
matches nothing, a deprecated call it did not expect) fails too.
"""

from __future__ import annotations

import re
import warnings
from collections import Counter
from dataclasses import dataclass
from pathlib import Path

import pytest
import torch

PAGE = Path(__file__).resolve().parent.parent / "docs" / "recipes.md"
FENCE = re.compile(r"^```(.*)$")


@dataclass(frozen=True)
class Block:
    """One fenced code block of the page."""

    section: str
    info: str
    line: int
    code: str


@dataclass(frozen=True)
class Page:
    """The headings and code blocks of the page, in order."""

    groups: tuple[str, ...]
    sections: tuple[str, ...]
    blocks: tuple[Block, ...]
    links: tuple[str, ...]


def parse(text: str) -> Page:
    """Split the page into ``##`` groups, ``###`` recipe sections and fenced blocks."""
    groups: list[str] = []
    sections: list[str] = []
    blocks: list[Block] = []
    fence_info: str | None = None
    fence_line = 0
    body: list[str] = []
    for number, line in enumerate(text.splitlines(), start=1):
        fence = FENCE.match(line)
        if fence_info is not None:
            if fence and not fence.group(1).strip():
                section = sections[-1] if sections else ""
                blocks.append(Block(section, fence_info, fence_line, "\n".join(body) + "\n"))
                fence_info = None
            else:
                body.append(line)
        elif fence:
            fence_info, fence_line, body = fence.group(1).strip(), number, []
        elif line.startswith("### "):
            sections.append(line[4:].strip())
        elif line.startswith("## "):
            groups.append(line[3:].strip())
    assert fence_info is None, f"{PAGE.name}:{fence_line}: code fence never closed"
    links = tuple(re.findall(r"\]\(#([^)]+)\)", text))
    return Page(tuple(groups), tuple(sections), tuple(blocks), links)


def slug(heading: str) -> str:
    """The anchor a Markdown renderer gives a heading (GitHub's rule)."""
    return re.sub(r"[^\w\- ]", "", heading.strip().lower()).replace(" ", "-")


PAGE_CONTENT = parse(PAGE.read_text(encoding="utf-8"))
EXECUTED = [b for b in PAGE_CONTENT.blocks if b.info == "python"]
LEGACY = [b for b in PAGE_CONTENT.blocks if b.info == "python legacy"]


def _block_ids(blocks: list[Block]) -> list[str]:
    """Test ids: the section's anchor, numbered from the second example of a section on."""
    seen: Counter[str] = Counter()
    ids: list[str] = []
    for block in blocks:
        base = slug(block.section) or "preamble"
        seen[base] += 1
        ids.append(base if seen[base] == 1 else f"{base}-{seen[base]}")
    return ids


@pytest.mark.parametrize("block", EXECUTED, ids=_block_ids(EXECUTED))
def test_example_runs(block: Block) -> None:
    torch.manual_seed(0)
    # Leading newlines put the block's lines at their line numbers in the page for tracebacks.
    code = compile("\n" * block.line + block.code, str(PAGE), "exec")
    with warnings.catch_warnings():
        warnings.simplefilter("error")
        exec(code, {"__name__": "recipes_example"})  # noqa: S102 - the page's own examples


def test_every_section_has_an_executed_example() -> None:
    sections = PAGE_CONTENT.sections
    assert len(EXECUTED) >= len(sections), (
        f"{len(EXECUTED)} ```python examples for {len(sections)} sections")
    with_example = {b.section for b in EXECUTED}
    missing = [s for s in PAGE_CONTENT.sections if s not in with_example]
    assert not missing, f"sections without a ```python example: {missing}"


def test_every_recipe_shows_the_usual_code() -> None:
    with_legacy = {b.section for b in LEGACY}
    missing = [s for s in PAGE_CONTENT.sections if s not in with_legacy]
    assert not missing, f"sections without a ```python legacy block: {missing}"


def test_only_known_code_fences() -> None:
    allowed = {"python", "python legacy", "console"}
    odd = [(b.line, b.info) for b in PAGE_CONTENT.blocks if b.info not in allowed]
    assert not odd, f"code fences other than {sorted(allowed)} (line, info): {odd}"


def test_contents_links_every_heading() -> None:
    anchors = [slug(h) for h in (*PAGE_CONTENT.groups, *PAGE_CONTENT.sections)]
    assert len(anchors) == len(set(anchors)), "two headings share an anchor"
    broken = sorted(set(PAGE_CONTENT.links) - set(anchors))
    assert not broken, f"links to no heading: {broken}"
    unlisted = [a for a in anchors if a not in PAGE_CONTENT.links and a != "contents"]
    assert not unlisted, f"headings missing from the contents: {unlisted}"


def test_parser_finds_what_it_should() -> None:
    sample = (
        "## Group\n### First\n```python legacy\nold()\n```\n```python\nnew()\n```\n"
        "### Second\n```python\nx = 1\n```\n"
    )
    page = parse(sample)
    assert page.groups == ("Group",)
    assert page.sections == ("First", "Second")
    assert [(b.section, b.info, b.code) for b in page.blocks] == [
        ("First", "python legacy", "old()\n"),
        ("First", "python", "new()\n"),
        ("Second", "python", "x = 1\n"),
    ]
    assert slug("`Module.apply` with `isinstance`") == "moduleapply-with-isinstance"
