"""The command line of code-server, as jupyter-server-proxy or a user passes it to the wrapper.

The wrapper needs a few flags (where to listen, how to authenticate, what to open); every
other code-server flag is passed through unchanged, unknown ones included: code-server
itself is the judge of those. Flags are split the way code-server splits them: a flag
that takes a value uses ``--flag=value`` or the next argument when that does not start
with ``-``; everything else that does not start with ``-`` is a path to open.
"""

from __future__ import annotations

import re
from collections.abc import Iterator, Sequence
from dataclasses import dataclass
from typing import Optional

from imagebuild.errors import UsageError

# code-server 4.x options that take a value (src/node/cli.ts); needed only to tell a
# flag's value from a folder argument.
VALUE_FLAGS = frozenset(
    {
        "--abs-proxy-base-path", "--app-name", "--auth", "--bind-addr", "--builtin-extensions-dir",
        "--category", "--cert", "--cert-host", "--cert-key", "--config", "--enable",
        "--enable-proposed-api", "--extensions-dir", "--github-auth", "--hashed-password",
        "--host", "--install-extension", "--locale", "--locate-extension", "--log", "--password",
        "--port", "--proxy-domain", "--session-socket", "--socket", "--socket-mode",
        "--trusted-origins", "--uninstall-extension", "--user-data-dir", "--welcome-text",
        "-an", "-w",
    }
)  # fmt: skip
# Deprecated by --bind-addr; passed through they would move code-server off the port
# the wrapper publishes.
_REFUSED = {"--host": "--bind-addr HOST:PORT", "--port": "--bind-addr HOST:PORT"}
_OURS = frozenset({"--bind-addr", "--socket", "--socket-mode", "--auth"})
_BIND_ADDR = re.compile(r"(\[[0-9A-Fa-f:.]+\]|[^:\[\]\s]+):([0-9]{1,5})")


@dataclass(frozen=True)
class BindAddr:
    """A TCP address code-server listens on."""

    host: str
    port: int

    def __str__(self) -> str:
        return f"[{self.host}]:{self.port}" if ":" in self.host else f"{self.host}:{self.port}"


@dataclass(frozen=True)
class CodeServerArgs:
    """What the wrapper needs from the command line, and everything else, in order."""

    bind: Optional[BindAddr] = None
    socket: Optional[str] = None
    socket_mode: Optional[str] = None
    auth: Optional[str] = None
    paths: tuple[str, ...] = ()  # folders or workspace files to open
    passthrough: tuple[str, ...] = ()  # every other flag, with its value

    @property
    def folder(self) -> Optional[str]:
        """The folder (or workspace file) to open: the last path given."""
        return self.paths[-1] if self.paths else None

    def has(self, flag: str) -> bool:
        """Whether ``flag`` was passed through, in either the ``--flag value`` or ``=`` form."""
        return any(arg == flag or arg.startswith(flag + "=") for arg in self.passthrough)


def parse_args(argv: Sequence[str]) -> CodeServerArgs:
    """Split code-server's command line; a malformed ``--bind-addr`` is a ``UsageError``."""
    ours, paths, rest = _split(argv)
    bind = ours.get("--bind-addr")
    return CodeServerArgs(
        bind=parse_bind_addr(bind) if bind is not None else None,
        socket=ours.get("--socket"),
        socket_mode=ours.get("--socket-mode"),
        auth=ours.get("--auth"),
        paths=tuple(paths),
        passthrough=tuple(rest),
    )


def _split(argv: Sequence[str]) -> tuple[dict[str, str], list[str], list[str]]:
    """The wrapper's own flags, the paths, and every other argument in order."""
    ours: dict[str, str] = {}
    paths: list[str] = []
    rest: list[str] = []
    for flag, value, raw in _tokens(argv):
        if flag is None:
            paths.append(raw[0])
        elif flag in _REFUSED:
            raise UsageError(f"{flag} is not supported by the sagecode wrapper", f"use {_REFUSED[flag]}")
        elif flag in _OURS:
            ours[flag] = _required(flag, value)
        else:
            rest.extend(raw)
    return ours, paths, rest


def parse_bind_addr(value: str) -> BindAddr:
    """``HOST:PORT`` (``[v6]:PORT`` too) with a port from 1 to 65535."""
    match = _BIND_ADDR.fullmatch(value)
    port = int(match.group(2)) if match else 0
    if not match or not 0 < port < 65536:
        raise UsageError(f"--bind-addr needs HOST:PORT, got {value!r}", "e.g. --bind-addr 127.0.0.1:8080")
    return BindAddr(match.group(1).strip("[]"), port)


def _required(flag: str, value: Optional[str]) -> str:
    if not value:
        raise UsageError(f"{flag} needs a value")
    return value


def _tokens(argv: Sequence[str]) -> Iterator[tuple[Optional[str], Optional[str], tuple[str, ...]]]:
    """``(flag, value, raw arguments)`` per flag, ``(None, None, (path,))`` per path."""
    ended = False
    i = 0
    while i < len(argv):
        arg = argv[i]
        i += 1
        if ended or not arg.startswith("-") or arg == "-":
            yield None, None, (arg,)
            continue
        ended = arg == "--"
        flag, equals, value = arg.partition("=") if arg.startswith("--") else (arg, "", "")
        if not equals and flag in VALUE_FLAGS and i < len(argv) and not argv[i].startswith("-"):
            i += 1
            yield flag, argv[i - 1], (arg, argv[i - 1])
        else:
            yield flag, value if equals else None, (arg,)
