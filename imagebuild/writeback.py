"""Write an image's files to disk while the engine is still busy making them.

A ``docker load`` leaves much of what it wrote in the page cache, dirty. The first container
created after it then waits in the engine's first fsync until the disk has caught up: 0.9 s
here after the full image, before code-server can even start. The load itself is bound by
the CPU (decompressing, hashing, one layer after another), so the disk has time to spare
while it runs: a thread asks the kernel to write back (sync(2)) every half second until the
load ends. The load took 0.2 s longer and the first container was created in 0.02 s instead
of 0.9 s (docs/PERFORMANCE.md).
"""

from __future__ import annotations

import os
import threading
from collections.abc import Iterator
from contextlib import contextmanager
from typing import Callable

INTERVAL_S = 0.5


@contextmanager
def written_back(interval: float = INTERVAL_S, sync: Callable[[], None] = os.sync) -> Iterator[None]:
    """Call ``sync`` every ``interval`` seconds until the block ends.

    The block never waits for the thread: a sync in flight when it ends finishes on its own.
    """
    done = threading.Event()

    def loop() -> None:
        while not done.wait(interval):
            sync()

    threading.Thread(target=loop, name="sagecode-writeback", daemon=True).start()
    try:
        yield
    finally:
        done.set()
