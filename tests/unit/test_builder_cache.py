"""The build's cache export against a fake engine and a real store: a failed export fails no
build, and the cache is not written to a volume that would be left nearly full."""

from __future__ import annotations

import dataclasses
from typing import Optional, TypeVar

import pytest

from imagebuild import builder
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.engine import BuildRequest, Capabilities, OnLine
from imagebuild.store import ImageStore
from tests.conftest import VERSIONS
from tests.unit.oci_fixtures import oci_layout

OPTIONS = "compression=zstd,ignore-error=true"
FakeEngineT = TypeVar("FakeEngineT", bound="FakeEngine")


class FakeEngine:
    """A docker-driver engine on the containerd store; ``build`` writes the tar it is asked for."""

    def __init__(self) -> None:
        self.requests: list[BuildRequest] = []

    def capabilities(self) -> Capabilities:
        return Capabilities("26.1.5", "v0.13.1", "docker", True)

    def ensure_image(self, ref: str) -> None:
        """The base image is present."""

    def build(self, request: BuildRequest, on_line: OnLine) -> None:
        self.requests.append(request)
        assert request.layout is not None
        oci_layout(request.layout, request.tags[0])

    def image_id(self, ref: str) -> Optional[str]:
        return None

    def tag(self, ref: str, new: str) -> None:
        """Tagged."""


def _build(config: BuildConfig) -> BuildRequest:
    [request] = _built_by(FakeEngine(), config).requests
    return request


def _built_by(engine: FakeEngineT, config: BuildConfig) -> FakeEngineT:
    """``engine`` after one build of ``config``."""
    builder.build(builder.plan(config, VERSIONS), engine, Console(quiet=True))  # type: ignore[arg-type]
    return engine


def test_cache_export_is_max_zstd_and_never_fails_the_build(config: BuildConfig) -> None:
    """auto exports every stage's layers in zstd, with ignore-error: the image is what counts."""
    request = _build(config)
    assert request.cache_to == f"type=local,dest={config.state.cache},mode=max,{OPTIONS}"
    assert ImageStore(config.state.images).current() is not None


def test_nearly_full_volume_gets_no_cache_but_the_image(config: BuildConfig, monkeypatch: pytest.MonkeyPatch,
                                                        capsys: pytest.CaptureFixture[str]) -> None:
    """Less than CACHE_ROOM left after the tar: no cache export, a note, the image saved as usual."""
    monkeypatch.setattr(ImageStore, "free_bytes", lambda self: ImageStore.needed_bytes(self) + (512 << 20))
    request = _build(config)
    assert request.cache_to == ""
    assert "MiB would stay free on the volume after the saved image: not writing the build cache" \
        in capsys.readouterr().err
    assert ImageStore(config.state.images).current() is not None


def test_registry_cache_ignores_the_volume(config: BuildConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """A registry cache is not on the volume: exported however full the volume is."""
    monkeypatch.setattr(ImageStore, "free_bytes", lambda self: ImageStore.needed_bytes(self) + 1)
    request = _build(dataclasses.replace(config, cache_ref="127.0.0.1:5000/c:x"))
    assert request.cache_to == f"type=registry,ref=127.0.0.1:5000/c:x,mode=max,{OPTIONS}"


class EngineOnTheVolume(FakeEngine):
    """The opt-in SAGECODE_ENGINE_DATA=volume: dockerd's data-root under the state folder."""

    def __init__(self, root_dir: str) -> None:
        super().__init__()
        self.root_dir = root_dir
        self.held = ["sagecode:0123456789ab", "sagecode:running0000", "sagecode:mine",
                     "sagecode:abcdefabcdef"]
        self.pruned: list[int] = []

    def capabilities(self) -> Capabilities:
        return dataclasses.replace(super().capabilities(), root_dir=self.root_dir)

    def tag(self, ref: str, new: str) -> None:
        self.held += [ref, new]

    def tags(self, repo: str) -> list[str]:
        return sorted({t for t in self.held if t.startswith(f"{repo}:")})

    def remove_unused(self, ref: str) -> bool:
        if ref == "sagecode:abcdefabcdef":  # a container uses it
            return False
        self.held.remove(ref)
        return True

    def prune_build_cache(self, keep_bytes: int) -> None:
        self.pruned.append(keep_bytes)


def _build_on(config: BuildConfig, root_dir: str) -> BuildRequest:
    return _engine_after(config, root_dir).requests[0]


def _engine_after(config: BuildConfig, root_dir: str) -> EngineOnTheVolume:
    return _built_by(EngineOnTheVolume(root_dir), config)


def test_engine_on_the_volume_keeps_only_the_new_image_and_a_capped_cache(config: BuildConfig) -> None:
    """The volume holds what the engine keeps: earlier images go (not one a container runs),
    the engine's build cache is pruned to the cap."""
    engine = _engine_after(config, str(config.state.root / "engine" / "docker"))
    [request] = engine.requests
    # the older content tag went; the one in use, and tags someone else set, stay
    assert engine.tags("sagecode") == sorted({*request.tags, "sagecode:latest", "sagecode:running0000",
                                              "sagecode:mine", "sagecode:abcdefabcdef"})
    assert engine.pruned == [config.cache_cap_mb << 20]


def test_engine_on_the_volume_nearly_full_drops_all_spare_cache(config: BuildConfig,
                                                                monkeypatch: pytest.MonkeyPatch) -> None:
    monkeypatch.setattr(ImageStore, "free_bytes", lambda self: 100 << 20)
    monkeypatch.setattr(ImageStore, "needed_bytes", lambda self: 0)
    engine = _engine_after(config, str(config.state.root / "engine" / "docker"))
    assert engine.pruned == [0]


def test_engine_on_the_root_volume_is_left_alone(config: BuildConfig) -> None:
    """A restart empties it: nothing removed, nothing pruned."""
    engine = _engine_after(config, "/var/lib/docker")
    assert "sagecode:0123456789ab" in engine.tags("sagecode")
    assert engine.pruned == []


def test_engine_data_on_the_volume_exports_no_second_cache(config: BuildConfig,
                                                           capsys: pytest.CaptureFixture[str]) -> None:
    """The engine keeps its build cache on the volume itself: auto writes no copy, and says so."""
    request = _build_on(config, str(config.state.root / "engine" / "docker"))
    assert request.cache_to == ""
    assert "it keeps the build cache across restarts, so none is exported" in capsys.readouterr().err
    assert ImageStore(config.state.images).current() is not None


@pytest.mark.parametrize(("mode", "where"), [("max", "volume"), ("auto", "root volume")])
def test_cache_is_exported_when_asked_or_when_the_engine_forgets(config: BuildConfig, mode: str,
                                                                 where: str) -> None:
    """An explicit max still exports; an engine on the root volume (wiped by a restart) gets the cache."""
    root = str(config.state.root / "engine" / "docker") if where == "volume" else "/var/lib/docker"
    request = _build_on(dataclasses.replace(config, cache_mode=mode), root)
    assert request.cache_to == f"type=local,dest={config.state.cache},mode=max,{OPTIONS}"
