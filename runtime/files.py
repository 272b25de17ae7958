"""Small, safe file operations for the persistent volume: atomic writes, private folders.

The volume outlives every process that writes to it, and a stop of the instance can cut
any of them off, so a file is either the old one or the new one, never half of each.
"""

from __future__ import annotations

import contextlib
import os
import stat
import tempfile
from collections.abc import Callable
from pathlib import Path

PRIVATE_DIR = 0o700
PRIVATE_FILE = 0o600


def write_atomic(path: Path, data: bytes, mode: int) -> None:
    """Replace ``path`` with ``data`` through a synced temporary file in the same folder."""
    fd, name = tempfile.mkstemp(dir=path.parent, prefix=f".{path.name}.", suffix=".tmp")
    tmp = Path(name)
    try:
        with os.fdopen(fd, "wb") as handle:
            handle.write(data)
            handle.flush()
            os.fsync(handle.fileno())
        tmp.chmod(mode)
        tmp.replace(path)
    except BaseException:
        with contextlib.suppress(FileNotFoundError):
            tmp.unlink()
        raise


def update_text(path: Path, transform: Callable[[str], str], mode: int = 0o644) -> bool:
    """Rewrite a text file through ``transform``; ``False`` (and no write) when nothing changes.

    A symlinked file (dotfile managers do that) is written where the link points, so the
    link survives. Bytes that are not UTF-8 pass through untouched; an existing file
    keeps its mode, a new one gets ``mode``.
    """
    target = path.resolve() if path.is_symlink() else path
    try:
        old = target.read_bytes()
        mode = stat.S_IMODE(target.stat().st_mode)
    except FileNotFoundError:
        old = b""
    new = transform(old.decode("utf-8", "surrogateescape")).encode("utf-8", "surrogateescape")
    if new == old and target.exists():
        return False
    write_atomic(target, new, mode)
    return True


def ensure_dir(path: Path, mode: int) -> None:
    """Create ``path`` (and its parents) with ``mode`` when missing; an existing one is left as is."""
    if not path.is_dir():
        path.mkdir(parents=True, exist_ok=True)
        path.chmod(mode)  # mkdir's mode is filtered by the umask


def make_private(root: Path) -> None:
    """Folders 700 and files 600 under ``root`` (SSH refuses keys others can read).

    Symlinks are neither followed nor changed: what they point at is not ours to change.
    """
    root.chmod(PRIVATE_DIR)
    for folder, dirs, names in os.walk(root):
        for name in dirs:
            _chmod_unless_link(Path(folder, name), PRIVATE_DIR)
        for name in names:
            _chmod_unless_link(Path(folder, name), PRIVATE_FILE)


def _chmod_unless_link(path: Path, mode: int) -> None:
    info = path.lstat()
    if not stat.S_ISLNK(info.st_mode) and stat.S_IMODE(info.st_mode) != mode:
        path.chmod(mode)
