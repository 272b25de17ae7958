"""The relay's HTTP server on a unix socket: credentials for requests bearing the launch's token.

Kept apart from ``runtime.credrelay`` because ``http.server`` costs about 20 ms of imports,
which only a launch that relays credentials should pay.
"""

from __future__ import annotations

import hmac
import json
import socketserver
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any, Callable


class _Handler(BaseHTTPRequestHandler):
    server: CredentialServer

    def do_GET(self) -> None:
        given = self.headers.get("Authorization", "")
        if not hmac.compare_digest(given.encode(), self.server.token.encode()):
            self._send(401, {"message": "a valid Authorization token is required"})
            return
        try:
            self._send(200, self.server.source())
        except Exception:  # any SDK failure: the client retries, the relay keeps serving
            self._send(503, {"message": "the host has no credentials right now"})

    def _send(self, status: int, body: dict[str, str]) -> None:
        data = json.dumps(body).encode()
        self.send_response(status)
        self.send_header("Content-Type", "application/json")
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Silent: a request line is harmless, but nothing here should ever reach a log."""


class CredentialServer(socketserver.ThreadingMixIn, socketserver.UnixStreamServer):
    """Serves ``source()`` as JSON to requests whose ``Authorization`` is ``token``, 401 otherwise."""

    daemon_threads = True

    def __init__(self, path: Path, token: str, source: Callable[[], dict[str, str]]) -> None:
        self.token = token
        self.source = source
        super().__init__(str(path), _Handler)
