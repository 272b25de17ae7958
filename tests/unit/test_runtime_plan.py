"""The editor container's ``docker run`` command line (runtime.plan): golden argv."""

from __future__ import annotations

import dataclasses
from pathlib import Path
from typing import Any

import pytest

from imagebuild.errors import UsageError
from imagebuild.paths import StatePaths
from runtime.args import parse_args
from runtime.config import Mount, RuntimeConfig
from runtime.engineinfo import EngineMode
from runtime.plan import HostFacts, Image, run_argv
from runtime.usermap import HostUser, UserMapping

WS = "/home/ec2-user/SageMaker"
HOME = f"{WS}/.sagecode/home"
DATA = f"{HOME}/.local/share/code-server"
CONTENT = "0123456789ab" + "c" * 52
IMAGE = Image("sagecode:0123456789ab", CONTENT)
CONFIG = RuntimeConfig(
    state=StatePaths(Path(f"{WS}/.sagecode")),
    workspace=Path(WS),
    user=HostUser(1000, 1000, "ec2-user"),
    host_home=Path("/home/ec2-user"),
)
ROOTLESS = UserMapping(EngineMode.ROOTLESS, owner_uid=1000)
REMAP = UserMapping(EngineMode.REMAP, owner_uid=1000)
ROOTFUL = UserMapping(
    EngineMode.ROOTFUL,
    env=(("SAGECODE_UID", "1000"), ("SAGECODE_GID", "1000"), ("SAGECODE_USER", "ec2-user")),
    host_network=True,
    owner_uid=1000,
)
ON_INSTANCE = HostFacts(opt_ml=True)
JSP_TCP = ["--auth", "none", "--disable-telemetry", "--bind-addr", "127.0.0.1:8888"]
JSP_SOCKET = ["--auth", "none", "--socket", "/tmp/jupyter-server-proxy-ab12/socket", "--socket-mode", "0600"]

HEAD = ["run", "--rm", "--init", "--name", "sagecode",
        "--label", "org.sagecode.role=editor", "--label", f"org.sagecode.content={CONTENT}"]  # fmt: skip
ENV = ["--env", f"HOME={HOME}", "--env", f"XDG_DATA_HOME={HOME}/.local/share",
       "--env", "SHELL=/bin/zsh", "--env", "TERM=xterm-256color"]  # fmt: skip
DROP = ["--env", "SAGECODE_UID=1000", "--env", "SAGECODE_GID=1000", "--env", "SAGECODE_USER=ec2-user"]
MOUNTS = ["--mount", f"type=bind,source={WS},target={WS}",
          "--mount", f"type=bind,source={HOME},target={HOME}",
          "--mount", "type=bind,source=/opt/ml,target=/opt/ml,readonly"]  # fmt: skip
DIRS = ["--user-data-dir", DATA, "--extensions-dir", f"{DATA}/extensions"]
TAIL = ["--workdir", WS, "sagecode:0123456789ab"]
GOLDEN_TCP = [*HEAD, "--publish", "127.0.0.1:8888:8888", *ENV, *MOUNTS, *TAIL,
              "--bind-addr", "0.0.0.0:8888", "--auth", "none", "--disable-update-check", *DIRS,
              "--disable-telemetry", WS]  # fmt: skip


def plan(
    argv: list[str], mapping: UserMapping = ROOTLESS, facts: HostFacts = ON_INSTANCE, **config: Any
) -> list[str]:
    """The argv for ``argv`` as code-server's command line, on a configuration changed by ``config``."""
    return run_argv(dataclasses.replace(CONFIG, **config), parse_args(argv), mapping, IMAGE, facts)


def test_plan_tcp_rootless_golden() -> None:
    """TCP behind JSP, rootless: one loopback port published, code-server on 0.0.0.0 inside."""
    assert plan(JSP_TCP) == GOLDEN_TCP


def test_plan_equals_form_golden() -> None:
    """``--bind-addr=H:P`` plans exactly like ``--bind-addr H:P``."""
    assert plan(["--auth=none", "--disable-telemetry", "--bind-addr=127.0.0.1:8888"]) == GOLDEN_TCP


def test_plan_socket_golden() -> None:
    """Socket mode: no port at all; the socket's private folder is mounted at its own path."""
    assert plan(JSP_SOCKET) == [
        *HEAD, *ENV, *MOUNTS,
        "--mount", "type=bind,source=/tmp/jupyter-server-proxy-ab12,target=/tmp/jupyter-server-proxy-ab12",
        *TAIL,
        "--socket", "/tmp/jupyter-server-proxy-ab12/socket", "--socket-mode", "0600", "--auth", "none",
        "--disable-telemetry", "--disable-update-check", *DIRS, WS,
    ]  # fmt: skip


def test_plan_rootful_golden() -> None:
    """Rootful: the entrypoint is told which host user to drop to; the rest is as rootless."""
    assert plan(JSP_TCP, ROOTFUL) == [
        *HEAD, "--publish", "127.0.0.1:8888:8888", *ENV, *DROP, *MOUNTS, *TAIL,
        "--bind-addr", "0.0.0.0:8888", "--auth", "none", "--disable-update-check", *DIRS,
        "--disable-telemetry", WS,
    ]  # fmt: skip


