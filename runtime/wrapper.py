"""The drop-in ``code-server``: jupyter-server-proxy runs it like code-server, it runs the image.

It stays in the foreground for the container's whole life, so JSP supervises it:

1. set up the persistent home (idempotent, cheap);
2. pick the image ``images/current.json`` names (or ``SAGECODE_IMAGE``); when the engine
   lacks it (a restart wiped it), wait for the running restore or run one, bounded by
   ``SAGECODE_IMAGE_WAIT``; never fall back to an older image, and log which one runs;
3. plan ``docker run`` from the engine's facts (user mapping, GPUs);
4. take the editor lock: a live wrapper holding it is asked to stop (the newest launch
   wins, so two launches end with one editor), a leftover container is removed;
5. run the container attached; SIGTERM/SIGINT/SIGHUP stop it within seconds.

Exit status: 0 when asked to stop (JSP must not restart a superseded editor), the
container's status when it ends by itself, 1 on an error (one line on stderr).
"""

from __future__ import annotations

import contextlib
import logging
import os
import signal
import subprocess
import sys
import threading
import time
from collections.abc import Iterator, Sequence
from pathlib import Path
from typing import Optional

from imagebuild.engine import Engine
from imagebuild.errors import SagecodeError, StoreError
from imagebuild.locking import exclusive
from imagebuild.store import ImageStore
from runtime.args import CodeServerArgs, parse_args
from runtime.config import RuntimeConfig, load_config
from runtime.container import Containers
from runtime.engineinfo import has_nvidia_runtime
from runtime.home import setup_home
from runtime.plan import CONTENT_LABEL, OPT_ML, HostFacts, Image, engine_socket, run_argv, uses_host_network
from runtime.usermap import user_mapping

LOCK_FILE = "editor.lock"
PID_FILE = "editor.pid"
LOG_FILE = "wrapper.log"
STOP_SECONDS = 10  # docker stop's grace before it kills code-server
SUPERSEDE_SECONDS = 3.0 * STOP_SECONDS  # how long a new launch waits for the old one to go
POLL_SECONDS = 0.5
# JSP restarts a failed command at once, with no back-off: a container that fails this
# soon is reported only after this long, so a broken setup cannot spin.
MIN_LIFETIME = 10.0


