"""One build, start to finish: compose, render, build with cache, save, record.

The whole build runs under the build lock, so a lifecycle hook and a user (or two hooks)
never build at once. The previous image and its saved copy stay usable until the new one
is committed: a failed build changes nothing the wrapper relies on.
"""

from __future__ import annotations

import dataclasses
import os
import re
import shlex
import tempfile
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from imagebuild import cache, layers
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.engine import BuildFailedError, BuildRequest, Capabilities, Engine
from imagebuild.errors import EngineError
from imagebuild.layers.code_server import NPM_WITHOUT_GITHUB
from imagebuild.locking import exclusive
from imagebuild.manifest import Manifest
from imagebuild.registry import manifest_labels
from imagebuild.render import FINAL_STAGE, BuildDefinition, render
from imagebuild.store import ImageStore

# For the engine's copy and the saved image (an OCI layout folder): zstd with OCI media
# types loads fastest here; zstd with Docker media types breaks runs.
TAR_OPTIONS = "compression=zstd,force-compression=true,oci-mediatypes=true"
# The cache in the same compression as the image: a layer is compressed once, for all three
# (zstd also packs and unpacks several times faster than gzip). Any BuildKit that can
# import a cache reads zstd.
# A failed cache export (a full volume, a registry that refuses the push) fails no build: the
# image and its saved copy are what the user needs; the cache only speeds up the next build.
CACHE_OPTIONS = "compression=zstd,ignore-error=true"
# The cache is written to the user's volume only when this much would stay free after the
# saved image (a version bump adds a few hundred MB of new blobs; unreferenced ones are pruned after).
CACHE_ROOM = 1 << 30
CONTENT_TAG = re.compile(r"[0-9a-f]{12}")
LOCK_WAIT_S = 3600.0
# How BuildKit and the docker CLI report ENOSPC while saving the image (or the cache).
NO_SPACE = "no space left on device"


@dataclass(frozen=True)
class Plan:
    """What a build would do: the layers' versions and the rendered definition."""

    config: BuildConfig
    versions: Mapping[str, str]
    definition: BuildDefinition
    layer_names: tuple[str, ...]

    @property
    def image(self) -> str:
        """The content tag of the image this plan builds."""
        return f"{self.config.image_repo}:{self.definition.short}"

    def manifest(self) -> Manifest:
        """The manifest of the planned image (before it is saved)."""
        return Manifest(
            image=self.image, content=self.definition.content, versions=dict(self.versions),
            layers=self.layer_names, base_image=self.config.base_image, platform=self.config.platform,
        )


def plan(config: BuildConfig, versions: Mapping[str, str]) -> Plan:
    """Compose and render the image for resolved ``versions``."""
    composed = layers.compose(config, versions)
    definition = render(composed, config.base_image)
    return Plan(config, versions, definition, tuple(layer.name for layer in composed))


def build(p: Plan, engine: Engine, console: Console, *, no_cache: bool = False) -> Manifest:
    """Build ``p`` (unless already built and saved), save it, make it current."""
    store = ImageStore(p.config.state.images)
    with exclusive(p.config.state.run / "build.lock", LOCK_WAIT_S,
                   lambda: console.step("waiting for another build to finish")):
        store.prepare()
        current = store.current()
        if current and current.content == p.definition.content and engine.image_id(p.image) \
                and store.verify(current) is None and not no_cache:
            console.step(f"{p.image} is built and saved: nothing to do")
            return current
        return _build_and_save(p, engine, store, console, no_cache)


def _build_and_save(p: Plan, engine: Engine, store: ImageStore, console: Console,
                    no_cache: bool) -> Manifest:
    caps = engine.capabilities()
    _preflight(caps, store, console, p.config)
    engine.ensure_image(p.config.base_image)
    before = store.blobs()
    with tempfile.TemporaryDirectory(prefix="sagecode-build-") as tmp:
        request = _request(p, caps, Path(tmp), store.layout if caps.multi_output else None, no_cache=no_cache)
        request = _engine_keeps_cache(request, p.config, caps, console)
        request = _within_room(request, p.config, store, console)
        console.step(f"building {p.image} ({_summary(p.versions)})")
        try:
            _run_build(engine, request, store, before, console)
        except BuildFailedError as exc:
            hint = _needs_github(exc, p.versions)
            if hint is None:
                raise
            raise hint from exc
    if caps.multi_output:
        saved = _commit_layout(store, _with_compression(p.manifest(), caps), before)
    else:
        tar = store.partial_path(p.definition.short)
        _save_with_docker(p, engine, store, tar, console)
        saved = store.commit(tar, _with_compression(p.manifest(), caps))
    engine.tag(p.image, f"{p.config.image_repo}:latest")
    _tidy(p, store, console)
    _tidy_engine(p, engine, caps, store, console)
    console.step(f"saved {saved.saved_as} ({saved.tar_bytes / 1e6:.0f} MB) in {store.root}")
    return saved


