"""The one place that talks to the Docker engine for building, saving and loading.

Everything here goes through python-on-whales; its errors are re-raised as
``EngineError`` with the command's last output line and what to do next.
"""

from __future__ import annotations

import logging
import re
from collections.abc import Iterable, Iterator, Mapping, Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Callable, Optional, TypeVar

from python_on_whales import ClientNotFoundError, DockerClient, DockerException

from imagebuild.errors import EngineError

log = logging.getLogger("imagebuild.engine")
OnLine = Callable[[str], None]
T = TypeVar("T")
PUSH_OPTIONS = "compression=gzip,force-compression=true,oci-mediatypes=true"
# The daemon's seccomp profile blocks clone3 before 20.10.10; glibc >= 2.34 images then fail.
MIN_ENGINE = (20, 10, 10)


def _version_tuple(text: str) -> tuple[int, ...]:
    return tuple(int(x) for x in re.findall(r"\d+", text)[:3])


@dataclass(frozen=True)
class Capabilities:
    """What this engine and its default builder can do."""

    server_version: str
    buildx_version: str
    driver: str
    containerd_store: bool
    security_options: tuple[str, ...] = ()
    root_dir: str = ""  # dockerd's data-root, where its images and build cache live

    def keeps_data_in(self, folder: Path) -> bool:
        """The engine's data lives under ``folder``, so it persists as long as ``folder`` does."""
        return bool(self.root_dir) and Path(self.root_dir).resolve().is_relative_to(folder.resolve())

    @property
    def can_export_cache(self) -> bool:
        """The docker driver exports cache only on the containerd image store."""
        return self.driver != "docker" or self.containerd_store

    @property
    def multi_output(self) -> bool:
        """One build both stores the image in the engine and saves it into a layout folder.

        Only the docker driver on the containerd store exports ``type=image`` straight
        into the engine; buildx 0.13 added several outputs per build. Other builders load
        with ``--load`` and save with ``docker save``.
        """
        recent = _version_tuple(self.buildx_version) >= (0, 13)
        return self.driver == "docker" and self.containerd_store and recent

    @property
    def too_old(self) -> bool:
        """True when the engine predates the clone3 seccomp fix."""
        return _version_tuple(self.server_version) < MIN_ENGINE


@dataclass(frozen=True)
class BuildRequest:
    """A ``docker buildx build`` call as plain data."""

    context: Path
    tags: tuple[str, ...]
    target: str = ""
    labels: Mapping[str, str] = field(default_factory=dict)
    secrets: tuple[str, ...] = ()
    cache_from: tuple[str, ...] = ()
    cache_to: str = ""
    layout: Optional[Path] = None
    tar_options: str = ""
    load: bool = True
    push: bool = False
    network: str = ""
    no_cache: bool = False

    def argv(self) -> list[str]:
        """The buildx arguments, after ``docker``."""
        args = ["buildx", "build", "--progress", "plain", "--provenance=false"]
        args += [f"--tag={t}" for t in self.tags]
        args += [f"--label={k}={v}" for k, v in sorted(self.labels.items())]
        args += [f"--secret={s}" for s in self.secrets]
        args += [f"--cache-from={c}" for c in self.cache_from]
        args += [f"--cache-to={self.cache_to}"] if self.cache_to else []
        args += [f"--target={self.target}"] if self.target else []
        args += [f"--network={self.network}"] if self.network else []
        args += ["--no-cache"] if self.no_cache else []
        args += self._outputs()
        return [*args, str(self.context)]

    def _outputs(self) -> list[str]:
        outs = []
        extra = f",{self.tar_options}" if self.tar_options else ""
        if self.load:
            # The engine's copy gets the saved image's compression: BuildKit compresses each
            # layer once and both outputs (and a cache of the same compression) share the blobs.
            outs.append(f"--output=type=image,name={','.join(self.tags)}{extra}" if self.layout else "--load")
        if self.layout:
            # An OCI layout folder, not a tar: BuildKit sends only the blobs it lacks.
            outs.append(f"--output=type=oci,dest={self.layout},tar=false{extra}")
        if self.push:
            # gzip and OCI media types: what every registry and engine (Docker 20.10 too) reads.
            names = ",".join(self.tags)
            outs.append(f'--output=type=image,"name={names}",push=true,{PUSH_OPTIONS}')
        return outs


