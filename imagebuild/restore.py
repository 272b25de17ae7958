"""Bring the saved image back after a restart, doing the fastest correct thing.

1. the engine already has the current image: nothing to do;
2. the saved image (an OCI layout folder, or a tar) has its recorded sizes: the engine pulls
   it, served on 127.0.0.1 (every blob checked against its digest), or, where it cannot
   reach that address, loads a tar of it, whose digests (or checksum) are checked on the
   way; an image that does not match is reported as such, and does not stay in the engine;
3. otherwise (missing, truncated, corrupt, unloadable): rebuild the same versions from
   the persisted build cache, unless asked not to build;
4. a ``current.json`` that does not read (damaged, or written by an older format): build
   afresh with the configured versions (or pull, with an image reference).
"""

from __future__ import annotations

import contextlib
import dataclasses
import hashlib
from collections.abc import Iterator
from dataclasses import dataclass
from typing import Callable, Optional

from imagebuild import tarserve
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.engine import Engine
from imagebuild.errors import EngineError, StoreError
from imagebuild.layers import ORDER
from imagebuild.locking import exclusive
from imagebuild.manifest import Manifest
from imagebuild.store import CURRENT, ImageStore
from imagebuild.writeback import written_back

# Makes the image some other way (a rebuild, or a pull); gets the unusable manifest if any.
Rebuild = Callable[[BuildConfig, Optional[Manifest]], Manifest]


@dataclass(frozen=True)
class Restored:
    """What the restore did (``present``, ``loaded`` or ``built``) and the image."""

    action: str
    manifest: Manifest


def restore(config: BuildConfig, engine: Engine, console: Console,
            rebuild: Optional[Rebuild]) -> Restored:
    """Make the current image available in the engine; ``rebuild=None`` forbids building."""
    store = ImageStore(config.state.images)
    with exclusive(config.state.run / "build.lock", 3600.0,
                   lambda: console.step("waiting for a build or restore to finish")):
        store.remove_leftovers()
        current = store.current()
        if current is None:
            return _without_manifest(config, store, console, rebuild)
        if engine.image_id(current.image):
            _tag_latest(engine, config, current)
            console.step(f"{current.image} is already in the engine")
            return Restored("present", current)
        problem = _load(store, engine, current, console, pull=config.restore_via == "pull")
        if problem and current.oci_manifest:
            # BuildKit skips a blob the folder has: a rebuild would keep a damaged one
            store.drop_damaged(current)
    if problem is None:
        _tag_latest(engine, config, current)
        return Restored("loaded", current)
    console.note(f"cannot restore from the saved image: {problem}")
    if rebuild is None:
        raise StoreError(f"the saved image is unusable: {problem}", "rebuild: python -m imagebuild")
    if config.image_ref:
        return Restored("pulled", rebuild(config, current))
    console.step("rebuilding the same versions from the build cache")
    locked = dataclasses.replace(
        config, lock_file=store.root / CURRENT, base_image=current.base_image,
        platform=current.platform, disabled=frozenset(ORDER) - set(current.layers),
    )
    return Restored("built", rebuild(locked, current))


def _without_manifest(config: BuildConfig, store: ImageStore, console: Console,
                      rebuild: Optional[Rebuild]) -> Restored:
    """Nothing saved, or a ``current.json`` that does not read (damaged, or an older format)."""
    path = store.root / CURRENT
    unreadable = path.exists()
    what = f"no saved image in {store.root}"
    if unreadable:
        what = f"{path} is unreadable or from an older format"
    if rebuild is None or not (unreadable or config.image_ref):
        raise StoreError(what, "build one: python -m imagebuild")
    if config.image_ref:
        return Restored("pulled", rebuild(config, None))
    console.note(f"{what}: building the image afresh")
    return Restored("built", rebuild(config, None))


