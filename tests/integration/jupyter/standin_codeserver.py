"""A stand-in for sagecode's code-server wrapper, for the missing-wrapper hand-over test.

The placeholder must ``exec`` the wrapper with exactly the argv the proxy gave it, on an
address it has freed. The real wrapper would hide that argv inside a container; this one
serves a page that shows it. It takes what jupyter-server-proxy passes the wrapper
(``--socket PATH`` or ``--bind-addr HOST:PORT``, ``--auth none``, the folder to open).
Needs Tornado (JupyterLab brings it).
"""

from __future__ import annotations

import argparse
import asyncio
import html
import json
import os
import sys

from tornado import httpserver, netutil, web

PAGE = """<!doctype html>
<meta charset="utf-8"><title>code-server stand-in</title>
<h1 id="standin">code-server stand-in</h1>
<p>pid <span id="pid">{pid}</span>, arguments <code id="args">{args}</code></p>
"""


class Page(web.RequestHandler):
    """The page the test looks for."""

    def get(self) -> None:
        """Say who answered and with which arguments."""
        values = {"pid": os.getpid(), "args": json.dumps(sys.argv[1:])}
        self.write(PAGE.format(**{key: html.escape(str(value)) for key, value in values.items()}))


def parse(argv: list[str]) -> argparse.Namespace:
    """Where to listen; anything else is accepted and ignored."""
    parser = argparse.ArgumentParser(prog="code-server")
    parser.add_argument("--socket")
    parser.add_argument("--bind-addr", default="127.0.0.1:8080")
    return parser.parse_known_args(argv)[0]


async def serve(options: argparse.Namespace) -> None:
    """Listen where the proxy said, until killed."""
    server = httpserver.HTTPServer(web.Application([(r"/", Page)]))
    if options.socket:
        server.add_socket(netutil.bind_unix_socket(options.socket))
    else:
        host, _, port = options.bind_addr.rpartition(":")
        server.listen(int(port), host)
    print(f"stand-in code-server {os.getpid()} on {options.socket or options.bind_addr}", file=sys.stderr)
    await asyncio.Event().wait()


if __name__ == "__main__":
    asyncio.run(serve(parse(sys.argv[1:])))
