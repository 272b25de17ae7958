"""A stand-in for sagecode's code-server wrapper: proxy tests without an engine or an image.

It takes what jupyter-server-proxy passes the wrapper (``--socket PATH`` or ``--bind-addr
HOST:PORT``, ``--auth none``, the folder to open, any other flag), serves a page that
opens a websocket back to it, and echoes on that websocket. Like code-server, it refuses
a websocket whose Origin does not match its Host. Needs Tornado (JupyterLab brings it).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import sys

from tornado import httpserver, netutil, web, websocket

PAGE = """<!doctype html>
<meta charset="utf-8"><title>code-server stand-in</title>
<body style="font: 16px sans-serif; background: #1e1e1e; color: #ddd; padding: 1em">
<h1 id="standin">code-server stand-in</h1>
<p>pid <span id="pid">{pid}</span>, folder <span id="folder">{folder}</span></p>
<p>arguments <code id="args">{args}</code></p>
<p id="ws">websocket: connecting</p>
<script>
  const ws = new WebSocket(location.href.replace(/^http/, "ws").replace(/[^/]*$/, "echo"));
  ws.onopen = () => ws.send("ping");
  ws.onmessage = (event) => {{ document.getElementById("ws").textContent = "websocket: " + event.data; }};
</script>
"""


class Page(web.RequestHandler):
    """The page the proxy tests and the browser look for."""

    def get(self) -> None:
        """Say who answered and with which arguments."""
        options = self.settings["options"]
        values = {"pid": os.getpid(), "folder": options.folder, "args": json.dumps(sys.argv[1:])}
        self.write(PAGE.format(**{key: html.escape(str(value)) for key, value in values.items()}))


class Health(web.RequestHandler):
    """code-server's unauthenticated health check."""

    def get(self) -> None:
        """Always alive."""
        self.write({"status": "alive", "lastHeartbeat": 0})


class Echo(websocket.WebSocketHandler):
    """Sends every message back, prefixed with ``echo:``."""

    def on_message(self, message: str | bytes) -> None:
        """Echo one message."""
        self.write_message(f"echo: {message!s}")


def parse(argv: list[str]) -> argparse.Namespace:
    """The flags the wrapper must understand; anything else is accepted and ignored."""
    parser = argparse.ArgumentParser(prog="code-server")
    parser.add_argument("--socket")
    parser.add_argument("--bind-addr", default="127.0.0.1:8080")
    parser.add_argument("--auth", choices=["none", "password"], default="password")
    options, rest = parser.parse_known_args(argv)
    folders = [arg for arg in rest if not arg.startswith("-")]
    options.folder = folders[-1] if folders else ""
    return options


async def serve(options: argparse.Namespace) -> None:
    """Listen where the proxy said, until killed."""
    app = web.Application([(r"/", Page), (r"/healthz", Health), (r"/echo", Echo)], options=options)
    server = httpserver.HTTPServer(app)
    if options.socket:
        server.add_socket(netutil.bind_unix_socket(options.socket))
    else:
        host, _, port = options.bind_addr.rpartition(":")
        server.listen(int(port), host)
    print(f"stand-in code-server {os.getpid()} on {options.socket or options.bind_addr}", file=sys.stderr)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(parse(sys.argv[1:])))
