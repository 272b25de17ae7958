"""code-server's activity heartbeat, visible on the host for idle auto-stop scripts.

code-server (src/node/heart.ts, routes/index.ts) rewrites ``heartbeat`` in its data
folder, ``$XDG_DATA_HOME/code-server``, on every request but ``/healthz`` (so health
checks do not count as use), at most once a minute, and again every minute while any
connection (a browser tab's websocket) is open. The wrapper pins ``XDG_DATA_HOME`` to
``<home>/.local/share`` in the persistent home, which is bind-mounted at the same path,
so the host sees the file at

    <state>/home/.local/share/code-server/heartbeat
    (on an instance: /home/ec2-user/SageMaker/.sagecode/home/.local/share/code-server/heartbeat)

An idle script counts the editor as busy while that file's mtime is recent, e.g.
``find "$F" -mmin -5`` prints it when used within the last five minutes.
"""

from __future__ import annotations

from dataclasses import dataclass
from pathlib import Path
from typing import Optional

HEARTBEAT = "heartbeat"


def data_home(home: Path) -> Path:
    """``XDG_DATA_HOME``'s default for ``home``."""
    return home / ".local" / "share"


def user_data_dir(home: Path) -> Path:
    """code-server's data folder (heartbeat) and user-data-dir (settings) in ``home``."""
    return data_home(home) / "code-server"


def heartbeat_file(home: Path) -> Path:
    """The file code-server touches on activity."""
    return user_data_dir(home) / HEARTBEAT


@dataclass(frozen=True)
class Beat:
    """The heartbeat file and when it was last touched (None: never yet)."""

    path: Path
    mtime: Optional[float]

    def describe(self, now: float) -> str:
        """One line for ``status``: how long ago, and the file to watch."""
        if self.mtime is None:
            return f"no activity recorded yet ({self.path})"
        return f"last activity {_ago(now - self.mtime)} ago ({self.path})"


def last_beat(home: Path) -> Beat:
    """Read the heartbeat's mtime."""
    path = heartbeat_file(home)
    try:
        return Beat(path, path.stat().st_mtime)
    except OSError:
        return Beat(path, None)


def _ago(seconds: float) -> str:
    seconds = max(0, int(seconds))
    if seconds < 120:
        return f"{seconds} s"
    if seconds < 7200:
        return f"{seconds // 60} min"
    return f"{seconds // 3600} h"