class Wrapper:
    """One launch of the editor."""

    def __init__(
        self, config: RuntimeConfig, containers: Containers, engine: Engine, log: logging.Logger
    ) -> None:
        self.config = config
        self.containers = containers
        self.engine = engine
        self.log = log

    def run(self, args: CodeServerArgs) -> int:
        """Set up, start and supervise the container; returns the exit status."""
        setup_home(self.config.state.home)
        argv = self.plan(args, self.image())
        run = self.config.state.run
        with exclusive(run / LOCK_FILE, SUPERSEDE_SECONDS, self._supersede):
            (run / PID_FILE).write_text(f"{os.getpid()}\n")
            self.containers.remove(self.config.container_name)  # left by a killed wrapper
            return self.supervise(argv)

    def image(self) -> Image:
        """The image to run, restored into the engine when a restart wiped it."""
        if self.config.image:
            return self._named_image(self.config.image)
        manifest = ImageStore(self.config.state.images).current()
        if manifest is None:
            raise StoreError("no sagecode image has been built yet", "build it: python -m imagebuild")
        if not self.engine.image_id(manifest.image):
            self._restore(manifest.image)
        versions = ", ".join(f"{k} {v}" for k, v in sorted(manifest.versions.items()))
        self.log.info("running %s (%s)", manifest.image, versions or "no versions recorded")
        return Image(manifest.image, manifest.content)

    def plan(self, args: CodeServerArgs, image: Image) -> list[str]:
        """The ``docker run`` argv for this engine and host."""
        info = self.containers.info()
        mapping = user_mapping(info, self.config.user, self.config.docker_host)
        if mapping.owner_uid not in (None, self.config.user.uid):
            self.log.warning(
                "files the editor writes will belong to uid %s (userns-remap)", mapping.owner_uid
            )
        if self.config.network == "host" and not uses_host_network(self.config, mapping):
            self.log.warning(
                "host networking is not the host's on a %s engine: using bridge", mapping.mode.value
            )
        facts = HostFacts(
            opt_ml=OPT_ML.is_dir(), nvidia=has_nvidia_runtime(info), docker_socket_gid=self._socket_gid()
        )
        return run_argv(self.config, args, mapping, image, facts)

    def supervise(self, argv: Sequence[str]) -> int:
        """Run the container until it ends or a signal asks it to stop."""
        stopping = threading.Event()
        with _signals_set(stopping):
            started = time.monotonic()
            process = self.containers.start(argv)
            while process.poll() is None and not stopping.wait(POLL_SECONDS):
                pass
            if stopping.is_set():
                return self._stop(process)
        status = process.returncode if process.returncode >= 0 else 1  # < 0: docker was killed
        self.log.info("the editor container ended with status %s", process.returncode)
        if status and time.monotonic() - started < MIN_LIFETIME:
            time.sleep(MIN_LIFETIME - (time.monotonic() - started))  # pace JSP's instant restarts
        return status

    def _stop(self, process: subprocess.Popen[bytes]) -> int:
        self.log.info("stopping the editor container")
        self.containers.stop(self.config.container_name, STOP_SECONDS)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()
        return 0

    def _named_image(self, ref: str) -> Image:
        if not self.engine.image_id(ref):
            raise StoreError(f"SAGECODE_IMAGE={ref} is not in the engine", "load or build it, or unset it")
        self.log.info("running %s (from SAGECODE_IMAGE)", ref)
        return Image(ref, self.engine.labels(ref).get(CONTENT_LABEL, ""))

    def _restore(self, ref: str) -> None:
        wait = self.config.image_wait_seconds
        self.log.info("%s is not in the engine: restoring it (up to %.0f s)", ref, wait)
        state = str(self.config.state.root)
        command = [
            sys.executable,
            "-m",
            "imagebuild",
            "restore",
            "--no-build",
            "--quiet",
            "--state-dir",
            state,
        ]
        try:
            self._logged(command, wait)
        except subprocess.TimeoutExpired:
            raise StoreError(f"{ref} was not restored within {wait:.0f} s", _SEE_LOG) from None
        if not self.engine.image_id(ref):
            raise StoreError(f"{ref} could not be restored", _SEE_LOG)

    def _logged(self, command: Sequence[str], timeout: float) -> None:
        """Run ``command`` with its output appended to the wrapper's log on the volume."""
        self.config.state.logs.mkdir(parents=True, exist_ok=True)
        with (self.config.state.logs / LOG_FILE).open("ab") as out:
            subprocess.run(command, stdout=out, stderr=out, timeout=timeout, check=False)

    def _supersede(self) -> None:
        """Ask the wrapper holding the lock to stop its editor, so this launch takes over."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.config.state.run / PID_FILE).read_text())
            if pid != os.getpid():
                self.log.info("another editor (wrapper %d) is running: replacing it", pid)
                os.kill(pid, signal.SIGTERM)

    def _socket_gid(self) -> Optional[int]:
        socket = engine_socket(self.config.docker_host) if self.config.docker_socket else None
        return socket.stat().st_gid if socket is not None and socket.exists() else None


_SEE_LOG = "see logs/wrapper.log in the state folder, or run: python -m imagebuild restore"


@contextlib.contextmanager
def _signals_set(event: threading.Event) -> Iterator[None]:
    """While inside, SIGTERM, SIGINT and SIGHUP only set ``event``."""
    wanted = (signal.SIGTERM, signal.SIGINT, signal.SIGHUP)
    previous = {sig: signal.signal(sig, lambda *_: event.set()) for sig in wanted}
    try:
        yield
    finally:
        for sig, handler in previous.items():
            signal.signal(sig, handler)


def _logger(logs: Path) -> logging.Logger:
    """Log to stderr (JSP puts it in Jupyter's log) and to ``logs/wrapper.log`` on the volume."""
    logs.mkdir(parents=True, exist_ok=True)
    log = logging.getLogger("sagecode.wrapper")
    log.setLevel(logging.INFO)
    form = logging.Formatter("%(asctime)s sagecode[%(process)d]: %(message)s")
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(logs / LOG_FILE)):
        handler.setFormatter(form)
        log.addHandler(handler)
    return log


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``code-server`` console script."""
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        config = load_config()
        return Wrapper(config, Containers(), Engine(), _logger(config.state.logs)).run(args)
    except SagecodeError as exc:
        print(f"sagecode: {exc}", file=sys.stderr)
        return 1


if __name__ == "__main__":
    sys.exit(main())
