"""restore's decisions against a fake engine: a real store on disk with a saved tar that is
intact, truncated, or whose manifest is from an older format."""

from __future__ import annotations

import dataclasses
import io
import json
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

import pytest

from imagebuild import store as store_module
from imagebuild import tarserve
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.errors import StoreError
from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from imagebuild.restore import Restored, restore
from imagebuild.store import CURRENT, ImageStore
from tests.unit.oci_fixtures import PullingEngine, oci_tar

TAR = b"a saved image"


class FakeEngine:
    """Holds the images it was given; ``load`` reads the whole stream like docker load."""

    def __init__(self) -> None:
        self.images: set[str] = set()
        self.loaded = b""

    def image_id(self, ref: str) -> Optional[str]:
        return f"sha256:{ref}" if ref in self.images else None

    def load(self, chunks: Iterable[bytes]) -> list[str]:
        self.loaded = b"".join(chunks)
        self.images.add("sagecode:aaaa")
        return ["sagecode:aaaa"]

    def tag(self, ref: str, new: str) -> None:
        self.images.add(new)

    def remove(self, ref: str) -> None:
        self.images.discard(ref)


class Rebuilds:
    """Records each rebuild and returns a new manifest."""

    def __init__(self) -> None:
        self.calls: list[tuple[BuildConfig, Optional[Manifest]]] = []

    def __call__(self, config: BuildConfig, old: Optional[Manifest]) -> Manifest:
        self.calls.append((config, old))
        return Manifest(image="sagecode:bbbb", content="b" * 64, versions={}, layers=("base",),
                        base_image="b", platform="amd64")


def _committed(tmp_path: Path, data: bytes) -> BuildConfig:
    """A state dir whose store holds one committed tar of ``data``."""
    config = BuildConfig(state=StatePaths(tmp_path))
    store = ImageStore(config.state.images)
    store.prepare()
    partial = store.partial_path("aaaa")
    store.write_stream([data], partial)
    store.commit(partial, Manifest(image="sagecode:aaaa", content="a" * 64, versions={"code-server": "4.1.0"},
                                   layers=("base", "entrypoint"), base_image="b", platform="amd64"))
    return config


@pytest.fixture
def saved(tmp_path: Path) -> BuildConfig:
    """A state dir whose store holds one committed tar."""
    return _committed(tmp_path, TAR)


def _restore(config: BuildConfig, engine: FakeEngine, rebuild: Optional[Rebuilds]) -> Restored:
    return restore(config, engine, Console(quiet=True), rebuild)  # type: ignore[arg-type]


def _truncate(config: BuildConfig) -> Manifest:
    store = ImageStore(config.state.images)
    current = store.current()
    assert current is not None
    store.tar_path(current).write_bytes(TAR[:4])
    return current


def test_restore_loads_an_intact_tar(saved: BuildConfig) -> None:
    """A tar that matches its checksum is loaded, whole, and nothing is rebuilt."""
    engine, rebuild = FakeEngine(), Rebuilds()
    assert _restore(saved, engine, rebuild).action == "loaded"
    assert engine.loaded == TAR
    assert rebuild.calls == []


def test_restore_reads_the_tar_once(saved: BuildConfig, monkeypatch: pytest.MonkeyPatch) -> None:
    """The checksum is taken from the stream the engine loads: no second read of the file."""

    def no_second_read(path: Path) -> str:
        raise AssertionError(f"{path} was read again for its checksum")

    monkeypatch.setattr(store_module, "file_sha256", no_second_read)
    assert _restore(saved, FakeEngine(), Rebuilds()).action == "loaded"


def test_restore_loadable_tar_with_wrong_bytes_is_not_kept(saved: BuildConfig) -> None:
    """Same size, other bytes, and an engine that loads them anyway: the checksum says so,
    the image leaves the engine, and the same versions are rebuilt."""
    store = ImageStore(saved.state.images)
    current = store.current()
    assert current is not None
    store.tar_path(current).write_bytes(TAR.upper())
    engine, rebuild = FakeEngine(), Rebuilds()
    assert _restore(saved, engine, rebuild).action == "built"
    assert engine.loaded == TAR.upper()
    assert "sagecode:aaaa" not in engine.images
    assert len(rebuild.calls) == 1