def _load(store: ImageStore, engine: Engine, m: Manifest, console: Console, pull: bool) -> Optional[str]:
    """Bring the saved image into the engine: pulled over 127.0.0.1 where the engine can
    reach it (:mod:`imagebuild.tarserve`), loaded otherwise. An image that does not match
    is reported as such, and does not stay in the engine."""
    problem = store.check_size(m)
    if problem:
        return problem
    console.step(f"loading {m.saved_as}")
    with written_back():  # the first container then need not wait for the disk
        refused = _pull(store, engine, m, console) if pull else ""
        if refused is None:
            return None
        if refused:
            problem = store.verify(m)  # a damaged blob fails the pull: say so, load nothing
            if problem:
                with contextlib.suppress(EngineError):
                    engine.remove(m.image)
                return problem
            console.note(f"the engine could not pull the saved image ({refused}): loading it instead")
        return _load_tar(store, engine, m, console)


def _pull(store: ImageStore, engine: Engine, m: Manifest, console: Console) -> Optional[str]:
    """None once the engine has the image; "" when it never asked (rootless engines have
    their own 127.0.0.1) or the tar is no OCI layout; else why the pull failed."""
    try:
        image = store.image(m)
    except tarserve.NotServableError:
        return ""
    meter = console.progress("docker pull (from the saved image, over 127.0.0.1)", image.layer_bytes)
    ref = ""
    try:
        with tarserve.serving(image, meter) as server:
            ref = server.reference(image)
            try:
                engine.pull(ref)
            except EngineError as exc:
                return exc.what if server.asked - {"/v2/", "/v2"} else ""
        missing = tarserve.skipped(image, server.fetched)
        if missing and tarserve.damaged(image, missing):
            return f"{m.saved_as} holds a damaged layer"
        engine.tag(ref, m.image)
        if missing:  # the engine had those layers unpacked already (moby/moby#49784)
            engine.load(tarserve.completion(image, missing))
    except (EngineError, OSError) as exc:
        return str(exc)
    finally:
        if ref:
            with contextlib.suppress(EngineError):
                engine.untag(ref)
    meter.finish()
    if not engine.image_id(m.image):
        return f"the pull did not give {m.image}"
    return None


def _load_tar(store: ImageStore, engine: Engine, m: Manifest, console: Console) -> Optional[str]:
    """``docker load`` of the saved image, checking it on the way (the disk is read once,
    while the engine unpacks, not once before): a tar against its checksum, a layout
    folder's blobs, streamed as a tar, against their digests."""
    if m.oci_manifest:
        return _load_layout(store, engine, m, console)
    meter = console.progress("docker load", m.tar_bytes)
    digest = hashlib.sha256()
    try:
        engine.load(store.read_chunks(m, meter, digest))
    except EngineError as exc:
        return store.verify(m) or f"docker load failed: {exc.what}"
    meter.finish()
    # A mismatch may only mean the engine stopped reading early: read the whole file then.
    return _loaded(store, engine, m, digest.hexdigest() != m.tar_sha256)


def _load_layout(store: ImageStore, engine: Engine, m: Manifest, console: Console) -> Optional[str]:
    try:
        image = store.image(m)
    except tarserve.NotServableError as exc:
        return f"{m.saved_as} is not whole: {exc}"
    meter = console.progress("docker load", image.layer_bytes)
    bad: list[str] = []
    try:
        engine.load(_metered(tarserve.whole(image, m.image, bad), meter))
    except (EngineError, OSError) as exc:
        return store.verify(m) or f"docker load failed: {getattr(exc, 'what', exc)}"
    meter.finish()
    return _loaded(store, engine, m, bool(bad))


def _metered(chunks: Iterator[bytes], meter: Callable[[int], None]) -> Iterator[bytes]:
    for chunk in chunks:
        meter(len(chunk))
        yield chunk


def _loaded(store: ImageStore, engine: Engine, m: Manifest, mismatch: bool) -> Optional[str]:
    """After a load: the problem when what was read did not match (read again to say which),
    the loaded image then removed; or when the engine did not get the image."""
    problem = store.verify(m) if mismatch else None
    if problem:
        with contextlib.suppress(EngineError):
            engine.remove(m.image)
        return problem
    if not engine.image_id(m.image):
        return f"{m.saved_as} loaded, but it does not hold {m.image}"
    return None


def _tag_latest(engine: Engine, config: BuildConfig, m: Manifest) -> None:
    engine.tag(m.image, f"{config.image_repo}:latest")
