"""Render a sequence of layers into a multi-stage Dockerfile and its build context.

This is the only module that knows Dockerfile syntax. The text is never committed: it
is rendered into a temporary build context for each build.

Stage layout:
- ``base``: the base image plus every layer's apt packages and the local setup steps
  that need only them (changes rarely).
- one builder stage per heavy artifact (Node, code-server, the AWS CLI, agents), each
  from ``base`` or another stage, so BuildKit runs them in parallel and their build
  tools stay out of the final image;
- ``image``: from the last layer's trunk (``base``, or a chain of stages that hold only
  what the image keeps: Node, then code-server), plus each layer's copies and env in
  layer order (layers are ordered by how often they change, so a change invalidates only
  what follows it), then every layer's files and links in one step (and the local steps
  of a layer that has any, such as kiro's, in one more).

Why a trunk: a stage copied into the image is exported twice, its own layer into the
cache and the copy into the image, each compressed; the copy itself costs a snapshot.
Starting the image from code-server's stage reuses the stage's blobs as they are: the
cache holds code-server once (125 MB less after five bumps, 2026-12-06). A bump is no
faster yet: the copy's time went to extracting the tools stage later (PERFORMANCE.md).

Why so few final steps: BuildKit's cache export walks every path through the steps'
cache keys (moby/buildkit#5005), and with one COPY or RUN per file and link (25 steps)
exporting this image's cache took dockerd past 18 GB of memory; the stage copies, one
files step and one run step keep it to a few seconds.
"""

from __future__ import annotations

import hashlib
import json
import shutil
from collections.abc import Iterable, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path

from imagebuild.errors import UsageError
from imagebuild.layers.model import Copy, File, Layer, Stage

SCRIPTS_DIR = Path(__file__).parent / "build_scripts"
# Build-only helpers are bind-mounted from the context into each step: never in a layer.
BUILD_MOUNT = "/run/sagecode-build"
SECRET_MOUNTS = (
    "--mount=type=secret,id=ca-bundle "
    "--mount=type=secret,id=build-env "
    f"--mount=type=bind,source=build,target={BUILD_MOUNT}"
)
FINAL_STAGE = "image"
# Layer files are laid out in the context as they go into the image: one COPY for all.
ROOTFS = "rootfs"


@dataclass(frozen=True)
class BuildDefinition:
    """A rendered build: the Dockerfile text, its context files and their content hash."""

    dockerfile: str
    files: Mapping[str, Path]
    content: str
    #: File modes by context path; the files' own modes on disk never reach the image.
    modes: Mapping[str, int] = field(default_factory=dict)
    #: Symbolic links by context path, and their targets.
    links: Mapping[str, str] = field(default_factory=dict)

    @property
    def short(self) -> str:
        """The 12-character content tag."""
        return self.content[:12]

    def write(self, context: Path) -> Path:
        """Lay the build context out in ``context``; return the Dockerfile's path."""
        context.mkdir(parents=True, exist_ok=True)
        for rel, src in self.files.items():
            dest = context / rel
            _make_dirs(context, dest.parent)
            shutil.copy2(src, dest)
            dest.chmod(self.modes.get(rel, 0o644))
        for rel, target in self.links.items():
            dest = context / rel
            _make_dirs(context, dest.parent)
            dest.symlink_to(target)
        dockerfile = context / "Dockerfile"
        dockerfile.write_text(self.dockerfile)
        return dockerfile


def render(layers: Sequence[Layer], base_image: str) -> BuildDefinition:
    """Render ``layers`` on ``base_image`` into a build definition."""
    _check_rootfs(layers)
    files, modes = _context_files(layers)
    links = {_rootfs_name(link.path): link.target for layer in layers for link in layer.links}
    parts = [_base_stage(layers, base_image)]
    parts += [_stage(s) for layer in layers for s in layer.stages]
    parts.append(_final_stage(layers))
    text = "\n".join(parts)
    return BuildDefinition(text, files, _content_hash(text, files, modes, links), modes, links)


def _check_rootfs(layers: Sequence[Layer]) -> None:
    """Refuse two files or links at one path in the image: one would silently win, or the
    context could not be written."""
    owner: dict[str, str] = {}
    for layer in layers:
        for path in [f.dest for f in layer.files] + [link.path for link in layer.links]:
            if path in owner:
                who = f"layers {owner[path]} and {layer.name} both put" if owner[path] != layer.name \
                    else f"layer {layer.name} puts twice"
                raise UsageError(f"{who} {path} in the image", "build without one of them (--without NAME)")
            owner[path] = layer.name


def _make_dirs(context: Path, directory: Path) -> None:
    """Create ``directory`` as 0755 whatever the umask: under rootfs/ it becomes the
    image's /etc, /usr... and a 0700 there would lock every user but root out."""
    if directory == context or directory.is_dir():
        return
    _make_dirs(context, directory.parent)
    directory.mkdir()
    directory.chmod(0o755)


def _run(command: str, mounts: Sequence[Copy] = ()) -> str:
    """A RUN step with the build's network settings mounted (never stored), and ``mounts``
    of other stages' paths, read-only."""
    body = command.strip().replace("\n", " \\\n    ")
    extra = "".join(f" --mount=type=bind,from={m.stage},source={m.src},target={m.dest}" for m in mounts)
    return f"RUN {SECRET_MOUNTS}{extra} \\\n    . {BUILD_MOUNT}/netenv.sh && {body}"


