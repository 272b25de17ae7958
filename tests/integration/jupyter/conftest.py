"""A real JupyterLab with jupyter-server-proxy and the glue, shared by the proxy and browser tests.

The chain: ``jupyter_env`` (a venv with JupyterLab and jupyter-server-proxy from the
package index, cached across runs) ← ``jupyter_glue`` (the glue installed by the setup
command, pointing at ``codeserver_wrapper``: this venv's real ``code-server`` wrapper) ←
``jupyter`` (one running JupyterLab per session, whose card starts the real image).

Each JupyterLab gets its own editor ``Sandbox`` (runtime_support): a state folder whose
``current.json`` is the manifest of the image under test (``editor_image``: the saved
image named by ``SAGECODE_TEST_EDITOR_STATE``, else ``dev_image``), a workspace and a
container name, all passed as the wrapper's ``SAGECODE_*`` variables. Two JupyterLabs
never share an editor lock, so the newest launch never supersedes another test's editor.
Test modules load ``tests.integration.runtime_fixtures`` (``pytest_plugins``).
"""

from __future__ import annotations

import hashlib
import os
import secrets
import shutil
import signal
import socket
import subprocess
import sys
import tempfile
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Any, Optional

import pytest
import requests

from bench.proxy import PACKAGES, jupyter_argv, jupyter_environ
from imagebuild.manifest import Manifest
from runtime import jupyter_setup
from tests.integration.conftest import need
from tests.integration.runtime_support import Sandbox, make_sandbox, me

HERE = Path(__file__).resolve().parent
JUPYTER_PACKAGES = PACKAGES
START_TIMEOUT = 60.0
# The console script installed with the project, as on an instance (venv/bin/code-server).
WRAPPER = Path(sys.executable).parent / "code-server"
# A first request waits for the container and code-server to come up behind the proxy.
EDITOR_TIMEOUT = 120.0


@dataclass(frozen=True)
class Jupyter:
    """A running JupyterLab: its URL, token, process and log."""

    url: str  # ends with "/"
    token: str
    process: subprocess.Popen[bytes]
    log: Path

    def get(self, path: str, timeout: float = 30, **kwargs: Any) -> requests.Response:
        """GET ``path`` (relative to the base URL) with the token."""
        headers = {"Authorization": f"token {self.token}"}
        return requests.get(self.url + path, headers=headers, timeout=timeout, **kwargs)

    def log_text(self) -> str:
        """The server's log so far."""
        return self.log.read_text(errors="replace")

    def log_tail(self) -> str:
        """The end of the server's log, for failure messages."""
        return self.log_text()[-4000:]


@pytest.fixture(scope="session")
def jupyter_env() -> Path:
    """A venv with JupyterLab and jupyter-server-proxy, reused by later runs on this machine."""
    key = hashlib.sha256(repr((JUPYTER_PACKAGES, sys.version)).encode()).hexdigest()[:12]
    venv = Path(tempfile.gettempdir(), f"sagecode-test-jupyterlab-{key}")
    if not (venv / ".complete").is_file():
        shutil.rmtree(venv, ignore_errors=True)
        make_jupyter_env(venv)
    return venv


def make_jupyter_env(venv: Path) -> None:
    """Create the venv; a failure (no package index) fails in CI and skips elsewhere."""
    steps = (
        [sys.executable, "-m", "venv", str(venv)],
        [str(venv / "bin/python"), "-m", "pip", "install", "-q", *JUPYTER_PACKAGES],
    )
    for step in steps:
        done = subprocess.run(step, capture_output=True, text=True, check=False)
        need(done.returncode == 0, f"cannot install JupyterLab: {done.stderr.strip()[-500:]}")
    (venv / ".complete").touch()


@pytest.fixture(scope="session")
def codeserver_wrapper() -> Path:
    """What the card starts: the real wrapper, this venv's ``code-server`` console script."""
    need(os.access(WRAPPER, os.X_OK), f"no wrapper at {WRAPPER} (pip install -e .)")
    return WRAPPER


@pytest.fixture(scope="session")
def standin_wrapper(jupyter_env: Path, tmp_path_factory: pytest.TempPathFactory) -> Path:
    """A stand-in wrapper that shows the argv it got, run by the JupyterLab venv's Python."""
    wrapper = tmp_path_factory.mktemp("standin") / "code-server"
    source = (HERE / "standin_codeserver.py").read_text()
    wrapper.write_text(f"#!{jupyter_env / 'bin/python'}\n{source}")
    wrapper.chmod(0o755)
    return wrapper


