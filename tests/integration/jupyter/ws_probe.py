"""Open a websocket as a browser would (with an Origin), send one message, print the answer.

Run with the test JupyterLab's Python, which has Tornado: ``ws_probe.py URL ORIGIN MESSAGE``.
"""

from __future__ import annotations

import asyncio
import sys

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect


async def probe(url: str, origin: str, message: str) -> str:
    """One round trip on a new websocket."""
    connection = await websocket_connect(HTTPRequest(url, headers={"Origin": origin}))
    await connection.write_message(message)
    answer = await asyncio.wait_for(connection.read_message(), 10)
    connection.close()
    return str(answer)


if __name__ == "__main__":
    print(asyncio.run(probe(*sys.argv[1:4])))
