"""``sagecode doctor``'s judgements: pure functions from facts to OK / warning / problem.

Gathering the facts (the engine, the disk, the Jupyter environment) is ``runtime.doctor``;
here each check says what it found and, when it is not OK, what to do about it.
"""

from __future__ import annotations

import re
from dataclasses import dataclass
from enum import Enum
from pathlib import Path
from typing import Optional

from imagebuild.console import human
from imagebuild.errors import SagecodeError
from runtime.engineinfo import EngineMode, Info
from runtime.usermap import HostUser, user_mapping

NATIVE_GLIBC = (2, 28)  # code-server >= 4.17 and Node 24 are linked against glibc 2.28
MIN_ENGINE = (20, 10, 10)  # older seccomp profiles block clone3: glibc >= 2.34 images fail
MIN_JSP = (4, 2, 0)  # jupyter-server-proxy's security fixes
GIB = 1 << 30
BUILD_HEADROOM = 3 * GIB  # build layers and the cache beside the saved tars
ASSUMED_TAR = 1 * GIB  # before the first save: about what the full image's tar weighs
REMAP_FIX = 'map container root to you: "userns-remap": "<you>" in /etc/docker/daemon.json'


class Level(str, Enum):
    """How bad a finding is; any problem makes ``doctor`` exit non-zero."""

    OK = "OK"
    WARNING = "warning"
    PROBLEM = "problem"


@dataclass(frozen=True)
class Check:
    """One finding: what was checked, the verdict, what was found, what to do."""

    name: str
    level: Level
    detail: str
    fix: str = ""


def version_tuple(text: str) -> tuple[int, ...]:
    """The first three numbers in ``text`` (``26.1.5+dfsg1`` -> ``(26, 1, 5)``)."""
    return tuple(int(n) for n in re.findall(r"\d+", text)[:3])


def glibc_check(version: Optional[str]) -> Check:
    """The host's glibc, and whether a native code-server would run on it."""
    if version is None:
        return Check("host glibc", Level.WARNING, "no glibc found: native code-server would not run here")
    native = version_tuple(version) >= NATIVE_GLIBC
    would = "would run here too" if native else "would not run here (needs glibc 2.28)"
    return Check("host glibc", Level.OK, f"glibc {version}: a native code-server >= 4.17 {would}")


def engine_check(server_version: str) -> Check:
    """The engine's version, refused before the clone3 seccomp fix."""
    if version_tuple(server_version) < MIN_ENGINE:
        return Check(
            "engine", Level.PROBLEM,
            f"Docker {server_version} blocks clone3 (seccomp): images with glibc >= 2.34 cannot start",
            "upgrade Docker to 20.10.10 or newer",
        )  # fmt: skip
    return Check("engine", Level.OK, f"Docker {server_version}")


def engine_down(error: SagecodeError) -> Check:
    """The engine did not answer; the checks that need it are left out."""
    return Check(
        "engine",
        Level.PROBLEM,
        f"{error.what}; checks that need the engine were skipped",
        error.fix or "start Docker",
    )


def mode_check(info: Info, user: HostUser, docker_host: str) -> Check:
    """Rootless, userns-remap or rootful, and whose files the editor will write."""
    mapping = user_mapping(info, user, docker_host)
    you = f"uid {user.uid} ({user.name})"
    if mapping.mode is EngineMode.ROOTLESS:
        return Check("user mapping", Level.OK, f"rootless: container root is {you}")
    if mapping.mode is EngineMode.ROOTFUL:
        return Check("user mapping", Level.OK, f"rootful: the editor runs as {you}, gid {user.gid}")
    if mapping.owner_uid is None:
        return Check(
            "user mapping",
            Level.WARNING,
            "userns-remap to an unknown uid: files the editor writes may not be yours",
            REMAP_FIX,
        )
    if mapping.owner_uid != user.uid:
        return Check(
            "user mapping",
            Level.PROBLEM,
            f"userns-remap makes container root uid "
            f"{mapping.owner_uid}, not {you}: files on the volume would be theirs",
            REMAP_FIX,
        )
    return Check("user mapping", Level.OK, f"userns-remap: container root is {you}")


def builder_check(buildx: str, driver: str, can_export_cache: bool) -> Check:
    """Whether builds keep a build cache on the volume."""
    found = f"buildx {buildx}, {driver} driver"
    if can_export_cache:
        return Check("builder", Level.OK, f"{found}: exports the build cache")
    return Check(
        "builder", Level.WARNING,
        f"{found} on the classic image store: no build cache survives a restart (rebuilds start over)",
        'turn on the containerd image store ("features": {"containerd-snapshotter": true}) '
        "or create a builder: docker buildx create --use --driver docker-container",
    )  # fmt: skip


def space_check(root: Path, free: int, tar_bytes: Optional[int]) -> Check:
    """Free space on the persistent volume against the next build and save."""
    tar = tar_bytes or ASSUMED_TAR
    need = 2 * tar + BUILD_HEADROOM
    basis = f"2 x the last tar ({human(tar)}) + 3 GiB" if tar_bytes else "no saved tar yet: 2 x 1 GiB + 3 GiB"
    found = f"{human(free)} free for {root}; the next build and save need about {human(need)} ({basis})"
    if free >= need:
        return Check("volume space", Level.OK, found)
    return Check(
        "volume space",
        Level.PROBLEM,
        found,
        "grow the notebook's volume (SageMaker console: Volume size in GB) or free space on it",
    )


def jsp_check(env: Path, env_found: bool, version: Optional[str]) -> Check:
    """jupyter-server-proxy in the Jupyter server's environment (the launcher card needs it)."""
    pip = f"{env}/bin/pip install 'jupyter-server-proxy>=4.2.0'"
    if not env_found:
        return Check(
            "jupyter-server-proxy",
            Level.WARNING,
            f"no Jupyter environment at {env}",
            "name the Jupyter server's environment: sagecode doctor --jupyter-env PATH",
        )
    if version is None:
        return Check("jupyter-server-proxy", Level.PROBLEM, f"not installed in {env}", pip)
    if version_tuple(version) < MIN_JSP:
        return Check(
            "jupyter-server-proxy",
            Level.PROBLEM,
            f"{version} in {env} lacks the security fixes of 4.2.0",
            pip,
        )
    return Check("jupyter-server-proxy", Level.OK, f"{version} in {env}")


def render(checks: list[Check]) -> str:
    """One line per check, then its fix indented; a last line counts what needs attention."""
    lines = []
    for check in checks:
        lines.append(f"{check.level.value:<8} {check.name}: {check.detail}")
        if check.fix and check.level is not Level.OK:
            lines.append(f"{'':<8} fix: {check.fix}")
    problems = sum(c.level is Level.PROBLEM for c in checks)
    warnings = sum(c.level is Level.WARNING for c in checks)
    lines.append(f"{problems} problem(s), {warnings} warning(s)")
    return "\n".join(lines)
