"""The engine's memory while a cold full-image build exports its cache.

On Docker 26's docker driver with the containerd image store, this export once drove dockerd
past 12 GB (2026-12-04: gzip layers, code-server built in one step), which is why the cache
mode ``auto`` used to export nothing there. This measure is what lets ``auto`` mean ``max``:

- **ours**: the engine wiped, a fresh state folder, the full image built with
  ``SAGECODE_CACHE_MODE=max``; dockerd's and containerd's resident memory sampled every
  0.5 s, the peak of their sum kept;
- **baseline**: the same build with the cache export off.

A build whose engine passes ``--limit-gb`` is stopped (the bench fails) before the machine
swaps or the kernel kills dockerd.
"""

from __future__ import annotations

import subprocess
import tempfile
import threading
import time
from pathlib import Path

from bench.build import CODE_SERVER_ALL, build, versions
from bench.common import BenchError, Row, clean, say, wipe_engine

DAEMONS = ("dockerd", "containerd")
INTERVAL_S = 0.5


def rss_bytes(names: tuple[str, ...] = DAEMONS) -> int:
    """Resident memory of every process named in ``names``, summed."""
    total = 0
    for name in names:
        found = subprocess.run(["pgrep", "-x", name], capture_output=True, text=True, check=False)
        for pid in found.stdout.split():
            try:
                status = Path(f"/proc/{pid}/status").read_text()
            except OSError:
                continue  # it ended between pgrep and the read
            for line in status.splitlines():
                if line.startswith("VmRSS:"):
                    total += int(line.split()[1]) * 1024
    return total


class PeakSampler:
    """Samples the daemons' memory on a thread; stops the build past ``limit`` bytes."""

    def __init__(self, limit: int) -> None:
        self.limit = limit
        self.peak = 0
        self.over = False
        self._done = threading.Event()
        self._thread = threading.Thread(target=self._sample, daemon=True)

    def __enter__(self) -> PeakSampler:
        self._thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self._done.set()
        self._thread.join()

    def _sample(self) -> None:
        while not self._done.wait(INTERVAL_S):
            self.peak = max(self.peak, rss_bytes())
            if self.peak > self.limit and not self.over:
                self.over = True
                subprocess.run(["pkill", "-f", "buildx build"], check=False)


def one(version: str, cache: bool, limit: int) -> tuple[float, int]:
    """A cold full-image build on a wiped engine: seconds and the daemons' peak memory."""
    wipe_engine()
    state = Path(tempfile.mkdtemp(prefix="sagecode-bench-memory-", dir="/var/tmp"))
    try:
        with PeakSampler(limit) as sampler:
            try:
                seconds = build(state, CODE_SERVER_ALL, version, cache_mode="max" if cache else "off")
            except BenchError:
                if sampler.over:
                    raise BenchError(f"the engine passed {limit / 2**30:.0f} GB: build stopped") from None
                raise
        return seconds, sampler.peak
    finally:
        clean(state)


def bench(rounds: int, limit_gb: float) -> list[Row]:
    """``rounds`` cold full builds with the cache exported (mode=max), and without."""
    version = versions("code-server")[-1]
    limit = int(limit_gb * 2**30)
    ours: list[tuple[float, int]] = []
    base: list[tuple[float, int]] = []
    for n in range(rounds):
        for cache, runs in ((True, ours), (False, base)):
            runs.append(one(version, cache, limit))
            say(f"cold full build {n + 1}/{rounds}, cache export {'max' if cache else 'off'}: "
                f"{runs[-1][0]:.0f} s, engine peak {runs[-1][1] / 1e6:,.0f} MB")
    started = time.strftime("%Y-%m-%d")
    return [
        Row(f"engine peak memory (dockerd + containerd), cold full build, cache exported (max), {started}",
            [float(m) for _, m in ours], unit="B", baseline=[float(m) for _, m in base],
            target=f"no OOM (stopped past {limit_gb:g} GB)", met=True),
        Row("  the same build without the cache export", [float(m) for _, m in base], unit="B"),
        Row("  build time, cache exported (max)", [s for s, _ in ours], baseline=[s for s, _ in base]),
        Row("  build time without the cache export", [s for s, _ in base]),
    ]