def test_restore_wrong_bytes_without_build_names_the_checksum(saved: BuildConfig) -> None:
    """--no-build: the one-line error says the tar does not match its checksum."""
    store = ImageStore(saved.state.images)
    current = store.current()
    assert current is not None
    store.tar_path(current).write_bytes(TAR.upper())
    with pytest.raises(StoreError, match="does not match its checksum"):
        _restore(saved, FakeEngine(), None)


def test_restore_truncated_tar_rebuilds_the_same_versions(saved: BuildConfig) -> None:
    """A truncated tar is not loaded; the rebuild is locked to the saved manifest's versions and layers."""
    current = _truncate(saved)
    engine, rebuild = FakeEngine(), Rebuilds()
    assert _restore(saved, engine, rebuild).action == "built"
    assert engine.loaded == b""
    [(config, old)] = rebuild.calls
    assert old == current
    assert config.lock_file == saved.state.images / CURRENT
    assert "awscli" in config.disabled
    assert "entrypoint" not in config.disabled


def test_restore_truncated_tar_without_build_is_one_line(saved: BuildConfig) -> None:
    """--no-build with a truncated tar: a StoreError saying what is wrong, on one line."""
    _truncate(saved)
    with pytest.raises(StoreError, match=r"the saved image is unusable: .* has 4 bytes") as caught:
        _restore(saved, FakeEngine(), None)
    assert "\n" not in str(caught.value)


def test_restore_older_manifest_format_builds_afresh(saved: BuildConfig,
                                                     capsys: pytest.CaptureFixture[str]) -> None:
    """A current.json of another schema is reported and the image is built with the configured versions."""
    path = saved.state.images / CURRENT
    path.write_text(json.dumps({**json.loads(path.read_text()), "schema": 0}))
    rebuild = Rebuilds()
    assert _restore(saved, FakeEngine(), rebuild).action == "built"
    assert rebuild.calls == [(saved, None)]
    assert "unreadable or from an older format: building the image afresh" in capsys.readouterr().err


def test_restore_older_manifest_format_without_build_is_one_line(saved: BuildConfig) -> None:
    """--no-build with an older current.json: one line that says so and how to build."""
    (saved.state.images / CURRENT).write_text('{"schema": 0}')
    with pytest.raises(StoreError, match=r"from an older format \(build one: python -m imagebuild\)"):
        _restore(saved, FakeEngine(), None)


def test_restore_removes_leftovers_of_a_killed_save(saved: BuildConfig) -> None:
    """Partial files of a save that was killed are removed by the next restore."""
    leftover = saved.state.images / "bbbb.partial-999999"
    leftover.write_bytes(b"half a tar")
    engine = FakeEngine()
    engine.images.add("sagecode:aaaa")
    assert _restore(saved, engine, None).action == "present"
    assert not leftover.exists()


# --- an OCI tar, pulled over 127.0.0.1 -----------------------------------------------------


@pytest.fixture
def saved_oci(tmp_path: Path) -> BuildConfig:
    """A state dir whose store holds one committed OCI layout tar, as the build saves it."""
    oci_tar(tmp_path / "oci.tar")
    return _committed(tmp_path, (tmp_path / "oci.tar").read_bytes())


def _oci_restore(config: BuildConfig, engine: PullingEngine, rebuild: Optional[Rebuilds],
                 err: Optional[io.StringIO] = None) -> Restored:
    return restore(config, engine, Console(quiet=True, err=err or io.StringIO()), rebuild)  # type: ignore[arg-type]


