"""The wrapper's decisions around the engine, with fakes for it (runtime.wrapper)."""

from __future__ import annotations

import logging
import subprocess
from collections.abc import Sequence
from pathlib import Path
from typing import Any

import pytest

from imagebuild.engine import Engine
from imagebuild.errors import StoreError
from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from runtime import wrapper
from runtime.args import parse_args
from runtime.config import RuntimeConfig
from runtime.container import Containers
from runtime.plan import Image
from runtime.usermap import HostUser
from runtime.wrapper import Wrapper

CURRENT = Manifest(
    image="sagecode:0123456789ab",
    content="0123456789ab" * 4,
    versions={"code-server": "4.100.0"},
    layers=("base",),
    base_image="ubuntu:22.04",
    platform="amd64",
)


class FakeEngine(Engine):
    """Images by reference, with their labels."""

    def __init__(self, images: dict[str, dict[str, str]]) -> None:
        self.images = images

    def image_id(self, ref: str) -> str | None:
        return f"sha256:{ref}" if ref in self.images else None

    def labels(self, ref: str) -> dict[str, str]:
        return self.images[ref]


class FakeContainers(Containers):
    """An engine that answers ``docker info`` with ``info``."""

    def __init__(self, info: dict[str, Any]) -> None:
        self.recorded_info = info

    def info(self) -> dict[str, Any]:
        return self.recorded_info


def make(tmp_path: Path, images: dict[str, dict[str, str]], image: str | None = None, **info: Any) -> Wrapper:
    """A wrapper on a state folder in ``tmp_path`` with a saved current image."""
    state = StatePaths(tmp_path / "state")
    state.images.mkdir(parents=True)
    (state.images / "current.json").write_text(CURRENT.to_json())
    config = RuntimeConfig(state, tmp_path, HostUser(1000, 1000, "ec2-user"), tmp_path, image=image)
    return Wrapper(config, FakeContainers(info), FakeEngine(images), logging.getLogger("test"))


def test_wrapper_runs_the_current_image(tmp_path: Path, caplog: pytest.LogCaptureFixture) -> None:
    """The image ``current.json`` names is run, and the log says which, with its versions."""
    caplog.set_level(logging.INFO)
    assert make(tmp_path, {CURRENT.image: {}}).image() == Image(CURRENT.image, CURRENT.content)
    assert "running sagecode:0123456789ab (code-server 4.100.0)" in caplog.text


def test_wrapper_without_saved_image_says_build(tmp_path: Path) -> None:
    """With nothing saved, the error says to build the image."""
    run = make(tmp_path, {})
    (run.config.state.images / "current.json").unlink()
    with pytest.raises(StoreError, match="no sagecode image has been built"):
        run.image()


def test_wrapper_restores_a_wiped_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A missing image is restored (load only, bounded) before it is run."""
    run = make(tmp_path, {})
    calls: list[Sequence[str]] = []

    def restore(command: Sequence[str], **kwargs: Any) -> None:
        calls.append(command)
        assert kwargs["timeout"] == run.config.image_wait_seconds
        run.engine.images[CURRENT.image] = {}  # type: ignore[attr-defined]

    monkeypatch.setattr(subprocess, "run", restore)
    assert run.image().ref == CURRENT.image
    assert list(calls[0][1:]) == [
        "-m", "imagebuild", "restore", "--no-build", "--quiet", "--state-dir", str(run.config.state.root),
    ]  # fmt: skip


def test_wrapper_never_falls_back_to_an_older_image(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """When the restore fails, the launch fails too, even if ``sagecode:latest`` is there."""
    run = make(tmp_path, {"sagecode:latest": {}})
    monkeypatch.setattr(subprocess, "run", lambda *a, **k: None)
    with pytest.raises(StoreError, match="could not be restored"):
        run.image()


def test_wrapper_image_override_reads_its_content_label(tmp_path: Path) -> None:
    """``SAGECODE_IMAGE`` runs that image, labelled with its own content hash."""
    run = make(tmp_path, {"mine:1": {"org.sagecode.content": "feed"}}, image="mine:1")
    assert run.image() == Image("mine:1", "feed")


def test_wrapper_missing_override_is_an_error(tmp_path: Path) -> None:
    """An override the engine does not have is an error naming the variable."""
    with pytest.raises(StoreError, match="SAGECODE_IMAGE=mine:1"):
        make(tmp_path, {}, image="mine:1").image()


def test_wrapper_plan_maps_user_from_engine_info(tmp_path: Path) -> None:
    """The plan drops to the host user on a rootful engine, as ``docker info`` describes it."""
    run = make(tmp_path, {}, SecurityOptions=["name=seccomp,profile=builtin"])
    assert "SAGECODE_UID=1000" in run.plan(parse_args([]), Image("i", "c"))


def test_wrapper_plan_warns_about_foreign_remap_owner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A remap onto another uid is logged: files on the volume would not be the user's."""
    run = make(tmp_path, {}, SecurityOptions=["name=userns"], DockerRootDir="/var/lib/docker/231072.231072")
    run.plan(parse_args([]), Image("i", "c"))
    assert "belong to uid 231072" in caplog.text


def test_wrapper_config_error_is_one_line(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad command line ends with status 1 and one ``sagecode:`` line on stderr."""
    assert wrapper.main(["--bind-addr", "nowhere"]) == 1
    assert capsys.readouterr().err.count("\n") == 1
