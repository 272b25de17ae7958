"""The runtime's integration helpers: the wrapper launched as jupyter-server-proxy launches it.

(The fixtures built on these are in ``runtime_fixtures``, which test modules load with
``pytest_plugins`` so that pytest rewrites its asserts.)

A ``Sandbox`` is a state folder (with the developer image's manifest as ``current.json``)
and a workspace in a fresh ``/tmp`` folder owned by the account that runs the wrapper,
a container name of its own (``sagecode-test-...``) and the engine to use. Closing it
stops what it launched and removes every container named after it.

The project venv's interpreter lives under ``/root``, which other accounts cannot read,
so the ``user_venv`` fixture makes a venv for them from the system's Python of the same
version that imports this checkout (and its dependencies) from the project venv: the
same wrapper code, started through a console script just like the installed one.
"""

from __future__ import annotations

import grp
import http.client
import json
import os
import pwd
import re
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
import uuid
from collections.abc import Sequence
from dataclasses import dataclass, field
from pathlib import Path
from typing import Any, Optional

import pytest

from bench.common import UnixHTTPConnection
from imagebuild.manifest import Manifest
from imagebuild.store import LAYOUT

PROJECT_BIN = Path(sys.executable).parent
TEST_USER = os.environ.get("SAGECODE_TEST_USER", "ec2-user")
USER_PYTHON = os.environ.get("SAGECODE_TEST_USER_PYTHON", "/usr/bin/python3")
READY_SECONDS = 120.0
SCRIPT = "#!{python}\nimport sys\nfrom {module} import main\nsys.exit(main())\n"


@dataclass(frozen=True)
class Account:
    """Who runs the wrapper: their ids, their groups and the venv their scripts come from."""

    name: str
    uid: int
    gid: int
    home: str
    groups: tuple[int, ...] = ()
    bin: Path = PROJECT_BIN

    def prefix(self) -> list[str]:
        """The argv prefix that runs a command as this account (nothing for ourselves)."""
        if self.uid == os.geteuid():
            return []
        groups = ",".join(str(g) for g in (self.gid, *self.groups))
        return ["setpriv", f"--reuid={self.uid}", f"--regid={self.gid}", f"--groups={groups}", "--"]


def me() -> Account:
    """The account running the tests."""
    entry = pwd.getpwuid(os.geteuid())
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir)


def other_account(venv: Path, groups: Sequence[str] = ()) -> Account:
    """``TEST_USER`` with extra ``groups`` (e.g. docker, for a rootful engine) and ``venv``.

    The account is created as docker-engine.sh creates it when no earlier test did.
    """
    try:
        entry = pwd.getpwnam(TEST_USER)
    except KeyError:
        subprocess.run(["useradd", "-m", "-s", "/bin/bash", TEST_USER], check=True, capture_output=True)
        entry = pwd.getpwnam(TEST_USER)
    extra = tuple(grp.getgrnam(name).gr_gid for name in groups)
    return Account(entry.pw_name, entry.pw_uid, entry.pw_gid, entry.pw_dir, extra, venv / "bin")


def docker(*args: str, host: str = "", timeout: float = 120) -> subprocess.CompletedProcess[str]:
    """``docker ARGS`` on the engine at ``host`` (default: the system engine)."""
    env = (
        {**os.environ, "DOCKER_HOST": host}
        if host
        else {k: v for k, v in os.environ.items() if k != "DOCKER_HOST"}
    )
    return subprocess.run(
        ["docker", *args], capture_output=True, text=True, timeout=timeout, env=env, check=False
    )


def free_port() -> int:
    """A TCP port nothing listens on right now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        return int(probe.getsockname()[1])


def listening_addresses(port: int) -> set[str]:
    """Local addresses with a listening TCP socket on ``port`` (from /proc/net/tcp and tcp6)."""
    found = set()
    for table, width in (("/proc/net/tcp", 8), ("/proc/net/tcp6", 32)):
        for line in Path(table).read_text().splitlines()[1:]:
            local, state = line.split()[1], line.split()[3]
            address, _, hexport = local.partition(":")
            if state == "0A" and int(hexport, 16) == port and len(address) == width:
                found.add(_address(address))
    return found


def _address(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)


def host_addresses() -> list[str]:
    """This host's IPv4 addresses other than loopback (its interfaces and docker0)."""
    out = subprocess.run(["ip", "-4", "-o", "addr"], capture_output=True, text=True, check=True).stdout
    return [a for a in re.findall(r"inet (\d+\.\d+\.\d+\.\d+)/", out) if not a.startswith("127.")]


