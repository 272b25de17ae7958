"""Stands in for a missing code-server wrapper: says what is missing, then hands over.

jupyter-server-proxy restarts a failing command at once, with no pause, until its
readiness timeout, and then shows only a 500. So this does not exit: it logs one line,
and answers every request (any answer counts as ready) with a page that names the
missing wrapper and how to provide it. Once the wrapper exists, the next request gets a
page that reloads itself when the editor answers, and this process becomes the wrapper
(``exec``: same pid, same address), so the proxy that supervises it needs no restart.

Run as a script (``python -I placeholder.py``): standard library only.
"""

from __future__ import annotations

import argparse
import html
import os
import socketserver
import sys
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, HTTPServer
from pathlib import Path
from typing import NoReturn, Optional, Union, cast

STARTING_PAGE = """<!doctype html>
<meta charset="utf-8"><title>Code Server is starting</title>
<p>The code-server wrapper is installed now and starting. This page reloads when it answers.</p>
<script>
  let tries = 0;
  const timer = setInterval(() => {
    if (++tries > 300) clearInterval(timer);  // stop after 10 minutes: polls count as activity
    fetch(location.href).then((r) => { if (r.status < 500) location.reload(); });
  }, 2000);
</script>
"""


def main(argv: Optional[Sequence[str]] = None) -> NoReturn:
    """Serve the explanation until the wrapper exists, then become the wrapper."""
    argv = list(sys.argv[1:] if argv is None else argv)
    split = argv.index("--") if "--" in argv else len(argv)
    ours = argparse.ArgumentParser(prog="sagecode-placeholder")
    ours.add_argument("--wrapper", type=Path, required=True)
    ours.add_argument("--origin", default="the default")
    options = ours.parse_args(argv[:split])
    wrapper_args = argv[split + 1 :]
    if not found(options.wrapper):
        message = missing_message(options.wrapper, options.origin)
        print(f"sagecode: {message}", file=sys.stderr, flush=True)
        serve_until_found(listen(wrapper_args, options.wrapper, message))
    # The same argv the proxy would have given the wrapper; exec keeps the pid it supervises.
    os.execv(options.wrapper, [str(options.wrapper), *wrapper_args])  # noqa: S606


def missing_message(wrapper: Path, origin: str) -> str:
    """Where the wrapper was looked for and what to do about it, on one line."""
    return (
        f"the code-server wrapper {wrapper} does not exist (path from {origin}). "
        "Install sagecode on this instance (its venv provides the wrapper), or set "
        "SAGECODE_WRAPPER for the Jupyter server to the wrapper's path; then reload Code Server."
    )


def found(wrapper: Path) -> bool:
    """Whether the wrapper can be run now."""
    return wrapper.is_file() and os.access(wrapper, os.X_OK)


class Placeholder:
    """What the request handler reads: set once, then per request whether to hand over."""

    wrapper: Path
    missing_page: str
    socket_path: Optional[Path] = None  # freed for the wrapper before the hand-over
    handed_over = False


class TcpPlaceholder(Placeholder, HTTPServer):
    """The placeholder on ``--bind-addr``."""


class UnixPlaceholder(Placeholder, socketserver.UnixStreamServer):
    """The placeholder on ``--socket``."""


Server = Union[TcpPlaceholder, UnixPlaceholder]


def listen(wrapper_args: Sequence[str], wrapper: Path, message: str) -> Server:
    """A server on the address the proxy gave the wrapper (``--socket`` or ``--bind-addr``)."""
    address = argparse.ArgumentParser(add_help=False)
    address.add_argument("--socket")
    address.add_argument("--bind-addr", default="127.0.0.1:8080")
    known, _ = address.parse_known_args(wrapper_args)
    server: Server
    if known.socket:
        # Left by an earlier run of this command that the proxy restarted.
        Path(known.socket).unlink(missing_ok=True)
        server = UnixPlaceholder(known.socket, Handler)
        server.socket_path = Path(known.socket)
    else:
        host, _, port = known.bind_addr.rpartition(":")
        server = TcpPlaceholder((host.strip("[]"), int(port)), Handler)
    server.wrapper = wrapper
    server.missing_page = page(message)
    return server


def serve_until_found(server: Server) -> None:
    """Answer requests until one comes after the wrapper appeared, then free the address."""
    while not server.handed_over:
        server.handle_request()
    server.server_close()
    if server.socket_path:
        server.socket_path.unlink(missing_ok=True)


def page(message: str) -> str:
    """The HTML page that explains the missing wrapper."""
    return (
        '<!doctype html>\n<meta charset="utf-8"><title>Code Server is not installed</title>\n'
        f"<h1>Code Server is not installed</h1>\n<p>{html.escape(message)}</p>\n"
    )


class Handler(BaseHTTPRequestHandler):
    """Answers 503 with the explanation, or with the starting page once the wrapper exists."""

    def do_GET(self) -> None:
        """Answer one request."""
        state = cast(Placeholder, self.server)
        state.handed_over = found(state.wrapper)
        body = (STARTING_PAGE if state.handed_over else state.missing_page).encode("utf-8")
        self.send_response(503)
        self.send_header("Content-Type", "text/html; charset=utf-8")
        self.send_header("Content-Length", str(len(body)))
        self.send_header("Cache-Control", "no-store")
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: object) -> None:
        """Stay quiet: the one line at start is the log; one per request would flood it."""


if __name__ == "__main__":
    main()
