"""The build spine for real: build, no-op rebuild, restart (engine wiped), restore, corruption.

A small image (base and entrypoint layers) keeps these fast; the full image has its own tests.
"""

from __future__ import annotations

import json
import os
import subprocess
from pathlib import Path

import pytest

from imagebuild import tarserve
from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore
from tests.integration.conftest import IN_CI, SMALL, build_args, engine_script, imagebuild, need

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("cache_export")]


def _current(state: Path) -> Manifest:
    current = ImageStore(state / "images").current()
    assert current is not None
    return current


def _docker(*args: str) -> subprocess.CompletedProcess[str]:
    return subprocess.run(["docker", *args], check=False, capture_output=True, text=True, timeout=600)


def simulate_restart() -> None:
    """Delete all engine state as a notebook restart does, then re-make the base image."""
    need(IN_CI or os.environ.get("SAGECODE_TEST_WIPE") == "1",
         "wiping the shared engine needs SAGECODE_TEST_WIPE=1 outside CI")
    engine_script("--wipe")


@pytest.fixture(scope="module")
def small(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State dir of a small image built through the CLI."""
    state = tmp_path_factory.mktemp("spine")
    imagebuild(state, *build_args(), *SMALL)
    return state


def test_build_loads_image_and_saves_verified_tar(small: Path) -> None:
    """A build leaves the image in the engine and a checksummed zstd tar with its manifest."""
    m = _current(small)
    assert _docker("image", "inspect", m.image).returncode == 0
    assert ImageStore(small / "images").verify(m) is None
    assert m.compression == "zstd"
    assert m.layers == ("base", "shell", "entrypoint")
    labels = json.loads(_docker("image", "inspect", "-f", "{{json .Config.Labels}}", m.image).stdout)
    assert labels["org.sagecode.content"] == m.content


def test_built_image_entrypoint_runs_commands(small: Path) -> None:
    """The entrypoint runs a command given as arguments, with zsh as the shell."""
    out = _docker("run", "--rm", _current(small).image, "sh", "-c", "echo $SHELL; zsh --version")
    assert out.returncode == 0, out.stderr
    assert out.stdout.startswith("/bin/zsh\nzsh ")


def test_rebuild_without_change_is_noop(small: Path) -> None:
    """Building the same definition again does nothing and keeps the same tar."""
    before = _current(small)
    result = imagebuild(small, *build_args(), *SMALL)
    assert "nothing to do" in result.stderr
    assert _current(small) == before


def test_dry_run_prints_plan_without_building(small: Path) -> None:
    """--dry-run prints the manifest and the Dockerfile and builds nothing."""
    result = imagebuild(small, *build_args(), *SMALL, "--dry-run")
    assert '"image": "sagecode:' in result.stdout
    assert "FROM local/debian:bookworm AS base" in result.stdout
    assert "building" not in result.stderr


@pytest.mark.wipe
def test_restore_after_restart_loads_tar(small: Path) -> None:
    """After the engine is wiped, restore loads the saved tar and the image runs."""
    m = _current(small)
    simulate_restart()
    assert _docker("image", "inspect", m.image).returncode != 0
    since = _docker("system", "info", "--format", "{{.SystemTime}}").stdout.strip()
    result = imagebuild(small, "restore", "--no-build")
    assert result.stdout.strip() == f"{m.image} loaded"
    assert _docker("run", "--rm", m.image, "true").returncode == 0
    # The engine pulled the image from the tar over 127.0.0.1 (imagebuild/tarserve.py) ...
    events = _docker("events", "--since", since, "--until", _docker(
        "system", "info", "--format", "{{.SystemTime}}").stdout.strip(), "--filter", "type=image",
        "--format", "{{.Action}} {{.Actor.ID}}").stdout.splitlines()
    assert any(e.startswith("pull ") and tarserve.REPOSITORY in e for e in events), events
    # ... and the image is complete: listed, saveable, the pull's name gone. The base layer was
    # unpacked already (the base image), so the pull skipped it and a small load added it.
    listed = _docker("image", "ls", "-a", "--format", "{{.Repository}}:{{.Tag}}").stdout.split()
    assert m.image in listed
    assert not [x for x in listed if tarserve.REPOSITORY in x]
    saved = subprocess.run(["docker", "save", m.image], stdout=subprocess.DEVNULL, check=False, timeout=600)
    assert saved.returncode == 0
    again = imagebuild(small, "restore", "--no-build")
    assert again.stdout.strip() == f"{m.image} present"


@pytest.mark.wipe
def test_restore_corrupt_tar_rebuilds_from_persisted_cache(small: Path) -> None:
    """A corrupt layer of the saved image is detected after a restart, and the image is
    rebuilt from the cache dir."""
    m = _current(small)
    image = ImageStore(small / "images").image(m)
    largest = max(image.layers, key=lambda d: image.blobs[d].size)
    with image.blobs[largest].path.open("r+b") as f:
        f.seek(image.blobs[largest].size // 2)
        f.write(b"\0" * 4096)
    simulate_restart()
    refused = imagebuild(small, "restore", "--no-build", check=False)
    assert refused.returncode == 2
    assert "1 blob(s) of oci/" in refused.stderr
    assert "do not match their digests" in refused.stderr
    result = imagebuild(small, "restore")
    assert "cannot restore from the saved image" in result.stderr
    assert result.stdout.strip() == f"{m.image} built"
    assert "importing cache manifest from local" in result.stderr
    apt_step = [ln for ln in result.stderr.splitlines() if "apt-install.sh" in ln]
    assert apt_step
    assert any("CACHED" in ln for ln in result.stderr.splitlines())
    assert ImageStore(small / "images").verify(_current(small)) is None


def test_missing_base_image_names_the_flag(docker_engine: None, tmp_path: Path) -> None:
    """A base image the engine neither has nor can pull is one line naming --base-image."""
    result = imagebuild(tmp_path, *SMALL, "--base-image", "sagecode-test/no-such-image:1", check=False)
    errors = [ln for ln in result.stderr.splitlines() if ln.startswith("error:")]
    assert result.returncode == 2
    assert len(errors) == 1
    assert "cannot get the base image sagecode-test/no-such-image:1" in errors[0]
    assert "--base-image" in errors[0].split("(pass", 1)[1]
    assert not list((tmp_path / "images").glob("*.tar"))
    assert not ImageStore(tmp_path / "images").blobs()
