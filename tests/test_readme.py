"""The README's tour runs as written, and the README opens with the two set-up commands."""

from __future__ import annotations

import re
import warnings
from pathlib import Path

README = Path(__file__).resolve().parents[1] / "README.md"


def test_readme_opens_with_the_two_commands_ci_runs():
    text = README.read_text()
    first_block = re.search(r"```bash\n(.*?)```", text, re.S).group(1).strip().splitlines()
    assert len(first_block) == 2
    assert "torchinit compare" in first_block[0] and "pytest" in first_block[1]
    ci = (README.parent / ".ci" / "run").read_text()
    assert first_block[1] in ci


def test_readme_tour_runs():
    code = re.findall(r"```python\n(.*?)```", README.read_text(), re.S)[0]
    with warnings.catch_warnings():
        warnings.simplefilter("error", UserWarning)
        exec(compile(code, str(README), "exec"), {"__name__": "readme"})
