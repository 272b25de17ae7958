"""Build once, use everywhere, for real: a local registry on 127.0.0.1 (distribution v2).

Build and push with registry cache; a second machine (fresh state, image gone) pulls
instead of building and saves the tar so later restarts are offline; after a wipe, a
code-server bump on a fresh machine takes everything but code-server from the registry cache
(``python -m bench registry`` measures it against a cold build).
"""

from __future__ import annotations

import json
import re
import shutil
import socket
import subprocess
import time
import urllib.request
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench.build import buildable, newest
from imagebuild.store import ImageStore
from tests.integration.conftest import SMALL, build_args, imagebuild, need
from tests.integration.test_spine import simulate_restart

pytestmark = [pytest.mark.engine, pytest.mark.usefixtures("cache_export")]


def _free_port() -> int:
    with socket.socket() as s:
        s.bind(("127.0.0.1", 0))
        return int(s.getsockname()[1])


def _catalog(registry: str) -> list[str]:
    with urllib.request.urlopen(f"http://{registry}/v2/_catalog", timeout=5) as r:
        return list(json.load(r)["repositories"])


@pytest.fixture(scope="module")
def registry(docker_engine: None, tmp_path_factory: pytest.TempPathFactory) -> Iterator[str]:
    """A distribution registry on a loopback port, storing in a temp dir."""
    binary = shutil.which("docker-registry")
    need(binary is not None, "docker-registry is not installed (docker-engine.sh installs it)")
    assert binary is not None
    root = tmp_path_factory.mktemp("registry")
    addr = f"127.0.0.1:{_free_port()}"
    (root / "config.yml").write_text(
        f"version: 0.1\nstorage:\n  filesystem:\n    rootdirectory: {root / 'data'}\n"
        f"http:\n  addr: {addr}\nlog:\n  level: warn\n"
    )
    proc = subprocess.Popen([binary, "serve", str(root / "config.yml")],
                            stdout=subprocess.DEVNULL, stderr=subprocess.DEVNULL)
    deadline = time.monotonic() + 20
    while time.monotonic() < deadline:
        try:
            _catalog(addr)
            break
        except OSError:
            time.sleep(0.2)
    yield addr
    proc.terminate()
    proc.wait(timeout=10)


@pytest.fixture(scope="module")
def pushed(registry: str, tmp_path_factory: pytest.TempPathFactory) -> tuple[str, str]:
    """A small image built with registry cache and pushed; returns (registry, image tag)."""
    state = tmp_path_factory.mktemp("publisher")
    result = imagebuild(state, *build_args(), *SMALL, "--push", f"{registry}/sagecode",
                        "--cache-ref", f"{registry}/sagecode-cache:buildcache")
    current = ImageStore(state / "images").current()
    assert current is not None
    assert f"pushed {registry}/sagecode:latest" in result.stdout
    assert f"pushed {registry}/sagecode:{current.content[:12]}" in result.stdout
    return registry, current.image


def _forget(*refs: str) -> None:
    subprocess.run(["docker", "rmi", "-f", *refs], check=False, capture_output=True)


def test_push_publishes_image_and_cache(pushed: tuple[str, str]) -> None:
    """The registry holds the image and the build cache under their repositories."""
    registry, _ = pushed
    assert {"sagecode", "sagecode-cache"} <= set(_catalog(registry))


def test_restore_pulls_instead_of_building(pushed: tuple[str, str], tmp_path: Path) -> None:
    """A machine with no image pulls the published one, saves its tar, then restores offline."""
    registry, image = pushed
    _forget(image, "sagecode:latest", f"{registry}/sagecode:latest")
    result = imagebuild(tmp_path, "restore", "--pull", f"{registry}/sagecode:latest")
    assert result.stdout.strip() == f"{image} pulled"
    store = ImageStore(tmp_path / "images")
    current = store.current()
    assert current is not None
    assert current.image == image
    assert store.verify(current) is None
    _forget(image, "sagecode:latest", f"{registry}/sagecode:latest")
    again = imagebuild(tmp_path, "restore", "--no-build")
    assert again.stdout.strip() == f"{image} loaded"
    ran = subprocess.run(["docker", "run", "--rm", image, "echo", "ok"], check=False,
                         capture_output=True, text=True)
    assert ran.stdout == "ok\n"


def test_image_ref_env_pulls_on_first_restore(pushed: tuple[str, str], tmp_path: Path,
                                              monkeypatch: pytest.MonkeyPatch) -> None:
    """With SAGECODE_IMAGE_REF set, a restore with nothing saved pulls instead of failing."""
    registry, image = pushed
    monkeypatch.setenv("SAGECODE_IMAGE_REF", f"{registry}/sagecode:latest")
    result = imagebuild(tmp_path, "restore")
    assert result.stdout.strip() == f"{image} pulled"


