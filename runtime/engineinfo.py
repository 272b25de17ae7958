"""Facts about the Docker engine, read from ``docker info --format '{{json .}}'`` data.

Pure functions over that JSON, so every kind of engine a notebook instance may have is
unit-tested from recorded samples. Only ``runtime.container`` asks the engine for it.
"""

from __future__ import annotations

import re
from collections.abc import Mapping
from enum import Enum
from typing import Any, Optional

# Where a rootless daemon listens (``$XDG_RUNTIME_DIR/docker.sock``); older engines did
# not report ``name=rootless``, so the socket path is the fallback signal.
_ROOTLESS_HOST = re.compile(r"unix:///run/user/\d+/docker\.sock")
# With userns-remap the engine keeps its data in ``<root>/<uid>.<gid>``, named after the
# host ids that container root maps to.
_REMAP_ROOT_DIR = re.compile(r".*/(\d+)\.(\d+)/?")

Info = Mapping[str, Any]


class EngineMode(str, Enum):
    """How container users relate to host users."""

    ROOTFUL = "rootful"  # container uid N is host uid N
    REMAP = "remap"  # userns-remap: container root is an unprivileged host uid
    ROOTLESS = "rootless"  # the daemon runs as a user: container root is that user


def security_names(info: Info) -> frozenset[str]:
    """The ``name=`` of each entry in ``SecurityOptions`` (``seccomp``, ``rootless``, ...)."""
    names = set()
    for option in info.get("SecurityOptions") or ():
        for field in str(option).split(","):
            key, _, value = field.partition("=")
            if key == "name":
                names.add(value)
    return frozenset(names)


def engine_mode(info: Info, docker_host: str = "") -> EngineMode:
    """Rootless, userns-remap or plain rootful, from ``docker info`` and ``DOCKER_HOST``."""
    names = security_names(info)
    if "rootless" in names or _ROOTLESS_HOST.fullmatch(docker_host):
        return EngineMode.ROOTLESS
    if "userns" in names:
        return EngineMode.REMAP
    return EngineMode.ROOTFUL


def remapped_root_uid(info: Info) -> Optional[int]:
    """The host uid that container root maps to under userns-remap, when the engine says."""
    match = _REMAP_ROOT_DIR.fullmatch(str(info.get("DockerRootDir") or ""))
    return int(match.group(1)) if match else None


def has_nvidia_runtime(info: Info) -> bool:
    """Whether the NVIDIA container runtime is registered, so ``--gpus all`` can work."""
    return "nvidia" in (info.get("Runtimes") or {})
