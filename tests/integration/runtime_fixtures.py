"""Fixtures for the runtime's integration tests (load with ``pytest_plugins``; helpers: runtime_support)."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
import sys
import sysconfig
import tempfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore
from tests.integration.conftest import ENGINE_SCRIPT, ROOT, engine_script, need
from tests.integration.runtime_support import (
    SCRIPT,
    TEST_USER,
    USER_PYTHON,
    Sandbox,
    make_sandbox,
    me,
    other_account,
)


@pytest.fixture(scope="session")
def editor_state(request: pytest.FixtureRequest) -> Path:
    """The state folder of the image the runtime tests run.

    The developer image's (``dev_image``, built once per run), unless
    ``SAGECODE_TEST_EDITOR_STATE`` names the state folder of an image saved before: then a
    layer change someone else is making does not force a rebuild while the runtime is
    worked on. CI leaves it unset.
    """
    keep = os.environ.get("SAGECODE_TEST_EDITOR_STATE")
    if keep:
        request.getfixturevalue("docker_engine")
        return Path(keep)
    request.getfixturevalue("dev_image")
    return Path(request.getfixturevalue("image_state"))


@pytest.fixture(scope="session")
def editor_image(editor_state: Path) -> Manifest:
    """The manifest of the image the runtime tests run (see ``editor_state``)."""
    current = ImageStore(editor_state / "images").current()
    assert current is not None, f"no saved image in {editor_state}"
    found = subprocess.run(["docker", "image", "inspect", current.image], capture_output=True, check=False)
    assert found.returncode == 0, f"{current.image} is not in the engine: python -m imagebuild restore"
    return current


@pytest.fixture
def sandbox(editor_image: Manifest) -> Iterator[Sandbox]:
    """A sandbox for the account running the tests, on the system engine."""
    box = make_sandbox(me(), editor_image)
    yield box
    box.close()


@pytest.fixture(scope="session")
def user_venv(tmp_path_factory: pytest.TempPathFactory) -> Iterator[Path]:
    """A venv ``TEST_USER`` can run, importing this checkout and the project venv's packages."""
    need(os.geteuid() == 0, "running as another account needs root")
    python = Path(USER_PYTHON)
    version = subprocess.run([str(python), "-c", "import sys; print(sys.version_info[:2])"],
                             capture_output=True, text=True, check=False).stdout.strip()  # fmt: skip
    need(
        version == str(sys.version_info[:2]), f"{python} must be Python {sys.version_info[:2]}, not {version}"
    )
    venv = Path(tempfile.mkdtemp(prefix="sagecode-test-venv-", dir="/tmp"))
    venv.chmod(0o755)
    subprocess.run([str(python), "-m", "venv", "--without-pip", str(venv)], check=True)
    site = Path(sysconfig.get_paths()["purelib"])
    site_packages = next(venv.glob("lib/python3*/site-packages"))
    (site_packages / "sagecode-dev.pth").write_text(f"import site; site.addsitedir({str(site)!r})\n")
    for name, module in (("code-server", "runtime.wrapper"), ("sagecode", "runtime.cli")):
        script = venv / "bin" / name
        script.write_text(SCRIPT.format(python=venv / "bin" / "python", module=module))
        script.chmod(0o755)
    yield venv
    shutil.rmtree(venv, ignore_errors=True)


@pytest.fixture(scope="session")
def rootless_engine(editor_image: Manifest, editor_state: Path) -> str:
    """DOCKER_HOST of ``TEST_USER``'s rootless engine, holding the developer image.

    docker-engine.sh starts it beside the system daemon (which it leaves alone); the image
    comes from the saved tar through ``python -m imagebuild restore``, as after a restart.
    """
    need(os.geteuid() == 0 and ENGINE_SCRIPT.is_file(), "needs root and docker-engine.sh")
    done = engine_script("--mode", "rootless", "--user", TEST_USER)
    host = re.search(r"DOCKER_HOST=(\S+)", done.stderr)
    assert host, done.stderr
    restore = subprocess.run(
        [sys.executable, "-m", "imagebuild", "restore", "--no-build", "--state-dir", str(editor_state)],
        capture_output=True, text=True, timeout=900, cwd=ROOT,
        env={**os.environ, "DOCKER_HOST": host.group(1)}, check=False,
    )  # fmt: skip
    assert restore.returncode == 0, restore.stderr
    assert restore.stdout.strip() in (f"{editor_image.image} loaded", f"{editor_image.image} present")
    return host.group(1)


@pytest.fixture(params=["rootful", "rootless"])
def user_sandbox(
    request: pytest.FixtureRequest, user_venv: Path, editor_image: Manifest
) -> Iterator[Sandbox]:
    """A sandbox of ``TEST_USER`` (not root): rootful engine (docker group), or their rootless one."""
    if request.param == "rootful":
        box = make_sandbox(other_account(user_venv, ["docker"]), editor_image)
    else:
        box = make_sandbox(other_account(user_venv), editor_image, request.getfixturevalue("rootless_engine"))
    yield box
    box.close()