def test_push_rejects_tagged_repo(docker_engine: None, tmp_path: Path) -> None:
    """--push takes a repository; a tag is a one-line error before anything is built."""
    result = imagebuild(tmp_path, *SMALL, "--push", "127.0.0.1:1/sagecode:v1", check=False)
    assert result.returncode == 2
    assert "is not a repository name" in result.stderr
    assert "resolving" not in result.stderr


@pytest.mark.wipe
def test_second_machine_builds_from_registry_cache(pushed: tuple[str, str], tmp_path: Path) -> None:
    """After a wipe, a build on a fresh state dir takes every step from the registry cache."""
    registry, image = pushed
    simulate_restart()
    result = imagebuild(tmp_path, *build_args(), *SMALL,
                        "--cache-ref", f"{registry}/sagecode-cache:buildcache")
    assert f"importing cache manifest from {registry}/sagecode-cache:buildcache" in result.stderr
    apt = [ln for ln in result.stderr.splitlines() if "apt-install.sh" in ln and ln.startswith("#")]
    assert apt
    assert _from_cache(result.stderr, apt[0].split()[0].lstrip("#"))
    assert ImageStore(tmp_path / "images").current().image == image  # type: ignore[union-attr]


def _from_cache(progress: str, number: str) -> bool:
    """Whether step ``#number`` of BuildKit's plain progress came from the cache.

    A hit says CACHED, or, when a later step needs its files, only shows its layers
    being pulled and extracted: which of the two BuildKit prints for a step taken from
    a registry cache varies from run to run (both were seen for the same step). A step
    that ran prints neither, but its command's output, with a timestamp."""
    lines = [ln for ln in progress.splitlines() if ln.startswith(f"#{number} ")]
    ran = any(re.match(rf"#{number} \d+\.\d+ ", ln) for ln in lines)
    pulled = any(ln.startswith(f"#{number} extracting sha256:") for ln in lines)
    return not ran and (f"#{number} CACHED" in lines or pulled)


def _stage_steps(progress: str) -> dict[str, list[bool]]:
    """BuildKit's plain progress: for each stage, whether each of its steps came from the
    cache (a ``FROM`` is resolved, never cached, so it is left out)."""
    steps: dict[str, list[bool]] = {}
    for number, stage in re.findall(r"^#(\d+) \[([\w.-]+) \d+/\d+\] (?!FROM )", progress, re.MULTILINE):
        steps.setdefault(stage, []).append(_from_cache(progress, number))
    return steps


def _natives(progress: str) -> str:
    """The line where the build names what its native modules' folder holds (the modules and
    what they need to build, with versions): the compile's cache key is that folder."""
    found = re.search(r"code-server-natives: their folder holds \d+ packages: (.*)$", progress, re.MULTILINE)
    assert found is not None, "the build did not name its native modules' folder"
    return found.group(1)


@pytest.mark.wipe
def test_code_server_bump_on_a_second_machine_uses_the_registry_cache(
    registry: str, tmp_path: Path, monkeypatch: pytest.MonkeyPatch
) -> None:
    """A publisher builds code-server N-1 with its cache in the registry (mode=max, so the
    builder stages are in it); after a wipe a fresh machine builds N: the base, Node and
    build-tools steps come from the registry, code-server's download runs again, its native
    modules come from the registry when N has the same ones as N-1, and the image holds N."""
    need(shutil.which("npm") is not None, "npm is not on PATH (it lists code-server's releases)")
    older, newer = newest(buildable("code-server"), 2)
    monkeypatch.setenv("SAGECODE_CACHE_MODE", "max")
    cache = f"{registry}/sagecode-cache:bump"
    layers = ("--without", "shell,awscli,mise,agents,editor")
    first = imagebuild(tmp_path / "publisher", *build_args(), *layers, "--code-server", older,
                       "--cache-ref", cache)
    simulate_restart()
    second = tmp_path / "second"
    result = imagebuild(second, *build_args(), *layers, "--code-server", newer, "--cache-ref", cache)
    assert f"importing cache manifest from {cache}" in result.stderr
    steps = _stage_steps(result.stderr)
    assert len(steps["base"]) > 0, steps
    assert all(steps["base"]), steps
    assert len(steps["node"]) > 0, steps
    assert all(steps["node"]), steps
    assert all(steps["code-server-tools"]), steps
    assert not any(steps["code-server-fetch"]), steps
    if _natives(first.stderr) == _natives(result.stderr):
        assert all(steps["code-server-natives"]), (_natives(result.stderr), steps)
    else:  # the release changed a native module or what it builds with: that stage compiles again
        assert not all(steps["code-server-natives"]), steps
    current = ImageStore(second / "images").current()
    assert current is not None
    assert current.versions["code-server"] == newer
    ran = subprocess.run(["docker", "run", "--rm", "--entrypoint", "code-server", current.image, "--version"],
                         check=False, capture_output=True, text=True, timeout=120)  # fmt: skip
    # code-server may log a line (its default config written) before the version line
    assert any(line.startswith(newer) for line in ran.stdout.splitlines()), ran.stdout + ran.stderr
