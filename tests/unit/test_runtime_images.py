"""Which image the editor runs, and its restore when the engine lacks it (runtime.images)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any, Optional

import pytest

from imagebuild.errors import StoreError
from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from runtime.config import RuntimeConfig
from runtime.images import describe, select_image
from runtime.plan import Image
from runtime.usermap import HostUser
from tests.unit.runtime_fakes import FakeContainers

CURRENT = Manifest(
    image="sagecode:0123456789ab",
    content="0123456789ab" * 4,
    versions={"code-server": "4.100.0", "node": "24.1.0"},
    layers=("base",),
    base_image="ubuntu:22.04",
    platform="amd64",
)
LOG = logging.getLogger("test")


def config(tmp_path: Path, image: Optional[str] = None) -> RuntimeConfig:
    """A configuration whose state folder holds ``CURRENT`` as the saved image."""
    state = StatePaths(tmp_path / "state")
    state.images.mkdir(parents=True)
    (state.images / "current.json").write_text(CURRENT.to_json())
    return RuntimeConfig(state, tmp_path, HostUser(1000, 1000, "ec2-user"), tmp_path, image=image)


def test_describe_names_image_and_versions() -> None:
    """The description lists the versions in name order."""
    assert describe(CURRENT) == "sagecode:0123456789ab (code-server 4.100.0, node 24.1.0)"


def test_images_runs_the_current_image(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The image ``current.json`` names is run, and the log says which, with its versions."""
    caplog.set_level(logging.INFO)
    found = select_image(config(tmp_path), FakeContainers(images={CURRENT.image: {}}), LOG)
    assert found == Image(CURRENT.image, CURRENT.content)
    assert "running sagecode:0123456789ab (code-server 4.100.0, node 24.1.0)" in caplog.text


def test_images_without_saved_image_says_build(tmp_path: Path) -> None:
    """With nothing saved, the error says to build the image."""
    conf = config(tmp_path)
    (conf.state.images / "current.json").unlink()
    with pytest.raises(StoreError, match="no sagecode image has been built"):
        select_image(conf, FakeContainers(), LOG)


def test_images_restores_a_wiped_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing image is restored (load only, bounded, logged to wrapper.log) before it is run."""
    conf, engine = config(tmp_path), FakeContainers()
    calls: list[Sequence[str]] = []

    def restore(command: Sequence[str], **kwargs: Any) -> None:
        calls.append(command)
        assert kwargs["timeout"] == conf.image_wait_seconds
        assert Path(kwargs["stdout"].name) == conf.state.logs / "wrapper.log"
        engine.images[CURRENT.image] = {}

    monkeypatch.setattr(subprocess, "run", restore)
    assert select_image(conf, engine, LOG).ref == CURRENT.image
    assert list(calls[0][1:]) == [
        "-I", "-m", "imagebuild", "restore", "--no-build", "--quiet", "--state-dir", str(conf.state.root),
    ]  # fmt: skip


def test_images_restore_timeout_is_one_error(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A restore that outlasts SAGECODE_IMAGE_WAIT fails the launch with where to look."""

    def slow(command: Sequence[str], **kwargs: Any) -> None:
        raise subprocess.TimeoutExpired(command, kwargs["timeout"])

    monkeypatch.setattr(subprocess, "run", slow)
    with pytest.raises(StoreError, match="not restored within 300 s") as caught:
        select_image(config(tmp_path), FakeContainers(), LOG)
    assert "logs/wrapper.log" in caught.value.fix


def test_images_never_fall_back_to_an_older_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the restore fails, the launch fails too, even if ``sagecode:latest`` is there."""
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)
    with pytest.raises(StoreError, match="could not be restored"):
        select_image(config(tmp_path), FakeContainers(images={"sagecode:latest": {}}), LOG)


def test_images_override_reads_its_content_label(tmp_path: Path) -> None:
    """``SAGECODE_IMAGE`` runs that image, labelled with its own content hash."""
    engine = FakeContainers(images={"mine:1": {"org.sagecode.content": "feed"}})
    assert select_image(config(tmp_path, "mine:1"), engine, LOG) == Image("mine:1", "feed")


def test_images_missing_override_is_an_error(tmp_path: Path) -> None:
    """An override the engine does not have is an error naming the variable."""
    with pytest.raises(StoreError, match="SAGECODE_IMAGE=mine:1"):
        select_image(config(tmp_path, "mine:1"), FakeContainers(), LOG)
