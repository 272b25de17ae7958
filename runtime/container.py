"""The one place that runs, stops and inspects the editor container: the docker CLI, directly.

The wrapper starts on every editor launch, inside jupyter-server-proxy's readiness
timeout, and python-on-whales (which ``imagebuild.engine`` uses for builds) costs about
0.3 s of imports and model parsing before its first command. The runtime needs a
handful of plain commands, so it runs ``docker`` itself. A failure becomes an
``EngineError`` with docker's last line and what to do next.
"""

from __future__ import annotations

import json
import os
import subprocess
import time
from collections.abc import Sequence
from dataclasses import dataclass
from typing import Any, NoReturn, Optional

from imagebuild.errors import EngineError

QUERY_SECONDS = 60.0  # a daemon that answers nothing within this is reported as stuck
GONE_SECONDS = 15.0  # how long a removal already under way (``--rm``) may take
_MISSING = ("No such container", "No such image", "No such object")
_DOWN = ("Cannot connect to the Docker daemon", "Is the docker daemon running")
_CONTENT = '{{index .Config.Labels "org.sagecode.content"}}'


@dataclass(frozen=True)
class ContainerState:
    """What the engine says about a container of ours."""

    name: str
    running: bool
    content: str  # the image content hash it was started from


class Containers:
    """Run and manage the editor container on one engine (``DOCKER_HOST`` decides which)."""

    def __init__(self, docker: Sequence[str] = ("docker",)) -> None:
        self.docker = tuple(docker)

    def command(self, *args: str) -> list[str]:
        """``docker ARGS`` as an argv list."""
        return [*self.docker, *args]

    def info(self) -> dict[str, Any]:
        """``docker info`` as the engine prints it in JSON (what ``runtime.engineinfo`` reads)."""
        data = json.loads(self._output("docker info", "info", "--format", "{{json .}}"))
        if not isinstance(data, dict):
            raise EngineError("docker info printed no JSON object", "see `sagecode doctor`")
        return data

    def image_id(self, ref: str) -> Optional[str]:
        """The image's id, or None when the engine does not have it."""
        found = self._query("docker image inspect", "image", "inspect", "--format", "{{.Id}}", ref)
        return found.strip() if found is not None else None

    def image_labels(self, ref: str) -> dict[str, str]:
        """The image's labels (none when the engine does not have it)."""
        found = self._query(
            "docker image inspect", "image", "inspect", "--format", "{{json .Config.Labels}}", ref
        )
        labels = json.loads(found) if found else None
        return {str(k): str(v) for k, v in (labels or {}).items()}

    def state(self, name: str) -> Optional[ContainerState]:
        """The container called ``name``, or None when there is none."""
        form = "{{.State.Running}} " + _CONTENT
        found = self._query("docker inspect", "container", "inspect", "--format", form, name)
        if found is None:
            return None
        running, _, content = found.strip().partition(" ")
        return ContainerState(name, running == "true", "" if content == "<no value>" else content)

    def remove(self, name: str) -> None:
        """Remove the container called ``name`` (running or not) and wait until it is gone."""
        self._query("docker rm", "rm", "--force", name, quiet=True)
        deadline = time.monotonic() + GONE_SECONDS
        while self.state(name) is not None:  # a ``--rm`` removal may still be under way
            if time.monotonic() > deadline:
                raise EngineError(f"container {name} cannot be removed", f"run: docker rm -f {name}")
            time.sleep(0.2)

    def stop(self, name: str, seconds: int) -> None:
        """Ask the container to stop, killing it after ``seconds``; a gone container is fine."""
        self._query("docker stop", "stop", "--time", str(seconds), name, timeout=seconds + QUERY_SECONDS)

    def start(self, run_argv: Sequence[str]) -> subprocess.Popen[bytes]:
        """Start ``docker <run_argv>`` attached, output piped, in its own session.

        Its own session, so that a terminal's Ctrl-C or JSP's signal reaches only the
        wrapper, which stops the container in order.
        """
        try:
            return subprocess.Popen(
                self.command(*run_argv), stdin=subprocess.DEVNULL, stdout=subprocess.PIPE,
                stderr=subprocess.STDOUT, start_new_session=True,
            )  # fmt: skip
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", "install Docker") from exc

    def capture(self, argv: Sequence[str], timeout: float) -> subprocess.CompletedProcess[str]:
        """Run ``docker <argv>`` to its end with its output captured; the caller judges it."""
        return self._run("docker " + (argv[0] if argv else ""), list(argv), timeout)

    def replace_process(self, argv: Sequence[str]) -> NoReturn:
        """Become ``docker <argv>`` (an interactive shell: the terminal is docker's alone)."""
        try:
            os.execvp(self.docker[0], self.command(*argv))  # noqa: S606 - an argv list, no shell
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", "install Docker") from exc

    def _output(self, what: str, *args: str) -> str:
        done = self._run(what, list(args), QUERY_SECONDS)
        if done.returncode:
            raise engine_error(what, done.stderr)
        return done.stdout

    def _query(
        self, what: str, *args: str, quiet: bool = False, timeout: float = QUERY_SECONDS
    ) -> Optional[str]:
        """stdout of ``docker ARGS``; None when the object does not exist."""
        done = self._run(what, list(args), timeout)
        if done.returncode == 0:
            return done.stdout
        if any(text in done.stderr for text in _MISSING) or (quiet and not _is_down(done.stderr)):
            return None
        raise engine_error(what, done.stderr)

    def _run(self, what: str, args: list[str], timeout: float) -> subprocess.CompletedProcess[str]:
        try:
            return subprocess.run(
                self.command(*args), capture_output=True, text=True, timeout=timeout, check=False
            )
        except FileNotFoundError as exc:
            raise EngineError("the docker command is not installed", "install Docker") from exc
        except subprocess.TimeoutExpired:
            raise EngineError(
                f"{what}: the engine did not answer in {timeout:.0f} s", "see `sagecode doctor`"
            ) from None


def _is_down(stderr: str) -> bool:
    return any(text in stderr for text in _DOWN)


def engine_error(what: str, stderr: str) -> EngineError:
    """An ``EngineError`` from a failed docker command's stderr."""
    lines = [line for line in stderr.strip().splitlines() if line.strip()]
    if _is_down(stderr):
        return EngineError(f"{what}: the Docker engine is not running", "start Docker, then retry")
    detail = lines[-1].strip() if lines else "no output"
    return EngineError(f"{what} failed: {detail}", "see `sagecode doctor`")
