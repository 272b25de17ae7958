"""The host's AWS credentials inside the editor container, through the wrapper's relay (runtime.credrelay).

The host's only credential source is a fake IMDS on loopback: moto's server (which also
answers STS), or, for rotation, a small server here that issues new keys on demand. No
container can reach the host's loopback, which is the point: the relay is the only way
in. So the container resolves credentials through the SDK chain (botocore and the AWS
CLI v1, mounted in when the image has none) and the STS call with what it got is made
from the host against moto.
"""

from __future__ import annotations

import json
import os
import shutil
import subprocess
import sys
import tempfile
import threading
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any

import pytest

from imagebuild.manifest import Manifest
from runtime import credrelay
from tests.integration.conftest import need
from tests.integration.runtime_support import Launch, Sandbox, docker, free_port

pytest_plugins = ["tests.integration.runtime_fixtures"]
pytestmark = [pytest.mark.engine, pytest.mark.image]
SDK = "/opt/sagecode-test-sdk"  # where the container finds botocore and the AWS CLI
MOTO_KEYS = ("test-key", "test-secret-key", "test-session-token")  # what moto's IMDS issues
# botocore's chain, as any SDK client in the editor runs it: the container provider here.
WHO = (
    "import botocore.session; s = botocore.session.get_session(); c = s.get_credentials(); "
    "f = c.get_frozen_credentials(); print(c.method, f.access_key, f.secret_key, f.token)"
)
NO_TOKEN = (
    "import urllib.request as r, urllib.error as e, sys\n"
    "try: r.urlopen(sys.argv[1], timeout=5); print(200)\n"
    "except e.HTTPError as x: print(x.code)\n"
)


@pytest.fixture(scope="module")
def moto() -> Iterator[str]:
    """moto's server on 127.0.0.1: the host's IMDS and STS."""
    port = free_port()
    binary = Path(sys.executable).parent / "moto_server"
    need(binary.exists(), "moto[server] is not installed (the test extra)")
    process = subprocess.Popen([str(binary), "-H", "127.0.0.1", "-p", str(port)],
                               stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)  # fmt: skip
    url = f"http://127.0.0.1:{port}"
    deadline = time.monotonic() + 30
    while subprocess.run(["curl", "-sf", "-o", "/dev/null", f"{url}/latest/meta-data/"],
                         check=False).returncode:  # fmt: skip
        assert process.poll() is None, "moto_server exited"
        assert time.monotonic() < deadline, "moto_server did not answer"
        time.sleep(0.2)
    yield url
    process.terminate()
    process.wait(10)


class RotatingImds(BaseHTTPRequestHandler):
    """IMDSv2 with one role whose keys change when ``generation`` does, in eu-west-1."""

    generation = 1

    def do_PUT(self) -> None:
        self._send("imds-token")

    def do_GET(self) -> None:
        if self.headers.get("X-aws-ec2-metadata-token") != "imds-token":
            self._send("", 401)
        elif self.path == "/latest/meta-data/iam/security-credentials/":
            self._send("role")
        elif self.path == "/latest/meta-data/iam/security-credentials/role":
            expiry = datetime.now(timezone.utc) + timedelta(minutes=12)
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


@pytest.fixture
def rotating_imds() -> Iterator[str]:
    """The rotating fake IMDS on 127.0.0.1."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), RotatingImds)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    yield f"http://127.0.0.1:{server.server_address[1]}"
    server.shutdown()
    server.server_close()


@pytest.fixture(scope="module")
def container_sdk(editor_image: Manifest) -> Iterator[Path]:
    """botocore and the AWS CLI v1 for the container's python3 (pure Python, from PyPI)."""
    folder = Path(tempfile.mkdtemp(prefix="sagecode-test-sdk-", dir="/tmp"))
    # botocore and s3transfer named too: some indexes serve awscli wheels without its requirements
    packages = ["awscli", "botocore", "s3transfer"]
    pip = [sys.executable, "-m", "pip", "install", "-q", "--ignore-installed", "--target", str(folder)]
    done = subprocess.run([*pip, *packages], capture_output=True, text=True, check=False)
    need(done.returncode == 0, f"cannot install the AWS CLI v1 for the container: {done.stderr[-300:]}")
    folder.chmod(0o755)
    yield folder
    shutil.rmtree(folder, ignore_errors=True)


