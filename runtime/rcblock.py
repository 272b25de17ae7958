"""The fenced block sagecode owns in a shell rc file: replaced in place, never duplicated.

The user's own lines before and after the block are kept as they are. Running the
replacement again gives the same bytes: no blank line is added once the block exists
(the predecessor added one per run), and extra copies of the block from older tools
are folded into the first one.
"""

from __future__ import annotations

from collections.abc import Sequence
from typing import Optional

START = "# >>> sagecode >>>"
END = "# <<< sagecode <<<"
NOTE = "# Written by sagecode's setup and replaced on every run: keep your own lines outside."


def render_block(body: Sequence[str]) -> list[str]:
    """The block's lines, markers and note included, each ending in a newline."""
    return [f"{line}\n" for line in (START, NOTE, *body, END)]


def replace_block(text: str, body: Sequence[str]) -> str:
    """``text`` with sagecode's block set to ``body``: where it was, else at the end."""
    kept, at = _without_blocks(text.splitlines(keepends=True))
    block = render_block(body)
    if at is None:
        return "".join(kept) + _separator(kept) + "".join(block)
    return "".join(kept[:at] + block + kept[at:])


def _without_blocks(lines: list[str]) -> tuple[list[str], Optional[int]]:
    """The lines outside every complete block, and where the first block was."""
    kept: list[str] = []
    first: Optional[int] = None
    i = 0
    while i < len(lines):
        end = _block_end(lines, i)
        if end is None:
            kept.append(lines[i])
            i += 1
            continue
        first = len(kept) if first is None else first
        i = end + 1
    return kept, first


def _block_end(lines: list[str], start: int) -> Optional[int]:
    """Where the block starting at ``start`` ends; ``None`` when no block starts there.

    A start marker without an end marker ends at itself: only the marker line goes, so
    none of the user's lines after it can be taken for the block.
    """
    if lines[start].strip() != START:
        return None
    for index in range(start + 1, len(lines)):
        if lines[index].strip() == END:
            return index
    return start


def _separator(kept: list[str]) -> str:
    """What goes between the user's text and an appended block: a newline, a blank line."""
    if not kept:
        return ""
    last = kept[-1]
    newline = "" if last.endswith("\n") else "\n"
    return newline if not last.strip() else newline + "\n"


def remove_block(text: str) -> str:
    """``text`` without sagecode's block, and without the blank line put before an appended one."""
    kept, at = _without_blocks(text.splitlines(keepends=True))
    if at is not None and at == len(kept) and kept and not kept[-1].strip():
        kept.pop()
    return "".join(kept)