def _run_build(engine: Engine, request: BuildRequest, store: ImageStore, before: frozenset[str],
               console: Console) -> None:
    """Build; on any failure delete what it saved, and say so when the volume filled up."""
    try:
        engine.build(request, console.line)
    except EngineError as exc:
        written = store.new_bytes(before)
        _discard(store)
        if NO_SPACE in str(exc).lower():
            raise store.full_error(written) from exc
        raise
    except BaseException:
        _discard(store)
        raise


def _commit_layout(store: ImageStore, manifest: Manifest, before: frozenset[str]) -> Manifest:
    try:
        return store.commit_layout(manifest, before)
    except BaseException:
        _discard(store)
        raise


def _discard(store: ImageStore) -> None:
    """Delete what a failed save wrote: BuildKit's unfinished and new blobs (no saved image
    refers to them; :meth:`ImageStore.remove_leftovers` collects them); the previous image
    stays whole."""
    store.remove_leftovers()


def _needs_github(exc: BuildFailedError, versions: Mapping[str, str]) -> Optional[EngineError]:
    """The fix for code-server from npm whose install script could not reach GitHub."""
    if versions.get("code-server-source") != "npm" or not any(h.endswith("github.com") for h in exc.hosts):
        return None
    return EngineError(exc.what, (
        f"code-server {versions.get('code-server')} from npm runs an install script that downloads from"
        f" GitHub, which this machine cannot reach (releases before {NPM_WITHOUT_GITHUB} fetch ripgrep"
        f" there): pin --code-server {NPM_WITHOUT_GITHUB} or later, or build where GitHub is reachable"
    ))  # fmt: skip


def push(p: Plan, engine: Engine, refs: list[str], console: Console) -> None:
    """Push the built image under ``refs``: the same build again, exported to the registry.

    Every step is cached by the build just made, so this only compresses and uploads.
    """
    caps = engine.capabilities()
    with tempfile.TemporaryDirectory(prefix="sagecode-push-") as tmp:
        request = dataclasses.replace(
            _request(p, caps, Path(tmp), None, no_cache=False),
            tags=tuple(refs), load=False, push=True, cache_to="",
        )
        console.step(f"pushing {', '.join(refs)}")
        engine.build(request, console.line)


def _preflight(caps: Capabilities, store: ImageStore, console: Console, config: BuildConfig) -> None:
    if caps.too_old:
        raise EngineError(
            f"Docker {caps.server_version} blocks clone3, which the image's glibc needs",
            "upgrade Docker to 20.10.10 or newer",
        )
    store.check_space()
    if not caps.can_export_cache:
        console.note(
            f"the '{caps.driver}' builder on this engine (classic image store) cannot export "
            "build cache: building without a persistent cache and saving with `docker save`. "
            "For a cache, create a docker-container builder: docker buildx create --use "
            "--driver docker-container (needs the moby/buildkit image)"
        )


def _engine_keeps_cache(request: BuildRequest, config: BuildConfig, caps: Capabilities,
                        console: Console) -> BuildRequest:
    """The request without its cache export to the volume when the engine's own data, build
    cache included, is on the volume too (the opt-in ``SAGECODE_ENGINE_DATA=volume``): a
    second copy would cost a quarter of a minute per build and gigabytes of a small volume."""
    if not request.cache_to or config.cache_ref or config.cache_mode != "auto" \
            or not caps.keeps_data_in(config.state.root):
        return request
    console.note(f"the engine's data is in {caps.root_dir}, on the volume: it keeps the build cache "
                 "across restarts, so none is exported (SAGECODE_CACHE_MODE=max exports it anyway)")
    return dataclasses.replace(request, cache_to="")


def _within_room(request: BuildRequest, config: BuildConfig, store: ImageStore,
                 console: Console) -> BuildRequest:
    """The request without its cache export to the volume when that would leave it nearly full."""
    if not request.cache_to or config.cache_ref:  # nothing to write, or not on the volume
        return request
    room = store.free_bytes() - store.needed_bytes()
    if room >= CACHE_ROOM:
        return request
    console.note(
        f"only {max(room, 0) >> 20} MiB would stay free on the volume after the saved image: "
        "not writing the build cache this time (the image is saved as usual)"
    )
    return dataclasses.replace(request, cache_to="")


