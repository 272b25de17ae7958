"""The exact ``docker run`` command line for the editor container, as a list: pure and golden-tested.

The wrapper runs the argv returned here after the engine's own command
(``runtime.container`` prefixes the docker binary and its context); nothing here talks to
the engine or looks at the file system, so every decision below is visible in a test.

Why it looks like this:
- ``--rm --init``: nothing survives the wrapper but the volume; tini forwards signals
  and reaps the language servers' zombies.
- TCP: code-server listens on every interface *inside* the container, and only
  ``127.0.0.1:PORT`` is published on the host: Jupyter authenticates, code-server runs
  ``--auth none`` behind it, so nothing else may reach the port. With host networking
  (rootful only) it listens on ``127.0.0.1`` itself and nothing is published.
- Socket: the socket's private directory is mounted at the same path, so the host's
  Jupyter connects to the file code-server creates; no port at all.
- Mounts: the workspace and the persistent home at their host paths (absolute paths in
  settings and symlinks mean the same on both sides), ``/opt/ml`` read-only. Not the
  host's ``/tmp`` (code-server keeps its sockets there), not the engine's socket unless
  asked: either one hands the container the host.
"""

from __future__ import annotations

import csv
import io
from dataclasses import dataclass
from pathlib import Path, PurePosixPath
from typing import Optional

from imagebuild.errors import UsageError
from runtime.args import BindAddr, CodeServerArgs
from runtime.config import Mount, RuntimeConfig
from runtime.credrelay import CONTAINER_DIR, CONTAINER_FORWARDER, FORWARDER, RelayMount, container_env
from runtime.heartbeat import data_home, user_data_dir
from runtime.usermap import UserMapping

ROLE_LABEL = "org.sagecode.role"
CONTENT_LABEL = "org.sagecode.content"
EDITOR_ROLE = "editor"
SHELL = "/bin/zsh"
TERM = "xterm-256color"
OPT_ML = Path("/opt/ml")
DEFAULT_PORT = 8080  # code-server's own default when no --bind-addr is given
DEFAULT_SOCKET_MODE = "600"
PUBLISH_HOST = "127.0.0.1"
DEFAULT_DOCKER_SOCKET = Path("/var/run/docker.sock")
# Mounting one of these for a socket would share it whole with the container: they are
# named here to be refused, not used.
_SHARED = ("/", "/tmp", "/var/tmp", "/dev/shm", "/run")  # noqa: S108
_SHARED_DIRS = frozenset(PurePosixPath(p) for p in _SHARED)


@dataclass(frozen=True)
class Image:
    """The image to run: its reference and its content hash (``org.sagecode.content``)."""

    ref: str
    content: str


@dataclass(frozen=True)
class HostFacts:
    """What the caller found on the host and the engine before planning."""

    opt_ml: bool = False  # /opt/ml exists (SageMaker's instance metadata)
    nvidia: bool = False  # the engine has the NVIDIA runtime
    docker_socket_gid: Optional[int] = None  # group owning the engine socket, when mounted
    credentials: Optional[RelayMount] = None  # the wrapper's credential relay, when it runs


def run_argv(
    config: RuntimeConfig,
    args: CodeServerArgs,
    mapping: UserMapping,
    image: Image,
    facts: HostFacts,
) -> list[str]:
    """``run ...`` for the editor container: the engine flags, the image, code-server's flags."""
    return [
        "run", "--rm", "--init", "--name", config.container_name,
        *label_flags(image),
        *network_flags(config, args, mapping),
        *gpu_flags(config, facts),
        *env_flags(config, mapping),
        *mount_flags(config, args, facts),
        *credential_flags(config, facts),
        "--workdir", str(config.workspace),
        image.ref,
        *code_server_flags(config, args, mapping),
    ]  # fmt: skip


def label_flags(image: Image) -> list[str]:
    """Labels that let the wrapper find its container and tell which image it runs."""
    return ["--label", f"{ROLE_LABEL}={EDITOR_ROLE}", "--label", f"{CONTENT_LABEL}={image.content}"]


def uses_host_network(config: RuntimeConfig, mapping: UserMapping) -> bool:
    """Host networking when asked for and the engine's host network is the host's own."""
    return config.network == "host" and mapping.host_network


def relay_opens(config: RuntimeConfig, mapping: UserMapping) -> bool:
    """Whether the editor can open the relay's private folder: the host owner is the user itself.

    True on rootful (the editor drops to the user) and rootless engines; under userns-remap
    only when container root is mapped onto this user.
    """
    return mapping.owner_uid == config.user.uid


def network_flags(config: RuntimeConfig, args: CodeServerArgs, mapping: UserMapping) -> list[str]:
    """``--network host``, or the one published loopback port in TCP mode, or nothing."""
    if uses_host_network(config, mapping):
        return ["--network", "host"]
    if args.socket:
        return []
    port = listen_port(args)
    return ["--publish", f"{PUBLISH_HOST}:{port}:{port}"]


def gpu_flags(config: RuntimeConfig, facts: HostFacts) -> list[str]:
    """``--gpus all`` when asked for, or on ``auto`` when the NVIDIA runtime is there."""
    wanted = config.gpus == "all" or (config.gpus == "auto" and facts.nvidia)
    return ["--gpus", "all"] if wanted else []


