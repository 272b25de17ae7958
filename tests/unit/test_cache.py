"""Pruning the local build cache to what its index still references, within a cap."""

from __future__ import annotations

import hashlib
import json
from pathlib import Path

from imagebuild import cache


def _blob(root: Path, data: bytes) -> str:
    digest = hashlib.sha256(data).hexdigest()
    path = root / "blobs" / "sha256" / digest
    path.parent.mkdir(parents=True, exist_ok=True)
    path.write_bytes(data)
    return f"sha256:{digest}"


def _cache(root: Path) -> tuple[str, str, str]:
    layer = _blob(root, b"layer" * 100)
    config = _blob(root, json.dumps({"layers": []}).encode())
    manifest = _blob(root, json.dumps({
        "mediaType": "application/vnd.oci.image.manifest.v1+json",
        "config": {"digest": config}, "layers": [{"digest": layer}],
    }).encode())
    index = {"manifests": [{"digest": manifest, "mediaType": "application/vnd.oci.image.index.v1+json"}]}
    (root / "index.json").write_text(json.dumps(index))
    return layer, config, manifest


def test_cache_prune_removes_unreferenced(tmp_path: Path) -> None:
    """Blobs the index no longer reaches are deleted; reachable ones stay."""
    kept = _cache(tmp_path)
    stale = _blob(tmp_path, b"old layer" * 1000)
    (tmp_path / "ingest" / "x").mkdir(parents=True)
    report = cache.prune(tmp_path, cap_bytes=1 << 30)
    left = {p.name for p in (tmp_path / "blobs" / "sha256").iterdir()}
    assert left == {d.split(":")[1] for d in kept}
    assert stale.split(":")[1] not in left
    assert not (tmp_path / "ingest").exists()
    assert report.removed_blobs == 1
    assert report.after < report.before
    assert not report.dropped


def test_cache_prune_drops_cache_over_cap(tmp_path: Path) -> None:
    """A cache still above the cap after pruning is dropped whole."""
    _cache(tmp_path)
    report = cache.prune(tmp_path, cap_bytes=10)
    assert report.dropped
    assert not tmp_path.exists()


def test_cache_prune_without_cache_is_noop(tmp_path: Path) -> None:
    """No index.json (no cache yet) means nothing to do."""
    assert cache.prune(tmp_path / "none", cap_bytes=0) == cache.PruneReport(0, 0, 0)


def test_cache_prune_removes_what_a_failed_first_export_left(tmp_path: Path) -> None:
    """Blobs and ingest files but no index.json (the first export failed): all deleted."""
    _blob(tmp_path, b"half a layer" * 100)
    (tmp_path / "ingest" / "x").mkdir(parents=True)
    (tmp_path / "ingest" / "x" / "data").write_bytes(b"partial")
    report = cache.prune(tmp_path, cap_bytes=1 << 30)
    assert report.before > 0
    assert report.after == 0
    assert not (tmp_path / "blobs").exists()
    assert not (tmp_path / "ingest").exists()
