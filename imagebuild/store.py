"""Saved images on the persistent volume: written atomically, checksummed, pruned.

The build saves its image into an OCI image layout folder, ``oci/``: one file per blob,
named by its digest. BuildKit writes only the blobs the folder lacks (a code-server bump
adds its own layers, about a fifth of the image), each through a temporary file renamed
once its digest matched. A commit checks the new blobs' digests, fsyncs them, and only
then writes the image's manifest (``NAME.json``, which names the image's manifest digest)
and ``current.json``, the image to run, each atomically. Blobs that no kept image refers
to are deleted after every build, failed or not (:meth:`ImageStore.collect`).

Images saved with ``docker save`` (engines that cannot write a layout) and by earlier
versions are tars: written under a temporary name, fsynced, hashed and only then renamed
over their final name. A cut-off save therefore never replaces a good image, and its
leftovers are removed the next time the store is opened for writing. A full volume is an
error that says how much space a save needs: the current image's size plus a quarter.
"""

from __future__ import annotations

import contextlib
import errno
import hashlib
import json
import os
import shutil
from collections.abc import Iterable, Iterator
from dataclasses import replace
from pathlib import Path
from typing import Callable, Optional

from imagebuild import manifest as manifests
from imagebuild import tarserve
from imagebuild.errors import StoreError, UsageError
from imagebuild.manifest import Manifest

CURRENT = "current.json"
LAYOUT = "oci"
PARTIAL = ".partial"
CHUNK = 1 << 20
Progress = Callable[[int], None]
FIX_STATE_DIR = "fix its permissions or choose another --state-dir"
# What a save needs free when nothing was saved yet: the full image and some slack.
FIRST_SAVE_BYTES = 3 << 30
NO_SPACE = (errno.ENOSPC, errno.EDQUOT)