def env_flags(config: RuntimeConfig, mapping: UserMapping) -> list[str]:
    """HOME on the volume, the shell, the user to drop to, and the host's proxy settings.

    ``XDG_DATA_HOME`` is pinned to its default under that HOME: code-server writes its
    heartbeat there (not in ``--user-data-dir``), and the host's idle check reads it.
    """
    env = [
        ("HOME", str(config.state.home)),
        ("XDG_DATA_HOME", str(data_home(config.state.home))),
        ("SHELL", SHELL),
        ("TERM", TERM),
        *mapping.env,
        *config.passthrough_env,
    ]
    return [flag for key, value in env for flag in ("--env", f"{key}={value}")]


def credential_flags(config: RuntimeConfig, facts: HostFacts) -> list[str]:
    """The relay's folder and forwarder (read-only) and the SDK variables that point at them."""
    relay = facts.credentials
    if relay is None:
        return []
    mounts = [Mount(relay.directory, Path(CONTAINER_DIR), readonly=True),
              Mount(FORWARDER, Path(CONTAINER_FORWARDER), readonly=True)]  # fmt: skip
    env = [
        flag
        for key, value in container_env(relay, config.passthrough_env)
        for flag in ("--env", f"{key}={value}")
    ]
    return [*env, *(flag for mount in mounts for flag in bind_flag(mount))]


def mount_flags(config: RuntimeConfig, args: CodeServerArgs, facts: HostFacts) -> list[str]:
    """Bind mounts; ``--mount`` (unlike ``-v``) fails on a missing source instead of making it."""
    mounts = [Mount(config.workspace, config.workspace), Mount(config.state.home, config.state.home)]
    if facts.opt_ml:
        mounts.append(Mount(OPT_ML, OPT_ML, readonly=True))
    if args.socket:
        directory = socket_dir(args.socket)
        mounts.append(Mount(directory, directory))
    flags = [flag for mount in (*mounts, *config.extra_mounts) for flag in bind_flag(mount)]
    return flags + docker_socket_flags(config, facts)


def docker_socket_flags(config: RuntimeConfig, facts: HostFacts) -> list[str]:
    """The engine's socket at the usual path, and its group, only when the user opted in."""
    socket = engine_socket(config.docker_host) if config.docker_socket else None
    if socket is None:
        return []
    group = ["--group-add", str(facts.docker_socket_gid)] if facts.docker_socket_gid else []
    return [*bind_flag(Mount(socket, DEFAULT_DOCKER_SOCKET)), *group]


def engine_socket(docker_host: str) -> Optional[Path]:
    """The engine's unix socket from ``DOCKER_HOST`` (default path when unset; none for TCP)."""
    if not docker_host:
        return DEFAULT_DOCKER_SOCKET
    return Path(docker_host[len("unix://") :]) if docker_host.startswith("unix://") else None


def bind_flag(mount: Mount) -> list[str]:
    """One ``--mount`` flag; fields are CSV-quoted as docker parses them, so commas are safe."""
    fields = ["type=bind", f"source={mount.source}", f"target={mount.target}"]
    if mount.readonly:
        fields.append("readonly")
    line = io.StringIO()
    csv.writer(line, lineterminator="").writerow(fields)
    return ["--mount", line.getvalue()]


def socket_dir(socket: str) -> Path:
    """The socket's directory, which must be absolute and private to this server."""
    path = PurePosixPath(socket)
    if not path.is_absolute() or path.parent in _SHARED_DIRS:
        raise UsageError(
            f"--socket {socket} must be an absolute path in a private directory",
            "e.g. a directory from mkdtemp, as jupyter-server-proxy makes",
        )
    return Path(path.parent)


def listen_port(args: CodeServerArgs) -> int:
    """The TCP port code-server is to serve on."""
    return args.bind.port if args.bind else DEFAULT_PORT


def code_server_flags(config: RuntimeConfig, args: CodeServerArgs, mapping: UserMapping) -> list[str]:
    """code-server's command line inside the container (the entrypoint runs it for ``-`` args)."""
    # code-server's own default under HOME, spelled out: settings and extensions stay on
    # the volume whatever the image sets XDG_* to.
    data_dir = user_data_dir(config.state.home)
    defaults = {
        "--disable-telemetry": [],
        "--disable-update-check": [],
        "--user-data-dir": [str(data_dir)],
        "--extensions-dir": [str(data_dir / "extensions")],
    }
    extra = [flag for name, value in defaults.items() if not args.has(name) for flag in (name, *value)]
    auth = ["--auth", args.auth] if args.auth else []
    paths = args.paths or (str(config.workspace),)
    return [*listen_flags(config, args, mapping), *auth, *extra, *args.passthrough, *paths]


def listen_flags(config: RuntimeConfig, args: CodeServerArgs, mapping: UserMapping) -> list[str]:
    """Where code-server listens inside the container."""
    if args.socket:
        return ["--socket", args.socket, "--socket-mode", args.socket_mode or DEFAULT_SOCKET_MODE]
    host = PUBLISH_HOST if uses_host_network(config, mapping) else "0.0.0.0"  # noqa: S104
    return ["--bind-addr", str(BindAddr(host, listen_port(args)))]
