"""The one place that runs, stops and inspects the editor container (python-on-whales).

Images (inspect, load) belong to ``imagebuild.engine``; everything else in the runtime
builds plain data. Engine errors are re-raised as ``EngineError`` with what to do next.
"""

from __future__ import annotations

import json
import subprocess
from collections.abc import Callable, Sequence
from dataclasses import dataclass
from typing import Any, Optional, TypeVar

from python_on_whales import DockerClient, DockerException
from python_on_whales.utils import run as run_docker

from imagebuild.errors import EngineError
from runtime.plan import CONTENT_LABEL

T = TypeVar("T")


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about a container of ours."""

    name: str
    running: bool
    content: str  # the image content hash it was started from


class Containers:
    """Run and manage the editor container on one engine."""

    def __init__(self, client: Optional[DockerClient] = None) -> None:
        self.docker = client or DockerClient()

    def info(self) -> dict[str, Any]:
        """``docker info`` as the engine prints it in JSON (what ``runtime.engineinfo`` reads)."""
        text = self._call("docker info", lambda: run_docker(self._cmd("info", "--format", "{{json .}}")))
        data = json.loads(str(text))
        if not isinstance(data, dict):
            raise EngineError("docker info printed no JSON object", "see `sagecode doctor`")
        return data

    def state(self, name: str) -> Optional[ContainerState]:
        """The container called ``name``, or None when there is none."""
        if not self._call("docker inspect", lambda: self.docker.container.exists(name)):
            return None
        found = self._call("docker inspect", lambda: self.docker.container.inspect(name))
        labels = found.config.labels or {}
        return ContainerState(name, bool(found.state.running), labels.get(CONTENT_LABEL, ""))

    def remove(self, name: str) -> None:
        """Remove the container called ``name`` (running or not); no container is fine."""
        self._call("docker rm", lambda: self.docker.container.remove(name, force=True))

    def stop(self, name: str, seconds: int) -> None:
        """Ask the container to stop, killing it after ``seconds``; a gone container is fine."""
        if self.state(name) is not None:
            self._call("docker stop", lambda: self.docker.container.stop(name, time=seconds))

    def start(self, run_argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``docker <run_argv>`` attached, in its own session (signals are ours to forward)."""
        try:
            return subprocess.Popen(self._cmd(*run_argv), stdin=subprocess.DEVNULL, start_new_session=True)
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", "install Docker") from exc

    def _cmd(self, *args: str) -> list[str]:
        return [*(str(part) for part in self.docker.client_config.docker_cmd), *args]

    def _call(self, what: str, fn: Callable[[], T]) -> T:
        try:
            return fn()
        except DockerException as exc:
            raise _engine_error(what, exc) from exc
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", "install Docker") from exc


def _engine_error(what: str, exc: DockerException) -> EngineError:
    lines = (exc.stderr or "").strip().splitlines()
    detail = lines[-1] if lines else f"exit code {exc.return_code}"
    if "Cannot connect to the Docker daemon" in detail:
        return EngineError(f"{what}: the Docker engine is not running", "start Docker, then retry")
    return EngineError(f"{what} failed: {detail}", "see `sagecode doctor`")
