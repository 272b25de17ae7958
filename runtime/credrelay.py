"""The instance role's credentials inside the editor container, through a relay in the wrapper.

On a bridge network (and always on rootless or remapped engines) a container may not get
an IMDSv2 token: the hop limit stops it. So the wrapper, which runs for the container's
whole life, gets credentials the way the host's SDKs do (botocore's chain: environment,
profiles, IMDS, refreshed before they expire) and serves them in the SDKs'
container-credentials format on a unix socket in a private folder:

- ``<state>/run/credentials-<pid>/`` (0700) holds ``relay.sock`` (0600) and ``token``
  (0600, random per launch); it is mounted read-only at ``CONTAINER_DIR``;
- inside the container a stdlib forwarder (``files/cred_forwarder.py``, started with
  ``docker exec -d``) listens on ``127.0.0.1:PORT`` in the container's own network and
  copies bytes to the socket: the SDKs accept plain HTTP to loopback only;
- the SDKs read ``AWS_CONTAINER_CREDENTIALS_FULL_URI`` and send the token from
  ``AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE``: neither variable is a secret, so
  ``docker inspect`` shows none; requests without the token get 401.

The relay keeps what it served last and asks the host's chain afresh (a new botocore
session: IMDS is read again) once those credentials are within ``REFRESH_AHEAD`` of their
expiry. That is wider than botocore's own 15-minute window, so an SDK in the container
that re-asks at its window gets keys the relay has already renewed; and it does not
depend on one long-lived botocore object deciding when to re-read IMDS.

Credentials live only in this process's memory: nothing is written or logged. Any
failure here is a warning in the wrapper's log, never a failed editor start.
"""

from __future__ import annotations

import contextlib
import logging
import os
import secrets
import shutil
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass
from datetime import datetime, timezone
from pathlib import Path, PurePosixPath
from typing import TYPE_CHECKING, Any, Callable, Optional

if TYPE_CHECKING:
    from runtime.container import Containers

CONTAINER_DIR = PurePosixPath("/run/sagecode-credentials")
FORWARDER = Path(__file__).parent / "files" / "cred_forwarder.py"
CONTAINER_FORWARDER = PurePosixPath("/run/sagecode-cred-forwarder.py")
PORT = 47170  # in the container's own network namespace: nothing outside it can connect
SOCKET_NAME = "relay.sock"
TOKEN_NAME = "token"  # noqa: S105 - a file name, not a secret
DIR_PREFIX = "credentials-"
ATTACH_SECONDS = 120.0  # how long to wait for the container to run before starting the forwarder
REFRESH_AHEAD = 20 * 60.0  # seconds before expiry the relay renews (SAGECODE_CREDENTIALS_REFRESH)
RETRY_SECONDS = 10.0  # within that window, the host's chain is asked at most this often

# A snapshot of credentials: what the container-credentials format carries.
Snapshot = dict[str, str]
Source = Callable[[], Snapshot]


@dataclass(frozen=True)
class RelayMount:
    """What the container needs from a running relay: plain data for ``runtime.plan``."""

    directory: Path  # host folder with the socket and the token
    region: str = ""


def container_env(mount: RelayMount, passthrough: tuple[tuple[str, str], ...]) -> list[tuple[str, str]]:
    """The SDK variables pointing at the forwarder, and the host's region unless already passed."""
    env = [
        ("AWS_CONTAINER_CREDENTIALS_FULL_URI", f"http://127.0.0.1:{PORT}/credentials"),
        ("AWS_CONTAINER_AUTHORIZATION_TOKEN_FILE", str(CONTAINER_DIR / TOKEN_NAME)),
    ]
    passed = {key for key, _ in passthrough}
    if mount.region:
        env += [(key, mount.region) for key in ("AWS_REGION", "AWS_DEFAULT_REGION") if key not in passed]
    return env