@pytest.fixture(scope="session")
def editor(editor_image: Manifest) -> Iterator[Sandbox]:
    """The session JupyterLab's editor: state, workspace and container name; removed at the end."""
    box = make_sandbox(me(), editor_image)
    yield box
    box.close()


@pytest.fixture
def own_editor(editor_image: Manifest) -> Iterator[Sandbox]:
    """An editor sandbox for a test that starts its own JupyterLab."""
    box = make_sandbox(me(), editor_image)
    yield box
    box.close()


@pytest.fixture(scope="session")
def workspace(editor: Sandbox) -> Path:
    """The folder the session's editor opens."""
    return editor.workspace


@pytest.fixture(scope="session")
def jupyter_glue(
    jupyter_env: Path, codeserver_wrapper: Path, workspace: Path, tmp_path_factory: pytest.TempPathFactory
) -> Path:
    """The JupyterLab venv with the glue installed by the setup command; returns its prefix."""
    cache = tmp_path_factory.mktemp("wheels")
    jupyter_setup.install(jupyter_env, codeserver_wrapper, workspace=workspace, cache_dir=cache)
    return jupyter_env


@pytest.fixture(scope="session")
def jupyter(
    jupyter_glue: Path, editor: Sandbox, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[Jupyter]:
    """One JupyterLab for the session, on 127.0.0.1 with a token; its card starts ``editor``."""
    server = start_jupyter(jupyter_glue, tmp_path_factory.mktemp("jupyter"), editor_environ(editor))
    yield server
    stop_jupyter(server)


def editor_environ(box: Sandbox, wrapper: Path = WRAPPER) -> dict[str, str]:
    """What the Jupyter server passes on to the wrapper: the sandbox's ``SAGECODE_*`` and the wrapper."""
    sagecode = {name: value for name, value in box.env().items() if name.startswith("SAGECODE_")}
    return {**sagecode, "SAGECODE_WRAPPER": str(wrapper)}


def start_jupyter(env: Path, home: Path, extra_env: Optional[Mapping[str, str]] = None) -> Jupyter:
    """Start JupyterLab from ``env`` with its state under ``home``; wait until it answers."""
    token = secrets.token_hex(16)
    port = free_port()
    log = home / "jupyter.log"
    answer_news_question(home / "config")
    with log.open("wb") as out:
        process = subprocess.Popen(
            jupyter_argv(env, port, token, home),
            env=jupyter_environ(home, extra_env or {}),
            cwd=home,
            stdout=out,
            stderr=subprocess.STDOUT,
        )
    server = Jupyter(f"http://127.0.0.1:{port}/", token, process, log)
    wait_until_up(server)
    return server


def answer_news_question(config_dir: Path) -> None:
    """Answer JupyterLab's "fetch news?" question with no, as a user would, so no toast covers the page."""
    plugin = config_dir / "lab/user-settings/@jupyterlab/apputils-extension"
    settings = plugin / "notification.jupyterlab-settings"
    settings.parent.mkdir(parents=True, exist_ok=True)
    settings.write_text('{"fetchNews": "false"}\n')


def wait_until_up(server: Jupyter) -> None:
    """Poll the API until it answers; fail with the log when the server dies or is slow."""
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline and server.process.poll() is None:
        try:
            if server.get("api/status").status_code == 200:
                return
        except requests.ConnectionError:
            time.sleep(0.2)
    stop_jupyter(server)
    pytest.fail(f"JupyterLab did not come up:\n{server.log_tail()}")


def stop_jupyter(server: Jupyter) -> None:
    """Stop JupyterLab as systemd would (SIGTERM), killing it if it lingers."""
    if server.process.poll() is None:
        server.process.send_signal(signal.SIGTERM)
    try:
        server.process.wait(timeout=20)
    except subprocess.TimeoutExpired:
        server.process.kill()
        server.process.wait()


def free_port() -> int:
    """A TCP port on loopback that nothing listens on now."""
    with socket.socket() as probe:
        probe.bind(("127.0.0.1", 0))
        port: int = probe.getsockname()[1]
        return port
