"""Advisory file locks, so two builds (or a build and a restore) never overlap."""

from __future__ import annotations

import contextlib
import fcntl
import os
import time
from collections.abc import Iterator
from pathlib import Path
from typing import Callable, Optional

from imagebuild.errors import SagecodeError


@contextlib.contextmanager
def exclusive(
    path: Path, timeout_s: float, on_wait: Optional[Callable[[], None]] = None
) -> Iterator[None]:
    """Hold an exclusive lock on ``path``; wait up to ``timeout_s`` for another holder."""
    path.parent.mkdir(parents=True, exist_ok=True)
    fd = os.open(path, os.O_RDWR | os.O_CREAT, 0o600)
    try:
        _acquire(fd, path, timeout_s, on_wait)
        yield
    finally:
        os.close(fd)


def _acquire(fd: int, path: Path, timeout_s: float, on_wait: Optional[Callable[[], None]]) -> None:
    deadline = time.monotonic() + timeout_s
    told = False
    while True:
        try:
            fcntl.flock(fd, fcntl.LOCK_EX | fcntl.LOCK_NB)
        except BlockingIOError:
            if time.monotonic() >= deadline:
                raise SagecodeError(
                    f"another sagecode process holds {path}",
                    "wait for it to finish (see `sagecode status`), then retry",
                ) from None
            if on_wait and not told:
                on_wait()
                told = True
            time.sleep(0.2)
        else:
            return
