"""sagecode's fenced block in rc files, and the safe file writes under it (runtime.rcblock, files)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from runtime.files import update_text, write_atomic
from runtime.rcblock import END, NOTE, START, replace_block

BODY = ("export A=1",)
BLOCK = f"{START}\n{NOTE}\nexport A=1\n{END}\n"


def test_rcblock_into_empty_file() -> None:
    """An empty file gets the block alone, with no leading blank line."""
    assert replace_block("", BODY) == BLOCK


def test_rcblock_appended_after_user_lines() -> None:
    """User lines are kept and separated from an appended block by one blank line."""
    assert replace_block("alias ll='ls -l'\n", BODY) == f"alias ll='ls -l'\n\n{BLOCK}"


def test_rcblock_missing_final_newline_is_added() -> None:
    """A user's last line without a newline is ended before the block, not joined to it."""
    assert replace_block("set -o vi", BODY) == f"set -o vi\n\n{BLOCK}"


def test_rcblock_no_extra_blank_after_blank_line() -> None:
    """A file already ending in a blank line gets no second one."""
    assert replace_block("x=1\n\n", BODY) == f"x=1\n\n{BLOCK}"


def test_rcblock_replaced_in_place_keeping_user_lines() -> None:
    """An existing block is replaced where it stands; lines before and after stay as they were."""
    text = f"before\n\n{START}\nold stuff\n{END}\nafter\n"
    assert replace_block(text, BODY) == f"before\n\n{BLOCK}after\n"


def test_rcblock_twice_is_byte_identical() -> None:
    """Replacing again gives the same bytes: no growing blank lines, no second block."""
    once = replace_block("user line\n", BODY)
    assert replace_block(once, BODY) == once
    assert replace_block(replace_block(once, ("export A=2",)), BODY) == once


def test_rcblock_duplicates_fold_into_the_first() -> None:
    """Copies of the block left by older tools are removed; the first one is replaced."""
    text = f"a\n{START}\nx\n{END}\nb\n{START}\ny\n{END}\nc\n"
    assert replace_block(text, BODY) == f"a\n{BLOCK}b\nc\n"


def test_rcblock_unterminated_start_drops_only_the_marker() -> None:
    """A start marker with no end marker is replaced alone; the user's lines after it survive."""
    assert replace_block(f"a\n{START}\nkeep me\n", BODY) == f"a\n{BLOCK}keep me\n"


def test_rcblock_markers_match_despite_crlf_and_spaces() -> None:
    """Markers are matched on the stripped line, so CRLF files do not get a second block."""
    text = f"a\r\n{START}  \r\nold\r\n{END}\r\n"
    assert replace_block(text, BODY) == f"a\r\n{BLOCK}"


def test_files_update_writes_nothing_when_unchanged(tmp_path: Path) -> None:
    """An unchanged result leaves the file untouched (same inode, same mtime)."""
    rc = tmp_path / ".bashrc"
    rc.write_text(f"x\n\n{BLOCK}")
    before = rc.stat()
    assert update_text(rc, lambda text: replace_block(text, BODY)) is False
    after = rc.stat()
    assert (after.st_ino, after.st_mtime_ns) == (before.st_ino, before.st_mtime_ns)


def test_files_update_creates_a_missing_file(tmp_path: Path) -> None:
    """A missing file is created with the default mode."""
    rc = tmp_path / ".zshrc"
    assert update_text(rc, lambda text: replace_block(text, BODY)) is True
    assert (rc.read_text(), rc.stat().st_mode & 0o777) == (BLOCK, 0o644)


def test_files_update_writes_through_a_symlink(tmp_path: Path) -> None:
    """A symlinked rc file (dotfile managers) is updated where it points; the link stays."""
    real = tmp_path / "dotfiles" / "bashrc"
    real.parent.mkdir()
    real.write_text("mine\n")
    link = tmp_path / ".bashrc"
    link.symlink_to(real)
    update_text(link, lambda text: replace_block(text, BODY))
    assert (link.is_symlink(), real.read_text()) == (True, f"mine\n\n{BLOCK}")


def test_files_update_keeps_mode_and_foreign_bytes(tmp_path: Path) -> None:
    """An existing file keeps its mode, and bytes that are not UTF-8 pass through unchanged."""
    rc = tmp_path / ".bashrc"
    rc.write_bytes(b"PS1='\xff\xfe'\n")
    rc.chmod(0o600)
    update_text(rc, lambda text: replace_block(text, BODY))
    assert rc.read_bytes() == b"PS1='\xff\xfe'\n\n" + BLOCK.encode()
    assert rc.stat().st_mode & 0o777 == 0o600


def test_files_atomic_write_leaves_no_temporary_on_failure(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A write that fails before the rename leaves the old file and no temporary behind."""
    target = tmp_path / "f"
    target.write_bytes(b"old")

    def broken_fsync(fd: int) -> None:
        raise OSError("disk gone")

    monkeypatch.setattr(os, "fsync", broken_fsync)
    with pytest.raises(OSError, match="disk gone"):
        write_atomic(target, b"new", 0o644)
    assert (target.read_bytes(), sorted(p.name for p in tmp_path.iterdir())) == (b"old", ["f"])