def _base_stage(layers: Sequence[Layer], base_image: str) -> str:
    packages = sorted({p for layer in layers for p in layer.apt})
    lines = [
        "# Base: the OS and every layer's system packages; changes least often.",
        f"FROM {base_image} AS base",
        "ENV LANG=C.UTF-8 LC_ALL=C.UTF-8 DEBIAN_FRONTEND=noninteractive",
    ]
    # Checks need nothing from the network, so they run bare, before the first download.
    lines += [f"RUN {check}" for layer in layers for check in layer.preflight]
    if packages:
        lines.append(_run(f"sh {BUILD_MOUNT}/apt-install.sh {' '.join(packages)}"))
    lines += _local_run(step for layer in layers for step in layer.setup)
    return "\n".join(lines) + "\n"


def _stage(stage: Stage) -> str:
    lines = [f"FROM {stage.parent} AS {stage.name}"]
    lines += [_copy(c) for c in stage.copies]
    lines += [_env(stage.env)] if stage.env else []
    if stage.build_tools:
        tools = " ".join(sorted(stage.build_tools))
        lines.append(_run(f"sh {BUILD_MOUNT}/apt-install.sh {tools}"))
    lines += [_add(f) for f in stage.files]
    lines += [_run(step, stage.mounts) for step in stage.run]
    return "\n".join(lines) + "\n"


def _trunk(layers: Sequence[Layer]) -> str:
    """The stage the image starts from: the last layer's trunk, after checking that each
    trunk is its layer's own stage and descends from the one before through stages that
    install no build tools (every step on the way becomes a layer of the image)."""
    stages = {s.name: s for layer in layers for s in layer.stages}
    trunk = "base"
    for layer in (x for x in layers if x.trunk):
        if layer.trunk not in {s.name for s in layer.stages}:
            raise ValueError(f"layer {layer.name}: its trunk {layer.trunk} is not one of its stages")
        name = layer.trunk
        while name != trunk:
            stage = stages.get(name)
            if stage is None:
                raise ValueError(f"layer {layer.name}: its trunk {layer.trunk} does not descend from {trunk}")
            if stage.build_tools:
                raise ValueError(f"layer {layer.name}: its trunk goes through {name}, with build tools")
            name = stage.parent
        trunk = layer.trunk
    return trunk


def _final_stage(layers: Sequence[Layer]) -> str:
    lines = [f"FROM {_trunk(layers)} AS {FINAL_STAGE}"]
    for layer in layers:
        lines.append(f"# layer {layer.name} {layer.version}".rstrip() + f": {layer.summary}")
        lines += [_copy(c) for c in layer.copies]
        lines += [_env(layer.env)] if layer.env else []
    if any(layer.files or layer.links for layer in layers):
        lines.append("# every layer's files and links, laid out in the context as in the image")
        lines.append(f"COPY --link {ROOTFS}/ /")
    # Local steps only, in layer order; downloads belong in a stage. BuildKit assembles
    # every layer's snapshot to run them, so layers use links and base-stage setup instead.
    lines += _local_run(step for layer in layers for step in layer.run)
    entry = [layer.entrypoint for layer in layers if layer.entrypoint]
    if entry:
        lines.append(f"ENTRYPOINT {json.dumps(list(entry[-1]))}")
        lines.append("CMD []")
    return "\n".join(lines) + "\n"


def _local_run(steps: Iterable[str]) -> list[str]:
    """One RUN for all of ``steps`` (no network settings: they download nothing), or none."""
    groups = [_group(step) for step in steps]
    return ["RUN " + " && \\\n    ".join(groups)] if groups else []


def _group(step: str) -> str:
    """One step as a shell group, so `a && b; c` inside it cannot leak a failure past `&&`."""
    return "{ " + step.strip().replace("\n", " \\\n    ") + "; }"


def _copy(copy: Copy) -> str:
    return f"COPY --link --from={copy.stage} {copy.src} {copy.dest}"


def _add(file: File) -> str:
    return f"COPY --chmod={file.mode:o} {_context_name(file)} {file.dest}"


def _env(pairs: Iterable[tuple[str, str]]) -> str:
    return "ENV " + " ".join(f"{k}={json.dumps(v)}" for k, v in pairs)


def _context_name(file: File) -> str:
    return f"files/{file.source}"


def _rootfs_name(dest: str) -> str:
    return f"{ROOTFS}/{dest.lstrip('/')}"


def _context_files(layers: Sequence[Layer]) -> tuple[dict[str, Path], dict[str, int]]:
    """Build helpers, stage files by source name, layer files at their place under rootfs/."""
    files = {f"build/{p.name}": p for p in sorted(SCRIPTS_DIR.glob("*.sh"))}
    modes = dict.fromkeys(files, 0o644)  # run with `sh`, never executed directly
    for f in (f for layer in layers for s in layer.stages for f in s.files):
        files[_context_name(f)], modes[_context_name(f)] = f.path, f.mode
    for f in (f for layer in layers for f in layer.files):
        rel = _rootfs_name(f.dest)
        files[rel], modes[rel] = f.path, f.mode
    return files, modes


def _content_hash(dockerfile: str, files: Mapping[str, Path], modes: Mapping[str, int],
                  links: Mapping[str, str]) -> str:
    digest = hashlib.sha256(dockerfile.encode())
    for rel in sorted(files):
        head = f"{rel}\0{modes.get(rel, 0o644):o}\0".encode()
        digest.update(head + files[rel].read_bytes() + b"\0")
    for rel in sorted(links):
        digest.update(f"{rel}\0->\0{links[rel]}\0".encode())
    return digest.hexdigest()
