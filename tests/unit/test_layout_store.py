"""The saved image as an OCI layout folder: commit, checks, the blobs kept and deleted, and
the restore from it (pulled over 127.0.0.1, or loaded as a tar streamed from the folder)."""

from __future__ import annotations

import dataclasses
import io
import json
import tarfile
from pathlib import Path
from typing import Optional

import pytest

from imagebuild import builder, tarserve
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.engine import BuildRequest, OnLine
from imagebuild.errors import EngineError, StoreError
from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from imagebuild.restore import Restored, restore
from imagebuild.store import ImageStore
from tests.conftest import VERSIONS
from tests.unit.oci_fixtures import LAYERS, PullingEngine, digest, oci_layout
from tests.unit.test_builder_cache import FakeEngine

NEW_LAYER = b"code-server 2" * 200


def _manifest(tag: str) -> Manifest:
    return Manifest(image=f"sagecode:{tag}", content=tag * 16, versions={"code-server": "4.1.0"},
                    layers=("base", "entrypoint"), base_image="b", platform="amd64")


def _save(store: ImageStore, tag: str, layers: tuple[bytes, ...] = LAYERS) -> Manifest:
    """What a build does: BuildKit writes into the folder, then the store commits."""
    before = store.blobs()
    oci_layout(store.layout, f"sagecode:{tag}", layers)
    return store.commit_layout(_manifest(tag), before)


@pytest.fixture
def store(tmp_path: Path) -> ImageStore:
    s = ImageStore(tmp_path / "images")
    s.prepare()
    return s


def _blob(store: ImageStore, data: bytes) -> Path:
    return tarserve.blob_path(store.layout, digest(data))


def test_commit_names_the_manifest_and_the_size(store: ImageStore) -> None:
    """The commit records the image's manifest digest and its blobs' bytes, and makes it current."""
    saved = _save(store, "aaaa")
    assert saved.oci_manifest.startswith("sha256:")
    assert saved.tar == ""
    assert saved.tar_bytes == sum(b.size for b in store.image(saved).blobs.values())
    assert store.current() == saved
    assert (store.root / "sagecode-aaaa.json").is_file()
    assert store.verify(saved) is None
    assert store.check_size(saved) is None
    assert saved.saved_as == f"oci/{saved.oci_manifest[7:19]}"


def test_a_new_blob_that_does_not_match_is_not_committed(store: ImageStore) -> None:
    """A blob the build wrote whose bytes do not match its digest: no commit, the previous
    image stays current."""
    good = _save(store, "aaaa")
    before = store.blobs()
    oci_layout(store.layout, "sagecode:bbbb", (LAYERS[0], NEW_LAYER))
    _blob(store, NEW_LAYER).write_bytes(NEW_LAYER[:-4] + b"XXXX")
    with pytest.raises(StoreError, match="do not match their digests"):
        store.commit_layout(_manifest("bbbb"), before)
    assert store.current() == good
    assert not (store.root / "sagecode-bbbb.json").exists()


def test_commit_without_the_image_in_the_index_is_refused(store: ImageStore) -> None:
    oci_layout(store.layout, "sagecode:other")
    with pytest.raises(StoreError, match="left no whole image sagecode:aaaa"):
        store.commit_layout(_manifest("aaaa"), frozenset())
    assert store.current() is None


def test_verify_and_check_size_find_damaged_and_missing_blobs(store: ImageStore) -> None:
    saved = _save(store, "aaaa")
    layer = _blob(store, LAYERS[1])
    layer.write_bytes(LAYERS[1][:-4] + b"XXXX")
    assert store.check_size(saved) is None  # sizes only
    assert "1 blob(s) of oci/" in (store.verify(saved) or "")
    layer.write_bytes(LAYERS[1][:-1])
    assert "bytes, its manifest says" in (store.check_size(saved) or "")
    layer.unlink()
    assert "lacks blob" in (store.check_size(saved) or "")


def test_prune_keeps_the_current_images_blobs_and_deletes_the_rest(store: ImageStore) -> None:
    """After a bump only the new image's blobs stay (shared ones once); index.json lists it."""
    first = _save(store, "aaaa")
    second = _save(store, "bbbb", (LAYERS[0], NEW_LAYER))
    assert store.prune(keep=1) == [first.saved_as]
    assert store.blobs() == frozenset(store.image(second).blobs)
    assert not _blob(store, LAYERS[1]).exists()
    assert _blob(store, LAYERS[0]).exists()
    assert store.verify(second) is None
    index = json.loads((store.layout / "index.json").read_text())
    assert [m["digest"] for m in index["manifests"]] == [second.oci_manifest]
    assert sorted(p.name for p in store.root.iterdir()) == ["current.json", "oci", "sagecode-bbbb.json"]


def test_keep_two_keeps_both_images_whole(store: ImageStore) -> None:
    first = _save(store, "aaaa")
    second = _save(store, "bbbb", (LAYERS[0], NEW_LAYER))
    assert store.prune(keep=2) == []
    assert store.verify(first) is None
    assert store.verify(second) is None


def test_collect_deletes_nothing_when_a_kept_image_does_not_read(store: ImageStore) -> None:
    """Which blobs a saved image needs is unknown when its manifest blob is damaged: keep all."""
    saved = _save(store, "aaaa")
    stray = store.layout / "blobs" / "sha256" / ("0" * 64)
    stray.write_bytes(b"stray")
    tarserve.blob_path(store.layout, saved.oci_manifest).write_text("{not json")
    store.collect()
    assert stray.exists()


