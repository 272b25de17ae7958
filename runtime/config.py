"""The runtime's configuration: one frozen object, read from the environment in one place.

Every knob is a ``SAGECODE_*`` variable; the defaults suit a notebook instance.

| variable | default | meaning |
|---|---|---|
| ``SAGECODE_IMAGE`` | (unset) | image to run instead of the one in ``images/current.json`` |
| ``SAGECODE_CONTAINER`` | ``sagecode`` | name of the editor container |
| ``SAGECODE_WORKSPACE`` | ``~/SageMaker``, else ``$HOME`` | folder mounted at the same path and opened |
| ``SAGECODE_STATE_DIR`` | see ``imagebuild.paths`` | persistent state (home, images, logs, run) |
| ``SAGECODE_IMAGE_WAIT`` | ``300`` | seconds to wait for a running image restore |
| ``SAGECODE_DOCKER_SOCKET`` | ``0`` | ``1`` mounts the engine's socket into the container |
| ``SAGECODE_EXTRA_MOUNTS`` | (empty) | comma-separated ``HOST[:CONTAINER][:ro]`` bind mounts |
| ``SAGECODE_GPUS`` | ``auto`` | ``auto`` (when the NVIDIA runtime is there), ``all`` or ``none`` |
| ``SAGECODE_NETWORK`` | ``bridge`` | ``host`` where the engine allows it (rootful only) |
| ``SAGECODE_CREDENTIALS`` | ``on`` | ``off``: the host's AWS credentials are not relayed (``credrelay``) |
| ``SAGECODE_CREDENTIALS_REFRESH`` | ``1200`` | seconds before expiry the relay renews the credentials |
| ``SAGECODE_WAIT_PAGE`` | ``on`` | ``off``: no page on the address during a restore (``waitpage``) |
| ``AWS_EC2_METADATA_SERVICE_ENDPOINT`` | ``http://169.254.169.254`` | the SDKs' own; ``doctor`` probes it |
"""

from __future__ import annotations

import math
import os
import pwd
from collections.abc import Mapping
from dataclasses import dataclass
from pathlib import Path
from typing import Optional

from imagebuild.errors import UsageError
from imagebuild.paths import StatePaths, state_paths
from runtime.credrelay import REFRESH_AHEAD
from runtime.usermap import HostUser

DEFAULT_CONTAINER = "sagecode"
DEFAULT_IMAGE_WAIT = 300.0
DEFAULT_IMDS = "http://169.254.169.254"
GPU_CHOICES = ("auto", "all", "none")
NETWORK_CHOICES = ("bridge", "host")
# Passed to the container only when set on the host: proxies and the extension gallery
# are what VPC-only instances need to reach anything, the region (and endpoints) what the AWS SDKs need.
PASSTHROUGH_ENV = (
    "HTTP_PROXY",
    "HTTPS_PROXY",
    "NO_PROXY",
    "http_proxy",
    "https_proxy",
    "no_proxy",
    "EXTENSIONS_GALLERY",
    "AWS_REGION",
    "AWS_DEFAULT_REGION",
    "AWS_ENDPOINT_URL",  # the SDKs' endpoint overrides (a VPC endpoint, a test server)
    "AWS_ENDPOINT_URL_STS",
)
_TRUE = ("1", "true", "yes", "on")
_FALSE = ("", "0", "false", "no", "off")


@dataclass(frozen=True)
class Mount:
    """A bind mount: ``source`` on the host at ``target`` in the container."""

    source: Path
    target: Path
    readonly: bool = False


@dataclass(frozen=True)
class RuntimeConfig:
    """Everything the runtime needs to know that is not a command-line flag."""

    state: StatePaths
    workspace: Path
    user: HostUser
    host_home: Path
    image: Optional[str] = None
    container_name: str = DEFAULT_CONTAINER
    image_wait_seconds: float = DEFAULT_IMAGE_WAIT
    docker_socket: bool = False
    docker_host: str = ""
    extra_mounts: tuple[Mount, ...] = ()
    gpus: str = "auto"
    network: str = "bridge"
    passthrough_env: tuple[tuple[str, str], ...] = ()
    imds_endpoint: str = DEFAULT_IMDS
    credentials: bool = False  # load_config's default is on: a bare config (tests) relays nothing
    credentials_refresh: float = REFRESH_AHEAD
    wait_page: bool = True


