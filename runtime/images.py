"""Which image the editor runs, restored into the engine when a restart wiped it.

``images/current.json`` names the image (``SAGECODE_IMAGE`` overrides it). When the
engine lacks it, the saved tar is loaded by ``python -m imagebuild restore --no-build``,
which also waits for a restore the lifecycle hook is running; the wait is bounded by
``SAGECODE_IMAGE_WAIT``. There is no fallback to an older image: a restore that fails
fails the launch, and the log says which image runs. The wrapper passes ``waiting``: what
to do while a restore runs (answer the proxy with a page that waits: ``runtime/waitpage.py``).
"""

from __future__ import annotations

import contextlib
import logging
import subprocess
import sys
from collections.abc import Callable, Sequence
from contextlib import AbstractContextManager

from imagebuild.errors import StoreError
from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore
from runtime.config import RuntimeConfig
from runtime.container import Containers
from runtime.logfiles import WRAPPER_LOG
from runtime.plan import CONTENT_LABEL, Image

SEE_LOG = "see logs/wrapper.log in the state folder, or run: python -m imagebuild restore"


def current_manifest(config: RuntimeConfig) -> Manifest:
    """The manifest of the image to run; a ``StoreError`` when none was built."""
    manifest = ImageStore(config.state.images).current()
    if manifest is None:
        raise StoreError("no sagecode image has been built yet", "build it: python -m imagebuild")
    return manifest


def describe(manifest: Manifest) -> str:
    """``sagecode:abc (code-server 4.1, node 24)``: the image and its versions."""
    versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items()))
    return f"{manifest.image} ({versions or 'no versions recorded'})"


Waiting = Callable[[], AbstractContextManager[object]]


def select_image(config: RuntimeConfig, containers: Containers, log: logging.Logger,
                 waiting: Waiting = contextlib.nullcontext) -> Image:  # fmt: skip
    """The image to run, restored into the engine first (inside ``waiting()``) when it is missing."""
    if config.image:
        return _named_image(config.image, containers, log)
    manifest = current_manifest(config)
    if not containers.image_id(manifest.image):
        with waiting():
            restore(config, manifest.image, containers, log)
    log.info("running %s", describe(manifest))
    return Image(manifest.image, manifest.content)


def restore(config: RuntimeConfig, ref: str, containers: Containers, log: logging.Logger) -> None:
    """Load the saved image (never build: that takes far longer than anyone waits)."""
    wait = config.image_wait_seconds
    log.info("%s is not in the engine: restoring it (up to %.0f s)", ref, wait)
    state = str(config.state.root)
    # -I: a folder named imagebuild in Jupyter's working directory must never be imported.
    command = [sys.executable, "-I", "-m", "imagebuild", "restore", "--no-build", "--quiet",
               "--state-dir", state]
    try:
        _logged(config, command, wait)
    except subprocess.TimeoutExpired:
        raise StoreError(f"{ref} was not restored within {wait:.0f} s", SEE_LOG) from None
    if not containers.image_id(ref):
        raise StoreError(f"{ref} could not be restored", SEE_LOG)


def _named_image(ref: str, containers: Containers, log: logging.Logger) -> Image:
    if not containers.image_id(ref):
        raise StoreError(f"SAGECODE_IMAGE={ref} is not in the engine", "load or build it, or unset it")
    log.info("running %s (from SAGECODE_IMAGE)", ref)
    return Image(ref, containers.image_labels(ref).get(CONTENT_LABEL, ""))


def _logged(config: RuntimeConfig, command: Sequence[str], timeout: float) -> None:
    """Run ``command`` with its output appended to the wrapper's log on the volume."""
    config.state.logs.mkdir(parents=True, exist_ok=True)
    with (config.state.logs / WRAPPER_LOG).open("ab") as out:
        subprocess.run(command, stdout=out, stderr=out, timeout=timeout, check=False)