def _request(p: Plan, caps: Capabilities, tmp: Path, layout: Optional[Path], *,
             no_cache: bool) -> BuildRequest:
    context = tmp / "context"
    p.definition.write(context)
    cache_from, cache_to = _cache_args(p.config, caps)
    return BuildRequest(
        context=context,
        tags=(p.image,),
        target=FINAL_STAGE,
        labels=manifest_labels(p.manifest()),
        secrets=_secrets(p.config, tmp),
        cache_from=cache_from,
        cache_to=cache_to,
        layout=layout,
        tar_options=TAR_OPTIONS,
        no_cache=no_cache,
    )


# Cache export: SAGECODE_CACHE_MODE = auto (default, = max), min, max or off. On the docker
# driver with the containerd image store, a cold full-image build once drove dockerd 26's
# embedded BuildKit past 12 GB while exporting the cache (2026-12-04: gzip, code-server in
# one step), so auto exported nothing there. With zstd and the split code-server stages,
# three cold full builds with mode=max peaked at 821-942 MB of dockerd RSS (2026-12-05), so
# auto is max on every engine that can export a cache.
def cache_mode(requested: str) -> str:
    """The cache export mode to use: ``min``, ``max`` or ``off``."""
    return requested if requested in ("min", "max", "off") else "max"


def _cache_args(config: BuildConfig, caps: Capabilities) -> tuple[tuple[str, ...], str]:
    mode = cache_mode(config.cache_mode)
    if config.cache_ref:
        ref = config.cache_ref
        to = f"type=registry,ref={ref},mode={mode},{CACHE_OPTIONS}"
        return (f"type=registry,ref={ref}",), "" if mode == "off" else to
    if not caps.can_export_cache:
        return (), ""
    local = config.state.cache
    sources = (f"type=local,src={local}",) if (local / "index.json").is_file() else ()
    return sources, "" if mode == "off" else f"type=local,dest={local},mode={mode},{CACHE_OPTIONS}"


def _secrets(config: BuildConfig, tmp: Path) -> tuple[str, ...]:
    out = []
    if config.ca_bundle:
        out.append(f"id=ca-bundle,src={config.ca_bundle}")
    if config.build_env:
        env_file = tmp / "build-env"
        fd = os.open(env_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as f:
            f.writelines(f"export {k}={shlex.quote(v)}\n" for k, v in sorted(config.build_env.items()))
        out.append(f"id=build-env,src={env_file}")
    return tuple(out)


def _save_with_docker(p: Plan, engine: Engine, store: ImageStore, tar: Path, console: Console) -> None:
    console.step(f"saving {p.image} with docker save")
    meter = console.progress("docker save", 0)
    store.write_stream(engine.save([p.image]), tar, meter)
    meter.finish()


def _with_compression(m: Manifest, caps: Capabilities) -> Manifest:
    from dataclasses import replace  # noqa: PLC0415

    return replace(m, compression="zstd" if caps.multi_output else "none")


def _tidy(p: Plan, store: ImageStore, console: Console) -> None:
    for old in store.prune(p.config.keep):
        console.step(f"removed old saved image {old}")
    if not p.config.cache_ref:
        report = cache.prune(p.config.state.cache, p.config.cache_cap_mb << 20)
        if report.dropped:
            console.note(
                f"build cache ({report.before >> 20} MiB) exceeded the cap "
                f"({p.config.cache_cap_mb} MiB) and was dropped; raise --cache-cap-mb to keep it"
            )


def _tidy_engine(p: Plan, engine: Engine, caps: Capabilities, store: ImageStore, console: Console) -> None:
    """With the engine's data on the volume (opt-in), what the engine keeps counts against the
    volume across restarts, as the saved tars and the cache do: the images of earlier builds
    go (unless a container still runs one: then at the next build) and the engine's build
    cache is held to the cache cap. On the root volume a restart empties the engine anyway."""
    if not caps.keeps_data_in(p.config.state.root):
        return
    for ref in engine.tags(p.config.image_repo):
        tag = ref.rsplit(":", 1)[1]
        # only the content tags builds make (12 hex digits), never a tag someone else set
        if ref != p.image and CONTENT_TAG.fullmatch(tag) and engine.remove_unused(ref):
            console.step(f"removed the earlier image {ref} from the engine")
    # nearly full: everything the current image does not hold goes
    engine.prune_build_cache(p.config.cache_cap_mb << 20 if store.free_bytes() >= CACHE_ROOM else 0)


def _summary(versions: Mapping[str, str]) -> str:
    keys = [k for k in ("code-server", "node") if k in versions]
    return ", ".join(f"{k} {versions[k]}" for k in keys) or "no versioned layers"
