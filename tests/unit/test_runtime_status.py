"""``sagecode status`` from recorded facts (runtime.status, runtime.instance, runtime.heartbeat)."""

from __future__ import annotations

import json
import os
import time
from pathlib import Path

import pytest
import tomllib

from imagebuild.errors import EngineError
from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from runtime.config import RuntimeConfig
from runtime.container import ContainerState
from runtime.heartbeat import heartbeat_file, last_beat
from runtime.instance import PROXY_NAME, editor_url
from runtime.status import format_lines, status_lines
from runtime.usermap import HostUser
from tests.unit.runtime_fakes import FakeContainers

ROOT = Path(__file__).resolve().parents[2]
SAVED = Manifest(
    image="sagecode:0123456789ab", content="0123456789ab" + "0" * 52,
    versions={"code-server": "4.139.1", "node": "24.22.3"}, layers=("base",),
    base_image="ubuntu:22.04", platform="amd64", created="2026-01-02T03:04:05+00:00",
    tar="sagecode-0123456789ab.tar", tar_bytes=1500,
)  # fmt: skip


class Engine(FakeContainers):
    """An engine that has ``SAVED`` and runs a container with ``content``, or is down."""

    def __init__(self, content: str | None = SAVED.content, down: bool = False) -> None:
        super().__init__(images={SAVED.image: {}})
        self.content, self.down = content, down

    def state(self, name: str) -> ContainerState | None:
        if self.down:
            raise EngineError("docker inspect: the Docker engine is not running", "start Docker")
        return None if self.content is None else ContainerState(name, True, self.content)


@pytest.fixture
def config(tmp_path: Path) -> RuntimeConfig:
    """A state folder with ``SAVED`` as the current image and its 1500-byte tar."""
    state = StatePaths(tmp_path / "state")
    state.images.mkdir(parents=True)
    (state.images / "current.json").write_text(SAVED.to_json())
    (state.images / SAVED.tar).write_bytes(b"x" * 1500)
    return RuntimeConfig(state, tmp_path, HostUser(1001, 1001, "ec2-user"), tmp_path, container_name="ed")


def report(
    config: RuntimeConfig, engine: FakeContainers, metadata: Path = Path("/nonexistent")
) -> dict[str, str]:
    """The status as label -> text."""
    return dict(status_lines(config, engine, metadata))


def test_status_names_image_versions_tar_and_container(config: RuntimeConfig) -> None:
    """The saved image with its versions, its tar and size, and the running container."""
    got = report(config, Engine())
    assert (
        got["image"]
        == "sagecode:0123456789ab (code-server 4.139.1, node 24.22.3), built 2026-01-02T03:04:05+00:00"
    )
    assert got["saved"] == f"{config.state.images / SAVED.tar} (1.5 KB)"
    assert got["engine"] == "has sagecode:0123456789ab"
    assert got["container"] == "ed is running"


def test_status_flags_a_container_of_an_older_image(config: RuntimeConfig) -> None:
    """A container started from another build says to restart the editor."""
    assert "older image" in report(config, Engine(content="f" * 64))["container"]


def test_status_engine_down_is_a_line_not_an_error(config: RuntimeConfig) -> None:
    """With the engine down the rest of the report is still printed."""
    got = report(config, Engine(down=True))
    assert got["engine"].startswith("not answering: docker inspect: the Docker engine is not running")
    assert got["container"] == "unknown"
    assert got["url"] == "/codeserver/"


def test_status_without_image_says_build(tmp_path: Path) -> None:
    """Nothing built: the image line says how to build, the tar line says none."""
    config = RuntimeConfig(StatePaths(tmp_path), tmp_path, HostUser(1, 1, "u"), tmp_path)
    got = report(config, Engine(content=None))
    assert got["image"] == "none built yet (build it: python -m imagebuild)"
    assert got["saved"] == "none saved"
    assert got["engine"] == "no image to look for"
    assert got["container"] == "sagecode is not running"


def test_status_url_on_a_notebook_instance(tmp_path: Path) -> None:
    """On an instance the URL is Jupyter's address plus the proxy's server name."""
    metadata = tmp_path / "resource-metadata.json"
    arn = "arn:aws:sagemaker:eu-west-1:123456789012:notebook-instance/my-nb"
    metadata.write_text(json.dumps({"ResourceArn": arn, "ResourceName": "My-NB"}))
    assert editor_url(metadata) == "https://my-nb.notebook.eu-west-1.sagemaker.aws/codeserver/"


def test_status_proxy_name_is_the_entry_point_name() -> None:
    """The URL path is the name JSP serves the editor under (the glue's entry point)."""
    project = tomllib.loads((ROOT / "jupyter" / "pyproject.toml").read_text())
    assert PROXY_NAME in project["project"]["entry-points"]["jupyter_serverproxy_servers"]


def test_status_heartbeat_age(config: RuntimeConfig) -> None:
    """The heartbeat line names the file and how long ago it was touched."""
    assert "no activity recorded yet" in report(config, Engine())["heartbeat"]
    beat = heartbeat_file(config.state.home)
    beat.parent.mkdir(parents=True)
    beat.touch()
    os.utime(beat, (time.time() - 300, time.time() - 300))
    assert last_beat(config.state.home).describe(time.time()) == f"last activity 5 min ago ({beat})"


def test_status_format_aligns_labels() -> None:
    """Labels are padded to one column."""
    assert format_lines([("a", "1"), ("long", "2")]) == "a:    1\nlong: 2"
