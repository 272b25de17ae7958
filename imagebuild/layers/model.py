"""The vocabulary an image is composed from: plain, immutable data.

A ``Layer`` says what it installs and from where; it knows nothing about Dockerfile
syntax (``imagebuild.render`` alone does) nor about the engine (``imagebuild.engine``).
Heavy artifacts are made in a ``Stage`` of their own so that BuildKit builds them in
parallel and their build tools never reach the final image.
"""

from __future__ import annotations

from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path

FILES_DIR = Path(__file__).parent / "files"


@dataclass(frozen=True)
class File:
    """A file shipped with the layers (``source`` relative to ``layers/files``) and its place."""

    source: str
    dest: str
    mode: int = 0o644

    @property
    def path(self) -> Path:
        """The shipped file on disk."""
        return FILES_DIR / self.source


@dataclass(frozen=True)
class Link:
    """A symbolic link ``path`` -> ``target`` in the image (laid out in the context like a
    ``File``, so no step has to run on the assembled image to make it)."""

    path: str
    target: str


@dataclass(frozen=True)
class Copy:
    """A path a stage produced, copied into the final image (or another stage)."""

    stage: str
    src: str
    dest: str


@dataclass(frozen=True)
class Stage:
    """A builder stage: starts ``FROM`` the base stage (or another stage), runs steps.

    Steps run with the network settings and CA bundle of the build mounted as secrets,
    never stored in a layer. ``mounts`` are other stages' paths bind-mounted read-only into
    the steps (``Copy.dest`` is where): what a step copies from them lands in the step's own
    layer, with no merged snapshot for the engine to assemble first.
    """

    name: str
    parent: str = "base"
    build_tools: tuple[str, ...] = ()
    copies: tuple[Copy, ...] = ()
    files: tuple[File, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    run: tuple[str, ...] = ()
    mounts: tuple[Copy, ...] = ()


@dataclass(frozen=True)
class Layer:
    """One component of the image.

    ``preflight`` checks run first in the base stage, before any package is installed, so
    an unsuitable base image is refused in seconds; ``apt`` packages go into the shared
    base stage, and ``setup`` steps (local, needing only those packages) run there after
    them, so they are cached with it and never rerun when a tool changes; ``stages`` make
    artifacts that ``copies`` bring into the final image; ``files``, ``env`` and ``run``
    apply in the final stage in layer order, with ``links`` beside the files; ``run`` steps
    (local only) run last on the assembled image, so BuildKit must merge every layer's
    snapshot for them: prefer ``setup`` or ``links``; ``verify`` commands run inside the
    built image.

    ``trunk`` names one of the layer's stages that the final stage starts ``FROM``, instead
    of copying its result in: that stage's steps become the image's own layers, so the
    export reuses their blobs rather than compressing a copy. It must descend from the
    previous layer's trunk (or ``base``) through stages with no build tools.
    """

    name: str
    summary: str
    version: str = ""
    preflight: tuple[str, ...] = ()
    apt: tuple[str, ...] = ()
    setup: tuple[str, ...] = ()
    stages: tuple[Stage, ...] = ()
    copies: tuple[Copy, ...] = ()
    files: tuple[File, ...] = ()
    links: tuple[Link, ...] = ()
    env: tuple[tuple[str, str], ...] = ()
    run: tuple[str, ...] = ()
    verify: tuple[str, ...] = ()
    entrypoint: tuple[str, ...] = ()
    trunk: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)


@dataclass(frozen=True)
class Want:
    """A version the build needs before it starts: ``spec`` of ``package`` from ``source``.

    ``source`` is ``npm``, ``pypi`` or ``code-server`` (GitHub with fallbacks). The
    resolved exact version is stored in the lock under ``key``.
    """

    key: str
    source: str
    package: str
    spec: str
