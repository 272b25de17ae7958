"""The userns-remap engine (container root is ec2-user on the host), for real.

Switching the system daemon to userns-remap restarts it, which stops every container on
it and, while remapped, shows none of the rootful engine's images. So these tests are
marked ``wipe`` (they run last) and run only where CI=true or SAGECODE_TEST_WIPE=1. The
module fixture switches the daemon to remap, restores the developer image into it from the
saved tar, and switches it back to rootful at the end, whatever happened.

    SAGECODE_TEST_WIPE=1 SAGECODE_TEST_STATE=/tmp/sagecode-dev-state \\
        .venv/bin/pytest tests/integration/test_runtime_remap.py -v
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.manifest import Manifest
from tests.integration.conftest import ENGINE_SCRIPT, IN_CI, ROOT, engine_script, need
from tests.integration.credential_support import (
    MOTO_ACCOUNT,
    MOTO_KEYS,
    accounts_in_editor,
    launch,
    relayed,
)
from tests.integration.runtime_support import (
    TEST_USER,
    Sandbox,
    assert_files_are_the_users,
    docker,
    listening_addresses,
    make_sandbox,
    other_account,
)

pytest_plugins = ["tests.integration.runtime_fixtures", "tests.integration.credential_fixtures"]
pytestmark = [pytest.mark.engine, pytest.mark.image, pytest.mark.wipe]


def switch_engine(mode: str) -> None:
    """Run docker-engine.sh in ``mode`` (restarts the system daemon when the mode changes)."""
    engine_script("--mode", mode, "--user", TEST_USER)


@pytest.fixture(scope="module")
def remap_engine(editor_image: Manifest, editor_state: Path) -> Iterator[None]:
    """The system daemon with userns-remap onto TEST_USER, holding the developer image."""
    need(
        IN_CI or os.environ.get("SAGECODE_TEST_WIPE") == "1",
        "switching the shared engine to userns-remap restarts it: needs SAGECODE_TEST_WIPE=1 outside CI",
    )
    need(os.geteuid() == 0 and ENGINE_SCRIPT.is_file(), "needs root and docker-engine.sh")
    try:
        switch_engine("remap")
        restore = subprocess.run(
            [sys.executable, "-m", "imagebuild", "restore", "--no-build", "--state-dir", str(editor_state)],
            capture_output=True, text=True, timeout=900, cwd=ROOT, check=False,
        )  # fmt: skip
        assert restore.returncode == 0, restore.stderr
        yield
    finally:
        switch_engine("rootful")


@pytest.fixture
def remap_box(remap_engine: None, user_venv: Path, editor_image: Manifest) -> Iterator[Sandbox]:
    """A sandbox of TEST_USER (in the docker group) on the remapped system engine."""
    box = make_sandbox(other_account(user_venv, ["docker"]), editor_image)
    yield box
    box.close()


def test_remap_doctor_sees_container_root_as_the_user(remap_box: Sandbox) -> None:
    """The engine reports userns, and doctor says container root is the user."""
    assert "name=userns" in docker("info", "-f", "{{json .SecurityOptions}}").stdout
    out = remap_box.sagecode("doctor").stdout.splitlines()
    uid = remap_box.account.uid
    assert f"OK       user mapping: userns-remap: container root is uid {uid} ({TEST_USER})" in out


def test_remap_serves_healthz_on_loopback_only(remap_box: Sandbox) -> None:
    """Started as JSP starts it, the editor answers on 127.0.0.1:PORT only."""
    launch = remap_box.launch_tcp()
    assert launch.wait_ready()["status"] in ("alive", "expired")
    assert launch.port is not None
    assert listening_addresses(launch.port) == {"127.0.0.1"}


def test_remap_files_from_editor_terminal_belong_to_user(remap_box: Sandbox) -> None:
    """The terminal's files and everything code-server writes on the volume are the user's."""
    assert_files_are_the_users(remap_box)


def test_remap_relays_credentials_to_the_editor(
    remap_box: Sandbox, moto: str, moto_sts: str, container_sdk: Path
) -> None:
    """Container root is the user, so it opens the relay: the SDKs get the keys, STS an identity."""
    launch(remap_box, moto, container_sdk, AWS_ENDPOINT_URL_STS=moto_sts, AWS_DEFAULT_REGION="us-east-1")
    assert relayed(remap_box) == ["container-role", *MOTO_KEYS]
    assert accounts_in_editor(remap_box, moto_sts) == (MOTO_ACCOUNT, MOTO_ACCOUNT)
    identity = f"arn:aws:sts::{MOTO_ACCOUNT}:user/moto (account {MOTO_ACCOUNT})"
    doctor = remap_box.sagecode("doctor").stdout.splitlines()
    assert f"OK       AWS identity: a container gets {identity} through the relay" in doctor
