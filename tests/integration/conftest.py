"""Integration fixtures: the real engine, and the real image built once per test run.

Tests that need the engine fail (not skip) when CI=true and the engine is missing, so a
broken CI machine cannot pass by skipping everything.
"""

from __future__ import annotations

import os
import subprocess
import sys
from collections.abc import Iterator, Mapping
from pathlib import Path
from typing import Optional

import pytest

from bench import common as bench_common
from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore

ROOT = Path(__file__).resolve().parents[2]
ENGINE_SCRIPT = bench_common.ENGINE_SCRIPT
BASE_IMAGE = os.environ.get("SAGECODE_TEST_BASE_IMAGE", "local/debian:bookworm")
CA_BUNDLE = os.environ.get("SAGECODE_TEST_CA_BUNDLE", "/etc/ssl/certs/ca-certificates.crt")
IN_CI = os.environ.get("CI", "").lower() in {"1", "true", "yes"}
# A small image for the spine tests: base, shell and entrypoint (seconds to build, no compile).
SMALL = ("--without", "node,code-server,awscli,mise,agents,editor")


def need(condition: bool, why: str) -> None:
    """Skip a test whose prerequisite is missing, but fail it in CI."""
    if condition:
        return
    if IN_CI:
        pytest.fail(f"{why} (CI must provide it)")
    pytest.skip(why)


def pytest_collection_modifyitems(items: list[pytest.Item]) -> None:
    """Run engine-wiping tests last: they destroy images the other tests share."""
    items.sort(key=lambda item: item.get_closest_marker("wipe") is not None)


def engine_up() -> bool:
    """True when a Docker engine answers."""
    try:
        probe = subprocess.run(["docker", "info"], check=False, capture_output=True, timeout=20)
    except (OSError, subprocess.TimeoutExpired):
        return False
    return probe.returncode == 0


def engine_script(*args: str) -> subprocess.CompletedProcess[str]:
    """docker-engine.sh with the tests' base image, tried as the benchmarks try it
    (:func:`bench.common.engine_script`). Fails the test with what it printed."""
    try:
        return bench_common.engine_script(*args, base=BASE_IMAGE)
    except bench_common.BenchError as exc:
        pytest.fail(f"docker-engine.sh {' '.join(args)}: {exc}")


@pytest.fixture(scope="session")
def docker_engine() -> None:
    """A running Docker engine with buildx and the local base image."""
    need(engine_up(), "no Docker engine (run ../shared/tools/docker-engine.sh)")
    found = subprocess.run(["docker", "image", "inspect", BASE_IMAGE], check=False, capture_output=True)
    need(found.returncode == 0, f"base image {BASE_IMAGE} missing (docker-engine.sh --base-image)")


@pytest.fixture(scope="module")
def cache_export() -> Iterator[None]:
    """Export the build cache with mode=min (auto is max): enough for these small images, and quicker."""
    old = os.environ.get("SAGECODE_CACHE_MODE")
    os.environ["SAGECODE_CACHE_MODE"] = "min"
    yield
    if old is None:
        os.environ.pop("SAGECODE_CACHE_MODE", None)
    else:
        os.environ["SAGECODE_CACHE_MODE"] = old


def build_args() -> list[str]:
    """Flags that make a build work on a machine with no registry or GitHub access."""
    args = ["--base-image", BASE_IMAGE, "--code-server-source", "npm"]
    if Path(CA_BUNDLE).is_file():
        args += ["--ca-bundle", CA_BUNDLE]
    return args


def imagebuild(
    state: Path, *args: str, check: bool = True, timeout: float = 3600,
    env: Optional[Mapping[str, str]] = None,
) -> subprocess.CompletedProcess[str]:
    """Run ``python -m imagebuild`` as a user would, with ``state`` as the state dir (and
    ``env`` added to the environment)."""
    cmd = [sys.executable, "-m", "imagebuild", "--state-dir", str(state), *args]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=timeout, cwd=ROOT,
                            env={**os.environ, **(env or {})})
    if check and result.returncode != 0:
        raise AssertionError(f"{' '.join(cmd)} failed ({result.returncode}):\n{result.stderr[-4000:]}")
    return result


@pytest.fixture(scope="session")
def image_state(tmp_path_factory: pytest.TempPathFactory) -> Path:
    """State dir for the shared developer image (reused across local runs to save time)."""
    keep = os.environ.get("SAGECODE_TEST_STATE")
    return Path(keep) if keep else tmp_path_factory.mktemp("image-state")


@pytest.fixture(scope="session")
def dev_image(docker_engine: None, image_state: Path) -> Manifest:
    """The full developer image, built once per run through the real CLI."""
    imagebuild(image_state, *build_args())
    current = ImageStore(image_state / "images").current()
    assert current is not None
    return current



def saved_tar(state: Path, dest: Path) -> Path:
    """The current saved image of ``state`` as the tar a ``docker load`` of it reads."""
    store = ImageStore(state / "images")
    current = store.current()
    assert current is not None
    return store.export_tar(current, dest)
