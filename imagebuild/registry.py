"""Build once, use everywhere: push a built image to a registry, pull one instead of building.

A platform team builds in CI and pushes; each notebook instance pulls the image once,
saves its tar on the persistent volume, and restores offline from then on.
"""

from __future__ import annotations

import json
import re
from collections.abc import Mapping

from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.engine import Engine
from imagebuild.errors import UsageError
from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore

# Labels that let a pulled image describe itself as a manifest does.
LABELS = ("org.sagecode.content", "org.sagecode.versions", "org.sagecode.layers",
          "org.sagecode.base-image", "org.sagecode.platform")
_REPO = re.compile(r"^[a-z0-9]+([._:/-][a-z0-9]+)*$")


def manifest_labels(m: Manifest) -> dict[str, str]:
    """The image labels that carry a manifest's facts."""
    return {
        "org.sagecode.content": m.content,
        "org.sagecode.versions": json.dumps(dict(sorted(m.versions.items()))),
        "org.sagecode.layers": ",".join(m.layers),
        "org.sagecode.base-image": m.base_image,
        "org.sagecode.platform": m.platform,
    }


def check_repo(ref: str) -> str:
    """A registry repository without tag or digest (``host:port/name``)."""
    last = ref.rsplit("/", 1)[-1]
    if ":" in last or "@" in ref or not _REPO.match(ref):
        raise UsageError(
            f"--push {ref} is not a repository name", "give it without a tag, e.g. ghcr.io/org/sagecode"
        )
    return ref


def publish_tags(repo: str, m: Manifest) -> list[str]:
    """Tags derived from the lock: content hash, code-server version (+ base), latest."""
    tags = [m.content[:12], "latest"]
    version = m.versions.get("code-server")
    if version:
        base = re.sub(r"[^a-zA-Z0-9_.-]+", "-", m.base_image.rsplit("/", 1)[-1])
        tags += [version, f"{version}-{base}"]
    return [f"{repo}:{t}" for t in tags]


def pull_and_save(config: BuildConfig, engine: Engine, ref: str, console: Console) -> Manifest:
    """Pull ``ref``, tag it by content, save its tar on the persistent volume."""
    console.step(f"pulling {ref}")
    engine.pull(ref)
    m = _manifest_from_labels(ref, engine.labels(ref), config)
    engine.tag(ref, m.image)
    engine.tag(ref, f"{config.image_repo}:latest")
    store = ImageStore(config.state.images)
    store.prepare()
    partial = store.partial_path(m.image.rsplit(":", 1)[-1])
    meter = console.progress("docker save", 0)
    store.write_stream(engine.save([m.image]), partial, meter)
    meter.finish()
    saved = store.commit(partial, m)
    store.prune(config.keep)
    return saved


def _manifest_from_labels(ref: str, labels: Mapping[str, str], config: BuildConfig) -> Manifest:
    missing = [k for k in LABELS if k not in labels]
    if missing:
        raise UsageError(f"{ref} was not built by sagecode (no {missing[0]} label)",
                         "pull an image pushed by python -m imagebuild --push")
    content = labels["org.sagecode.content"]
    return Manifest(
        image=f"{config.image_repo}:{content[:12]}", content=content,
        versions=json.loads(labels["org.sagecode.versions"]),
        layers=tuple(x for x in labels["org.sagecode.layers"].split(",") if x),
        base_image=labels["org.sagecode.base-image"], platform=labels["org.sagecode.platform"],
        compression="none",
    )
