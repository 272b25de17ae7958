"""Which user the editor runs as, so that what it writes on the volume is the host user's.

- rootless: container root *is* the host user that runs the daemon: stay root.
- userns-remap: container root is the remapped host uid: stay root (and say which uid).
- rootful: container root is real root; the entrypoint adds ``SAGECODE_USER`` with
  ``SAGECODE_UID``/``SAGECODE_GID`` to the container's passwd and drops to it.

Host networking is only offered on rootful engines: rootless puts ``--network host`` in
RootlessKit's namespace, not the host's, and remap needs ``--userns=host`` for it, which
would undo the remapping.
"""

from __future__ import annotations

from dataclasses import dataclass
from typing import Optional

from runtime.engineinfo import EngineMode, Info, engine_mode, remapped_root_uid


@dataclass(frozen=True)
class HostUser:
    """The host user the editor works for (normally ``ec2-user``)."""

    uid: int
    gid: int
    name: str


@dataclass(frozen=True)
class UserMapping:
    """How to run the container so files belong to the host user."""

    mode: EngineMode
    env: tuple[tuple[str, str], ...] = ()  # for the entrypoint's drop to the host user
    host_network: bool = False  # whether ``--network host`` means the host's network
    owner_uid: Optional[int] = None  # host uid owning what the container writes, if known


def user_mapping(info: Info, user: HostUser, docker_host: str = "") -> UserMapping:
    """The mapping for ``user`` on the engine described by ``info``."""
    mode = engine_mode(info, docker_host)
    if mode is EngineMode.ROOTLESS:
        return UserMapping(mode, owner_uid=user.uid)
    if mode is EngineMode.REMAP:
        return UserMapping(mode, owner_uid=remapped_root_uid(info))
    return UserMapping(mode, env=drop_env(user), host_network=True, owner_uid=user.uid)


def drop_env(user: HostUser) -> tuple[tuple[str, str], ...]:
    """The entrypoint's variables for dropping to ``user``; none for root, which needs no drop."""
    if user.uid == 0:
        return ()
    return (
        ("SAGECODE_UID", str(user.uid)),
        ("SAGECODE_GID", str(user.gid)),
        ("SAGECODE_USER", user.name),
    )