def test_plan_remap_golden() -> None:
    """userns-remap: container root is already the host user, so it plans like rootless."""
    assert plan(JSP_TCP, REMAP) == GOLDEN_TCP


def test_plan_rootful_host_network_listens_on_loopback() -> None:
    """Host networking (rootful): nothing published, code-server itself only on 127.0.0.1."""
    argv = plan(JSP_TCP, ROOTFUL, network="host")
    assert argv[argv.index("--network") + 1] == "host"
    assert "--publish" not in argv
    assert argv[argv.index("--bind-addr") + 1] == "127.0.0.1:8888"


@pytest.mark.parametrize("mapping", [ROOTLESS, REMAP])
def test_plan_host_network_refused_where_not_the_hosts(mapping: UserMapping) -> None:
    """Rootless and remap engines fall back to the published loopback port."""
    assert plan(JSP_TCP, mapping, network="host") == GOLDEN_TCP


def test_plan_default_port_without_bind_addr() -> None:
    """No ``--bind-addr``: code-server's default port 8080, still on loopback only."""
    argv = plan(["--auth", "none"])
    assert argv[argv.index("--publish") + 1] == "127.0.0.1:8080:8080"


@pytest.mark.parametrize(
    ("gpus", "nvidia", "expected"),
    [("auto", True, True), ("auto", False, False), ("all", False, True), ("none", True, False)],
)
def test_plan_gpus(gpus: str, nvidia: bool, expected: bool) -> None:
    """``--gpus all`` on ``auto`` with the NVIDIA runtime, always on ``all``, never on ``none``."""
    argv = plan(JSP_TCP, facts=HostFacts(opt_ml=True, nvidia=nvidia), gpus=gpus)
    assert (argv[11:13] == ["--gpus", "all"]) is expected
    assert argv.count("--gpus") == int(expected)


def test_plan_no_opt_ml_mount_when_absent() -> None:
    """``/opt/ml`` is mounted only where it exists."""
    assert not any("/opt/ml" in arg for arg in plan(JSP_TCP, facts=HostFacts()))


def test_plan_never_mounts_host_tmp_or_engine_socket_by_default() -> None:
    """Neither the host's /tmp nor the Docker socket reaches the container unless opted in."""
    mounts = [arg for arg in plan(JSP_TCP) if arg.startswith("type=bind")]
    assert not any("source=/tmp," in m or "docker.sock" in m for m in mounts)


def test_plan_engine_socket_when_opted_in() -> None:
    """Opted in, the engine's socket (rootless: the per-user one) is mounted with its group."""
    argv = plan(
        JSP_TCP,
        facts=HostFacts(opt_ml=True, docker_socket_gid=992),
        docker_socket=True,
        docker_host="unix:///run/user/1000/docker.sock",
    )
    start = argv.index("type=bind,source=/run/user/1000/docker.sock,target=/var/run/docker.sock")
    assert argv[start + 1 : start + 3] == ["--group-add", "992"]


def test_plan_no_engine_socket_for_tcp_docker_host() -> None:
    """A TCP ``DOCKER_HOST`` has no socket to mount, even when opted in."""
    assert not any(
        "docker.sock" in arg for arg in plan(JSP_TCP, docker_socket=True, docker_host="tcp://h:2375")
    )


def test_plan_extra_mounts_are_csv_quoted() -> None:
    """Extra mounts follow the built-in ones; a comma in a path is quoted as docker parses it."""
    argv = plan(JSP_TCP, extra_mounts=(Mount(Path("/data/a,b"), Path("/a"), readonly=True),))
    assert argv[argv.index("--workdir") - 1] == 'type=bind,"source=/data/a,b",target=/a,readonly'


def test_plan_passthrough_env_follows_the_fixed_env() -> None:
    """The host's proxy settings are passed after HOME, SHELL and TERM."""
    argv = plan(JSP_TCP, passthrough_env=(("HTTPS_PROXY", "http://proxy:3128"),))
    assert argv[argv.index("TERM=xterm-256color") + 1 : argv.index("TERM=xterm-256color") + 3] == [
        "--env",
        "HTTPS_PROXY=http://proxy:3128",
    ]


def test_plan_user_choices_win_over_defaults() -> None:
    """The caller's own data dir and folder replace the defaults instead of doubling them."""
    argv = plan([*JSP_TCP, "--user-data-dir=/x/data", "/home/ec2-user/SageMaker/proj"])
    assert argv.count("--user-data-dir") + argv.count("--user-data-dir=/x/data") == 1
    assert argv[-1] == "/home/ec2-user/SageMaker/proj"
    assert argv[-2] == "--user-data-dir=/x/data"


@pytest.mark.parametrize("socket", ["/tmp/socket", "relative/socket", "/socket"])
def test_plan_socket_in_shared_folder_is_usage_error(socket: str) -> None:
    """A socket in /tmp or / would mount a shared folder whole, so it is refused."""
    with pytest.raises(UsageError, match="private directory"):
        plan(["--socket", socket])