class ImageStore:
    """The directory of saved images (the layout folder, tars) and their manifests."""

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
        """Delete what saves that were cut off left: partial files, BuildKit's unfinished blobs,
        and blobs no saved image refers to (call with the build lock held)."""
        if self.root.is_dir() and os.access(self.root, os.W_OK):
            for leftover in self.root.glob(f"*{PARTIAL}*"):
                leftover.unlink(missing_ok=True)
            shutil.rmtree(self.layout / "ingest", ignore_errors=True)
            self.collect()

    @property
    def layout(self) -> Path:
        """The OCI image layout folder the build saves images into."""
        return self.root / LAYOUT

    def blobs(self) -> frozenset[str]:
        """The digests of every blob in the layout folder."""
        folder = self.layout / "blobs" / "sha256"
        return frozenset(f"sha256:{p.name}" for p in folder.iterdir()) if folder.is_dir() else frozenset()

    def new_bytes(self, before: frozenset[str]) -> int:
        """Bytes of the layout's blobs that are not in ``before`` (what a save wrote)."""
        total = 0
        for digest in self.blobs() - before:
            with contextlib.suppress(OSError):
                total += tarserve.blob_path(self.layout, digest).stat().st_size
        return total

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
        """Free space a save needs: the current image's size and a quarter, else FIRST_SAVE_BYTES."""
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
        """The error for a volume that filled up after ``written`` bytes of a save."""
        need = max(self.needed_bytes(), written + written // 4)
        return StoreError(
            f"the volume holding {self.root} filled up during the save ({_mib(written)} MiB "
            f"written, {self.free_bytes() >> 20} MiB free); the save needs at least {_mib(need)} MiB",
            "free space or grow the notebook's volume, then rerun; the previous image is kept",
        )

    def commit_layout(self, manifest: Manifest, before: frozenset[str]) -> Manifest:
        """Make the image the build just wrote into the layout folder the current image.

        The blobs that were not in the folder ``before`` the build are checked against their
        digests and fsynced, then the manifest is written, then ``current.json``: a failure
        at any point leaves the previous image current and whole.
        """
        rerun = "rerun the build; the previous image is kept"
        try:
            digest = tarserve.named((self.layout / "index.json").read_bytes(), manifest.image)
            image = tarserve.layout(self.layout, digest, manifest.image)
        except (OSError, tarserve.NotServableError) as exc:
            raise StoreError(f"the build left no whole image {manifest.image} in {self.layout}: {exc}",
                             rerun) from None
        new = sorted(set(image.blobs) - before)
        if bad := tarserve.damaged(image, new):
            raise StoreError(f"{len(bad)} blob(s) the build wrote to {self.layout} do not match "
                             "their digests", rerun)
        saved = replace(manifest, tar="", tar_sha256="", oci_manifest=digest, tar_bytes=image.layer_bytes)
        final = self.root / f"{_file_name(manifest.image)}.json"
        try:
            for blob in new:
                _fsync(image.blobs[blob].path)
            _fsync_dir(self.layout / "blobs" / "sha256")
            _atomic_text(final, saved.to_json())
            _atomic_text(self.root / CURRENT, saved.to_json())
            _fsync_dir(self.root)
        except OSError as exc:
            current = self.current()
            if current is None or current.oci_manifest != digest:
                final.unlink(missing_ok=True)
            raise self._write_error(exc, sum(image.blobs[b].size for b in new)) from None
        return saved

    def commit(self, partial: Path, manifest: Manifest) -> Manifest:
        """Make a written tar the current image: fsync, hash, rename, manifest.

        On a failure (a full volume, say) the new tar and manifest are removed unless
        ``current.json`` already names them: the previous image stays the only one.
        """
        final = self.root / f"{_file_name(manifest.image)}.tar"
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
        """The saved tar of ``manifest`` (images saved as tars only)."""
        return self.root / manifest.tar

    def image(self, manifest: Manifest) -> tarserve.TarImage:
        """The saved image's blobs, in the layout folder or in its tar (sizes checked only);
        an image that is not whole raises :class:`tarserve.NotServableError`."""
        if manifest.oci_manifest:
            return tarserve.layout(self.layout, manifest.oci_manifest, manifest.image)
        return tarserve.index(self.tar_path(manifest), manifest.image)

    def export_tar(self, manifest: Manifest, dest: Path) -> Path:
        """The saved image as the tar a ``docker load`` of it reads: its own tar, or one
        written to ``dest`` from the layout folder (every blob checked on the way)."""
        if manifest.tar:
            return self.tar_path(manifest)
        bad: list[str] = []
        with dest.open("wb") as out:
            for chunk in tarserve.whole(self.image(manifest), manifest.image, bad):
                out.write(chunk)
        if bad:
            dest.unlink()
            raise StoreError(f"{len(bad)} blob(s) of {manifest.saved_as} do not match their digests",
                             "rebuild: python -m imagebuild")
        return dest

    def verify(self, manifest: Manifest) -> Optional[str]:
        """None when the saved image matches its manifest, else what is wrong with it."""
        problem = self.check_size(manifest)
        if problem is None and manifest.oci_manifest:
            image = self.image(manifest)
            bad = tarserve.damaged(image, list(image.blobs))
            problem = f"{len(bad)} blob(s) of {manifest.saved_as} do not match their digests" if bad else None
        elif problem is None and file_sha256(self.tar_path(manifest)) != manifest.tar_sha256:
            problem = f"{manifest.tar} does not match its checksum"
        return problem

    def drop_damaged(self, manifest: Manifest) -> None:
        """Delete the blobs of ``manifest`` whose bytes do not match their digests (or sizes),
        so that the next build writes them again (call with the build lock held)."""
        digests = set()
        with contextlib.suppress(OSError, ValueError, KeyError):
            data = json.loads(tarserve.blob_path(self.layout, manifest.oci_manifest).read_bytes())
            digests = {str(d["digest"]) for d in (data["config"], *data["layers"])}
        for digest in {manifest.oci_manifest, *digests}:
            path = tarserve.blob_path(self.layout, digest)
            if path.is_file() and f"sha256:{file_sha256(path)}" != digest:
                path.unlink()

    def check_size(self, manifest: Manifest) -> Optional[str]:
        """None when every part of the saved image is there with its recorded size (its
        bytes are not read): the tar, or each blob in the layout folder."""
        if manifest.oci_manifest:
            try:
                self.image(manifest)
            except tarserve.NotServableError as exc:
                return f"{manifest.saved_as} is not whole: {exc}"
            return None
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

    def prune(self, keep: int) -> list[str]:
        """Delete all but the newest ``keep`` saved images (never the current one), then the
        layout's blobs no kept image refers to; the names of the images removed."""
        current = self.current()
        saved = sorted((p for p in self.root.glob("*.json") if p.name != CURRENT),
                       key=lambda p: p.stat().st_mtime, reverse=True)
        kept = saved[: max(keep, 1)]
        if current is not None:
            kept += [p for p in saved if _names_image(p, current)]
        removed = []
        for path in saved:
            if path in kept:
                continue
            old = _read(path)
            if old is not None and old.tar:
                (self.root / old.tar).unlink(missing_ok=True)
            path.unlink(missing_ok=True)
            removed.append(old.saved_as if old else path.name)
        tars = {m.tar for m in map(_read, kept) if m is not None and m.tar}
        for tar in self.root.glob("*.tar"):  # a tar with no manifest left
            if tar.name not in tars:
                tar.unlink(missing_ok=True)
                removed.append(tar.name)
        self.collect()
        return removed

    def collect(self) -> None:
        """Delete the layout's blobs that no saved image refers to, and list the saved images
        in its ``index.json``. Nothing is deleted when a saved image's manifest does not read
        (which blobs it needs is then unknown). Call with the build lock held."""
        if not (self.layout / "blobs" / "sha256").is_dir():
            return
        images: list[tuple[str, tarserve.TarImage]] = []
        for path in sorted(self.root.glob("*.json")):
            m = _read(path)
            if m is None or not m.oci_manifest:
                continue
            try:
                images.append((m.image, self.image(m)))
            except tarserve.NotServableError as exc:
                if "lacks blob" in str(exc) and m.oci_manifest in str(exc):
                    continue  # its manifest itself is gone: it refers to nothing
                return
        wanted = {d for _, image in images for d in image.blobs}
        for digest in self.blobs() - wanted:
            tarserve.blob_path(self.layout, digest).unlink(missing_ok=True)
        # named as BuildKit names them, so that its next save replaces (not doubles) an entry
        descriptors = {i.manifest: {**json.loads(i.layout)["manifests"][0],
                                    "annotations": {tarserve.REF_ANNOTATION: tarserve.full_name(name)}}
                       for name, i in images}
        index = json.dumps({"schemaVersion": 2, "mediaType": "application/vnd.oci.image.index.v1+json",
                            "manifests": list(descriptors.values())}, indent=1) + "\n"
        with contextlib.suppress(OSError):
            if (self.layout / "index.json").read_bytes() == index.encode():
                return
        _atomic_text(self.layout / "index.json", index)
        if not (self.layout / "oci-layout").exists():
            _atomic_text(self.layout / "oci-layout", '{"imageLayoutVersion":"1.0.0"}')

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


def _file_name(image: str) -> str:
    """``sagecode:abc`` as a file name: ``sagecode-abc``."""
    return image.replace(":", "-").replace("/", "_")


def _read(path: Path) -> Optional[Manifest]:
    try:
        return manifests.read(path)
    except UsageError:
        return None


def _names_image(path: Path, m: Manifest) -> bool:
    return path.name == f"{_file_name(m.image)}.json"


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
