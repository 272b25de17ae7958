"""The write-back thread that runs while an image loads."""

from __future__ import annotations

import threading
import time

import pytest

from imagebuild.writeback import written_back


def test_syncs_while_the_block_runs_and_stops_after() -> None:
    """sync is called every interval during the block, and never once it has ended."""
    calls: list[float] = []
    with written_back(0.05, lambda: calls.append(time.monotonic())):
        time.sleep(0.5)
    during = len(calls)
    time.sleep(0.2)
    assert during >= 5
    assert len(calls) == during


def test_the_block_does_not_wait_for_a_sync_in_flight() -> None:
    """A slow sync (a disk that is far behind) does not hold up the end of the block."""
    started = threading.Event()

    def slow_sync() -> None:
        started.set()
        time.sleep(2)

    begin = time.monotonic()
    with written_back(0.01, slow_sync):
        assert started.wait(1)
    assert time.monotonic() - begin < 1.5


def _failed_load() -> None:
    time.sleep(0.1)
    raise RuntimeError("load failed")


def test_an_error_in_the_block_still_stops_the_thread() -> None:
    """A load that fails ends the write-back too."""
    calls: list[int] = []
    with pytest.raises(RuntimeError), written_back(0.02, lambda: calls.append(1)):
        _failed_load()
    stopped = len(calls)
    time.sleep(0.1)
    assert len(calls) == stopped
