"""Saved images on the persistent volume: written atomically, checksummed, pruned.

A tar is written under a temporary name, fsynced, hashed and only then renamed over
its final name, with its manifest beside it; ``current.json`` names the image to run.
A cut-off save therefore never replaces a good tar, and its leftover is removed the
next time the store is opened for writing. A full volume is an error that says how much
space a save needs: the current tar's size plus a quarter (a new tar is about as big as
the last one, and both exist until the new one is committed).
"""

from __future__ import annotations

import errno
import hashlib
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from imagebuild import manifest as manifests
from imagebuild.errors import StoreError, UsageError
from imagebuild.manifest import Manifest

CURRENT = "current.json"
PARTIAL = ".partial"
CHUNK = 1 << 20
Progress = Callable[[int], None]
FIX_STATE_DIR = "fix its permissions or choose another --state-dir"
# What a save needs free when nothing was saved yet: the full image's tar and some slack.
FIRST_SAVE_BYTES = 3 << 30
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class ImageStore:
    """The directory of saved image tars and manifests."""

    def __init__(self, root: Path) -> None:
        self.root = root

    def prepare(self) -> None:
        """Create the directory and remove leftovers of interrupted saves."""
        try:
            self.root.mkdir(parents=True, exist_ok=True)
        except OSError as exc:
            raise UsageError(f"cannot create {self.root}: {exc.strerror}", FIX_STATE_DIR) from None
        if not os.access(self.root, os.W_OK):
            raise UsageError(f"{self.root} is not writable", FIX_STATE_DIR)
        self.remove_leftovers()

    def remove_leftovers(self) -> None:
        """Delete partial files of saves that were cut off (call with the build lock held)."""
        if self.root.is_dir() and os.access(self.root, os.W_OK):
            for leftover in self.root.glob(f"*{PARTIAL}*"):
                leftover.unlink(missing_ok=True)

    def partial_path(self, name: str) -> Path:
        """Where a tar named ``name`` is written before it is committed."""
        return self.root / f"{name}{PARTIAL}-{os.getpid()}"

    def write_stream(self, chunks: Iterable[bytes], dest: Path, progress: Optional[Progress] = None) -> None:
        """Write ``chunks`` to ``dest`` (a partial path); on any error remove it."""
        written = 0
        try:
            with dest.open("wb") as out:
                for chunk in chunks:
                    out.write(chunk)
                    written += len(chunk)
                    if progress:
                        progress(len(chunk))
        except OSError as exc:
            dest.unlink(missing_ok=True)
            raise self._write_error(exc, written) from None
        except BaseException:
            dest.unlink(missing_ok=True)
            raise

    def needed_bytes(self) -> int:
        """Free space a save needs: the current tar's size and a quarter, else FIRST_SAVE_BYTES."""
        current = self.current()
        size = current.tar_bytes if current else 0
        return size + size // 4 if size else FIRST_SAVE_BYTES

    def check_space(self) -> None:
        """Refuse to start a save that cannot fit on the volume."""
        free, need = self.free_bytes(), self.needed_bytes()
        if free < need:
            raise StoreError(
                f"only {free >> 20} MiB free on the volume holding {self.root}; saving the image "
                f"needs about {_mib(need)} MiB",
                "free space or grow the notebook's volume; the previous image is kept",
            )

    def full_error(self, written: int) -> StoreError:
        """The error for a volume that filled up after ``written`` bytes of a tar."""
        need = max(self.needed_bytes(), written + written // 4)
        return StoreError(
            f"the volume holding {self.root} filled up during the save ({_mib(written)} MiB "
            f"written, {self.free_bytes() >> 20} MiB free); the save needs at least {_mib(need)} MiB",
            "free space or grow the notebook's volume, then rerun; the previous image is kept",
        )

    def commit(self, partial: Path, manifest: Manifest) -> Manifest:
        """Make a written tar the current image: fsync, hash, rename, manifest.

        On a failure (a full volume, say) the new tar and manifest are removed unless
        ``current.json`` already names them: the previous image stays the only one.
        """
        final = self.root / f"{manifest.image.replace(':', '-').replace('/', '_')}.tar"
        size = partial.stat().st_size
        try:
            return self._commit(partial, final, manifest)
        except OSError as exc:
            partial.unlink(missing_ok=True)
            current = self.current()
            if current is None or current.tar != final.name:
                final.unlink(missing_ok=True)
                final.with_suffix(".json").unlink(missing_ok=True)
            raise self._write_error(exc, size) from None

    def _commit(self, partial: Path, final: Path, manifest: Manifest) -> Manifest:
        digest, size = file_sha256(partial), partial.stat().st_size
        _fsync(partial)
        saved = replace(manifest, tar=final.name, tar_sha256=digest, tar_bytes=size)
        _atomic_text(final.with_suffix(".json"), saved.to_json())
        partial.replace(final)
        _atomic_text(self.root / CURRENT, saved.to_json())
        _fsync_dir(self.root)
        return saved

    def current(self) -> Optional[Manifest]:
        """The manifest of the image to run, or None when nothing was saved yet."""
        path = self.root / CURRENT
        if not path.exists():
            return None
        try:
            return manifests.read(path)
        except UsageError:
            return None

    def tar_path(self, manifest: Manifest) -> Path:
        """The saved tar of ``manifest``."""
        return self.root / manifest.tar

    def verify(self, manifest: Manifest) -> Optional[str]:
        """None when the tar matches its manifest, else what is wrong with it."""
        problem = self.check_size(manifest)
        if problem is None and file_sha256(self.tar_path(manifest)) != manifest.tar_sha256:
            problem = f"{manifest.tar} does not match its checksum"
        return problem

    def check_size(self, manifest: Manifest) -> Optional[str]:
        """None when the tar is there with the manifest's size (its checksum is not read)."""
        tar = self.tar_path(manifest)
        if not manifest.tar or not tar.is_file():
            return f"{tar.name or 'the tar'} is missing"
        if tar.stat().st_size != manifest.tar_bytes:
            return f"{tar.name} has {tar.stat().st_size} bytes, the manifest says {manifest.tar_bytes}"
        return None

    def read_chunks(self, manifest: Manifest, progress: Optional[Progress] = None,
                    digest: Optional[hashlib._Hash] = None) -> Iterator[bytes]:
        """Stream the saved tar (through ``digest`` too, when given)."""
        with self.tar_path(manifest).open("rb") as f:
            while chunk := f.read(CHUNK):
                if progress:
                    progress(len(chunk))
                if digest is not None:
                    digest.update(chunk)
                yield chunk

    def prune(self, keep: int) -> list[Path]:
        """Delete all but the newest ``keep`` saved images (never the current one)."""
        current = self.current()
        saved = sorted(self.root.glob("*.tar"), key=lambda p: p.stat().st_mtime, reverse=True)
        keep_names = {p.name for p in saved[: max(keep, 1)]} | ({current.tar} if current else set())
        removed = [p for p in saved if p.name not in keep_names]
        for tar in removed:
            tar.unlink(missing_ok=True)
            tar.with_suffix(".json").unlink(missing_ok=True)
        return removed

    def free_bytes(self) -> int:
        """Free space on the volume holding the store."""
        return shutil.disk_usage(self.root).free

    def _write_error(self, exc: OSError, written: int) -> StoreError:
        if exc.errno in NO_SPACE:
            return self.full_error(written)
        return StoreError(f"cannot write the image to {self.root}: {exc.strerror}", "check the volume")


def file_sha256(path: Path) -> str:
    """SHA-256 of a file, read in 1 MiB chunks."""
    digest = hashlib.sha256()
    with path.open("rb") as f:
        while chunk := f.read(CHUNK):
            digest.update(chunk)
    return digest.hexdigest()


def _mib(n: int) -> int:
    return -(-n // (1 << 20))


def _atomic_text(path: Path, text: str) -> None:
    tmp = path.with_name(f"{path.name}{PARTIAL}-{os.getpid()}")
    try:
        tmp.write_text(text)
        _fsync(tmp)
        tmp.replace(path)
    finally:
        tmp.unlink(missing_ok=True)


def _fsync(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)


def _fsync_dir(path: Path) -> None:
    fd = os.open(path, os.O_RDONLY | os.O_DIRECTORY)
    try:
        os.fsync(fd)
    finally:
        os.close(fd)
