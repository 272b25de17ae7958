"""The runtime's log files: rotation, copying, the last hook's log, tails and following."""

from __future__ import annotations

import io
import os
import threading
import time
from pathlib import Path

from imagebuild.paths import StatePaths
from runtime.hint import Phase, mark_setup
from runtime.logfiles import follow, hook_log, log_files, rotate, tail, tee


def test_rotate_keeps_one_previous(tmp_path: Path) -> None:
    """The current file becomes ``.1`` (replacing the older one); small files can be kept."""
    log = tmp_path / "editor.log"
    log.write_text("run 1\n")
    rotate(log)
    log.write_text("run 2\n")
    rotate(log)
    assert not log.exists()
    assert (tmp_path / "editor.log.1").read_text() == "run 2\n"
    log.write_text("short\n")
    rotate(log, over_bytes=100)
    assert log.read_text() == "short\n"
    rotate(tmp_path / "missing.log")


def test_tee_copies_every_line_to_every_sink() -> None:
    """Each sink gets the whole output; a closed sink does not stop the others."""
    closed, kept = io.BytesIO(), io.BytesIO()
    closed.close()
    tee(io.BytesIO(b"one\ntwo\nlast"), (closed, kept)).join(5)
    assert kept.getvalue() == b"one\ntwo\nlast"


def test_hook_log_prefers_the_recorded_one(tmp_path: Path) -> None:
    """The hook's log is the one named in run/setup-state, else the newest other log."""
    state = StatePaths(tmp_path)
    state.logs.mkdir()
    old, new = state.logs / "on-start.log", state.logs / "restore.log"
    old.write_text("a\n")
    new.write_text("b\n")
    os.utime(old, (1, 1))
    (state.logs / "editor.log").write_text("c\n")
    assert hook_log(state) == new
    mark_setup(state, Phase.RUNNING, old)
    assert hook_log(state) == old


def test_log_files_in_story_order(tmp_path: Path) -> None:
    """``sagecode logs`` shows the hook's, then the wrapper's, then the editor's."""
    state = StatePaths(tmp_path)
    state.logs.mkdir()
    for name in ("editor.log", "wrapper.log", "on-create.log"):
        (state.logs / name).write_text(name)
    assert [p.name for p in log_files(state)] == ["on-create.log", "wrapper.log", "editor.log"]


def test_tail_returns_the_last_lines(tmp_path: Path) -> None:
    """The last N lines, undecodable bytes replaced."""
    log = tmp_path / "x.log"
    log.write_bytes(b"".join(f"line {i}\n".encode() for i in range(100)) + b"bad \xff\n")
    assert tail(log, 2) == ["line 99", "bad \ufffd"]
    assert tail(log, 0) == []


def test_follow_prints_appended_text_and_survives_rotation(tmp_path: Path) -> None:
    """Following starts at the end, prints what is appended, and picks up a rotated file."""
    log = tmp_path / "editor.log"
    log.write_text("before\n")
    seen: list[str] = []
    done = threading.Event()
    runner = threading.Thread(target=follow, args=(log, seen.append, 0.05, done.is_set))
    runner.start()
    time.sleep(0.2)
    with log.open("a") as out:
        out.write("appended\n")
    time.sleep(0.2)
    rotate(log)
    log.write_text("new run\n")
    time.sleep(0.3)
    done.set()
    runner.join(5)
    assert "".join(seen) == "appended\nnew run\n"
