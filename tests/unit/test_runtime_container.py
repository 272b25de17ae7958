"""The docker CLI boundary of the runtime (runtime.container), against a scripted docker."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.errors import EngineError
from runtime.container import Containers, ContainerState

# Answers like docker 26 for the objects named "present", "gone" and "stuck".
FAKE_DOCKER = r"""#!/bin/sh
echo "$*" >> "$(dirname "$0")/calls"
case "$*" in
  *"inspect --format"*" present") printf 'true 0123abcd\n' ;;
  *"inspect --format"*" unlabelled") printf 'false <no value>\n' ;;
  *"image inspect --format {{.Id}} here:1") printf 'sha256:feed\n' ;;
  *"image inspect --format {{json .Config.Labels}} here:1") printf '{"org.sagecode.content":"ab"}\n' ;;
  *" down"|"info"*) echo "Cannot connect to the Docker daemon at unix:///var/run/docker.sock." >&2; exit 1 ;;
  *" broken") printf 'warning\nError response from daemon: something broke\n' >&2; exit 1 ;;
  "rm --force "*|"stop "*) exit 0 ;;
  *) echo "Error response from daemon: No such object: x" >&2; exit 1 ;;
esac
"""


@pytest.fixture
def engine(tmp_path: Path) -> Containers:
    """Containers whose docker is ``FAKE_DOCKER``."""
    script = tmp_path / "docker"
    script.write_text(FAKE_DOCKER)
    script.chmod(0o755)
    return Containers((str(script),))


def calls(engine: Containers) -> list[str]:
    """The argument lines the fake docker was called with."""
    return (Path(engine.docker[0]).parent / "calls").read_text().splitlines()


def test_container_state_reads_running_and_content(engine: Containers) -> None:
    """A container's running flag and content label come from one inspect."""
    assert engine.state("present") == ContainerState("present", True, "0123abcd")
    assert engine.state("unlabelled") == ContainerState("unlabelled", False, "")


def test_container_missing_objects_are_none(engine: Containers) -> None:
    """Docker's "No such ..." means absent, not an error."""
    assert engine.state("absent") is None
    assert engine.image_id("absent:1") is None
    assert engine.image_labels("absent:1") == {}


def test_container_image_id_and_labels(engine: Containers) -> None:
    """Image id and labels come from ``docker image inspect``."""
    assert engine.image_id("here:1") == "sha256:feed"
    assert engine.image_labels("here:1") == {"org.sagecode.content": "ab"}


def test_container_engine_down_is_one_line_with_fix(engine: Containers) -> None:
    """A daemon that is not running is said so, with what to do."""
    with pytest.raises(EngineError, match="the Docker engine is not running") as caught:
        engine.state("down")
    assert caught.value.fix == "start Docker, then retry"


def test_container_other_failures_keep_dockers_last_line(engine: Containers) -> None:
    """Any other failure carries docker's last line."""
    with pytest.raises(EngineError, match="something broke"):
        engine.state("broken")


def test_container_remove_forces_and_waits(engine: Containers) -> None:
    """Removal is ``rm --force``, then a check that the container is gone."""
    engine.remove("absent")
    assert calls(engine)[0] == "rm --force absent"
    assert calls(engine)[1].startswith("container inspect")


def test_container_stop_passes_the_grace_period(engine: Containers) -> None:
    """``docker stop --time N`` gives code-server N seconds before it is killed."""
    engine.stop("present", 7)
    assert calls(engine) == ["stop --time 7 present"]


def test_container_missing_docker_is_one_line(tmp_path: Path) -> None:
    """No docker binary: the error says to install Docker."""
    with pytest.raises(EngineError, match="not installed"):
        Containers((str(tmp_path / "nowhere"),)).info()
