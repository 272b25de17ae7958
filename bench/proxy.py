"""Restart-to-ready as the card's user meets it: through JupyterLab's proxy, with the waiting page or without.

Each round wipes the engine (caches dropped, as after a reboot) and keeps the state folder,
starts JupyterLab with the card's glue (jupyter-server-proxy; the launcher's ``auto`` mode,
a unix socket where the proxy can carry websockets over one), waits until JupyterLab
answers, then asks ``<base>/codeserver/`` as the browser does after the click. The first
request waits while the proxy starts the wrapper and asks it whether it is ready; a 503
(the page that waits) is asked again every 0.5 s, as that page does, until the editor
answers (any status under 500). Two ways, interleaved so noise hits both:

- **with the page** (the default, ``runtime/waitpage.py``): the proxy finds the wrapper
  ready as soon as it answers, and the user waits for the restore;
- **without it** (``SAGECODE_WAIT_PAGE=off``, the baseline): the proxy finds the editor at
  its first readiness probe after the editor answers, and its probes double their wait
  (simpervisor: 0.01 s, 0.02 s, ... 5.12 s, 10.24 s).

JupyterLab and jupyter-server-proxy are installed once into a venv beside the state folder
(pip, so its index settings apply).
"""

from __future__ import annotations

import os
import secrets
import subprocess
import sys
import tempfile
import time
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path

import requests

from bench.common import BenchError, Row, clean, finish, free_port, run, say, terminate, wipe_engine
from runtime import jupyter_setup

PACKAGES = ("jupyterlab>=4", "jupyter-server-proxy>=4.2")
CONTAINER = "sagecode-bench"
START_TIMEOUT = 120.0
EDITOR_TIMEOUT = 400.0  # above the card's readiness timeout (330 s)
PAGE_POLL = 0.5  # as the page's own script asks


def jupyter_env(folder: Path) -> Path:
    """The venv with JupyterLab and jupyter-server-proxy, made once."""
    if not (folder / ".complete").is_file():
        clean(folder)
        say(f"installing JupyterLab into {folder}")
        run([sys.executable, "-m", "venv", str(folder)])
        run([str(folder / "bin/python"), "-m", "pip", "install", "-q", *PACKAGES], timeout=900)
        (folder / ".complete").touch()
    return folder


def jupyter_argv(env: Path, port: int, token: str, home: Path) -> list[str]:
    """JupyterLab on loopback only, with a token, and no calls home for news or updates
    (the integration tests start theirs the same way)."""
    return [
        str(env / "bin/jupyter-lab"),
        "--no-browser",
        "--allow-root",  # CI runs as root
        "--ServerApp.ip=127.0.0.1",
        f"--ServerApp.port={port}",
        "--ServerApp.port_retries=0",
        f"--IdentityProvider.token={token}",
        f"--ServerApp.root_dir={home}",
        "--LabApp.news_url=None",
        "--LabApp.check_for_updates_class=jupyterlab.handlers.announcements.NeverCheckForUpdate",
    ]


def jupyter_environ(home: Path, extra: Mapping[str, str]) -> dict[str, str]:
    """The environment without the developer's sagecode and Jupyter settings, plus ``extra``."""
    environ = {k: v for k, v in os.environ.items() if not k.startswith(("SAGECODE_", "JUPYTER"))}
    for name in ("CONFIG", "DATA", "RUNTIME"):
        environ[f"JUPYTER_{name}_DIR"] = str(home / name.lower())
    return {**environ, **extra}


@dataclass
class Lab:
    """A JupyterLab on 127.0.0.1 with a token, its state under ``home``."""

    url: str
    token: str
    process: subprocess.Popen[bytes]

    def get(self, path: str, timeout: float) -> requests.Response:
        headers = {"Authorization": f"token {self.token}"}
        return requests.get(self.url + path, headers=headers, timeout=timeout, allow_redirects=False)

    def stop(self) -> None:
        """SIGTERM, as a stop does: the proxy stops the wrapper, the wrapper the container."""
        terminate(self.process, CONTAINER)


