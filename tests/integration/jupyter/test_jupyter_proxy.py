"""The glue in a real JupyterLab + jupyter-server-proxy, starting the real wrapper and image."""

from __future__ import annotations

import html
import json
import re
import shutil
import subprocess
import time
from pathlib import Path
from typing import Any
from urllib.parse import parse_qs, urlsplit

import pytest

from imagebuild.manifest import Manifest
from tests.integration.jupyter.conftest import (
    EDITOR_TIMEOUT,
    HERE,
    Jupyter,
    editor_environ,
    start_jupyter,
    stop_jupyter,
)
from tests.integration.runtime_support import Sandbox, docker

pytest_plugins = ["tests.integration.runtime_fixtures"]
pytestmark = [pytest.mark.jupyter, pytest.mark.engine, pytest.mark.image]
STOP_BOUND = 20.0  # the wrapper's docker stop grace (10 s) and some slack


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


def test_proxy_serves_the_images_workbench_on_the_workspace(
    jupyter: Jupyter, editor: Sandbox, editor_image: Manifest
) -> None:
    """<base>/codeserver/ is the image's code-server workbench, on the workspace, reached over a socket."""
    page = jupyter.get("codeserver/", timeout=EDITOR_TIMEOUT)
    assert page.status_code == 200, jupyter.log_tail()
    assert parse_qs(urlsplit(page.url).query)["folder"] == [str(editor.workspace)]
    product = workbench_settings(page.text)["productConfiguration"]
    assert product["codeServerVersion"] == editor_image.versions["code-server"]
    container = inspect_container(editor.name)
    assert container["Config"]["Image"] == editor_image.image
    assert "--socket" in container["Args"]


def test_proxy_websocket_reaches_code_server(jupyter: Jupyter, jupyter_env: Path) -> None:
    """code-server's management websocket upgrades through the proxy and answers the workbench's hello."""
    assert jupyter.get("codeserver/", timeout=EDITOR_TIMEOUT).status_code == 200
    assert ws_hello(jupyter, jupyter_env)["type"] == "sign"


def test_tcp_mode_serves_workbench_and_websocket(
    jupyter_glue: Path, own_editor: Sandbox, tmp_path: Path
) -> None:
    """With SAGECODE_JUPYTER_MODE=tcp the editor listens on loopback and both HTTP and websockets pass."""
    environ = {**editor_environ(own_editor), "SAGECODE_JUPYTER_MODE": "tcp"}
    server = start_jupyter(jupyter_glue, tmp_path, environ)
    try:
        page = server.get("codeserver/", timeout=EDITOR_TIMEOUT)
        assert "codeServerVersion" in workbench_settings(page.text)["productConfiguration"]
        args = inspect_container(own_editor.name)["Args"]
        assert "--socket" not in args
        assert re.fullmatch(r"0\.0\.0\.0:\d+", args[args.index("--bind-addr") + 1])
        assert ws_hello(server, jupyter_glue)["type"] == "sign"
    finally:
        stop_jupyter(server)


def test_stopping_jupyter_stops_the_container(
    jupyter_glue: Path, own_editor: Sandbox, tmp_path: Path
) -> None:
    """When the Jupyter server stops (SIGTERM, as systemd does), the editor container goes too."""
    server = start_jupyter(jupyter_glue, tmp_path, editor_environ(own_editor))
    try:
        assert server.get("codeserver/", timeout=EDITOR_TIMEOUT).status_code == 200
        assert running(own_editor.name)
    finally:
        stop_jupyter(server)
    deadline = time.monotonic() + STOP_BOUND
    while running(own_editor.name) and time.monotonic() < deadline:
        time.sleep(0.2)
    assert not running(own_editor.name), f"{own_editor.name} outlived Jupyter"


def test_missing_wrapper_explains_then_hands_over(
    jupyter_glue: Path, standin_wrapper: Path, tmp_path: Path
) -> None:
    """A missing wrapper: an explanatory page and one log line; installed later, it gets the proxy's argv."""
    wrapper = tmp_path / "later" / "code-server"
    server = start_jupyter(jupyter_glue, tmp_path, {"SAGECODE_WRAPPER": str(wrapper)})
    try:
        page = server.get("codeserver/")
        assert page.status_code == 503
        assert f"{wrapper} does not exist (path from SAGECODE_WRAPPER)" in page.text
        wrapper.parent.mkdir()
        shutil.copy2(standin_wrapper, wrapper)
        assert "starting" in server.get("codeserver/").text
        args = json.loads(field(wait_for_page(server, "codeserver/"), "args"))
        assert (args[0], args[2:4]) == ("--socket", ["--auth", "none"])
        assert server.log_text().count("sagecode: the code-server wrapper") == 1
    finally:
        stop_jupyter(server)


def workbench_settings(page: str) -> dict[str, Any]:
    """The workbench configuration code-server writes into its page (a ``<meta>`` element)."""
    found = re.search(r'<meta id="vscode-workbench-web-configuration" data-settings="([^"]*)"', page)
    assert found, page[:2000]
    settings: dict[str, Any] = json.loads(html.unescape(found.group(1)))
    return settings


def ws_hello(server: Jupyter, env: Path) -> dict[str, Any]:
    """The first control message code-server sends on its management websocket, through the proxy."""
    root = server.url.replace("http:", "ws:") + "codeserver/"
    argv = [str(env / "bin/python"), str(HERE / "ws_probe.py"), root, server.url.rstrip("/"), server.token]
    done = subprocess.run(argv, capture_output=True, text=True, timeout=30, check=False)
    assert done.returncode == 0, f"{done.stderr}\n{server.log_tail()}"
    answer: dict[str, Any] = json.loads(done.stdout)
    return answer


def inspect_container(name: str) -> dict[str, Any]:
    """``docker inspect`` of the editor container called ``name``."""
    found = docker("container", "inspect", name)
    assert found.returncode == 0, found.stderr
    container: dict[str, Any] = json.loads(found.stdout)[0]
    return container


def running(name: str) -> bool:
    """Whether ``docker ps`` lists a running container called exactly ``name``."""
    return name in docker("ps", "--filter", f"name=^/{name}$", "--format", "{{.Names}}").stdout.split()


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
