"""``sagecode status``: what is built, saved, loaded and running, where, and when last used.

Every line is ``label: text``. An engine that does not answer is a line of the report,
not an error: the saved image, the URL and the heartbeat are still worth showing.
"""

from __future__ import annotations

import time
from pathlib import Path
from typing import Optional

from imagebuild.console import human
from imagebuild.errors import EngineError
from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore
from runtime.config import RuntimeConfig
from runtime.container import Containers, ContainerState
from runtime.heartbeat import last_beat
from runtime.images import describe
from runtime.instance import RESOURCE_METADATA, editor_url

Line = tuple[str, str]


def status_lines(
    config: RuntimeConfig, containers: Containers, metadata: Path = RESOURCE_METADATA
) -> list[Line]:
    """The report, in the order a user asks: what, where, running, how to open, used."""
    manifest = ImageStore(config.state.images).current()
    return [
        ("image", image_text(config, manifest)),
        ("saved", saved_text(config, manifest)),
        *engine_lines(config, containers, manifest),
        ("url", editor_url(metadata)),
        ("heartbeat", last_beat(config.state.home).describe(time.time())),
    ]


def format_lines(lines: list[Line]) -> str:
    """Aligned ``label: text`` lines."""
    width = max(len(label) for label, _ in lines) + 1
    return "\n".join(f"{label + ':':<{width}} {text}" for label, text in lines)


def image_text(config: RuntimeConfig, manifest: Optional[Manifest]) -> str:
    """The image to run, its versions and when it was built."""
    if config.image:
        return f"{config.image} (from SAGECODE_IMAGE)"
    if manifest is None:
        return "none built yet (build it: python -m imagebuild)"
    return f"{describe(manifest)}, built {manifest.created}"


def saved_text(config: RuntimeConfig, manifest: Optional[Manifest]) -> str:
    """The saved image on the volume (a tar, or the blobs in the layout folder) and its size."""
    if manifest is None or not (manifest.tar or manifest.oci_manifest):
        return "none saved"
    store = ImageStore(config.state.images)
    if manifest.oci_manifest:
        problem = store.check_size(manifest)
        where = f"{store.layout} ({manifest.saved_as})"
        return f"{where}: {problem} (rebuild: python -m imagebuild)" if problem \
            else f"{where} ({human(manifest.tar_bytes)})"
    path = store.tar_path(manifest)
    if not path.is_file():
        return f"{path} is missing (rebuild: python -m imagebuild)"
    return f"{path} ({human(path.stat().st_size)})"


def engine_lines(config: RuntimeConfig, containers: Containers, manifest: Optional[Manifest]) -> list[Line]:
    """Whether the engine has the image and runs the editor."""
    ref = config.image or (manifest.image if manifest else None)
    try:
        loaded = containers.image_id(ref) if ref else None
        state = containers.state(config.container_name)
    except EngineError as exc:
        return [("engine", f"not answering: {exc}"), ("container", "unknown")]
    if ref is None:
        engine = "no image to look for"
    elif loaded:
        engine = f"has {ref}"
    else:
        engine = f"lacks {ref} (the editor restores it when it starts)"
    return [("engine", engine), ("container", container_text(config, state, manifest))]


def container_text(
    config: RuntimeConfig, state: Optional[ContainerState], manifest: Optional[Manifest]
) -> str:
    """Running or not, and whether it runs the current image."""
    name = config.container_name
    if state is None or not state.running:
        return f"{name} is not running"
    if manifest and not config.image and state.content and state.content != manifest.content:
        return f"{name} is running an older image (restart the editor to use {manifest.image})"
    return f"{name} is running"
