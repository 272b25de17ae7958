"""Helpers for the credential relay's integration tests (the fixtures: ``credential_fixtures``).

The host's only credential source is a fake IMDS on 127.0.0.1 (moto's server, or a small
rotating one here): no container reaches the host's loopback, so the relay is the only
way in. STS is a second moto server bound to the default bridge's gateway address, the one
host address containers reach (test-only: the product publishes nothing beyond loopback).
botocore, boto3 and the AWS CLI v1 are mounted into the editor from PyPI wheels, since the
test image may have no AWS CLI.
"""

from __future__ import annotations

import json
import subprocess
import time
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler
from pathlib import Path
from typing import Any

from tests.integration.runtime_support import Launch, Sandbox, docker

SDK = "/opt/sagecode-test-sdk"  # where the container finds botocore, boto3 and the AWS CLI
MOTO_KEYS = ("test-key", "test-secret-key", "test-session-token")  # what moto's IMDS issues
MOTO_ACCOUNT = "123456789012"
# botocore's chain, as any SDK client in the editor runs it: the container provider here.
WHO = (
    "import botocore.session; s = botocore.session.get_session(); c = s.get_credentials(); "
    "f = c.get_frozen_credentials(); print(c.method, f.access_key, f.secret_key, f.token)"
)
# boto3 with no endpoint argument: AWS_ENDPOINT_URL_STS (passed through by the wrapper) decides.
BOTO3_ACCOUNT = "import boto3; print(boto3.client('sts').get_caller_identity()['Account'])"


def bridge_gateway(host: str = "") -> str:
    """The host's address on the default bridge, where containers reach it."""
    found = docker("network", "inspect", "bridge", "-f", "{{(index .IPAM.Config 0).Gateway}}", host=host)
    return found.stdout.strip()


def outward_address() -> str:
    """The host's address on its default route: what a rootless engine's containers reach the
    host at (its slirp4netns NAT leaves the host's loopback and docker0 out of reach)."""
    route = subprocess.run(["ip", "-4", "route", "get", "192.0.2.1"], capture_output=True, text=True,
                           check=True).stdout.split()  # fmt: skip
    return route[route.index("src") + 1]


class RotatingImds(BaseHTTPRequestHandler):
    """IMDSv2 with one role whose keys change with ``generation`` and expire ``lifetime`` ahead."""

    generation = 1
    lifetime = timedelta(minutes=30)  # past botocore's 17-25 minute expiry extension for IMDS

    def do_PUT(self) -> None:
        self._send("imds-token")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
            self._send("", 401)
        elif self.path == "/latest/meta-data/iam/security-credentials/":
            self._send("role")
        elif self.path == "/latest/meta-data/iam/security-credentials/role":
            expiry = datetime.now(timezone.utc) + self.lifetime
            self._send(json.dumps({
                "Code": "Success", "Type": "AWS-HMAC", "AccessKeyId": f"AKIAROTATE{self.generation}",
                "SecretAccessKey": f"secret{self.generation}", "Token": f"token{self.generation}",
                "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"), "LastUpdated": "2026-01-01T00:00:00Z",
            }))  # fmt: skip
        elif self.path.rstrip("/") == "/latest/meta-data/placement/availability-zone":
            self._send("eu-west-1b")
        else:
            self._send("", 404)

    def _send(self, body: str, status: int = 200) -> None:
        data = body.encode()
        self.send_response(status)
        self.send_header("Content-Length", str(len(data)))
        self.end_headers()
        self.wfile.write(data)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


def launch(box: Sandbox, imds: str, sdk: Path, **env: str) -> Launch:
    """The wrapper as JSP starts it, with ``imds`` as the host's only credential source (and ``env``)."""
    plain = box.env
    extra = {
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds,
        "AWS_CONFIG_FILE": "/nonexistent", "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "SAGECODE_EXTRA_MOUNTS": f"{sdk}:{SDK}:ro", **env,
    }  # fmt: skip
    box.env = lambda: {**plain(), **extra}  # type: ignore[method-assign]
    started = box.launch_tcp()
    started.wait_ready()
    return started


def in_editor(box: Sandbox, *argv: str) -> subprocess.CompletedProcess[str]:
    """Run ``argv`` in the editor container as its user sees it (its environment, the SDK on the path)."""
    return box.docker("exec", "-e", f"PYTHONPATH={SDK}", box.name, *argv)


def relayed(box: Sandbox, timeout: float = 30) -> list[str]:
    """The credentials the SDK chain resolves in the editor: method, key, secret, token."""
    deadline = time.monotonic() + timeout
    while True:  # the forwarder starts a moment after the container
        done = in_editor(box, "python3", "-c", WHO)
        if done.returncode == 0 or time.monotonic() > deadline:
            assert done.returncode == 0, done.stderr
            return done.stdout.split()
        time.sleep(0.5)


def accounts_in_editor(box: Sandbox, sts: str) -> tuple[str, str]:
    """The account STS names for the editor's credentials: through the AWS CLI, then boto3."""
    cli = in_editor(box, "python3", "-m", "awscli", "sts", "get-caller-identity", "--endpoint-url", sts,
                    "--query", "Account", "--output", "text")  # fmt: skip
    assert cli.returncode == 0, cli.stderr
    sdk = in_editor(box, "python3", "-c", BOTO3_ACCOUNT)
    assert sdk.returncode == 0, sdk.stderr
    return cli.stdout.strip(), sdk.stdout.strip()
