"""The runtime's configuration from the environment (runtime.config)."""

from __future__ import annotations

import os
from pathlib import Path

import pytest

from imagebuild.errors import UsageError
from imagebuild.paths import StatePaths
from runtime.config import Mount, RuntimeConfig, current_user, load_config, parse_mounts
from runtime.usermap import HostUser

USER = HostUser(1000, 1000, "ec2-user")


def config_for(tmp_path: Path, **env: str) -> RuntimeConfig:
    """The configuration for a home at ``tmp_path`` and the given variables."""
    return load_config({"HOME": str(tmp_path), **env}, user=USER)


def test_config_defaults_on_a_notebook_instance(tmp_path: Path) -> None:
    """With ``~/SageMaker`` present, the workspace and the state live on it; the rest is default."""
    (tmp_path / "SageMaker").mkdir()
    assert config_for(tmp_path) == RuntimeConfig(
        state=StatePaths(tmp_path / "SageMaker" / ".sagecode"),
        workspace=tmp_path / "SageMaker",
        user=USER,
        host_home=tmp_path,
        credentials=True,
    )


def test_config_workspace_falls_back_to_home(tmp_path: Path) -> None:
    """Without ``~/SageMaker`` the workspace is the home itself."""
    assert config_for(tmp_path).workspace == tmp_path


def test_config_variables_override_defaults(tmp_path: Path) -> None:
    """Each ``SAGECODE_*`` variable sets its field."""
    config = config_for(
        tmp_path,
        SAGECODE_IMAGE="sagecode:0123456789ab",
        SAGECODE_CONTAINER="editor2",
        SAGECODE_WORKSPACE="/data/ws",
        SAGECODE_STATE_DIR="/data/state",
        SAGECODE_IMAGE_WAIT="42.5",
        SAGECODE_DOCKER_SOCKET="yes",
        SAGECODE_GPUS="None",
        SAGECODE_NETWORK="host",
        DOCKER_HOST="unix:///run/user/1000/docker.sock",
    )
    assert (config.image, config.container_name, config.workspace, config.state.root) == (
        "sagecode:0123456789ab",
        "editor2",
        Path("/data/ws"),
        Path("/data/state"),
    )
    assert (config.image_wait_seconds, config.docker_socket, config.gpus, config.network) == (
        42.5,
        True,
        "none",
        "host",
    )
    assert config.docker_host == "unix:///run/user/1000/docker.sock"


def test_config_passes_only_set_proxy_variables(tmp_path: Path) -> None:
    """Proxy and gallery variables go to the container only when set and non-empty."""
    config = config_for(tmp_path, HTTPS_PROXY="http://proxy:3128", NO_PROXY="", PATH="/usr/bin")
    assert config.passthrough_env == (("HTTPS_PROXY", "http://proxy:3128"),)


def test_config_extra_mounts_in_docker_v_spelling() -> None:
    """``HOST``, ``HOST:DEST`` and ``:ro``/``:rw`` forms, comma-separated."""
    assert parse_mounts("/data, /a:/b:ro ,/c:rw,") == (
        Mount(Path("/data"), Path("/data")),
        Mount(Path("/a"), Path("/b"), readonly=True),
        Mount(Path("/c"), Path("/c")),
    )


@pytest.mark.parametrize("spec", ["data", "/a:b", "/a:/b:/c", "/a:/b:ro:ro"])
def test_config_bad_extra_mount_is_usage_error(spec: str) -> None:
    """Relative paths and extra fields are refused before anything runs."""
    with pytest.raises(UsageError):
        parse_mounts(spec)


@pytest.mark.parametrize(
    ("name", "value"),
    [
        ("SAGECODE_DOCKER_SOCKET", "maybe"),
        ("SAGECODE_GPUS", "some"),
        ("SAGECODE_NETWORK", "overlay"),
        ("SAGECODE_IMAGE_WAIT", "soon"),
        ("SAGECODE_IMAGE_WAIT", "-1"),
        ("SAGECODE_IMAGE_WAIT", "nan"),
    ],
)
def test_config_bad_value_is_usage_error(tmp_path: Path, name: str, value: str) -> None:
    """A value outside its field's range names the variable in a UsageError."""
    with pytest.raises(UsageError, match=name):
        config_for(tmp_path, **{name: value})


def test_config_current_user_is_this_process() -> None:
    """The host user is this process's uid and gid."""
    user = current_user({})
    assert (user.uid, user.gid) == (os.getuid(), os.getgid())
