"""The credential relay in the wrapper and its forwarder, with no engine (runtime.credrelay)."""

from __future__ import annotations

import http.client
import json
import logging
import socket
import stat
import subprocess
import sys
import time
from collections.abc import Iterator
from datetime import datetime, timedelta, timezone
from pathlib import Path
from typing import Any, Optional

import pytest
from botocore.credentials import Credentials, RefreshableCredentials

from bench.common import UnixHTTPConnection
from runtime import credrelay
from runtime.args import parse_args
from runtime.config import load_config
from runtime.credrelay import FORWARDER, Relay, RelayMount, Snapshot, container_env, relay, snapshot
from runtime.engineinfo import EngineMode
from runtime.plan import HostFacts, Image, run_argv
from runtime.usermap import HostUser, UserMapping, drop_env
from tests.integration.runtime_support import free_port

KEYS = {"AccessKeyId": "AKIAEXAMPLE", "SecretAccessKey": "s3cret", "Token": "tok", "Expiration": "x"}


def fetch(sock: Path, token: Optional[str]) -> tuple[int, dict[str, Any]]:
    """GET /credentials over the relay's socket, with ``token`` as Authorization when given."""
    conn = UnixHTTPConnection(sock)
    try:
        conn.request("GET", "/credentials", headers={"Authorization": token} if token else {})
        response = conn.getresponse()
        return response.status, dict(json.loads(response.read()))
    finally:
        conn.close()


@pytest.fixture
def running(tmp_path: Path) -> Iterator[Relay]:
    """A relay serving ``KEYS`` from ``tmp_path/run``."""
    started = Relay(tmp_path / "run", lambda: dict(KEYS), "eu-west-1")
    yield started
    started.close()


def test_credrelay_serves_credentials_only_with_the_token(running: Relay) -> None:
    """The right token gets the credentials; none or a wrong one gets 401 and nothing secret."""
    sock = running.directory / credrelay.SOCKET_NAME
    assert fetch(sock, running.token) == (200, KEYS)
    for token in (None, "wrong", running.token + "x"):
        status, body = fetch(sock, token)
        assert status == 401
        assert "AccessKeyId" not in body


def test_credrelay_folder_socket_and_token_are_private(running: Relay) -> None:
    """The folder is 0700, the socket and the token file 0600; the token is long and random."""
    assert stat.S_IMODE(running.directory.stat().st_mode) == 0o700
    for name in (credrelay.SOCKET_NAME, credrelay.TOKEN_NAME):
        assert stat.S_IMODE((running.directory / name).stat().st_mode) == 0o600
    assert (running.directory / credrelay.TOKEN_NAME).read_text() == running.token
    assert len(running.token) >= 40


def test_credrelay_close_removes_socket_and_token(tmp_path: Path) -> None:
    """Closing the relay leaves nothing behind."""
    started = Relay(tmp_path, lambda: dict(KEYS))
    started.close()
    assert not started.directory.exists()


def test_credrelay_failing_source_is_503_and_keeps_serving(tmp_path: Path) -> None:
    """A source that raises answers 503; the next request is served again."""
    answers: list[Snapshot] = []

    def source() -> Snapshot:
        if not answers:
            answers.append(KEYS)
            raise RuntimeError("IMDS down")
        return dict(KEYS)

    started = Relay(tmp_path, source)
    try:
        sock = started.directory / credrelay.SOCKET_NAME
        assert fetch(sock, started.token)[0] == 503
        assert fetch(sock, started.token) == (200, KEYS)
    finally:
        started.close()


def test_credrelay_cleans_folders_of_dead_wrappers(tmp_path: Path) -> None:
    """A folder left by a killed wrapper (its pid gone) is removed; a live one is kept."""
    dead = subprocess.run([sys.executable, "-c", "import os; print(os.getpid())"],
                          capture_output=True, text=True, check=True).stdout.strip()  # fmt: skip
    (tmp_path / f"credentials-{dead}").mkdir()
    (tmp_path / "credentials-1").mkdir()  # init: alive
    credrelay.clean_stale(tmp_path)
    assert sorted(p.name for p in tmp_path.iterdir()) == ["credentials-1"]


