"""The runtime's log files under ``<state>/logs``: written, rotated, shown and followed.

- ``editor.log``: the editor container's output (code-server's log), copied there by the
  wrapper while the container runs; with ``--rm`` the engine forgets a container's log
  when it ends, the volume does not. The previous run's is ``editor.log.1``.
- ``wrapper.log``: what the wrapper decided (image, user mapping, restores, stops).
- the last hook's log: the one the lifecycle hook recorded in ``run/setup-state``, else
  the newest other ``*.log`` there (builds, restores, hooks).
"""

from __future__ import annotations

import contextlib
import threading
import time
from collections.abc import Callable, Iterable
from pathlib import Path
from typing import IO, Optional

from imagebuild.paths import StatePaths
from runtime.hint import STATE_FILE

EDITOR_LOG = "editor.log"
WRAPPER_LOG = "wrapper.log"
WRAPPER_LOG_CAP = 1 << 20  # rotated at start beyond this: it grows by a few lines per launch


def rotate(path: Path, over_bytes: int = 0) -> None:
    """Move ``path`` to ``path.1`` (replacing it) when it holds more than ``over_bytes``."""
    with contextlib.suppress(FileNotFoundError):
        if path.stat().st_size > over_bytes:
            path.replace(path.with_name(path.name + ".1"))


def tee(source: IO[bytes], sinks: Iterable[IO[bytes]]) -> threading.Thread:
    """Copy ``source`` line by line to every sink until it ends, in a daemon thread."""
    outputs = tuple(sinks)

    def pump() -> None:
        for line in iter(source.readline, b""):
            for sink in outputs:
                with contextlib.suppress(OSError, ValueError):  # a closed stderr must not stop the log
                    sink.write(line)
                    sink.flush()

    thread = threading.Thread(target=pump, name="editor-log", daemon=True)
    thread.start()
    return thread


def hook_log(state: StatePaths) -> Optional[Path]:
    """The last lifecycle hook's log: as recorded by the hook, else the newest other log."""
    with contextlib.suppress(OSError, IndexError):
        recorded = Path((state.run / STATE_FILE).read_text().split()[1])
        if recorded.is_file():
            return recorded
    ours = {EDITOR_LOG, WRAPPER_LOG}
    others = [p for p in state.logs.glob("*.log") if p.name not in ours and p.is_file()]
    return max(others, key=lambda p: p.stat().st_mtime, default=None)


def log_files(state: StatePaths) -> list[Path]:
    """The logs ``sagecode logs`` shows, oldest story first: hook, wrapper, editor."""
    candidates = [hook_log(state), state.logs / WRAPPER_LOG, state.logs / EDITOR_LOG]
    return [path for path in candidates if path is not None and path.is_file()]


def tail(path: Path, lines: int) -> list[str]:
    """The last ``lines`` lines of a text file (undecodable bytes replaced)."""
    with path.open("rb") as handle:
        handle.seek(0, 2)
        size = handle.tell()
        handle.seek(max(0, size - 256 * 1024))  # enough for any sensible line count
        text = handle.read().decode("utf-8", "replace")
    return text.splitlines()[-lines:] if lines > 0 else []


def follow(
    path: Path, write: Callable[[str], None], poll: float = 0.5, until: Callable[[], bool] = lambda: False
) -> None:
    """Write what is appended to ``path`` from its current end on; reopen it when rotated."""
    handle, inode = _open_at_end(path)
    try:
        while not until():
            chunk = handle.read() if handle else b""
            if chunk:
                write(chunk.decode("utf-8", "replace"))
                continue
            time.sleep(poll)
            if _inode(path) != inode:  # a new editor start rotated it: read the new one whole
                if handle:
                    handle.close()
                handle, inode = _open(path), _inode(path)
    finally:
        if handle:
            handle.close()


def _open_at_end(path: Path) -> tuple[Optional[IO[bytes]], Optional[int]]:
    handle = _open(path)
    if handle:
        handle.seek(0, 2)
    return handle, _inode(path)


def _open(path: Path) -> Optional[IO[bytes]]:
    try:
        return path.open("rb")
    except FileNotFoundError:
        return None


def _inode(path: Path) -> Optional[int]:
    try:
        return path.stat().st_ino
    except FileNotFoundError:
        return None