def launch(box: Sandbox, imds: str, sdk: Path, config: str = "/nonexistent") -> Launch:
    """The wrapper as JSP starts it, with ``imds`` as the host's credential source (and ``config``)."""
    plain = box.env
    extra = {
        "AWS_EC2_METADATA_SERVICE_ENDPOINT": imds,
        "AWS_CONFIG_FILE": config, "AWS_SHARED_CREDENTIALS_FILE": "/nonexistent",
        "SAGECODE_EXTRA_MOUNTS": f"{sdk}:{SDK}:ro",
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


def test_credentials_from_host_imds_reach_the_editor(
    sandbox: Sandbox, moto: str, container_sdk: Path
) -> None:
    """The SDK chain and the AWS CLI in the editor get moto's role credentials; STS accepts them."""
    launch(sandbox, moto, container_sdk)
    method, *keys = relayed(sandbox)
    assert method == "container-role"
    assert tuple(keys) == MOTO_KEYS
    cli = in_editor(sandbox, "python3", "-m", "awscli", "configure", "list")
    assert cli.returncode == 0, cli.stderr
    assert "container-role" in cli.stdout
    sts = subprocess.run(
        [sys.executable, "-c", "import boto3, sys; print(boto3.client('sts', endpoint_url=sys.argv[1], "
         "region_name='us-east-1').get_caller_identity()['Account'])", moto],
        env={**os.environ, "AWS_ACCESS_KEY_ID": keys[0], "AWS_SECRET_ACCESS_KEY": keys[1],
             "AWS_SESSION_TOKEN": keys[2]},
        capture_output=True, text=True, check=False,
    )  # fmt: skip
    assert sts.returncode == 0, sts.stderr
    assert sts.stdout.strip() == "123456789012"


def test_credentials_refresh_when_the_host_rotates_them(
    sandbox: Sandbox, rotating_imds: str, container_sdk: Path
) -> None:
    """New keys in the host's chain are what the editor gets next; the region is the IMDS placement's.

    The rotating source is a ``credential_process`` profile whose keys expire in 12 minutes
    (inside botocore's 15-minute refresh window, so each request refreshes). botocore's IMDS
    provider pushes a near expiry 12-20 minutes out before refreshing, so IMDS rotation would
    show only minutes later: the IMDS-only path is the test above.
    """
    keys = sandbox.root / "keys.json"
    script = sandbox.root / "creds.sh"
    script.write_text(f"#!/bin/sh\ncat {keys}\n")
    script.chmod(0o755)
    config = sandbox.root / "aws-config"
    config.write_text(f"[default]\ncredential_process = {script}\n")

    def rotate(generation: int) -> None:
        expiry = datetime.now(timezone.utc) + timedelta(minutes=12)
        keys.write_text(json.dumps({
            "Version": 1, "AccessKeyId": f"AKIAROTATE{generation}", "SecretAccessKey": f"secret{generation}",
            "SessionToken": f"token{generation}", "Expiration": expiry.strftime("%Y-%m-%dT%H:%M:%SZ"),
        }))  # fmt: skip

    rotate(1)
    launch(sandbox, rotating_imds, container_sdk, config=str(config))
    assert relayed(sandbox)[1] == "AKIAROTATE1"
    rotate(2)
    assert relayed(sandbox)[1:] == ["AKIAROTATE2", "secret2", "token2"]
    cli = in_editor(sandbox, "python3", "-m", "awscli", "configure", "list")
    assert "eu-west-1" in cli.stdout  # moto's IMDS answers botocore's placement request with a 500


def test_credentials_need_the_token(sandbox: Sandbox, moto: str, container_sdk: Path) -> None:
    """Without the token (even in the editor's network) the relay answers 401; from elsewhere nothing."""
    launch(sandbox, moto, container_sdk)
    relayed(sandbox)
    url = f"http://127.0.0.1:{credrelay.PORT}/credentials"
    assert in_editor(sandbox, "python3", "-c", NO_TOKEN, url).stdout.strip() == "401"
    image = json.loads(sandbox.docker("inspect", "--format", "{{json .Config.Image}}", sandbox.name).stdout)
    neighbour = docker("run", "--rm", "--network", f"container:{sandbox.name}", "--entrypoint", "python3",
                       image, "-c", NO_TOKEN, url)  # fmt: skip
    assert neighbour.stdout.strip() == "401", neighbour.stderr
    stranger = docker("run", "--rm", "--entrypoint", "python3", image, "-c", NO_TOKEN, url)
    assert stranger.returncode != 0  # another container's loopback has no forwarder at all
    assert "401" not in stranger.stdout


def test_credentials_never_in_inspect_logs_or_state(sandbox: Sandbox, moto: str, container_sdk: Path) -> None:
    """Neither the keys nor the relay's token appear in docker inspect, the logs or the volume."""
    started = launch(sandbox, moto, container_sdk)
    relayed(sandbox)
    folders = list((sandbox.state / "run").glob("credentials-*"))
    assert len(folders) == 1
    token = (folders[0] / credrelay.TOKEN_NAME).read_text()
    secrets = (*MOTO_KEYS[1:], token)
    inspect = sandbox.docker("inspect", sandbox.name).stdout
    assert "AWS_CONTAINER_CREDENTIALS_FULL_URI" in inspect
    assert not [s for s in secrets if s in inspect]
    logs = started.log() + "".join(p.read_text(errors="replace") for p in (sandbox.state / "logs").iterdir())
    assert "relaying the host's AWS credentials" in logs
    assert not [s for s in secrets if s in logs]
    stored = [p for p in sandbox.state.rglob("*") if p.is_file() and p.name != credrelay.TOKEN_NAME]
    assert not [p for p in stored if any(s.encode() in p.read_bytes() for s in MOTO_KEYS[1:])]
    started.stop()
    assert not folders[0].exists()  # the socket and the token go with the wrapper


def test_credentials_off_gives_the_editor_none(sandbox: Sandbox, moto: str, container_sdk: Path) -> None:
    """``SAGECODE_CREDENTIALS=off``: no relay, no credential variables in the container."""
    plain = sandbox.env
    sandbox.env = lambda: {**plain(), "SAGECODE_CREDENTIALS": "off"}  # type: ignore[method-assign]
    launch(sandbox, moto, container_sdk)
    env = sandbox.docker("exec", sandbox.name, "env").stdout
    assert "AWS_CONTAINER" not in env
    assert not list((sandbox.state / "run").glob("credentials-*"))


def test_credentials_reach_another_users_editor(
    user_sandbox: Sandbox, moto: str, container_sdk: Path
) -> None:
    """Run by a non-root account (rootful: the editor drops to it; rootless: container root is it)."""
    launch(user_sandbox, moto, container_sdk)
    method, *keys = relayed(user_sandbox)
    assert (method, *keys) == ("container-role", *MOTO_KEYS)