class Engine:
    """Build, inspect, save and load images on one Docker engine."""

    def __init__(self, client: Optional[DockerClient] = None) -> None:
        self.docker = client or DockerClient()

    def capabilities(self) -> Capabilities:
        """Probe the engine and builder once; a missing engine is a one-line error."""
        info = self._call("docker info", self.docker.system.info)
        buildx = self._call("docker buildx version", lambda: self._raw(["buildx", "version"]))
        builder = self._call("docker buildx inspect", self.docker.buildx.inspect)
        driver_status = [tuple(x) for x in (info.driver_status or [])]
        return Capabilities(
            server_version=info.server_version or "0",
            buildx_version=buildx.split()[1] if len(buildx.split()) > 1 else "0",
            driver=builder.driver or "docker",
            containerd_store=any("containerd" in str(v) for _, v in driver_status),
            security_options=tuple(info.security_options or ()),
            root_dir=str(info.docker_root_dir or ""),
        )

    def build(self, request: BuildRequest, on_line: OnLine) -> None:
        """Run the build, streaming BuildKit's plain progress to ``on_line``."""
        cmd = [*self._call("docker buildx build", lambda: self.docker.client_config.docker_cmd),
               *request.argv()]
        tail: list[str] = []
        hosts: dict[str, None] = {}  # hosts a step could not resolve, in order
        try:
            for _, raw in _stream(cmd):
                line = raw.decode(errors="replace").rstrip()
                tail = [*tail[-19:], line]
                hosts.update(dict.fromkeys(unresolved(line)))
                on_line(line)
        except DockerException as exc:
            fix = "see the build output above; fix the input or rerun (finished steps are cached)"
            if hosts:
                fix = (f"a step could not resolve {', '.join(hosts)}: give the build a way there"
                       " (HTTPS_PROXY, a mirror) or choose a source that needs none; see the output above")
            raise BuildFailedError(f"the image build failed: {_last_error(tail)}", fix, tuple(hosts)) from exc

    def image_id(self, ref: str) -> Optional[str]:
        """The image's id, or None when the engine does not have it."""
        if not self._call("docker image inspect", lambda: self.docker.image.exists(ref)):
            return None
        return self._call("docker image inspect", lambda: self.docker.image.inspect(ref).id)

    def ensure_image(self, ref: str) -> None:
        """Pull ``ref`` unless the engine has it; a failure names the flag that helps."""
        if self.image_id(ref):
            return
        try:
            self.docker.image.pull(ref, quiet=True)
        except DockerException as exc:
            raise EngineError(
                f"cannot get the base image {ref}: {_engine_error('docker pull', exc).what}",
                "pass --base-image with an image this engine has or can pull "
                "(e.g. --base-image local/debian:bookworm)",
            ) from exc

    def push(self, ref: str) -> None:
        """Push ``ref`` to its registry."""
        self._call(f"docker push {ref}", lambda: self.docker.image.push(ref, quiet=True))

    def pull(self, ref: str) -> None:
        """Pull ``ref`` from its registry."""
        self._call(f"docker pull {ref}", lambda: self.docker.image.pull(ref, quiet=True))

    def labels(self, ref: str) -> Mapping[str, str]:
        """The image's labels."""
        image = self._call("docker image inspect", lambda: self.docker.image.inspect(ref))
        return dict(image.config.labels or {})

    def tag(self, ref: str, new: str) -> None:
        """Add tag ``new`` to image ``ref``."""
        self._call("docker tag", lambda: self.docker.image.tag(ref, new))

    def remove(self, ref: str) -> None:
        """Remove an image tag if present."""
        self._call("docker rmi", lambda: self.docker.image.remove(ref, force=True, prune=False))

    def untag(self, ref: str) -> None:
        """Remove the name ``ref`` only (the image stays while another name has it)."""
        self._call("docker rmi", lambda: self.docker.image.remove(ref, force=False, prune=False))

    def tags(self, repo: str) -> list[str]:
        """Every ``repo:tag`` the engine holds."""
        images = self._call("docker image ls", lambda: self.docker.image.list(repo))
        return sorted({t for image in images for t in image.repo_tags or () if t.startswith(f"{repo}:")})

    def remove_unused(self, ref: str) -> bool:
        """Remove ``ref`` unless a container uses it; True when it is gone."""
        try:
            self.docker.image.remove(ref, force=False, prune=True)
        except DockerException as exc:
            log.debug("kept %s: %s", ref, exc)
            return False
        return True

    def prune_build_cache(self, keep_bytes: int) -> None:
        """Drop the engine's least recently used build cache beyond ``keep_bytes``."""
        argv = ["buildx", "prune", "--force", "--keep-storage", f"{keep_bytes >> 20}mb"]
        self._call("docker buildx prune", lambda: self._raw(argv))

    def save(self, refs: Sequence[str]) -> Iterator[bytes]:
        """Stream ``docker save`` of ``refs`` (a plain tar)."""
        stream = self._call("docker save", lambda: self.docker.image.save(list(refs)))
        if stream is None:
            raise EngineError("docker save produced no output", "check the engine's log")
        return _guard("docker save", stream)

    def load(self, chunks: Iterable[bytes]) -> list[str]:
        """Load an image tar streamed as ``chunks``; returns what the engine loaded."""
        return self._call("docker load", lambda: self.docker.image.load(iter(chunks), quiet=True))

    def run(self, image: str, command: Sequence[str]) -> str:
        """Run ``command`` in a throwaway container of ``image``; returns its output."""
        return self._call(
            "docker run",
            lambda: str(self.docker.run(image, list(command), remove=True, entrypoint="")),
        )

    def _raw(self, args: list[str]) -> str:
        from python_on_whales.utils import run  # noqa: PLC0415 - pow's command runner

        return str(run([*self.docker.client_config.docker_cmd, *args]))

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DockerException as exc:
            raise _engine_error(what, exc) from exc
        except (FileNotFoundError, ClientNotFoundError) as exc:
            raise EngineError(
                "the docker command is not installed", "install Docker or put it on PATH"
            ) from exc


