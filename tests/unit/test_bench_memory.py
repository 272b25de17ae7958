"""The memory bench's sampler: real processes' resident memory, and the stop past a limit."""

from __future__ import annotations

import subprocess
import sys
import time

import pytest

from bench import memory


def test_rss_bytes_sums_the_named_processes() -> None:
    """A python process holding 64 MB is counted by name; an absent name counts 0."""
    name = "sagecode-rss"
    code = ("import time; b = bytearray(64 << 20); "
            f"open('/proc/self/comm', 'w').write({name!r}); time.sleep(30)")
    holder = subprocess.Popen([sys.executable, "-c", code])
    try:
        deadline = time.monotonic() + 10
        while memory.rss_bytes((name,)) < 64 << 20 and time.monotonic() < deadline:
            time.sleep(0.1)
        assert memory.rss_bytes((name,)) >= 64 << 20
    finally:
        holder.kill()
        holder.wait()
    assert memory.rss_bytes(("no-such-process-here",)) == 0


def test_sampler_marks_a_build_over_the_limit(monkeypatch: pytest.MonkeyPatch) -> None:
    """Past the limit the sampler records it (and stops builds, here a fake pkill)."""
    calls: list[list[str]] = []
    monkeypatch.setattr(memory, "rss_bytes", lambda names=memory.DAEMONS: 5 << 30)
    monkeypatch.setattr(memory, "INTERVAL_S", 0.01)
    monkeypatch.setattr("bench.memory.subprocess.run", lambda argv, **kw: calls.append(argv))
    with memory.PeakSampler(4 << 30) as sampler:
        time.sleep(0.2)
    assert sampler.over
    assert sampler.peak == 5 << 30
    assert calls == [["pkill", "-f", "buildx build"]]
