"""The server that jupyter-server-proxy starts for the "Code Server" card.

jupyter-server-proxy calls ``setup_codeserver`` (entry point group
``jupyter_serverproxy_servers``, name ``codeserver``) once when the Jupyter server starts;
the settings are read then, never at import. Everything else here is pure.
"""

from __future__ import annotations

import os
import re
import sys
from importlib import metadata
from pathlib import Path
from typing import Any

from sagecode_jupyter.settings import CONFIG_RELPATH, Settings, load_settings

HERE = Path(__file__).resolve().parent
ICON = HERE / "icons" / "code-server.svg"
PLACEHOLDER = HERE / "placeholder.py"
TITLE = "Code Server"
# JupyterLab's launcher draws an entry's icon only in the kernel categories.
CATEGORY = "Notebook"
# Websockets over a unix socket need Tornado >= 6.3 in the proxy, and the proxy
# supports unix sockets from jupyter-server-proxy 4.0 on.
SOCKET_TORNADO = (6, 3)
SOCKET_PROXY = (4, 0)


def setup_codeserver() -> dict[str, Any]:
    """The entry point: the server dict for this Jupyter environment, read now."""
    settings = load_settings(os.environ, Path(sys.prefix) / CONFIG_RELPATH, Path.home())
    unix_socket = settings.mode == "socket" or (settings.mode == "auto" and socket_supported())
    found = is_executable(settings.wrapper)
    return server_config(settings, unix_socket=unix_socket, wrapper_found=found, python=sys.executable)


def server_config(
    settings: Settings, *, unix_socket: bool, wrapper_found: bool, python: str
) -> dict[str, Any]:
    """The server dict for jupyter-server-proxy."""
    config: dict[str, Any] = {
        "command": command(settings, unix_socket=unix_socket, wrapper_found=wrapper_found, python=python),
        # The wrapper mounts SAGECODE_WORKSPACE into the container: the folder opened
        # must be the folder mounted.
        "environment": {"SAGECODE_WORKSPACE": literal(str(settings.workspace))},
        "timeout": settings.timeout,
        "absolute_url": False,
        "new_browser_tab": False,
        "launcher_entry": {
            "enabled": True,
            "title": TITLE,
            "icon_path": str(ICON),
            "category": CATEGORY,
        },
    }
    if unix_socket:
        config["unix_socket"] = True
    return config


def command(settings: Settings, *, unix_socket: bool, wrapper_found: bool, python: str) -> list[str]:
    """The wrapper's command line, or the placeholder's when the wrapper is missing."""
    listen = ["--socket", "{unix_socket}"] if unix_socket else ["--bind-addr", "127.0.0.1:{port}"]
    # Only the authenticating Jupyter proxy can reach code-server, so it needs no password.
    args = [*listen, "--auth", "none", literal(str(settings.workspace))]
    wrapper = literal(str(settings.wrapper))
    if wrapper_found:
        return [wrapper, *args]
    # A command that exits is restarted at once until the timeout and then shows a bare
    # 500; the placeholder instead serves a page that says what is missing.
    origin = literal(settings.wrapper_origin)
    placeholder = [literal(python), "-I", literal(str(PLACEHOLDER))]
    return [*placeholder, "--wrapper", wrapper, "--origin", origin, "--", *args]


def socket_supported() -> bool:
    """Whether this Jupyter server can proxy code-server, websockets included, on a unix socket."""
    return version_of("tornado") >= SOCKET_TORNADO and version_of("jupyter-server-proxy") >= SOCKET_PROXY


def literal(text: str) -> str:
    """``text`` protected from the proxy's ``str.format`` of every command argument."""
    return text.replace("{", "{{").replace("}", "}}")


def is_executable(path: Path) -> bool:
    """Whether ``path`` is a file this user may run."""
    return path.is_file() and os.access(path, os.X_OK)


def version_of(distribution: str) -> tuple[int, int]:
    """``(major, minor)`` of an installed distribution; ``(0, 0)`` when unknown."""
    try:
        found = re.match(r"(\d+)\.(\d+)", metadata.version(distribution))
    except metadata.PackageNotFoundError:
        return (0, 0)
    return (int(found.group(1)), int(found.group(2))) if found else (0, 0)
