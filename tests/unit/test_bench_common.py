"""The benchmarks' model of a reboot: caches dropped, or a one-line error when they cannot be."""

from __future__ import annotations

import http.server
import logging
import socketserver
import subprocess
import threading
from pathlib import Path

import pytest

from bench import common
from runtime.args import CodeServerArgs
from runtime.waitpage import serving


def test_cold_caches_syncs_then_drops_every_cache(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr("bench.common.subprocess.run", lambda argv, **_: calls.append(argv))
    knob = tmp_path / "drop_caches"
    knob.write_text("0\n")
    monkeypatch.setattr(common, "DROP_CACHES", knob)
    common.cold_caches()
    assert calls == [["sync"]]
    assert knob.read_text() == "3\n"


def test_cold_caches_without_root_says_so(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr("bench.common.subprocess.run", lambda *a, **k: subprocess.CompletedProcess(a, 0))
    monkeypatch.setattr(common, "DROP_CACHES", tmp_path / "missing" / "drop_caches")
    with pytest.raises(common.BenchError, match="run the benchmarks as root"):
        common.cold_caches()


@pytest.fixture
def script(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """An empty docker-engine.sh where the benchmarks look for it (``run`` is faked)."""
    path = tmp_path / "docker-engine.sh"
    path.write_text("")
    monkeypatch.setattr(common, "ENGINE_SCRIPT", path)
    return path


@pytest.mark.parametrize(("base", "expected"), [
    (True, ["--base-image", common.BASE_IMAGE, "--wipe"]),
    (False, ["--wipe"]),  # a restarted instance's engine holds no base image either
])
def test_wipe_makes_the_base_image_only_when_asked(
    base: bool, expected: list[str], script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    monkeypatch.setattr(common, "run", lambda argv, **_: calls.append(argv))
    monkeypatch.setattr(common, "cold_caches", lambda: None)
    common.wipe_engine(base=base)
    assert calls == [["bash", str(script), *expected]]


def test_engine_script_runs_again_without_the_wipe_when_dockerd_is_not_ready(
    script: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    calls: list[list[str]] = []
    failures = 2

    def run(argv: list[str], **_: object) -> None:
        calls.append(argv)
        if len(calls) <= failures:
            raise common.BenchError("docker-engine: engine is up but buildx is missing")

    monkeypatch.setattr(common, "run", run)
    monkeypatch.setattr("bench.common.time.sleep", lambda _: None)
    common.engine_script("--wipe", base=None)
    assert calls == [["bash", str(script), "--wipe"], ["bash", str(script)], ["bash", str(script)]]
    calls.clear()
    failures = 3  # the third failure counts
    with pytest.raises(common.BenchError, match="engine is up"):
        common.engine_script(base=None)
    assert len(calls) == 3


def test_healthy_needs_a_200_on_the_socket_or_port(tmp_path: Path) -> None:
    """/healthz over a unix socket or a port: only code-server's 200 counts, not the waiting
    page's 503, and nothing listening is simply not ready."""
    class Ok(http.server.BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self.send_response(200 if self.path == "/healthz" else 404)
            self.end_headers()

        def log_message(self, *args: object) -> None:
            pass

    class UnixServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
        daemon_threads = True

    sock = tmp_path / "code-server.sock"
    assert not common.healthy(str(sock))
    with UnixServer(str(sock), Ok) as server:
        threading.Thread(target=server.serve_forever, daemon=True).start()
        assert common.healthy(str(sock))
        server.shutdown()
    with socketserver.TCPServer(("127.0.0.1", 0), Ok) as tcp:
        threading.Thread(target=tcp.serve_forever, daemon=True).start()
        assert common.healthy(int(tcp.server_address[1]))
        tcp.shutdown()
    waiting = tmp_path / "waiting.sock"
    with serving(CodeServerArgs(socket=str(waiting)), logging.getLogger("test")):
        assert not common.healthy(str(waiting))