def test_credrelay_snapshot_refreshes_before_expiry() -> None:
    """botocore's refreshable credentials, near expiry, are refreshed on the next snapshot."""
    keys = iter(["AKIAONE", "AKIATWO"])

    def refresh() -> dict[str, str]:
        soon = datetime.now(timezone.utc) + timedelta(minutes=5)  # inside botocore's refresh window
        return {"access_key": next(keys), "secret_key": "s", "token": "t", "expiry_time": soon.isoformat()}

    credentials = RefreshableCredentials.create_from_metadata(refresh(), refresh, "test")
    first = snapshot(credentials)
    assert first["AccessKeyId"] == "AKIATWO"  # refreshed on first use: it expires in 5 minutes
    assert first["Expiration"].endswith("Z")


def test_credrelay_snapshot_of_static_keys() -> None:
    """Static keys (environment, profile) are served with an hour's expiry, so SDKs re-ask."""
    served = snapshot(Credentials("AKIASTATIC", "secret"))
    assert served["AccessKeyId"] == "AKIASTATIC"
    assert served["Token"] == ""
    expiry = datetime.strptime(served["Expiration"], "%Y-%m-%dT%H:%M:%SZ").replace(tzinfo=timezone.utc)
    assert timedelta(minutes=59) < expiry - datetime.now(timezone.utc) <= timedelta(hours=1)


def test_credrelay_container_env_points_at_the_forwarder_and_token_file() -> None:
    """The SDK variables name the loopback URL and the token's file; the region only when not passed."""
    env = dict(container_env(RelayMount(Path("/x"), "eu-west-1"), (("AWS_REGION", "us-east-1"),)))
    assert env["AWS_CONTAINER_CREDENTIALS_FULL_URI"] == f"http://127.0.0.1:{credrelay.PORT}/credentials"
    assert env["AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE"] == "/run/sagecode-credentials/token"
    assert env["AWS_DEFAULT_REGION"] == "eu-west-1"
    assert "AWS_REGION" not in env  # the host's own setting, passed through, wins


def test_credrelay_plan_mounts_read_only_and_holds_no_secret(running: Relay, tmp_path: Path) -> None:
    """The run argv mounts the relay folder and forwarder read-only; the token is not in it."""
    config = load_config({"HOME": str(tmp_path)}, user=HostUser(1000, 1000, "ec2-user"))
    argv = run_argv(config, parse_args([]), UserMapping(EngineMode.ROOTLESS), Image("i", "c"),
                    HostFacts(credentials=running.mount))  # fmt: skip
    assert f"type=bind,source={running.directory},target=/run/sagecode-credentials,readonly" in argv
    assert f"type=bind,source={FORWARDER},target=/run/sagecode-cred-forwarder.py,readonly" in argv
    assert "AWS_DEFAULT_REGION=eu-west-1" in argv
    assert not any(running.token in arg for arg in argv)


def test_credrelay_forwarder_runs_as_the_editor_user() -> None:
    """The forwarder is exec'd as the user the entrypoint drops to, on rootful engines."""
    argv = credrelay.forwarder_argv("sagecode", drop_env(HostUser(1000, 100, "ec2-user")))
    assert argv[:5] == ["exec", "-d", "--user", "1000:100", "sagecode"]
    assert credrelay.forwarder_argv("sagecode", ())[:3] == ["exec", "-d", "sagecode"]


