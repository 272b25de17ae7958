"""python -m imagebuild against an engine that is missing, down or too old (a fake ``docker``
on PATH): one error line, exit code 2, before any build step, nothing written to the store."""

from __future__ import annotations

import json
import subprocess
import sys
from pathlib import Path

import pytest

from tests.conftest import VERSIONS

ROOT = Path(__file__).resolve().parents[2]
SMALL = ("--without", "node,code-server,awscli,mise,agents,editor")
DOWN = """#!/bin/bash
echo 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock. Is the docker daemon running?' >&2
exit 1
"""
# Answers the three probes of Engine.capabilities as Docker 20.10.7 with buildx 0.10 would.
OLD = """#!/bin/bash
case "$1 $2" in
  "system info") echo '{"ServerVersion": "20.10.7", "DriverStatus": [["Backing Filesystem", "extfs"]]}' ;;
  "buildx version") echo 'github.com/docker/buildx v0.10.4 c513d34' ;;
  "buildx inspect") printf 'Name:   default\\nDriver: docker\\n' ;;
  "buildx ls") echo '{"Name": "default", "Driver": "docker", "Nodes": []}' ;;
  *) echo "fake docker: unexpected $*" >&2; exit 3 ;;
esac
"""


def _cli(tmp_path: Path, docker: str | None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    if docker is not None:
        (bin_dir / "docker").write_text(docker)
        (bin_dir / "docker").chmod(0o755)
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({"schema": 1, "image": "sagecode:x", "content": "x", "versions": VERSIONS,
                                "layers": [], "base_image": "b", "platform": "amd64"}))
    cmd = [sys.executable, "-m", "imagebuild", "--state-dir", str(tmp_path / "state"), "--lock", str(lock),
           "--base-image", "local/debian:bookworm", *SMALL]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path)})


@pytest.mark.parametrize(
    ("docker", "message"),
    [
        (None, "error: the docker command is not installed (install Docker"),
        (DOWN, "error: docker info: the Docker engine is not running (start Docker, then retry)"),
        (OLD, "error: Docker 20.10.7 blocks clone3, which the image's glibc needs "
              "(upgrade Docker to 20.10.10 or newer)"),
    ],
    ids=["missing", "down", "too-old"],
)
def test_cli_engine_problem_is_one_line_before_any_work(tmp_path: Path, docker: str | None,
                                                        message: str) -> None:
    """A missing, stopped or too old engine: exit 2, the one error line, no tar, no partial file."""
    result = _cli(tmp_path, docker)
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    errors = [line for line in result.stderr.splitlines() if not line.startswith("==>")]
    assert len(errors) == 1, result.stderr
    assert errors[0].startswith(message)
    assert "building" not in result.stderr
    images = tmp_path / "state" / "images"
    assert not images.is_dir() or list(images.iterdir()) == []