def get(port: Optional[int], sock: Optional[Path], path: str) -> tuple[int, bytes]:
    """GET ``path`` on 127.0.0.1:``port`` or over ``sock``."""
    conn = UnixHTTPConnection(sock) if sock else http.client.HTTPConnection("127.0.0.1", port, timeout=5)
    try:
        conn.request("GET", path)
        response = conn.getresponse()
        return response.status, response.read()
    finally:
        conn.close()


@dataclass
class Launch:
    """One wrapper process, started as JSP starts it."""

    process: subprocess.Popen[bytes]
    output: Path
    port: Optional[int] = None
    sock: Optional[Path] = None

    def healthz(self) -> Optional[dict[str, Any]]:
        """code-server's /healthz answer, or None when nothing answers yet."""
        try:
            status, body = get(self.port, self.sock, "/healthz")
        except OSError:
            return None
        return dict(json.loads(body)) if status == 200 else None

    def wait_ready(self, timeout: float = READY_SECONDS) -> dict[str, Any]:
        """Wait for /healthz; a wrapper that exits first fails the test with its output."""
        deadline = time.monotonic() + timeout
        while time.monotonic() < deadline:
            answer = self.healthz()
            if answer is not None:
                return answer
            if self.process.poll() is not None:
                pytest.fail(f"the wrapper exited with {self.process.returncode}:\n{self.log()}")
            time.sleep(0.5)
        pytest.fail(f"no /healthz in {timeout:.0f} s:\n{self.log()}")

    def log(self) -> str:
        """What the wrapper printed (its stderr, with the container's output)."""
        return self.output.read_text(errors="replace")[-6000:]

    def stop(self) -> None:
        """SIGTERM, then SIGKILL if it lingers (as JSP does)."""
        if self.process.poll() is None:
            self.process.send_signal(signal.SIGTERM)
            try:
                self.process.wait(30)
            except subprocess.TimeoutExpired:
                self.process.kill()
                self.process.wait()


@dataclass
class Sandbox:
    """State, workspace and container name of one test's editor, owned by ``account``."""

    root: Path
    account: Account
    docker_host: str = ""
    name: str = field(default_factory=lambda: f"sagecode-test-{uuid.uuid4().hex[:10]}")
    launches: list[Launch] = field(default_factory=list)

    @property
    def state(self) -> Path:
        """SAGECODE_STATE_DIR."""
        return self.root / "state"

    @property
    def workspace(self) -> Path:
        """SAGECODE_WORKSPACE (~/SageMaker on an instance)."""
        return self.root / "SageMaker"

    def env(self) -> dict[str, str]:
        """The environment JSP gives the wrapper, plus this sandbox's engine and folders."""
        env = {
            "PATH": "/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin",
            "HOME": self.account.home, "USER": self.account.name, "LANG": "C.UTF-8",
            "SAGECODE_STATE_DIR": str(self.state), "SAGECODE_WORKSPACE": str(self.workspace),
            "SAGECODE_CONTAINER": self.name, "SAGECODE_IMAGE_WAIT": "600",
        }  # fmt: skip
        if self.docker_host:
            env["DOCKER_HOST"] = self.docker_host
            env["XDG_RUNTIME_DIR"] = f"/run/user/{self.account.uid}"
        return env

    def launch_tcp(self, port: Optional[int] = None) -> Launch:
        """``code-server --bind-addr 127.0.0.1:PORT --auth none WORKSPACE``, JSP's TCP command."""
        port = port or free_port()
        return self._launch(["--bind-addr", f"127.0.0.1:{port}"], port=port)

    def launch_socket(self) -> Launch:
        """``code-server --socket PATH --auth none WORKSPACE`` in a private folder, as JSP makes."""
        folder = Path(tempfile.mkdtemp(prefix="jupyter-server-proxy-", dir=self.root))
        _chown(folder, self.account)
        return self._launch(["--socket", str(folder / "socket")], sock=folder / "socket")

    def _launch(self, listen: list[str], port: Optional[int] = None, sock: Optional[Path] = None) -> Launch:
        argv = [*self.account.prefix(), str(self.account.bin / "code-server"), *listen,
                "--auth", "none", str(self.workspace)]  # fmt: skip
        output = self.root / f"wrapper-{len(self.launches)}.out"
        with output.open("wb") as out:
            process = subprocess.Popen(argv, env=self.env(), stdout=out, stderr=subprocess.STDOUT, cwd="/")
        launch = Launch(process, output, port, sock)
        self.launches.append(launch)
        return launch

    def sagecode(
        self, *args: str, env: Optional[dict[str, str]] = None, timeout: float = 300
    ) -> subprocess.CompletedProcess[str]:
        """The ``sagecode`` command, run by this sandbox's account with its environment (and ``env``)."""
        argv = [*self.account.prefix(), str(self.account.bin / "sagecode"), *args]
        return subprocess.run(argv, env={**self.env(), **(env or {})}, capture_output=True, text=True,
                              timeout=timeout, cwd="/", stdin=subprocess.DEVNULL, check=False)  # fmt: skip

    def docker(self, *args: str) -> subprocess.CompletedProcess[str]:
        """``docker ARGS`` on this sandbox's engine."""
        return docker(*args, host=self.docker_host)

    def container_ids(self) -> list[str]:
        """Ids of every container whose name starts with this sandbox's name."""
        found = self.docker("ps", "-aq", "--filter", f"name=^/?{self.name}")
        return found.stdout.split()

    def close(self) -> None:
        """Stop what was launched, remove the containers, delete the folder."""
        for launch in self.launches:
            launch.stop()
        ids = self.container_ids()
        if ids:
            self.docker("rm", "-f", *ids)
        shutil.rmtree(self.root, ignore_errors=True)


