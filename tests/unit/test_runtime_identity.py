"""doctor's identity check: the STS probe script, its verdicts and its container (runtime.identity)."""

from __future__ import annotations

import datetime
import os
import subprocess
import sys
import threading
from collections.abc import Iterator
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from types import ModuleType
from typing import Any

import pytest
from botocore.auth import SigV4Auth
from botocore.awsrequest import AWSRequest
from botocore.credentials import Credentials

from runtime.checks import Level
from runtime.config import load_config
from runtime.credrelay import RelayMount
from runtime.engineinfo import EngineMode
from runtime.identity import PROBE, Identity, identity_check, not_applicable, parse_identity, probe_argv
from runtime.usermap import HostUser, UserMapping, drop_env
from tests.unit.layer_fixtures import load_script

KEYS = {"AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "s3cret/key", "Token": "session-tok"}
USER = HostUser(1000, 100, "ec2-user")
ARN = "arn:aws:sts::123456789012:assumed-role/nb-role/SageMaker"
XML = f"<R><Result><Arn>{ARN}</Arn><Account>123456789012</Account></Result></R>"
EXPIRED = b"<Error><Code>ExpiredToken</Code><Message>The token has expired</Message></Error>"


def probe_module() -> ModuleType:
    """files/sts_probe.py imported as a module."""
    return load_script(PROBE, "sts_probe")


def test_identity_probe_signs_as_botocore_does() -> None:
    """The stdlib SigV4 signature equals botocore's for the same request and time."""
    url = "http://172.17.0.1:5000/?Action=GetCallerIdentity&Version=2011-06-15"
    now = datetime.datetime(2026, 12, 4, 20, 0, 0, tzinfo=datetime.timezone.utc)
    ours = probe_module().sign(KEYS, url, "eu-west-1", now)
    stamp = now.strftime("%Y%m%dT%H%M%SZ")
    headers = {"X-Amz-Date": stamp, "X-Amz-Security-Token": KEYS["Token"]}
    request = AWSRequest(method="GET", url=url, headers=headers)
    request.context["timestamp"] = stamp
    keys = Credentials(KEYS["AccessKeyId"], KEYS["SecretAccessKey"], KEYS["Token"])
    auth = SigV4Auth(keys, "sts", "eu-west-1")
    signature = auth.signature(auth.string_to_sign(request, auth.canonical_request(request)), request)
    assert ours["Authorization"].endswith(f"Signature={signature}")
    assert "SignedHeaders=host;x-amz-date;x-amz-security-token" in ours["Authorization"]


class FakeAws(BaseHTTPRequestHandler):
    """Container credentials (token ``tok``) at /credentials; STS answers ``status`` elsewhere."""

    status = 200

    def do_GET(self) -> None:
        if self.path == "/credentials":
            ok = self.headers.get("Authorization") == "tok"
            body = (str(KEYS).replace("'", '"') if ok else "{}").encode()
            self._send(200 if ok else 401, body)
        elif "x-amz-security-token" not in self.headers.get("Authorization", ""):
            self._send(400, b"<Error><Code>Unsigned</Code></Error>")
        elif FakeAws.status == 200:
            self._send(200, XML.encode())
        else:
            self._send(403, EXPIRED)

    def _send(self, status: int, body: bytes) -> None:
        self.send_response(status)
        self.send_header("Content-Length", str(len(body)))
        self.end_headers()
        self.wfile.write(body)

    def log_message(self, format: str, *args: Any) -> None:
        """Quiet."""


@pytest.fixture
def aws(tmp_path: Path) -> Iterator[dict[str, str]]:
    """The probe's environment pointing at FakeAws for both the credentials and STS."""
    server = ThreadingHTTPServer(("127.0.0.1", 0), FakeAws)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    url = f"http://127.0.0.1:{server.server_address[1]}"
    (tmp_path / "token").write_text("tok\n")
    yield {
        "PATH": os.environ["PATH"],
        "AWS_CONTAINER_CREDENTIALS_FULL_URI": f"{url}/credentials",
        "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE": str(tmp_path / "token"),
        "AWS_ENDPOINT_URL_STS": url,
    }
    server.shutdown()
    server.server_close()
    FakeAws.status = 200


def run_probe(env: dict[str, str]) -> str:
    """The probe's line, run as a script the way the container runs it."""
    done = subprocess.run([sys.executable, "-I", "-c", PROBE.read_text()], env=env,
                          capture_output=True, text=True, timeout=30, check=False)  # fmt: skip
    return done.stdout.strip()


def test_identity_probe_prints_account_and_arn(aws: dict[str, str]) -> None:
    """Credentials from the provider, a signed call to the override endpoint: ``ok ACCOUNT ARN``."""
    assert run_probe(aws) == f"ok 123456789012 {ARN}"


def test_identity_probe_failures_are_one_line_without_secrets(aws: dict[str, str], tmp_path: Path) -> None:
    """A refusal names STS's code; a wrong token, no credentials; nothing prints a key."""
    FakeAws.status = 403
    refused = run_probe(aws)
    said = "(HTTP 403 ExpiredToken: The token has expired)"
    assert refused == f"fail STS at {aws['AWS_ENDPOINT_URL_STS']} refused them {said}"
    (tmp_path / "token").write_text("wrong")
    assert run_probe(aws).startswith("fail no credentials from the relay (HTTPError: HTTP Error 401")
    (tmp_path / "token").write_text("tok")
    closed = run_probe({**aws, "AWS_ENDPOINT_URL_STS": "http://127.0.0.1:9"})
    assert closed.startswith("fail cannot reach STS at http://127.0.0.1:9 (URLError")
    secrets = (KEYS["SecretAccessKey"], KEYS["Token"])
    assert not [line for line in (refused, closed) for secret in secrets if secret in line]


def test_identity_probe_endpoint_follows_the_region(monkeypatch: pytest.MonkeyPatch) -> None:
    """Without an override the region's own STS endpoint, China's suffix in cn- regions."""
    module = probe_module()
    for key in ("AWS_ENDPOINT_URL_STS", "AWS_ENDPOINT_URL"):
        monkeypatch.delenv(key, raising=False)
    assert module.endpoint("eu-west-1") == "https://sts.eu-west-1.amazonaws.com"
    assert module.endpoint("cn-north-1") == "https://sts.cn-north-1.amazonaws.com.cn"
    monkeypatch.setenv("AWS_ENDPOINT_URL", "http://vpce.example/")
    assert module.endpoint("eu-west-1") == "http://vpce.example"


def test_identity_check_lines() -> None:
    """OK names the ARN and account; each failure says what to do next."""
    ok = identity_check(parse_identity(f"ok 123456789012 {ARN}\n"))
    assert ok.level is Level.OK
    assert ok.detail == f"a container gets {ARN} (account 123456789012) through the relay"
    reason = "cannot reach STS at https://sts.x (URLError: timed out)"
    unreachable = identity_check(parse_identity(f"fail {reason}"))
    assert unreachable.level is Level.PROBLEM
    assert unreachable.detail == f"a container gets no identity: {reason}"
    assert "AWS_ENDPOINT_URL_STS" in unreachable.fix
    assert "IAM role" in identity_check(parse_identity("fail STS at x refused them (HTTP 403 ...)")).fix
    crashed = parse_identity("", "Traceback...\nOSError: exec format error\n")
    assert crashed == Identity(reason="OSError: exec format error")


def test_identity_not_checked_when_no_relay() -> None:
    """Off: a warning; host networking: OK, no relay needed; remap onto someone else: a problem."""
    config = load_config({"HOME": "/h"}, user=USER)
    off = load_config({"HOME": "/h", "SAGECODE_CREDENTIALS": "off"}, user=USER)
    host = load_config({"HOME": "/h", "SAGECODE_NETWORK": "host"}, user=USER)
    rootful = UserMapping(EngineMode.ROOTFUL, drop_env(USER), host_network=True, owner_uid=1000)
    assert not_applicable(off, rootful).level is Level.WARNING
    assert not_applicable(host, rootful).level is Level.OK
    foreign = not_applicable(config, UserMapping(EngineMode.REMAP, owner_uid=231072))
    assert foreign.level is Level.PROBLEM
    assert "uid 231072, not to you (uid 1000)" in foreign.detail


def test_identity_probe_argv_is_wired_like_the_editor(tmp_path: Path) -> None:
    """The editor's user, the relay's mounts and variables, the endpoint override; no token."""
    env = {"HOME": "/h", "AWS_ENDPOINT_URL_STS": "http://172.17.0.1:5000"}
    config = load_config(env, user=USER)
    mapping = UserMapping(EngineMode.ROOTFUL, drop_env(USER), host_network=True, owner_uid=1000)
    argv = probe_argv(config, mapping, "sagecode:x", RelayMount(tmp_path, "eu-west-1"), "probe")
    assert argv[:6] == ["run", "--rm", "--name", "probe", "--user", "1000:100"]
    assert "AWS_ENDPOINT_URL_STS=http://172.17.0.1:5000" in argv
    assert "AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE=/run/sagecode-credentials/token" in argv
    assert f"type=bind,source={tmp_path},target=/run/sagecode-credentials,readonly" in argv
    assert argv[argv.index("sagecode:x") - 2 :][:2] == ["--entrypoint", "sh"]
