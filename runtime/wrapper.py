"""The drop-in ``code-server``: jupyter-server-proxy runs it like code-server, it runs the image.

It stays in the foreground for the container's whole life, so JSP supervises it:

1. set up the persistent home (idempotent, cheap);
2. pick the image ``images/current.json`` names (or ``SAGECODE_IMAGE``); when the engine
   lacks it (a restart wiped it), wait for the running restore or run one, bounded by
   ``SAGECODE_IMAGE_WAIT``; never fall back to an older image, and log which one runs;
3. plan ``docker run`` from the engine's facts (user mapping, GPUs);
4. take the editor lock: a live wrapper holding it is asked to stop (the newest launch
   wins, so two launches end with one editor), a leftover container is removed;
5. run the container attached, its output copied to stderr (JSP puts it in Jupyter's
   log) and to ``logs/editor.log`` on the volume; SIGTERM/SIGINT/SIGHUP stop it within
   seconds.

Start-up is kept cheap (about 0.1 s to the first engine call): nothing heavy is imported
(no python-on-whales: ``runtime.container`` runs the docker CLI itself).

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
from concurrent.futures import ThreadPoolExecutor
from contextlib import AbstractContextManager
from dataclasses import replace
from pathlib import Path
from typing import Optional

from imagebuild.errors import SagecodeError
from imagebuild.locking import exclusive
from runtime.args import CodeServerArgs, parse_args
from runtime.config import RuntimeConfig, load_config
from runtime.container import Containers
from runtime.credrelay import RelayMount, host_source, relay, start_forwarder
from runtime.engineinfo import Info, has_nvidia_runtime
from runtime.home import setup_home
from runtime.images import select_image
from runtime.logfiles import EDITOR_LOG, WRAPPER_LOG, WRAPPER_LOG_CAP, rotate, tee
from runtime.plan import OPT_ML, HostFacts, Image, engine_socket, relay_opens, run_argv, uses_host_network
from runtime.usermap import user_mapping

LOCK_FILE = "editor.lock"
PID_FILE = "editor.pid"
STOP_SECONDS = 10  # docker stop's grace before it kills code-server
SUPERSEDE_SECONDS = 3.0 * STOP_SECONDS  # how long a new launch waits for the old one to go
POLL_SECONDS = 0.5
# JSP restarts a failed command at once, with no back-off: a container that fails this
# soon is reported only after this long, so a broken setup cannot spin.
MIN_LIFETIME = 10.0


class Wrapper:
    """One launch of the editor."""

    def __init__(self, config: RuntimeConfig, containers: Containers, log: logging.Logger) -> None:
        self.config = config
        self.containers = containers
        self.log = log
        # Set by plan() when the container gets the credential relay: who runs its forwarder.
        self.forwarder_user: Optional[tuple[tuple[str, str], ...]] = None

    def run(self, args: CodeServerArgs) -> int:
        """Set up, start and supervise the container; returns the exit status."""
        setup_home(self.config.state.home)
        # The engine's description and the host's credentials are looked up while the image
        # is found (or restored): a round trip and botocore's import and chain, 0.15 s in all.
        lookups = ThreadPoolExecutor(max_workers=2, thread_name_prefix="sagecode-lookup")
        info = lookups.submit(self.containers.info)
        refresh = self.config.credentials_refresh
        found = lookups.submit(host_source, refresh).result if self.config.credentials else None
        lookups.shutdown(wait=False)  # the lookups finish; nothing else is submitted
        waiting = (lambda: _wait_page(args, self.log)) if self.config.wait_page else contextlib.nullcontext
        image = select_image(self.config, self.containers, self.log, waiting)
        run = self.config.state.run
        with relay(self.config.credentials, run, self.log, refresh, found) as credentials:
            argv = self.plan(args, image, credentials.mount if credentials else None, info.result())
            with exclusive(run / LOCK_FILE, SUPERSEDE_SECONDS, self._supersede):
                (run / PID_FILE).write_text(f"{os.getpid()}\n")
                self.containers.remove(self.config.container_name)  # left by a killed wrapper
                rotate(self.config.state.logs / EDITOR_LOG)
                return self.supervise(argv)

    def plan(self, args: CodeServerArgs, image: Image, credentials: Optional[RelayMount] = None,
             info: Optional[Info] = None) -> list[str]:  # fmt: skip
        """The ``docker run`` argv for this engine and host (with host networking, IMDS needs no relay)."""
        info = self.containers.info() if info is None else info
        mapping = user_mapping(info, self.config.user, self.config.docker_host)
        if mapping.owner_uid not in (None, self.config.user.uid):
            self.log.warning(
                "files the editor writes will belong to uid %s (userns-remap)", mapping.owner_uid
            )
        if self.config.network == "host" and not uses_host_network(self.config, mapping):
            self.log.warning(
                "host networking is not the host's on a %s engine: using bridge", mapping.mode.value
            )
        facts = host_facts(self.config, info)
        if credentials is not None and not relay_opens(self.config, mapping):
            self.log.warning(
                "userns-remap onto uid %s, not this user: the editor cannot open the credential relay",
                mapping.owner_uid,
            )
        elif credentials is not None and not uses_host_network(self.config, mapping):
            facts = replace(facts, credentials=credentials)
            self.forwarder_user = mapping.env
        return run_argv(self.config, args, mapping, image, facts)

    def supervise(self, argv: Sequence[str]) -> int:
        """Run the container until it ends or a signal asks it to stop; its output goes to the log."""
        stopping = threading.Event()
        started = time.monotonic()
        with _signals_set(stopping), (self.config.state.logs / EDITOR_LOG).open("ab") as log:
            process = self.containers.start(argv)
            if self.forwarder_user is not None:
                start_forwarder(self.containers, self.config.container_name, self.forwarder_user, self.log)
            assert process.stdout is not None  # start() pipes it; this tells the type checker
            copier = tee(process.stdout, (sys.stderr.buffer, log))
            while process.poll() is None and not stopping.wait(POLL_SECONDS):
                pass
            if stopping.is_set():
                self._stop(process)
            copier.join(STOP_SECONDS)  # the last lines, which docker wrote before it exited
        return 0 if stopping.is_set() else self._ended(process.returncode, started)

    def _ended(self, returncode: int, started: float) -> int:
        """The status of a container that ended by itself (< 0: docker itself was killed)."""
        self.log.info("the editor container ended with status %s", returncode)
        status = returncode if returncode >= 0 else 1
        if status and time.monotonic() - started < MIN_LIFETIME:
            time.sleep(MIN_LIFETIME - (time.monotonic() - started))  # pace JSP's instant restarts
        return status

    def _stop(self, process: subprocess.Popen[bytes]) -> None:
        self.log.info("stopping the editor container")
        self.containers.stop(self.config.container_name, STOP_SECONDS)
        try:
            process.wait(STOP_SECONDS)
        except subprocess.TimeoutExpired:
            process.kill()
            process.wait()

    def _supersede(self) -> None:
        """Ask the wrapper holding the lock to stop its editor, so this launch takes over."""
        with contextlib.suppress(OSError, ValueError):
            pid = int((self.config.state.run / PID_FILE).read_text())
            if pid != os.getpid():
                self.log.info("another editor (wrapper %d) is running: replacing it", pid)
                os.kill(pid, signal.SIGTERM)


def _wait_page(args: CodeServerArgs, log: logging.Logger) -> AbstractContextManager[object]:
    """The page the proxy gets while the image is restored (imported only then: http.server
    is not needed on the usual launch)."""
    from runtime import waitpage  # noqa: PLC0415 - http.server is slow to import

    return waitpage.serving(args, log)


def host_facts(config: RuntimeConfig, info: Info) -> HostFacts:
    """What the plan needs from this host and engine (shared with ``sagecode shell``)."""
    socket = engine_socket(config.docker_host) if config.docker_socket else None
    gid = socket.stat().st_gid if socket is not None and socket.exists() else None
    return HostFacts(opt_ml=OPT_ML.is_dir(), nvidia=has_nvidia_runtime(info), docker_socket_gid=gid)


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
    rotate(logs / WRAPPER_LOG, WRAPPER_LOG_CAP)
    log = logging.getLogger("sagecode.wrapper")
    log.setLevel(logging.INFO)
    form = logging.Formatter("%(asctime)s sagecode[%(process)d]: %(message)s")
    for handler in (logging.StreamHandler(sys.stderr), logging.FileHandler(logs / WRAPPER_LOG)):
        handler.setFormatter(form)
        log.addHandler(handler)
    return log


def main(argv: Optional[Sequence[str]] = None) -> int:
    """The ``code-server`` console script."""
    started = time.monotonic()
    try:
        args = parse_args(sys.argv[1:] if argv is None else argv)
        config = load_config()
        return Wrapper(config, Containers(), _logger(config.state.logs)).run(args)
    except SagecodeError as exc:
        print(f"sagecode: {exc}", file=sys.stderr)
        # JSP would restart a failed launch at once and fail the same way, in a tight loop.
        time.sleep(max(0.0, MIN_LIFETIME - (time.monotonic() - started)))
        return 1


if __name__ == "__main__":
    sys.exit(main())