def _stream(cmd: list[str]) -> Iterator[tuple[str, bytes]]:
    from python_on_whales.utils import stream_stdout_and_stderr  # noqa: PLC0415

    return iter(stream_stdout_and_stderr(cmd))


def _guard(what: str, stream: Iterator[bytes]) -> Iterator[bytes]:
    try:
        yield from stream
    except DockerException as exc:
        raise _engine_error(what, exc) from exc


def _engine_error(what: str, exc: DockerException) -> EngineError:
    stderr = (exc.stderr or "").strip().splitlines()
    detail = stderr[-1] if stderr else f"exit code {exc.return_code}"
    if "Cannot connect to the Docker daemon" in detail or "docker daemon" in detail.lower():
        return EngineError(f"{what}: the Docker engine is not running", "start Docker, then retry")
    return EngineError(f"{what} failed: {detail}", "see `sagecode doctor`")


# How a step says it could not resolve a host: Node (npm's install scripts), curl, wget, apt.
_UNRESOLVED = re.compile(
    r"getaddrinfo (?:ENOTFOUND|EAI_AGAIN) ([\w.-]+)"
    r"|Could not resolve host: ([\w.-]+)"
    r"|unable to resolve host address .([\w.-]+)."
    r"|Temporary failure resolving .([\w.-]+)."
)


def unresolved(line: str) -> list[str]:
    """The hosts ``line`` of a build's output says could not be resolved."""
    return [next(g for g in m.groups() if g) for m in _UNRESOLVED.finditer(line)]


class BuildFailedError(EngineError):
    """The build failed; ``hosts`` are those a step could not resolve on the way."""

    def __init__(self, what: str, fix: str, hosts: tuple[str, ...] = ()) -> None:
        super().__init__(what, fix)
        self.hosts = hosts


def _last_error(lines: Sequence[str]) -> str:
    # A step's own one-line "error: ..." (our scripts print one) says more than BuildKit's.
    for line in reversed(lines):
        text = line.split(" ", 2)[-1] if line.startswith("#") else line
        if text.startswith("error: "):
            return text[len("error: "):][:300]
    for line in reversed(lines):
        if "ERROR" in line or "error" in line:
            return line.split("ERROR:", 1)[-1].strip()[:300]
    return lines[-1][:300] if lines else "no output"