def start_lab(env: Path, home: Path, extra: dict[str, str]) -> Lab:
    """JupyterLab from ``env``, no browser, no calls home; returns once it answers."""
    home.mkdir(parents=True, exist_ok=True)
    token, port = secrets.token_hex(16), free_port()
    with (home / "jupyter.log").open("wb") as out:
        process = subprocess.Popen(jupyter_argv(env, port, token, home), env=jupyter_environ(home, extra),
                                   cwd=home, stdout=out, stderr=subprocess.STDOUT)  # fmt: skip
    lab = Lab(f"http://127.0.0.1:{port}/", token, process)
    deadline = time.monotonic() + START_TIMEOUT
    while time.monotonic() < deadline:
        if process.poll() is not None:
            raise BenchError(f"JupyterLab exited: see {home / 'jupyter.log'}")
        try:
            if lab.get("api/status", 5).status_code == 200:
                return lab
        except requests.RequestException:
            pass
        time.sleep(0.2)
    lab.stop()
    raise BenchError(f"JupyterLab did not answer in {START_TIMEOUT:.0f} s: see {home / 'jupyter.log'}")


def click(lab: Lab) -> tuple[float, float]:
    """Seconds from the card's request to the first answer, and to the editor's."""
    start = time.monotonic()
    answer = lab.get("codeserver/", EDITOR_TIMEOUT)
    first = time.monotonic() - start
    while answer.status_code >= 500:
        if time.monotonic() - start > EDITOR_TIMEOUT:
            raise BenchError(f"the editor did not answer through the proxy in {EDITOR_TIMEOUT:.0f} s")
        time.sleep(PAGE_POLL)
        answer = lab.get("codeserver/", EDITOR_TIMEOUT)
    return first, time.monotonic() - start


def after_restart(env: Path, state: Path, workspace: Path, home: Path, page: bool) -> tuple[float, float]:
    """Engine wiped, JupyterLab started, then the click: (first answer, editor) seconds."""
    wipe_engine(base=False)
    extra = {"SAGECODE_STATE_DIR": str(state), "SAGECODE_WORKSPACE": str(workspace),
             "SAGECODE_CONTAINER": CONTAINER, "SAGECODE_IMAGE_WAIT": "600",
             "SAGECODE_WAIT_PAGE": "on" if page else "off"}  # fmt: skip
    lab = start_lab(env, home, extra)
    try:
        return click(lab)
    finally:
        lab.stop()


def bench(state: Path, rounds: int) -> list[Row]:
    """The click after a restart through the real proxy, with the page and without, ``rounds`` times each."""
    env = jupyter_env(state.parent / "jupyterlab")
    folder = Path(tempfile.mkdtemp(prefix="sagecode-bench-proxy-", dir="/var/tmp"))
    workspace = folder / "SageMaker"
    workspace.mkdir()
    wrapper = Path(sys.executable).parent / "code-server"
    try:
        jupyter_setup.install(env, wrapper, workspace=workspace, cache_dir=folder / "wheels")
        first, ready, without = [], [], []
        for n in range(1, rounds + 1):
            say(f"round {n}/{rounds}: through the proxy, with the page that waits")
            a, b = after_restart(env, state, workspace, folder / f"with-{n}", page=True)
            first.append(a)
            ready.append(b)
            say(f"round {n}/{rounds}: through the proxy, without the page")
            without.append(after_restart(env, state, workspace, folder / f"without-{n}", page=False)[1])
            say(f"round {n}: with the page: it at {a:.1f} s, the editor at {b:.1f} s; "
                f"without: the editor at {without[-1]:.1f} s")
    finally:
        finish(folder)
    return [
        Row("through JupyterLab's proxy after an engine wipe: the card's request to the editor answering, "
            "with the page that waits", ready, baseline=without),
        Row("  the page itself (the first answer)", first),
        Row("  without the page (SAGECODE_WAIT_PAGE=off): the proxy's back-off decides", without),
    ]
