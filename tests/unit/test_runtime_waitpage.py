"""The page the editor's address answers with while the image is restored (runtime.waitpage)."""

from __future__ import annotations

import http.client
import logging
import socket
import subprocess
import threading
import time
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from bench.common import UnixHTTPConnection
from imagebuild.errors import StoreError
from runtime import waitpage
from runtime.args import BindAddr, CodeServerArgs
from runtime.images import select_image
from runtime.waitpage import PAGE, serving
from tests.unit.runtime_fakes import FakeContainers
from tests.unit.test_runtime_images import CURRENT, config

LOG = logging.getLogger("test")


def ask(connection: http.client.HTTPConnection, method: str = "GET", path: str = "/"
        ) -> http.client.HTTPResponse:  # fmt: skip
    connection.request(method, path)
    return connection.getresponse()


def free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def test_socket_answers_503_with_the_page_then_is_gone(tmp_path: Path) -> None:
    """Any path, any method: 503 and the page; after the block the socket file is removed."""
    path = tmp_path / "socket"
    with serving(CodeServerArgs(socket=str(path)), LOG) as server:
        assert server is not None
        answer = ask(UnixHTTPConnection(path), "GET", "/healthz")
        assert (answer.status, answer.read()) == (503, PAGE)
        assert answer.getheader("Cache-Control") == "no-store"
        assert ask(UnixHTTPConnection(path), "POST", "/vscode-remote-resource").status == 503
        head = ask(UnixHTTPConnection(path), "HEAD")
        assert (head.status, head.read()) == (503, b"")
        assert oct(path.stat().st_mode & 0o777) == "0o600"  # code-server's mode here too
    assert not path.exists()  # code-server binds it next


def test_socket_mode_asked_for_is_kept(tmp_path: Path) -> None:
    path = tmp_path / "socket"
    with serving(CodeServerArgs(socket=str(path), socket_mode="660"), LOG):
        assert oct(path.stat().st_mode & 0o777) == "0o660"


def test_stale_socket_is_replaced(tmp_path: Path) -> None:
    """A socket file left behind (the placeholder that became the wrapper) is bound again."""
    path = tmp_path / "socket"
    stale = socket.socket(socket.AF_UNIX)
    stale.bind(str(path))
    stale.close()
    with serving(CodeServerArgs(socket=str(path)), LOG) as server:
        assert server is not None
        assert ask(UnixHTTPConnection(path)).status == 503


def test_a_file_that_is_no_socket_is_left_alone(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """Never deletes what is not a socket: the launch goes on without the page, and says so."""
    path = tmp_path / "notes.txt"
    path.write_text("mine\n")
    with serving(CodeServerArgs(socket=str(path)), LOG) as server:
        assert server is None
    assert path.read_text() == "mine\n"
    assert "cannot answer on the editor's address while restoring" in caplog.text


def test_port_answers_on_loopback_then_is_free_for_the_engine(tmp_path: Path) -> None:
    """Whatever host --bind-addr names, only 127.0.0.1 is bound; the port is free afterwards."""
    port = free_port()
    with serving(CodeServerArgs(bind=BindAddr("0.0.0.0", port)), LOG) as server:
        assert server is not None
        assert server.server_address == ("127.0.0.1", port)
        answer = ask(http.client.HTTPConnection("127.0.0.1", port, timeout=5))
        assert (answer.status, answer.read()) == (503, PAGE)
    with socket.socket() as again:  # docker-proxy's bind, as SO_REUSEADDR does it
        again.setsockopt(socket.SOL_SOCKET, socket.SO_REUSEADDR, 1)
        again.bind(("127.0.0.1", port))


def test_a_port_in_use_means_no_page(caplog: pytest.LogCaptureFixture) -> None:
    with socket.socket() as taken:
        taken.bind(("127.0.0.1", 0))
        taken.listen()
        args = CodeServerArgs(bind=BindAddr("127.0.0.1", taken.getsockname()[1]))
        with serving(args, LOG) as server:
            assert server is None
    assert "cannot answer" in caplog.text


def test_the_page_is_up_only_while_the_image_is_restored(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """select_image enters ``waiting`` around the restore, and not when the image is there."""
    conf, engine = config(tmp_path), FakeContainers()
    entered: list[str] = []

    class Waiting:
        def __enter__(self) -> None:
            entered.append("in")

        def __exit__(self, *exc: object) -> None:
            entered.append("out")

    def restore(command: Sequence[str], **kwargs: Any) -> None:
        assert entered == ["in"]
        engine.images[CURRENT.image] = {}

    monkeypatch.setattr(subprocess, "run", restore)
    select_image(conf, engine, LOG, Waiting)
    assert entered == ["in", "out"]
    select_image(conf, engine, LOG, Waiting)  # present now: no page
    assert entered == ["in", "out"]


def test_a_socket_made_since_by_another_launch_is_not_removed(tmp_path: Path) -> None:
    """A launch that took the path over (the proxy started the wrapper again) keeps its socket."""
    path = tmp_path / "socket"
    with serving(CodeServerArgs(socket=str(path)), LOG):
        path.unlink()
        newer = socket.socket(socket.AF_UNIX)
        newer.bind(str(path))
    try:
        assert path.exists()
    finally:
        newer.close()


def test_a_failed_restore_is_served_for_a_moment_with_its_reason(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The waiting page's next poll finds a 500 marked as the failure, with the error and its fix."""
    monkeypatch.setattr(waitpage, "FAILURE_SECONDS", 1.0)
    path = tmp_path / "socket"
    seen: list[tuple[int, Optional[str], bytes]] = []

    def poll() -> None:
        time.sleep(0.1)
        answer = ask(UnixHTTPConnection(path))
        seen.append((answer.status, answer.getheader("X-Sagecode-Failed"), answer.read()))

    def restore() -> None:
        with serving(CodeServerArgs(socket=str(path)), LOG):
            threading.Thread(target=poll).start()
            raise StoreError("sagecode:abc could not be restored", "see <logs>")

    with pytest.raises(StoreError):
        restore()
    [(status, marker, body)] = seen
    assert (status, marker) == (500, "1")
    assert b"could not be restored" in body
    assert b"see &lt;logs&gt;" in body  # escaped
    assert not path.exists()
