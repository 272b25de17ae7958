"""The opt-in engine data on the volume, on the real engine: a restart finds the image there.

``runtime.enginedata on`` moves dockerd's data-root and containerd's root (this engine keeps
images in containerd) to a folder standing in for ``~/SageMaker/.sagecode/engine`` and
restarts the daemons; an image is built; the engine is wiped as an instance's restart does
(``/var/lib/docker`` and ``/var/lib/containerd`` deleted); ``restore`` then finds the image
present and loads nothing. ``off --purge`` puts the engine back, whatever happened.
"""

from __future__ import annotations

import json
import os
import shlex
import shutil
import subprocess
import sys
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild.store import ImageStore
from tests.integration.conftest import (
    BASE_IMAGE,
    ENGINE_SCRIPT,
    IN_CI,
    ROOT,
    SMALL,
    build_args,
    imagebuild,
    need,
)
from tests.integration.test_spine import simulate_restart

pytestmark = [pytest.mark.engine, pytest.mark.wipe]
VOLUME = Path("/var/tmp/sagecode-test-volume/engine")  # outside pytest's temp dirs, which get deleted


def _root_dir() -> str:
    return subprocess.run(["docker", "info", "--format", "{{.DockerRootDir}}"], check=True,
                          capture_output=True, text=True, timeout=30).stdout.strip()


def _enginedata(*args: str, restart: Path) -> subprocess.CompletedProcess[str]:
    env = dict(os.environ, SAGECODE_ENGINE_RESTART=f"bash {shlex.quote(str(restart))}")
    return subprocess.run([sys.executable, "-m", "runtime.enginedata", *args, "--volume", str(VOLUME)],
                          check=False, capture_output=True, text=True, timeout=600, env=env, cwd=ROOT)


@pytest.fixture
def restart(tmp_path: Path) -> Path:
    """What systemctl restart does on an instance: stop both daemons, start them again."""
    script = tmp_path / "restart.sh"
    script.write_text(
        "set -e\n"
        "for name in dockerd containerd; do\n"
        "  pid=$(pgrep -u 0 -x $name || true)\n"
        "  [ -z \"$pid\" ] || { kill $pid; while kill -0 $pid 2>/dev/null; do sleep 0.1; done; }\n"
        "done\n"
        # right after a start dockerd may answer before it lists buildx and its snapshotter
        f"up() {{ bash {shlex.quote(str(ENGINE_SCRIPT))} --base-image {shlex.quote(BASE_IMAGE)}"
        " >/dev/null; }\nup || { sleep 3; up; }\n"
    )
    return script


@pytest.fixture
def on_volume(docker_engine: None, restart: Path) -> Iterator[None]:
    """The engine's data on the stand-in volume for the test, back on the root volume after."""
    need(os.geteuid() == 0, "moving the engine's data needs root")
    need(IN_CI or os.environ.get("SAGECODE_TEST_WIPE") == "1",
         "restarting the shared engine needs SAGECODE_TEST_WIPE=1 outside CI")
    shutil.rmtree(VOLUME.parent, ignore_errors=True)
    try:
        moved = _enginedata("on", "--min-free-gb", "1", restart=restart)
        assert moved.returncode == 0, moved.stderr
        yield
    finally:
        back = _enginedata("off", "--purge", restart=restart)
        assert back.returncode == 0, back.stderr
        assert _root_dir() == "/var/lib/docker"
        assert not VOLUME.exists()
        shutil.rmtree(VOLUME.parent, ignore_errors=True)


def test_a_restart_finds_the_image_on_the_volume(on_volume: None, restart: Path) -> None:
    assert _root_dir() == str(VOLUME / "docker")
    assert json.loads(Path("/etc/docker/daemon.json").read_text())["data-root"] == str(VOLUME / "docker")
    state = VOLUME.parent  # as on an instance: the engine's data in the state folder's engine/
    built = imagebuild(state, *build_args(), *SMALL)
    current = ImageStore(state / "images").current()
    assert current is not None
    # the engine keeps its build cache on the volume: no second copy in the state folder
    assert "it keeps the build cache across restarts, so none is exported" in built.stdout + built.stderr
    assert not (state / "cache" / "index.json").exists()
    simulate_restart()  # deletes /var/lib/docker and /var/lib/containerd; the volume stays
    # the next start's hook: the configuration is in place, nothing to restart
    again = _enginedata("on", "--min-free-gb", "1", restart=restart)
    assert "already on the volume" in again.stdout, again.stdout + again.stderr
    restored = imagebuild(state, "restore")
    assert f"{current.image} is already in the engine" in restored.stdout + restored.stderr
    assert "loading" not in restored.stdout + restored.stderr
    ran = subprocess.run(["docker", "run", "--rm", current.image, "true"], check=False, capture_output=True,
                         text=True, timeout=120)  # fmt: skip
    assert ran.returncode == 0, ran.stderr
    # the next build: the earlier image leaves the engine, whose data counts against the volume
    built = imagebuild(state, *build_args(), "--without", f"shell,{SMALL[1]}")
    newer = ImageStore(state / "images").current()
    assert newer is not None
    assert newer.image != current.image
    assert f"removed the earlier image {current.image} from the engine" in built.stdout + built.stderr
    listed = subprocess.run(["docker", "image", "ls", "--format", "{{.Repository}}:{{.Tag}}", "sagecode"],
                            check=True, capture_output=True, text=True, timeout=60).stdout.split()
    assert sorted(listed) == sorted({newer.image, "sagecode:latest"})


def test_on_refuses_when_the_volume_is_short_and_changes_nothing(docker_engine: None, restart: Path) -> None:
    need(os.geteuid() == 0, "moving the engine's data needs root")
    before = Path("/etc/docker/daemon.json").read_text()
    refused = _enginedata("on", "--min-free-gb", "1000000", restart=restart)
    assert refused.returncode == 2
    assert "grow the notebook's volume" in refused.stderr
    assert refused.stderr.count("\n") == 1
    assert Path("/etc/docker/daemon.json").read_text() == before
    assert _root_dir() == "/var/lib/docker"