def make_sandbox(
    account: Account, image: Manifest, docker_host: str = "", saved: Optional[Path] = None
) -> Sandbox:
    """A sandbox in /tmp (other accounts cannot enter pytest's 0700 folders), owned by ``account``.

    With ``saved`` (the developer image's ``images`` folder) the saved image is hard-linked in too.
    """
    root = Path(tempfile.mkdtemp(prefix="sagecode-test-", dir="/tmp"))
    box = Sandbox(root, account, docker_host)
    images = box.state / "images"
    images.mkdir(parents=True)
    (images / "current.json").write_text(image.to_json())
    if saved is not None and image.tar:
        os.link(saved / image.tar, images / image.tar)
    elif saved is not None:
        shutil.copytree(saved / LAYOUT, images / LAYOUT, copy_function=os.link)
    box.workspace.mkdir()
    _chown(root, account)
    return box


def _chown(root: Path, account: Account) -> None:
    for path in (root, *root.rglob("*")):
        if path.stat().st_nlink == 1 or path.is_dir():  # a hard-linked tar is shared: leave it
            os.chown(path, account.uid, account.gid)


# In the editor's container: the terminal's uid, then the uid of every code-server process
# (not docker's init, which stays root and writes nothing).
OWNER_PROBE = (
    'touch "$1/from-terminal" && id -u && '
    "ps -eo uid=,args= | grep '[c]ode-server' | grep -v docker-init | awk '{print $1}'"
)


def assert_files_are_the_users(box: Sandbox) -> None:
    """Launch as JSP does, use the editor, write from its terminal; every file is the user's."""
    launch = box.launch_tcp()
    launch.wait_ready()
    assert get(launch.port, None, "/")[0] in (200, 302)  # code-server writes its heartbeat and state
    shell = box.sagecode("shell", "sh", "-c", OWNER_PROBE, "sh", str(box.workspace))
    assert shell.returncode == 0, shell.stderr
    terminal_uid, *server_uids = shell.stdout.split()
    assert server_uids, shell.stdout
    assert set(server_uids) == {terminal_uid}, shell.stdout  # the terminal runs as code-server does
    made = box.workspace / "from-terminal"
    owner = (made.stat().st_uid, made.stat().st_gid)
    assert owner == (box.account.uid, box.account.gid), f"{made} belongs to {owner}"
    written = [p for p in box.state.rglob("*") if not p.is_symlink()]
    assert len(written) > 20, written  # code-server's user data, extensions folder, logs, heartbeat
    strangers = [p for p in written if p.lstat().st_uid != box.account.uid]
    assert strangers == [], f"not {box.account.name}'s: {strangers[:5]}"
