"""Engine facts and user mapping from recorded ``docker info`` data (runtime.engineinfo, usermap)."""

from __future__ import annotations

from typing import Any

import pytest

from runtime.engineinfo import (
    EngineMode,
    engine_mode,
    has_nvidia_runtime,
    remapped_root_uid,
    security_names,
)
from runtime.usermap import HostUser, UserMapping, user_mapping

EC2_USER = HostUser(1000, 1000, "ec2-user")
ROOTLESS_HOST = "unix:///run/user/1000/docker.sock"

# Recorded here with `docker info --format '{{json .}}'` (rootful Docker 26.1.5, containerd
# image store); only the fields about users, storage, runtimes and security are kept.
ROOTFUL: dict[str, Any] = {
    "Driver": "overlayfs",
    "DriverStatus": [["driver-type", "io.containerd.snapshotter.v1"]],
    "CgroupDriver": "cgroupfs",
    "CgroupVersion": "1",
    "DockerRootDir": "/var/lib/docker",
    "ServerVersion": "26.1.5+dfsg1",
    "Runtimes": {"io.containerd.runc.v2": {"path": "runc"}, "runc": {"path": "runc"}},
    "DefaultRuntime": "runc",
    "InitBinary": "docker-init",
    "SecurityOptions": ["name=seccomp,profile=builtin"],
    "CDISpecDirs": [],
    "Warnings": None,
}
# The shapes Docker documents for the other engines an instance may have.
ROOTLESS: dict[str, Any] = {
    **ROOTFUL,
    "Driver": "overlay2",
    "DriverStatus": [["Backing Filesystem", "extfs"]],
    "CgroupDriver": "systemd",
    "CgroupVersion": "2",
    "DockerRootDir": "/home/ec2-user/.local/share/docker",
    "SecurityOptions": ["name=seccomp,profile=builtin", "name=rootless", "name=cgroupns"],
    "Warnings": ["WARNING: No cpu cfs quota support", "WARNING: No cpu cfs period support"],
}
# userns-remap as docker-engine.sh sets it up: container root is the host user (uid 1000).
REMAP_TO_USER: dict[str, Any] = {
    **ROOTFUL,
    "DockerRootDir": "/var/lib/docker/1000.1000",
    "SecurityOptions": ["name=apparmor", "name=seccomp,profile=builtin", "name=userns"],
}
# "userns-remap": "default": container root is dockremap's first subordinate id.
REMAP_DEFAULT: dict[str, Any] = {**REMAP_TO_USER, "DockerRootDir": "/var/lib/docker/231072.231072"}
# A GPU instance: the NVIDIA container toolkit registers its runtime.
ROOTFUL_GPU: dict[str, Any] = {
    **ROOTFUL,
    "Runtimes": {**ROOTFUL["Runtimes"], "nvidia": {"path": "nvidia-container-runtime"}},
}


@pytest.mark.parametrize(
    ("info", "mode"),
    [
        (ROOTFUL, EngineMode.ROOTFUL),
        (ROOTFUL_GPU, EngineMode.ROOTFUL),
        (ROOTLESS, EngineMode.ROOTLESS),
        (REMAP_TO_USER, EngineMode.REMAP),
        (REMAP_DEFAULT, EngineMode.REMAP),
    ],
)
def test_engineinfo_mode_from_security_options(info: dict[str, Any], mode: EngineMode) -> None:
    """``name=rootless`` means rootless, ``name=userns`` remap, neither plain rootful."""
    assert engine_mode(info) is mode


def test_engineinfo_rootless_socket_means_rootless() -> None:
    """An engine too old to say ``name=rootless`` is still rootless behind a per-user socket."""
    assert engine_mode(ROOTFUL, ROOTLESS_HOST) is EngineMode.ROOTLESS


def test_engineinfo_other_docker_host_changes_nothing() -> None:
    """A TCP or system ``DOCKER_HOST`` says nothing about rootlessness."""
    assert engine_mode(ROOTFUL, "unix:///var/run/docker.sock") is EngineMode.ROOTFUL


def test_engineinfo_security_names_read_every_entry() -> None:
    """Each option's ``name=`` is read, whatever follows it."""
    assert security_names(ROOTLESS) == {"seccomp", "rootless", "cgroupns"}


def test_engineinfo_empty_info_is_rootful_without_gpus() -> None:
    """Missing or null fields read as a plain rootful engine with no NVIDIA runtime."""
    info = {"SecurityOptions": None, "Runtimes": None}
    assert (engine_mode(info), has_nvidia_runtime(info), remapped_root_uid(info)) == (
        EngineMode.ROOTFUL,
        False,
        None,
    )


@pytest.mark.parametrize(("info", "uid"), [(REMAP_TO_USER, 1000), (REMAP_DEFAULT, 231072), (ROOTFUL, None)])
def test_engineinfo_remapped_root_from_root_dir(info: dict[str, Any], uid: int | None) -> None:
    """The remapped data root ``<uid>.<gid>`` names the host uid of container root."""
    assert remapped_root_uid(info) == uid


def test_engineinfo_nvidia_runtime_detected() -> None:
    """The NVIDIA runtime shows in ``Runtimes`` on GPU instances only."""
    assert (has_nvidia_runtime(ROOTFUL_GPU), has_nvidia_runtime(ROOTFUL)) == (True, False)


def test_usermap_rootful_drops_to_host_user() -> None:
    """Rootful: the entrypoint gets the host user's uid, gid and name; host networking is allowed."""
    assert user_mapping(ROOTFUL, EC2_USER) == UserMapping(
        EngineMode.ROOTFUL,
        env=(("SAGECODE_UID", "1000"), ("SAGECODE_GID", "1000"), ("SAGECODE_USER", "ec2-user")),
        host_network=True,
        owner_uid=1000,
    )


def test_usermap_rootful_as_root_needs_no_drop() -> None:
    """A host root caller runs as container root: no drop variables."""
    mapping = user_mapping(ROOTFUL, HostUser(0, 0, "root"))
    assert (mapping.env, mapping.owner_uid) == ((), 0)


def test_usermap_rootless_stays_container_root() -> None:
    """Rootless: container root is the host user; no drop, no host networking."""
    assert user_mapping(ROOTLESS, EC2_USER, ROOTLESS_HOST) == UserMapping(EngineMode.ROOTLESS, owner_uid=1000)


def test_usermap_remap_to_user_stays_container_root() -> None:
    """Remap onto the host user: no drop, no host networking (it would need --userns=host)."""
    assert user_mapping(REMAP_TO_USER, EC2_USER) == UserMapping(EngineMode.REMAP, owner_uid=1000)


def test_usermap_default_remap_reports_foreign_owner() -> None:
    """Remap onto dockremap's range: files would belong to uid 231072, which the mapping says."""
    assert user_mapping(REMAP_DEFAULT, EC2_USER).owner_uid == 231072