def load_config(env: Optional[Mapping[str, str]] = None, user: Optional[HostUser] = None) -> RuntimeConfig:
    """Read the configuration from ``env`` (default: the process environment)."""
    env = os.environ if env is None else env
    home = Path(env.get("HOME") or Path.home())
    return RuntimeConfig(
        state=state_paths(env, home),
        workspace=_workspace(env, home),
        user=user or current_user(env),
        host_home=home,
        image=env.get("SAGECODE_IMAGE") or None,
        container_name=env.get("SAGECODE_CONTAINER") or DEFAULT_CONTAINER,
        image_wait_seconds=_seconds(env, "SAGECODE_IMAGE_WAIT", DEFAULT_IMAGE_WAIT),
        docker_socket=_flag(env, "SAGECODE_DOCKER_SOCKET"),
        docker_host=env.get("DOCKER_HOST", ""),
        extra_mounts=parse_mounts(env.get("SAGECODE_EXTRA_MOUNTS", "")),
        gpus=_choice(env, "SAGECODE_GPUS", GPU_CHOICES),
        network=_choice(env, "SAGECODE_NETWORK", NETWORK_CHOICES),
        passthrough_env=tuple((k, env[k]) for k in PASSTHROUGH_ENV if env.get(k)),
        imds_endpoint=env.get("AWS_EC2_METADATA_SERVICE_ENDPOINT") or DEFAULT_IMDS,
        credentials=_flag(env, "SAGECODE_CREDENTIALS", default=True),
        credentials_refresh=_seconds(env, "SAGECODE_CREDENTIALS_REFRESH", REFRESH_AHEAD),
        wait_page=_flag(env, "SAGECODE_WAIT_PAGE", default=True),
    )


def current_user(env: Mapping[str, str]) -> HostUser:
    """The user this process runs as; ``USER`` names it when the passwd entry is missing."""
    uid, gid = os.getuid(), os.getgid()
    try:
        name = pwd.getpwuid(uid).pw_name
    except KeyError:
        name = env.get("USER") or f"u{uid}"
    return HostUser(uid=uid, gid=gid, name=name)


def parse_mounts(spec: str) -> tuple[Mount, ...]:
    """``HOST[:CONTAINER][:ro|rw]`` entries separated by commas, as ``docker -v`` spells them."""
    return tuple(_mount(item.strip()) for item in spec.split(",") if item.strip())


def _mount(item: str) -> Mount:
    parts = item.split(":")
    readonly = False
    if len(parts) > 1 and parts[-1] in ("ro", "rw"):
        readonly = parts.pop() == "ro"
    if len(parts) > 2:
        raise UsageError(f"bad mount in SAGECODE_EXTRA_MOUNTS: {item!r}", "use HOST[:CONTAINER][:ro]")
    source = Path(parts[0]).expanduser()
    target = Path(parts[-1]).expanduser()
    if not (source.is_absolute() and target.is_absolute()):
        raise UsageError(f"mount paths must be absolute: {item!r}", "use /abs/host[:/abs/dest][:ro]")
    return Mount(source, target, readonly)


def _workspace(env: Mapping[str, str], home: Path) -> Path:
    if env.get("SAGECODE_WORKSPACE"):
        return Path(env["SAGECODE_WORKSPACE"]).expanduser()
    sagemaker = home / "SageMaker"
    return sagemaker if sagemaker.is_dir() else home


def _flag(env: Mapping[str, str], name: str, default: bool = False) -> bool:
    value = env.get(name, "").strip().lower()
    if value not in _TRUE + _FALSE:
        raise UsageError(f"{name}={value!r} is not a yes/no value", f"set {name} to 1 or 0")
    return default if not value else value in _TRUE


def _seconds(env: Mapping[str, str], name: str, default: float) -> float:
    value = env.get(name, "").strip()
    try:
        seconds = float(value) if value else default
    except ValueError:
        seconds = math.nan
    if not (math.isfinite(seconds) and seconds >= 0):
        raise UsageError(f"{name}={value!r} is not a number of seconds", f"e.g. {name}=300")
    return seconds


def _choice(env: Mapping[str, str], name: str, choices: tuple[str, ...]) -> str:
    value = env.get(name, "").strip().lower() or choices[0]
    if value not in choices:
        raise UsageError(f"{name}={value!r} is not one of {', '.join(choices)}")
    return value
