"""Open code-server's management websocket as the workbench does, say hello, print the answer.

Run with the test JupyterLab's Python, which has Tornado: ``ws_probe.py URL ORIGIN TOKEN``,
where URL is the proxied code-server root as ``ws://`` and TOKEN the Jupyter server's.
Opening the connection succeeds only on a 101 upgrade; then one frame goes each way: the
workbench's first message (an ``auth`` control message of VS Code's remote protocol) and
the server's reply (a ``sign`` request), whose JSON is printed. Exit status 1 with a message
when no control message comes back.
"""

from __future__ import annotations

import asyncio
import json
import struct
import sys
import uuid

from tornado.httpclient import HTTPRequest
from tornado.websocket import websocket_connect

# VS Code's protocol message header (src/vs/base/parts/ipc/common/ipc.net.ts): type (u8),
# id, ack, data length (u32 big-endian each).
HEADER = struct.Struct(">BIII")
CONTROL = 2
QUERY = "?reconnectionToken={token}&reconnection=false&skipWebSocketFrames=false"


async def probe(root: str, origin: str, token: str) -> str:
    """The server's first control message on a new management connection, as JSON text."""
    url = root + QUERY.format(token=uuid.uuid4())
    connection = await websocket_connect(
        HTTPRequest(url, headers={"Origin": origin, "Authorization": f"token {token}"})
    )
    hello = json.dumps({"type": "auth", "auth": "00000000000", "data": str(uuid.uuid4())}).encode()
    await connection.write_message(HEADER.pack(CONTROL, 0, 0, len(hello)) + hello, binary=True)
    try:
        while True:  # keep-alives may come first
            frame = await asyncio.wait_for(connection.read_message(), 10)
            if frame is None:
                sys.exit("the server closed the websocket without answering")
            if isinstance(frame, bytes) and frame[0] == CONTROL:
                return frame[HEADER.size :].decode()
    finally:
        connection.close()


if __name__ == "__main__":
    print(asyncio.run(probe(*sys.argv[1:4])))
