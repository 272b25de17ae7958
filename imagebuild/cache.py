"""Keep BuildKit's local build cache (``type=local``) within a size cap.

BuildKit adds blobs to a local cache directory and rewrites ``index.json`` on every
export, but never deletes a blob. What the newest index no longer reaches is garbage:
we delete it after each build. If what remains is still above the cap, the cache is
dropped as a whole (the next build is cold, which is better than filling the volume).
"""

from __future__ import annotations

import json
import shutil
from collections.abc import Iterator
from dataclasses import dataclass
from pathlib import Path

# Media types whose JSON lists further blobs.
_CONTAINERS = ("manifest", "index")


@dataclass(frozen=True)
class PruneReport:
    """Bytes before and after pruning, and whether the whole cache was dropped."""

    before: int
    after: int
    removed_blobs: int
    dropped: bool = False


def dir_bytes(path: Path) -> int:
    """Total size of the regular files under ``path``."""
    return sum(p.stat().st_size for p in path.rglob("*") if p.is_file() and not p.is_symlink())


def referenced(cache: Path) -> set[str]:
    """Hex digests of every blob reachable from the cache's ``index.json``."""
    index = json.loads((cache / "index.json").read_text())
    seen: set[str] = set()
    stack = [d["digest"] for d in index.get("manifests", [])]
    while stack:
        digest = stack.pop()
        hexd = digest.split(":", 1)[-1]
        if hexd in seen:
            continue
        seen.add(hexd)
        stack.extend(_children(cache / "blobs" / "sha256" / hexd))
    return seen


def _children(blob: Path) -> Iterator[str]:
    if not blob.is_file() or blob.stat().st_size > 16 << 20:
        return
    try:
        doc = json.loads(blob.read_bytes())
    except (ValueError, UnicodeDecodeError):
        return
    if not isinstance(doc, dict) or not any(t in str(doc.get("mediaType", "")) for t in _CONTAINERS):
        return
    for key in ("manifests", "layers"):
        yield from (d["digest"] for d in doc.get(key, []) if isinstance(d, dict))
    if isinstance(doc.get("config"), dict):
        yield doc["config"]["digest"]


def prune(cache: Path, cap_bytes: int) -> PruneReport:
    """Delete unreferenced blobs; drop the whole cache if it still exceeds ``cap_bytes``.

    Without an ``index.json`` nothing is referenced (BuildKit writes it last, so a first
    export that failed leaves only blobs): whatever is there is deleted.
    """
    if not (cache / "index.json").is_file():
        before = dir_bytes(cache)
        for part in ("blobs", "ingest"):
            shutil.rmtree(cache / part, ignore_errors=True)
        return PruneReport(before, dir_bytes(cache), 0)
    before = dir_bytes(cache)
    keep = referenced(cache)
    removed = 0
    for blob in (cache / "blobs" / "sha256").iterdir():
        if blob.name not in keep:
            blob.unlink()
            removed += 1
    shutil.rmtree(cache / "ingest", ignore_errors=True)
    after = dir_bytes(cache)
    if after > cap_bytes:
        shutil.rmtree(cache)
        return PruneReport(before, 0, removed, dropped=True)
    return PruneReport(before, after, removed)
