"""The host's AWS credentials inside the editor container, through the wrapper's relay (runtime.credrelay).

The host's only credential source is a fake IMDS on loopback (see credential_support): the
editor resolves credentials through the SDK chain, and the AWS CLI and boto3 in it call
STS (moto, on the bridge gateway) with them.
"""

from __future__ import annotations

import json
import time
from pathlib import Path

import pytest

from runtime import credrelay
from tests.integration.credential_support import (
    MOTO_ACCOUNT,
    MOTO_KEYS,
    RotatingImds,
    accounts_in_editor,
    in_editor,
    launch,
    relayed,
)
from tests.integration.runtime_support import Sandbox, docker

pytest_plugins = ["tests.integration.runtime_fixtures", "tests.integration.credential_fixtures"]
pytestmark = [pytest.mark.engine, pytest.mark.image]
NO_TOKEN = (
    "import urllib.request as r, urllib.error as e, sys\n"
    "try: r.urlopen(sys.argv[1], timeout=5); print(200)\n"
    "except e.HTTPError as x: print(x.code)\n"
)
# The relay renews once its keys are this close to expiry: RotatingImds's keys last 30
# minutes, so the ones served at launch fall due one minute later.
WINDOW = RotatingImds.lifetime.total_seconds() - 60


def test_credentials_from_host_imds_reach_the_editor(
    sandbox: Sandbox, moto: str, moto_sts: str, container_sdk: Path
) -> None:
    """In the editor, the SDK chain gets moto's role keys; the AWS CLI and boto3 get an identity with them."""
    launch(sandbox, moto, container_sdk, AWS_ENDPOINT_URL_STS=moto_sts, AWS_DEFAULT_REGION="us-east-1")
    method, *keys = relayed(sandbox)
    assert method == "container-role"
    assert tuple(keys) == MOTO_KEYS
    assert accounts_in_editor(sandbox, moto_sts) == (MOTO_ACCOUNT, MOTO_ACCOUNT)
    cli = in_editor(sandbox, "python3", "-m", "awscli", "configure", "list")
    assert "container-role" in cli.stdout


def test_credentials_refresh_when_the_host_imds_rotates_them(
    sandbox: Sandbox, rotating_imds: str, container_sdk: Path
) -> None:
    """The relay keeps its keys until they are due, then re-reads IMDS: the editor gets the new ones.

    The relay's window (``SAGECODE_CREDENTIALS_REFRESH``) is set one minute short of the
    keys' lifetime, so the keys served at launch fall due a minute later instead of
    after 10 minutes; the container path is the real one.
    """
    launched = time.monotonic()
    launch(sandbox, rotating_imds, container_sdk, SAGECODE_CREDENTIALS_REFRESH=str(WINDOW))
    assert relayed(sandbox)[1] == "AKIAROTATE1"
    RotatingImds.generation = 2
    assert relayed(sandbox)[1] == "AKIAROTATE1"  # not due yet: served from the relay's memory
    assert time.monotonic() - launched < 55, "the launch was too slow to see the relay's cache"
    deadline = launched + 60 + credrelay.RETRY_SECONDS + 60
    while relayed(sandbox)[1] != "AKIAROTATE2":
        assert time.monotonic() < deadline, "the relay did not renew the keys when they fell due"
        time.sleep(2)
    assert relayed(sandbox)[1:] == ["AKIAROTATE2", "secret2", "token2"]
    cli = in_editor(sandbox, "python3", "-m", "awscli", "configure", "list")
    assert "eu-west-1" in cli.stdout  # the region from the fake IMDS's placement


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
    request: pytest.FixtureRequest, user_sandbox: Sandbox, moto: str, container_sdk: Path
) -> None:
    """Run by a non-root account (rootful: the editor drops to it; rootless: container root is it)."""
    rootless = request.node.callspec.params["user_sandbox"] == "rootless"
    moto_sts = request.getfixturevalue("moto_sts_outward" if rootless else "moto_sts")
    launch(user_sandbox, moto, container_sdk, AWS_ENDPOINT_URL_STS=moto_sts, AWS_DEFAULT_REGION="us-east-1")
    method, *keys = relayed(user_sandbox)
    assert (method, *keys) == ("container-role", *MOTO_KEYS)
    assert accounts_in_editor(user_sandbox, moto_sts) == (MOTO_ACCOUNT, MOTO_ACCOUNT)