def snapshot(credentials: Any) -> Snapshot:
    """A botocore ``Credentials`` object (refreshed when due) in the container-credentials format."""
    frozen = credentials.get_frozen_credentials()
    expiry = getattr(credentials, "_expiry_time", None)  # RefreshableCredentials only
    if expiry is None:  # static keys: the SDKs re-ask after this
        expiry = datetime.fromtimestamp(time.time() + 3600, timezone.utc)
    return {
        "AccessKeyId": frozen.access_key,
        "SecretAccessKey": frozen.secret_key,
        "Token": frozen.token or "",
        "Expiration": expiry.astimezone(timezone.utc).strftime("%Y-%m-%dT%H:%M:%SZ"),
    }


def expires_at(served: Snapshot) -> float:
    """A snapshot's ``Expiration`` as a Unix time."""
    when = datetime.strptime(served["Expiration"], "%Y-%m-%dT%H:%M:%SZ")
    return when.replace(tzinfo=timezone.utc).timestamp()


class FreshSource:
    """The last credentials resolved, resolved again once they are within ``ahead`` of expiry.

    A failed renewal keeps serving the old credentials while they are still valid.
    """

    def __init__(
        self,
        resolve: Source,
        ahead: float = REFRESH_AHEAD,
        clock: Callable[[], float] = time.time,
        first: Optional[Snapshot] = None,
    ) -> None:
        self.resolve, self.ahead, self.clock = resolve, ahead, clock
        self.current = first
        self.asked = clock() if first is not None else -RETRY_SECONDS
        self.lock = threading.Lock()

    def __call__(self) -> Snapshot:
        with self.lock:
            now = self.clock()
            due = self.current is None or expires_at(self.current) - now < self.ahead
            if due and (now - self.asked >= RETRY_SECONDS or self._expired(now)):
                self.asked = now
                self._renew(now)
            assert self.current is not None  # _renew raised otherwise
            return dict(self.current)

    def _expired(self, now: float) -> bool:
        return self.current is None or expires_at(self.current) <= now

    def _renew(self, now: float) -> None:
        try:
            self.current = self.resolve()
        except Exception:
            if self._expired(now):
                raise  # nothing valid to fall back on: the client gets a 503 and retries


def host_source(ahead: float = REFRESH_AHEAD) -> tuple[Optional[Source], str]:
    """The host's credentials as botocore finds them (None when there are none), and its region.

    botocore is imported here, not at the top: only a launch with credentials pays for it.
    """
    import botocore.session  # noqa: PLC0415
    from botocore.utils import IMDSRegionProvider  # noqa: PLC0415

    session = botocore.session.get_session()
    credentials = session.get_credentials()
    if credentials is None:
        return None, ""
    region = session.get_config_variable("region") or IMDSRegionProvider(session).provide() or ""
    return FreshSource(resolve_host, ahead, first=snapshot(credentials)), str(region)


def resolve_host() -> Snapshot:
    """The host's chain run afresh (a new session reads IMDS, the profile, the environment again)."""
    import botocore.session  # noqa: PLC0415

    credentials = botocore.session.get_session().get_credentials()
    if credentials is None:
        raise LookupError("the host has no AWS credentials any more")
    return snapshot(credentials)


class Relay:
    """A running relay: its private folder (socket and token) and the server thread."""

    def __init__(self, run_dir: Path, source: Source, region: str = "") -> None:
        clean_stale(run_dir)
        self.directory = run_dir / f"{DIR_PREFIX}{os.getpid()}"
        shutil.rmtree(self.directory, ignore_errors=True)
        self.directory.mkdir(mode=0o700, parents=True)
        self.token = secrets.token_urlsafe(32)
        token_file = self.directory / TOKEN_NAME
        fd = os.open(token_file, os.O_WRONLY | os.O_CREAT | os.O_EXCL, 0o600)
        with os.fdopen(fd, "w") as out:
            out.write(self.token)
        from runtime.credserver import CredentialServer  # noqa: PLC0415 - http.server costs 20 ms

        old = os.umask(0o177)  # the socket is created 0600, never briefly wider
        try:
            self.server = CredentialServer(self.directory / SOCKET_NAME, self.token, source)
        finally:
            os.umask(old)
        self.mount = RelayMount(self.directory, region)
        threading.Thread(target=self.server.serve_forever, name="credrelay", daemon=True).start()

    def close(self) -> None:
        """Stop serving and remove the folder (socket and token)."""
        self.server.shutdown()
        self.server.server_close()
        shutil.rmtree(self.directory, ignore_errors=True)