def test_leftovers_of_buildkit_are_removed(store: ImageStore) -> None:
    (store.layout / "ingest" / "abc").mkdir(parents=True)
    store.prepare()
    assert not (store.layout / "ingest").exists()


# --- builds that fail after BuildKit wrote blobs -------------------------------------------


class _FailsAfterWriting(FakeEngine):
    def build(self, request: BuildRequest, on_line: OnLine) -> None:
        assert request.layout is not None
        oci_layout(request.layout, request.tags[0], (LAYERS[0], NEW_LAYER))
        raise EngineError("the image build failed: no space left on device")


def test_a_failed_build_deletes_its_blobs_and_keeps_the_previous_image(config: BuildConfig) -> None:
    store = ImageStore(config.state.images)
    builder.build(builder.plan(config, VERSIONS), FakeEngine(), Console(quiet=True))  # type: ignore[arg-type]
    good = store.current()
    assert good is not None
    bumped = {**VERSIONS, "code-server": "9.9.9"}
    with pytest.raises(StoreError, match="filled up during the save"):
        builder.build(builder.plan(config, bumped), _FailsAfterWriting(), Console(quiet=True))  # type: ignore[arg-type]
    assert store.current() == good
    assert store.verify(good) is None
    assert not _blob(store, NEW_LAYER).exists()


# --- the restore from the folder ------------------------------------------------------------


@pytest.fixture
def saved(tmp_path: Path) -> BuildConfig:
    config = BuildConfig(state=StatePaths(tmp_path))
    store = ImageStore(config.state.images)
    store.prepare()
    _save(store, "aaaa")
    return config


def _restore(config: BuildConfig, engine: PullingEngine, rebuild: bool = False) -> Restored:
    def rebuilt(c: BuildConfig, old: Optional[Manifest]) -> Manifest:
        return _manifest("bbbb")

    return restore(config, engine, Console(quiet=True, err=io.StringIO()),  # type: ignore[arg-type]
                   rebuilt if rebuild else None)


def _damage(config: BuildConfig, data: bytes) -> None:
    _blob(ImageStore(config.state.images), data).write_bytes(data[:-4] + b"XXXX")


def test_restore_pulls_from_the_folder(saved: BuildConfig) -> None:
    engine = PullingEngine()
    assert _restore(saved, engine).action == "loaded"
    assert engine.loaded == []
    assert set(engine.images) == {"sagecode:aaaa", "sagecode:latest"}


def test_restore_loads_a_tar_streamed_from_the_folder(saved: BuildConfig) -> None:
    """Where the engine cannot reach 127.0.0.1 it loads a tar of the image, as the docker
    exporter writes one: index.json naming it, manifest.json with its tag, every blob."""
    engine = PullingEngine(reachable=False)
    assert _restore(saved, engine).action == "loaded"
    [data] = engine.loaded
    with tarfile.open(fileobj=io.BytesIO(data)) as tar:
        names = tar.getnames()
        legacy = json.loads(tar.extractfile("manifest.json").read())  # type: ignore[union-attr]
    assert legacy[0]["RepoTags"] == ["sagecode:aaaa"]
    assert {f"blobs/{digest(x).replace(':', '/')}" for x in LAYERS} <= set(names)
    assert "sagecode:aaaa" in engine.images


@pytest.mark.parametrize("reachable", [True, False])
def test_restore_of_a_damaged_blob_keeps_no_image(saved: BuildConfig, reachable: bool) -> None:
    """Pulled, the engine's digest check fails; loaded, the stream's check does: either way
    the restore says so, keeps no image, and rebuilds when it may."""
    _damage(saved, LAYERS[2])
    engine = PullingEngine(reachable=reachable)
    with pytest.raises(StoreError, match="do not match their digests"):
        _restore(saved, engine)
    assert "sagecode:aaaa" not in engine.images
    assert _restore(saved, PullingEngine(reachable=reachable), rebuild=True).action == "built"


def test_restore_of_a_missing_blob_rebuilds(saved: BuildConfig) -> None:
    _blob(ImageStore(saved.state.images), LAYERS[0]).unlink()
    with pytest.raises(StoreError, match="is not whole"):
        _restore(saved, PullingEngine())
    assert _restore(dataclasses.replace(saved), PullingEngine(), rebuild=True).action == "built"


def test_the_same_image_saved_again_after_a_collect(store: ImageStore) -> None:
    """The index the store writes names images as BuildKit does, so the next save of the same
    image (a rebuild after a damaged blob) replaces its entry instead of adding a second."""
    first = _save(store, "aaaa")
    store.collect()
    again = _save(store, "aaaa")
    assert again.oci_manifest == first.oci_manifest
    index = json.loads((store.layout / "index.json").read_text())
    assert len(index["manifests"]) == 1


def test_a_damaged_blob_is_dropped_so_the_rebuild_writes_it_again(saved: BuildConfig) -> None:
    """BuildKit does not write a blob the folder already has: the restore deletes a damaged
    one before it rebuilds, and only that one."""
    _damage(saved, LAYERS[2])
    assert _restore(saved, PullingEngine(), rebuild=True).action == "built"
    store = ImageStore(saved.state.images)
    assert not _blob(store, LAYERS[2]).exists()
    assert _blob(store, LAYERS[1]).exists()
