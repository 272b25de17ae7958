"""Stand-ins for the engine, shared by the runtime's unit tests."""

from __future__ import annotations

import json
import subprocess
import threading
from collections.abc import Sequence
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any, Optional

from runtime.container import Containers, ContainerState


class FakeContainers(Containers):
    """An engine with ``images`` (ref -> labels), answering ``docker info`` with ``info``.

    ``start`` runs ``command`` on the host instead of the container, so supervision,
    signals and output copying are exercised on a real process.
    """

    def __init__(
        self,
        info: Optional[dict[str, Any]] = None,
        images: Optional[dict[str, dict[str, str]]] = None,
        command: Sequence[str] = ("true",),
    ) -> None:
        super().__init__()
        self.recorded_info = info or {}
        self.images = images if images is not None else {}
        self.command_line = tuple(command)
        self.calls: list[tuple[str, ...]] = []
        self.process: Optional[subprocess.Popen[bytes]] = None

    def info(self) -> dict[str, Any]:
        return self.recorded_info

    def image_id(self, ref: str) -> Optional[str]:
        return f"sha256:{ref}" if ref in self.images else None

    def image_labels(self, ref: str) -> dict[str, str]:
        return self.images.get(ref, {})

    def state(self, name: str) -> Optional[ContainerState]:
        running = self.process is not None and self.process.poll() is None
        return ContainerState(name, running, "") if running else None

    def remove(self, name: str) -> None:
        self.calls.append(("rm", name))

    def stop(self, name: str, seconds: int) -> None:
        self.calls.append(("stop", name, str(seconds)))
        if self.process is not None:
            self.process.terminate()

    def start(self, run_argv: Sequence[str]) -> subprocess.Popen[bytes]:
        self.calls.append(("run", *run_argv))
        self.process = subprocess.Popen(self.command_line, stdout=subprocess.PIPE, stderr=subprocess.STDOUT)
        return self.process


class FakeIMDS:
    """A stand-in for the instance metadata service on ``host``: IMDSv2 tokens, a role.

    ``token=False`` refuses token requests (as the hop limit does for a container);
    ``v1=False`` requires a token (IMDSv2 only); ``role=""`` is an instance with no role.
    """

    TOKEN = "fake-token"
    # A whole set, as botocore's IMDS provider wants it (it ignores keys without a token
    # or an expiry), lasting far beyond its refresh windows.
    KEYS = {"AccessKeyId": "AKIAFAKEIMDS", "SecretAccessKey": "fake-imds-secret",  # noqa: RUF012
            "Token": "fake-imds-session", "Expiration": "2099-01-01T00:00:00Z"}  # fmt: skip

    def __init__(self, host: str = "127.0.0.1", role: str = "nb-role", token: bool = True, v1: bool = False):
        self.role, self.token, self.v1 = role, token, v1
        self.server = ThreadingHTTPServer((host, 0), self._handler())
        self.thread = threading.Thread(target=self.server.serve_forever, daemon=True)

    @property
    def url(self) -> str:
        """The endpoint, for AWS_EC2_METADATA_SERVICE_ENDPOINT."""
        host, port = self.server.server_address[:2]
        return f"http://{host!s}:{port}"

    def __enter__(self) -> FakeIMDS:
        self.thread.start()
        return self

    def __exit__(self, *exc: object) -> None:
        self.server.shutdown()
        self.server.server_close()

    def _handler(self) -> type[BaseHTTPRequestHandler]:
        imds = self

        class Handler(BaseHTTPRequestHandler):
            def do_PUT(self) -> None:
                self._answer(200 if imds.token and self.path == "/latest/api/token" else 403, imds.TOKEN)

            def do_GET(self) -> None:
                if not imds.v1 and self.headers.get("X-aws-ec2-metadata-token") != imds.TOKEN:
                    return self._answer(401, "")
                base = "/latest/meta-data/iam/security-credentials/"
                if self.path == base:
                    return self._answer(200 if imds.role else 404, imds.role)
                if imds.role and self.path == base + imds.role:
                    return self._answer(200, json.dumps(imds.KEYS))
                return self._answer(404, "")

            def _answer(self, status: int, body: str) -> None:
                self.send_response(status)
                self.send_header("Content-Length", str(len(body)))
                self.end_headers()
                self.wfile.write(body.encode())

            def log_message(self, *args: Any) -> None:
                pass

        return Handler