def test_restore_pulls_an_oci_tar_over_loopback(saved_oci: BuildConfig) -> None:
    """The engine pulls the image from the tar: nothing is loaded, the pull's name is gone."""
    engine = PullingEngine()
    assert _oci_restore(saved_oci, engine, Rebuilds()).action == "loaded"
    assert engine.images["sagecode:aaaa"].startswith("sha256:")
    assert engine.loaded == []
    assert len(engine.untagged) == 1
    assert engine.untagged[0].startswith("127.0.0.1:")
    assert set(engine.images) == {"sagecode:aaaa", "sagecode:latest"}


def test_restore_gives_the_engine_the_layers_its_pull_skipped(saved_oci: BuildConfig) -> None:
    """Layers the engine had unpacked are not fetched (Docker before 29): a small load adds
    their blobs, so the image is complete (listed, saveable)."""
    store = ImageStore(saved_oci.state.images)
    current = store.current()
    assert current is not None
    first = tarserve.index(store.tar_path(current), current.image).layers[0]
    engine = PullingEngine(unpacked=[first])
    assert _oci_restore(saved_oci, engine, Rebuilds()).action == "loaded"
    assert len(engine.loaded) == 1
    assert first.removeprefix("sha256:").encode() in engine.loaded[0]
    assert len(engine.loaded[0]) < store.tar_path(current).stat().st_size


def test_restore_loads_when_the_engine_cannot_reach_loopback(saved_oci: BuildConfig) -> None:
    """A rootless engine has its own 127.0.0.1: the tar is loaded, with no warning."""
    engine, err = PullingEngine(reachable=False), io.StringIO()
    assert _oci_restore(saved_oci, engine, Rebuilds(), err).action == "loaded"
    assert len(engine.loaded) == 1
    assert "warning" not in err.getvalue()


def test_restore_damaged_blob_fails_the_pull_and_names_the_checksum(saved_oci: BuildConfig) -> None:
    """A damaged layer fails the engine's digest check; the restore says the tar does not
    match, loads nothing, and rebuilds (or, with --no-build, stops in one line)."""
    store = ImageStore(saved_oci.state.images)
    current = store.current()
    assert current is not None
    tar = store.tar_path(current)
    blob = tarserve.index(tar, current.image).blobs[tarserve.index(tar, current.image).layers[1]]
    with tar.open("r+b") as f:
        f.seek(blob.offset + 5)
        f.write(b"XXXX")
    engine = PullingEngine()
    with pytest.raises(StoreError, match="does not match its checksum"):
        _oci_restore(saved_oci, engine, None)
    assert engine.loaded == []
    rebuild = Rebuilds()
    assert _oci_restore(saved_oci, PullingEngine(), rebuild).action == "built"
    assert len(rebuild.calls) == 1


def test_restore_damaged_layer_the_pull_skipped_is_not_loaded(saved_oci: BuildConfig) -> None:
    """A damaged layer the engine did not fetch (it had it unpacked) would pass a load
    unchecked: the restore checks it, says the tar does not match, and keeps no image."""
    store = ImageStore(saved_oci.state.images)
    current = store.current()
    assert current is not None
    tar = store.tar_path(current)
    first = tarserve.index(tar, current.image).layers[0]
    with tar.open("r+b") as f:
        f.seek(tarserve.index(tar, current.image).blobs[first].offset + 5)
        f.write(b"XXXX")
    engine = PullingEngine(unpacked=[first])
    with pytest.raises(StoreError, match="does not match its checksum"):
        _oci_restore(saved_oci, engine, None)
    assert engine.loaded == []
    assert "sagecode:aaaa" not in engine.images


def test_restore_via_load_never_pulls(saved_oci: BuildConfig) -> None:
    """``SAGECODE_RESTORE_VIA=load``: the tar is loaded even where the engine could pull."""
    engine = PullingEngine()
    config = dataclasses.replace(saved_oci, restore_via="load")
    assert _oci_restore(config, engine, Rebuilds()).action == "loaded"
    assert len(engine.loaded) == 1
    assert engine.untagged == []
