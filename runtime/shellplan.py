"""``sagecode shell``: the docker argv that enters the editor's container from a host terminal.

Pure, like ``runtime.plan``, whose flags it reuses so that a shell sees exactly what the
editor sees:

- the editor runs: ``docker exec`` into it as the user code-server runs as (the host
  user's uid:gid on a rootful engine; root, which is the host user, on rootless and
  userns-remap engines), in the workspace, with the container's environment (HOME on
  the volume). Its terminal is the editor's terminal.
- it does not: a throwaway container of the same image, with the same mounts, user
  mapping and environment, removed on exit, publishing no port.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagebuild.errors import UsageError
from runtime.args import CodeServerArgs
from runtime.config import RuntimeConfig
from runtime.plan import (
    ROLE_LABEL,
    SHELL,
    HostFacts,
    Image,
    env_flags,
    gpu_flags,
    mount_flags,
    uses_host_network,
)
from runtime.usermap import UserMapping

SHELL_ROLE = "shell"
LOGIN_SHELL = (SHELL, "-l")


def exec_argv(config: RuntimeConfig, mapping: UserMapping, command: Sequence[str], tty: bool) -> list[str]:
    """``exec ...`` into the running editor; no command means a login shell."""
    return [
        "exec", "--interactive", *tty_flag(tty), *exec_user(config, mapping),
        "--workdir", str(config.workspace), config.container_name, *(command or LOGIN_SHELL),
    ]  # fmt: skip


def throwaway_argv(
    config: RuntimeConfig,
    mapping: UserMapping,
    image: Image,
    facts: HostFacts,
    command: Sequence[str],
    *,
    tty: bool,
    name: str,
) -> list[str]:
    """``run ...`` of a shell container like the editor's; the entrypoint drops to the user."""
    if command and command[0].startswith("-"):
        # The entrypoint reads a first argument starting with "-" as code-server's flags.
        raise UsageError(
            f"{command[0]} is not a command", "name the program first: sagecode shell CMD [ARGS]"
        )
    network = ["--network", "host"] if uses_host_network(config, mapping) else []
    return [
        "run", "--rm", "--init", "--interactive", *tty_flag(tty), "--name", name,
        "--label", f"{ROLE_LABEL}={SHELL_ROLE}", *network, *gpu_flags(config, facts),
        *env_flags(config, mapping), *mount_flags(config, CodeServerArgs(), facts),
        "--workdir", str(config.workspace), image.ref, *command,
    ]  # fmt: skip


def exec_user(config: RuntimeConfig, mapping: UserMapping) -> list[str]:
    """``--user uid:gid`` when the editor dropped to the host user (rootful), else nothing."""
    if not mapping.env:
        return []
    return ["--user", f"{config.user.uid}:{config.user.gid}"]


def tty_flag(tty: bool) -> list[str]:
    """A terminal only when the host side is one: piped input and output stay plain."""
    return ["--tty"] if tty else []
