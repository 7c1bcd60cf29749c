"""MkDocs hooks for the documentation site (loaded from ``mkdocs.yml``).

The pages stay plain Markdown, so they read the same on a code host; these hooks adapt two
conventions of theirs for the site:

* A code block fenced ```` ```python legacy ```` (code as it is usually written, shown for
  comparison and not run by the tests) is highlighted as Python.
* An image that stands alone in its paragraph, ``![caption](img/plot.png)``, is shown as a
  figure: the image, with its alt text as the caption below it.
"""

from __future__ import annotations

import re
from typing import Any

LEGACY_FENCE = re.compile(r"^(\s*)```python legacy\s*$", re.M)
IMAGE_PARAGRAPH = re.compile(r'<p>(<img alt="([^"]*)"[^>]*>)</p>')


def on_page_markdown(markdown: str, **kwargs: Any) -> str:
    return LEGACY_FENCE.sub(r"\1```python", markdown)


def on_page_content(html: str, **kwargs: Any) -> str:
    return IMAGE_PARAGRAPH.sub(
        lambda m: f"<figure>{m.group(1)}<figcaption>{m.group(2)}</figcaption></figure>", html)
