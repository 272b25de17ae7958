"""While the image is restored, the editor's address answers with a page that waits for it.

jupyter-server-proxy asks the address whether it is ready after 0.01 s, then waits twice
as long after each miss (simpervisor's back-off: 0.02 s, 0.04 s, ... 5.12 s, 10.24 s):
an editor that answers 11 s after the launch is seen at 20.5 s, one that answers after
21 s at 41 s. Any answer counts as ready, so while the saved image is restored the
wrapper answers every request itself: 503, and a page that says what is happening and
reloads itself as soon as the editor answers. The proxy is ready at once, and the user
waits for the restore, not for the back-off.

The address is closed (the socket file removed) before the container starts and
listens on it; the page's polls in between get the proxy's own error and poll again.
If the restore fails, the address answers for a moment more with a page that says why
(500, ``X-Sagecode-Failed``), which the waiting page's next poll loads; the proxy then
starts the wrapper again, as after any failed launch. Only loopback or the proxy's
private socket is ever bound; if the address cannot be bound, the launch goes on without
the page.
"""

from __future__ import annotations

import contextlib
import html
import logging
import os
import socketserver
import stat
import threading
import time
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Optional, Union

from imagebuild.errors import SagecodeError
from runtime.args import CodeServerArgs
from runtime.plan import DEFAULT_SOCKET_MODE, PUBLISH_HOST, listen_port

PAGE = b"""<!doctype html>
<meta charset="utf-8"><title>Code Server is starting</title>
<p id="what">Code Server is starting: its image is being restored from the notebook's volume,
as after every restart of the instance (usually 10 to 30 seconds). This page opens the
editor as soon as it answers.</p>
<script>
  let polls = 0;
  const timer = setInterval(() => {
    if (++polls > 1200) {  // 10 minutes: polls count as activity, so they stop
      clearInterval(timer);
      document.getElementById("what").textContent = "Code Server has not answered in 10 " +
        "minutes. In a terminal, sagecode status and sagecode logs say why; reload this " +
        "page to wait again.";
      return;
    }
    fetch(location.href, {cache: "no-store"})
      .then((r) => { if (r.status < 500 || r.headers.get("X-Sagecode-Failed")) location.reload(); })
      .catch(() => {});
  }, 500);
</script>
"""
FAILED_PAGE = """<!doctype html>
<meta charset="utf-8"><title>Code Server could not start</title>
<p>Code Server could not start: {what}.</p>
{fix}<p>In a terminal, sagecode logs shows what happened. Reload this page to try again.</p>
"""
RETRY_AFTER = "1"
# After a failed restore the failure is served this long, so the page's next poll (every
# 0.5 s) finds it; the wrapper paces its exit longer than that anyway (MIN_LIFETIME).
FAILURE_SECONDS = 2.0
POLL = 0.02  # how soon the server notices it is to stop: the restore waits that long at most


class _Handler(BaseHTTPRequestHandler):
    """503 and the waiting page (500 and the failure once the restore failed), for any request."""

    protocol_version = "HTTP/1.0"  # one request per connection: nothing lingers at close

    def _answer(self, body: bool = True) -> None:
        failure: Optional[bytes] = getattr(self.server, "failure", None)
        page = failure or PAGE
        self.send_response(500 if failure else 503)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(page)))
        self.send_header("Cache-Control", "no-store")
        if failure:
            self.send_header("X-Sagecode-Failed", "1")
        else:
            self.send_header("Retry-After", RETRY_AFTER)
        self.end_headers()
        if body:
            self.wfile.write(page)

    def do_HEAD(self) -> None:
        self._answer(body=False)

    do_GET = do_POST = do_PUT = do_PATCH = do_DELETE = do_OPTIONS = _answer  # noqa: N815

    def log_message(self, format: str, *args: object) -> None:
        """Requests are not logged: the wrapper's log says the page is up."""


class _Serving(socketserver.ThreadingMixIn):
    daemon_threads = True
    failure: Optional[bytes] = None  # the page that says why the restore failed


class _UnixServer(_Serving, socketserver.UnixStreamServer):
    inode = 0  # of the socket file this server made: only that one is removed at the end


class _LoopbackServer(_Serving, socketserver.TCPServer):
    allow_reuse_address = True  # the engine's proxy binds the port next, TIME_WAIT or not


Server = Union[_UnixServer, _LoopbackServer]


def bind(args: CodeServerArgs) -> Server:
    """A server on the address the proxy gave the wrapper; ``OSError`` if it cannot be bound."""
    if args.socket:
        path = Path(args.socket)
        with contextlib.suppress(FileNotFoundError):
            if not stat.S_ISSOCK(path.lstat().st_mode):
                raise FileExistsError(f"{path} exists and is not a socket")
            path.unlink()  # left by the placeholder that became this wrapper, or a killed launch
        unix = _UnixServer(str(path), _Handler)
        unix.inode = path.lstat().st_ino
        path.chmod(int(args.socket_mode or DEFAULT_SOCKET_MODE, 8))
        return unix
    return _LoopbackServer((PUBLISH_HOST, listen_port(args)), _Handler)


def close(server: Server) -> None:
    """Stop answering and free the address for the editor."""
    server.shutdown()
    server.server_close()
    if isinstance(server, _UnixServer):
        path = Path(os.fsdecode(server.server_address))  # type: ignore[arg-type] # a path for AF_UNIX
        with contextlib.suppress(FileNotFoundError):
            if path.lstat().st_ino == server.inode:  # not a socket another launch made since
                path.unlink()


@contextlib.contextmanager
def serving(args: CodeServerArgs, log: logging.Logger) -> Iterator[Optional[Server]]:
    """The page on the editor's address for the ``with`` block; None if it could not be bound."""
    try:
        server = bind(args)
    except (OSError, ValueError) as exc:
        log.warning("cannot answer on the editor's address while restoring: %s", exc)
        yield None
        return
    thread = threading.Thread(target=server.serve_forever, kwargs={"poll_interval": POLL}, daemon=True)
    thread.start()
    log.info("answering on the editor's address with a page that waits for the restore")
    try:
        yield server
    except SagecodeError as exc:
        server.failure = failed_page(exc)
        time.sleep(FAILURE_SECONDS)
        raise
    finally:
        close(server)
        thread.join(5)


def failed_page(error: SagecodeError) -> bytes:
    """What the page shows when the restore failed: the error's one line and its fix."""
    fix = f"<p>What to do: {html.escape(error.fix)}.</p>\n" if error.fix else ""
    return FAILED_PAGE.format(what=html.escape(error.what), fix=fix).encode()
