"""The README's fenced code blocks, for tests that run them as written.

Markers, as an HTML comment on the line right before a block's opening fence:
- `<!-- readme-test: skip REASON -->`: the block is not run (say what it needs that a
  test machine does not have, e.g. a real upstream or an API key);
- `<!-- readme-test: continued -->`: the block continues the one before it (a file or
  a script shown in pieces) and is appended to it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from pathlib import Path

README = Path(__file__).resolve().parents[2] / "README.md"

_BLOCK = re.compile(
    r"(?:<!-- readme-test: (skip|continued)([^>]*)-->\n)?```(\w+)\n(.*?)^```", re.M | re.S
)


@dataclass
class Block:
    text: str
    line: int  # where it starts in the README
    skip: str | None = None  # why it is not run

    @property
    def id(self) -> str:
        return f"README.md:{self.line}"


def readme_blocks(language: str, path: Path = README) -> list[Block]:
    source = path.read_text()
    blocks: list[Block] = []
    for m in _BLOCK.finditer(source):
        marker, reason, lang, text = m.groups()
        if lang != language:
            continue
        if marker == "continued" and blocks:
            blocks[-1].text += text
            continue
        line = source.count("\n", 0, m.start(3)) + 1
        blocks.append(Block(text, line, reason.strip() if marker == "skip" else None))
    return blocks