def clean_stale(run_dir: Path) -> None:
    """Remove the folders of relays whose wrapper is gone (killed before it could clean up)."""
    for folder in run_dir.glob(f"{DIR_PREFIX}*"):
        pid = folder.name[len(DIR_PREFIX) :]
        if pid.isdigit() and not _alive(int(pid)):
            shutil.rmtree(folder, ignore_errors=True)


def _alive(pid: int) -> bool:
    try:
        os.kill(pid, 0)
    except ProcessLookupError:
        return False
    except PermissionError:
        return True
    return True


def forwarder_argv(container: str, user: tuple[tuple[str, str], ...]) -> list[str]:
    """``exec -d ...`` that starts the forwarder in the container, as the editor's user."""
    return [
        "exec", "-d", *user_flags(user), container, "python3", str(CONTAINER_FORWARDER),
        str(PORT), str(CONTAINER_DIR / SOCKET_NAME),
    ]  # fmt: skip


def user_flags(user: tuple[tuple[str, str], ...]) -> list[str]:
    """``--user UID:GID`` of the user the entrypoint drops to (rootful), else nothing: root."""
    ids = dict(user)
    return ["--user", f"{ids['SAGECODE_UID']}:{ids['SAGECODE_GID']}"] if "SAGECODE_UID" in ids else []


def start_forwarder(
    containers: Containers, name: str, user: tuple[tuple[str, str], ...], log: logging.Logger
) -> threading.Thread:
    """In the background: once the container runs, start the forwarder in it (a failure is logged)."""

    def attach() -> None:
        deadline = time.monotonic() + ATTACH_SECONDS
        while time.monotonic() < deadline:
            state = containers.state(name)
            if state is not None and state.running:
                done = containers.capture(forwarder_argv(name, user), timeout=60)
                if done.returncode:
                    log.warning("the credentials forwarder did not start: %s", done.stderr.strip()[-200:])
                return
            time.sleep(0.5)
        log.warning(
            "the editor container did not run within %.0f s: no credentials forwarder", ATTACH_SECONDS
        )

    thread = threading.Thread(target=_logged(attach, log), name="credforwarder", daemon=True)
    thread.start()
    return thread


def _logged(target: Callable[[], None], log: logging.Logger) -> Callable[[], None]:
    def run() -> None:
        try:
            target()
        except Exception as exc:  # an engine error in a helper thread must not go unnoticed
            log.warning("the credentials forwarder did not start: %s: %.200s", type(exc).__name__, exc)

    return run


Found = tuple[Optional[Source], str]


@contextlib.contextmanager
def relay(
    enabled: bool,
    run_dir: Path,
    log: logging.Logger,
    ahead: float = REFRESH_AHEAD,
    found: Optional[Callable[[], Found]] = None,
) -> Iterator[Optional[Relay]]:
    """A relay for this launch when enabled and the host has credentials; None otherwise.

    ``found``: the host's credentials looked up already (the wrapper starts the lookup
    beside its other work: botocore's import and chain take about 0.1 s); it may raise.
    """
    started: Optional[Relay] = None
    if enabled:
        try:
            source, region = found() if found is not None else host_source(ahead)
            if source is None:
                log.info("no AWS credentials on the host: the editor gets none")
            else:
                started = Relay(run_dir, source, region)
                log.info("relaying the host's AWS credentials to the editor (region %s)", region or "unset")
        except Exception as exc:  # botocore missing, a broken profile, a full disk: never fatal
            log.warning("cannot relay AWS credentials to the editor: %s: %.200s", type(exc).__name__, exc)
    try:
        yield started
    finally:
        if started is not None:
            started.close()