def test_credrelay_off_or_without_host_credentials_is_none(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Disabled: no relay; no host credentials: no relay, said in the log."""
    caplog.set_level(logging.INFO)
    log = logging.getLogger("test")
    monkeypatch.setattr(credrelay, "host_source", lambda *_: (None, ""))
    with relay(False, tmp_path, log) as off, relay(True, tmp_path, log) as none:
        assert off is None
        assert none is None
    assert "no AWS credentials on the host" in caplog.text


def test_credrelay_failure_is_a_warning_not_an_error(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, caplog: pytest.LogCaptureFixture
) -> None:
    """Anything going wrong while starting the relay is logged; the editor starts without it."""

    def broken(*_: float) -> Any:
        raise OSError("disk full")

    monkeypatch.setattr(credrelay, "host_source", broken)
    with relay(True, tmp_path, logging.getLogger("test")) as started:
        assert started is None
    assert "cannot relay AWS credentials to the editor: OSError: disk full" in caplog.text


def test_credrelay_config_switch() -> None:
    """``SAGECODE_CREDENTIALS`` is on by default and ``off`` turns it off."""
    user = HostUser(1000, 1000, "ec2-user")
    assert load_config({"HOME": "/h"}, user=user).credentials
    assert not load_config({"HOME": "/h", "SAGECODE_CREDENTIALS": "off"}, user=user).credentials


def test_credrelay_forwarder_copies_http_to_the_socket(running: Relay) -> None:
    """The container-side forwarder turns 127.0.0.1:PORT into the relay's socket, token checked there."""
    port = free_port()
    sock = running.directory / credrelay.SOCKET_NAME
    process = subprocess.Popen([sys.executable, str(FORWARDER), str(port), str(sock)])
    try:
        deadline = time.monotonic() + 10
        while socket.socket().connect_ex(("127.0.0.1", port)) and time.monotonic() < deadline:
            time.sleep(0.05)
        for token, status in ((running.token, 200), ("nope", 401)):
            conn = http.client.HTTPConnection("127.0.0.1", port, timeout=5)
            conn.request("GET", "/credentials", headers={"Authorization": token})
            answer = conn.getresponse()
            assert answer.status == status
            assert (json.loads(answer.read()) == KEYS) is (status == 200)
            conn.close()
    finally:
        process.kill()
        process.wait()


def expiring(key: str, at: float) -> Snapshot:
    """Credentials named ``key`` that expire at Unix time ``at``."""
    when = datetime.fromtimestamp(at, timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ")
    return {**KEYS, "AccessKeyId": key, "Expiration": when}


class Clock:
    """A settable clock for FreshSource."""

    def __init__(self) -> None:
        self.now = 1_000_000.0

    def __call__(self) -> float:
        return self.now


def test_credrelay_fresh_source_renews_within_the_window_only() -> None:
    """Served from memory until within ``ahead`` of expiry; then the host's chain is asked again."""
    clock, asked = Clock(), []
    start = clock.now

    def resolve() -> Snapshot:
        asked.append(clock.now)
        return expiring(f"AKIA{len(asked)}", clock.now + 3600)

    source = credrelay.FreshSource(resolve, ahead=1200, clock=clock, first=expiring("AKIA0", start + 3600))
    assert source()["AccessKeyId"] == "AKIA0"
    clock.now = start + 2399  # 1201 s left: not yet
    assert source()["AccessKeyId"] == "AKIA0"
    clock.now = start + 2401  # 1199 s left: renewed before expiry
    assert source()["AccessKeyId"] == "AKIA1"
    assert asked == [start + 2401]


def test_credrelay_fresh_source_asks_at_most_every_retry_seconds() -> None:
    """A chain that keeps answering near-expiry keys (IMDS not rotated yet) is not hammered."""
    clock, asked = Clock(), []

    def resolve() -> Snapshot:
        asked.append(clock.now)
        return expiring("AKIASAME", clock.now + 600)

    source = credrelay.FreshSource(resolve, ahead=1200, clock=clock)
    source()
    clock.now += credrelay.RETRY_SECONDS / 2
    source()
    clock.now += credrelay.RETRY_SECONDS
    source()
    assert len(asked) == 2


def test_credrelay_fresh_source_keeps_valid_keys_when_renewal_fails() -> None:
    """A failed renewal serves the old keys while they are valid, and raises (a 503) after."""
    clock = Clock()
    start = clock.now

    def resolve() -> Snapshot:
        raise OSError("IMDS down")

    source = credrelay.FreshSource(resolve, ahead=1200, clock=clock, first=expiring("AKIAOLD", start + 600))
    clock.now += credrelay.RETRY_SECONDS
    assert source()["AccessKeyId"] == "AKIAOLD"
    clock.now = start + 601
    with pytest.raises(OSError, match="IMDS down"):
        source()


def test_credrelay_refresh_window_setting() -> None:
    """``SAGECODE_CREDENTIALS_REFRESH`` sets the window; the default is 20 minutes."""
    user = HostUser(1000, 1000, "ec2-user")
    assert load_config({"HOME": "/h"}, user=user).credentials_refresh == 1200
    short = load_config({"HOME": "/h", "SAGECODE_CREDENTIALS_REFRESH": "90"}, user=user)
    assert short.credentials_refresh == 90
