"""Which processes listen on which TCP addresses, read from /proc (no ss/netstat needed).

A socket is matched to its process through the ``socket:[inode]`` links in /proc/PID/fd,
so a test can tell its own listeners from those of other programs on a shared machine.
"""

from __future__ import annotations

import contextlib
import socket
from pathlib import Path

LISTEN = "0A"


def listeners(pid: int) -> dict[str, str]:
    """``{inode: "address:port"}`` of the listening TCP sockets in ``pid``'s network namespace."""
    found = {}
    for table, width in (("tcp", 8), ("tcp6", 32)):
        path = Path(f"/proc/{pid}/net/{table}")
        for line in path.read_text().splitlines()[1:]:
            fields = line.split()
            address, _, port = fields[1].partition(":")
            if fields[3] == LISTEN and len(address) == width:
                found[fields[9]] = f"{_address(address)}:{int(port, 16)}"
    return found


def socket_inodes(pid: int) -> set[str]:
    """The inodes of the sockets ``pid`` holds open."""
    inodes = set()
    with contextlib.suppress(OSError):
        for fd in Path(f"/proc/{pid}/fd").iterdir():
            with contextlib.suppress(OSError):
                link = str(fd.readlink())
                if link.startswith("socket:["):
                    inodes.add(link[8:-1])
    return inodes


def descendants(pid: int) -> set[int]:
    """``pid`` and every process below it."""
    children: dict[int, list[int]] = {}
    for entry in Path("/proc").iterdir():
        if entry.name.isdigit():
            with contextlib.suppress(OSError):
                ppid = int((entry / "stat").read_text().rsplit(")", 1)[1].split()[1])
                children.setdefault(ppid, []).append(int(entry.name))
    found, todo = set(), [pid]
    while todo:
        current = todo.pop()
        found.add(current)
        todo.extend(children.get(current, []))
    return found


def processes_named(name: str) -> set[int]:
    """Pids whose command name is ``name``."""
    pids = set()
    for entry in Path("/proc").iterdir():
        with contextlib.suppress(OSError):
            if entry.name.isdigit() and (entry / "comm").read_text().strip() == name:
                pids.add(int(entry.name))
    return pids


def listening_by(pids: set[int]) -> set[str]:
    """Every address any of ``pids`` listens on, in whatever network namespace each is."""
    out = set()
    for pid in pids:
        with contextlib.suppress(OSError):
            held = socket_inodes(pid)
            out |= {addr for inode, addr in listeners(pid).items() if inode in held}
    return out


def net_namespace(pid: int) -> str:
    """The network namespace ``pid`` is in (``net:[inode]``)."""
    return str(Path(f"/proc/{pid}/ns/net").readlink())


def is_loopback(address: str) -> bool:
    """Whether ``host:port`` is on 127.0.0.0/8 or ::1."""
    host = address.rsplit(":", 1)[0]
    return host.startswith("127.") or host == "::1"


def _address(hexaddr: str) -> str:
    raw = bytes.fromhex(hexaddr)
    words = b"".join(raw[i : i + 4][::-1] for i in range(0, len(raw), 4))  # little-endian words
    return socket.inet_ntop(socket.AF_INET if len(raw) == 4 else socket.AF_INET6, words)
