"""A builder that cannot export cache (rootless Docker, classic image store), for real.

docker-engine.sh stands up a rootless daemon beside the system one (it does not touch the
system daemon), as on root-disabled notebook instances.
"""

from __future__ import annotations

import os
import re
import subprocess
from pathlib import Path

import pytest

from imagebuild.store import ImageStore
from tests.integration.conftest import (
    ENGINE_SCRIPT,
    SMALL,
    build_args,
    engine_script,
    imagebuild,
    need,
)

pytestmark = pytest.mark.engine


@pytest.fixture(scope="module")
def rootless_host() -> str:
    """DOCKER_HOST of a rootless engine run by ec2-user, with the base image."""
    need(os.geteuid() == 0 and ENGINE_SCRIPT.is_file(), "needs root and docker-engine.sh")
    done = engine_script("--mode", "rootless", "--user", "ec2-user")
    match = re.search(r"DOCKER_HOST=(\S+)", done.stderr)
    assert match, done.stderr
    return match.group(1)


def test_build_without_cache_export_falls_back_to_docker_save(
    rootless_host: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """On the classic store the build says it has no persistent cache, then saves and restores."""
    monkeypatch.setenv("DOCKER_HOST", rootless_host)
    result = imagebuild(tmp_path, *build_args(), *SMALL)
    assert "cannot export build cache" in result.stderr
    assert "docker buildx create --use --driver docker-container" in result.stderr
    current = ImageStore(tmp_path / "images").current()
    assert current is not None
    assert current.compression == "none"
    assert ImageStore(tmp_path / "images").verify(current) is None
    assert not (tmp_path / "cache" / "index.json").exists()
    subprocess.run(["docker", "rmi", current.image, "sagecode:latest"], check=True, capture_output=True)
    restored = imagebuild(tmp_path, "restore", "--no-build")
    assert restored.stdout.strip() == f"{current.image} loaded"
    ran = subprocess.run(["docker", "run", "--rm", current.image, "echo", "ok"],
                         check=False, capture_output=True, text=True)
    assert ran.stdout == "ok\n"
