"""The glue in a real JupyterLab + jupyter-server-proxy: card metadata, HTTP, websocket, lifetime."""

from __future__ import annotations

import json
import re
import shutil
import subprocess
import time
from pathlib import Path

import pytest

from tests.integration.jupyter.conftest import HERE, Jupyter, start_jupyter, stop_jupyter

pytestmark = pytest.mark.jupyter


def test_servers_info_lists_codeserver_with_launcher_entry(jupyter: Jupyter) -> None:
    """servers-info lists one codeserver entry: a Notebook-category card opening in a JupyterLab tab."""
    servers = jupyter.get("server-proxy/servers-info").json()["server_processes"]
    assert [server["name"] for server in servers] == ["codeserver"]
    entry = servers[0]["launcher_entry"]
    assert (entry["enabled"], entry["title"], entry["category"]) == (True, "Code Server", "Notebook")
    assert entry["path_info"] == "codeserver/"
    assert servers[0]["new_browser_tab"] is False


def test_servers_info_icon_is_the_shipped_svg(jupyter: Jupyter) -> None:
    """The card's icon URL serves the SVG shipped in the package."""
    entry = jupyter.get("server-proxy/servers-info").json()["server_processes"][0]["launcher_entry"]
    icon = jupyter.get(entry["icon_url"].lstrip("/"))
    assert icon.status_code == 200
    assert icon.headers["Content-Type"].startswith("image/svg+xml")
    assert icon.text.lstrip().startswith("<svg")


def test_proxy_serves_wrapper_page_on_the_workspace(jupyter: Jupyter, workspace: Path) -> None:
    """<base>/codeserver/ returns the wrapper's page, started on a socket, without auth, on the workspace."""
    page = jupyter.get("codeserver/")
    assert page.status_code == 200, jupyter.log_tail()
    assert "code-server stand-in" in page.text
    args = json.loads(field(page.text, "args"))
    assert args[0] == "--socket"
    assert args[2:] == ["--auth", "none", str(workspace)]


def test_proxy_websocket_upgrades_and_echoes(jupyter: Jupyter, jupyter_env: Path) -> None:
    """A websocket through the proxy, with the browser's Origin, reaches the wrapper and echoes."""
    jupyter.get("codeserver/")
    assert ws_round_trip(jupyter, jupyter_env, "hello") == "echo: hello"


def test_tcp_mode_serves_page_and_websocket(jupyter_glue: Path, tmp_path: Path) -> None:
    """With SAGECODE_JUPYTER_MODE=tcp the wrapper listens on loopback and both HTTP and websockets pass."""
    server = start_jupyter(jupyter_glue, tmp_path, {"SAGECODE_JUPYTER_MODE": "tcp"})
    try:
        args = json.loads(field(server.get("codeserver/").text, "args"))
        assert args[0] == "--bind-addr"
        assert re.fullmatch(r"127\.0\.0\.1:\d+", args[1])
        assert ws_round_trip(server, jupyter_glue, "over tcp") == "echo: over tcp"
    finally:
        stop_jupyter(server)


def test_stopping_jupyter_stops_the_wrapper(jupyter_glue: Path, tmp_path: Path) -> None:
    """When the Jupyter server stops (SIGTERM, as systemd does), the wrapper process ends too."""
    server = start_jupyter(jupyter_glue, tmp_path)
    try:
        pid = int(field(server.get("codeserver/").text, "pid"))
        assert alive(pid)
    finally:
        stop_jupyter(server)
    assert gone_within(pid, seconds=15), f"wrapper {pid} outlived Jupyter"


def test_missing_wrapper_explains_then_hands_over(
    jupyter_glue: Path, codeserver_wrapper: Path, tmp_path: Path
) -> None:
    """A missing wrapper: an explanatory page and one log line at once; installed later, no restart."""
    wrapper = tmp_path / "later" / "code-server"
    server = start_jupyter(jupyter_glue, tmp_path, {"SAGECODE_WRAPPER": str(wrapper)})
    try:
        page = server.get("codeserver/")
        assert page.status_code == 503
        assert f"{wrapper} does not exist (path from SAGECODE_WRAPPER)" in page.text
        wrapper.parent.mkdir()
        shutil.copy2(codeserver_wrapper, wrapper)
        assert "starting" in server.get("codeserver/").text
        assert "code-server stand-in" in wait_for_page(server, "codeserver/")
        assert server.log_text().count("sagecode: the code-server wrapper") == 1
    finally:
        stop_jupyter(server)


def ws_round_trip(server: Jupyter, env: Path, message: str) -> str:
    """Send ``message`` on a websocket to the wrapper's echo through the proxy, as a browser would."""
    url = server.url.replace("http:", "ws:") + f"codeserver/echo?token={server.token}"
    origin = server.url.rstrip("/")
    argv = [str(env / "bin/python"), str(HERE / "ws_probe.py"), url, origin, message]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, done.stderr
    return done.stdout.strip()


def field(page: str, element_id: str) -> str:
    """The text of the stand-in page's element with that id."""
    found = re.search(rf'id="{element_id}">([^<]*)<', page)
    assert found, page
    return found.group(1).replace("&quot;", '"')


def wait_for_page(server: Jupyter, path: str, seconds: float = 15) -> str:
    """The first 200 answer for ``path`` within ``seconds``."""
    deadline = time.monotonic() + seconds
    while time.monotonic() < deadline:
        answer = server.get(path)
        if answer.status_code == 200:
            return answer.text
        time.sleep(0.2)
    raise AssertionError(f"{path} never answered 200:\n{server.log_tail()}")


def alive(pid: int) -> bool:
    """Whether ``pid`` runs (a zombie counts as ended)."""
    try:
        status = Path(f"/proc/{pid}/status").read_text()
    except FileNotFoundError:
        return False
    return "\nState:\tZ" not in status


def gone_within(pid: int, seconds: float) -> bool:
    """Whether ``pid`` ends within ``seconds``."""
    deadline = time.monotonic() + seconds
    while alive(pid) and time.monotonic() < deadline:
        time.sleep(0.1)
    return not alive(pid)
