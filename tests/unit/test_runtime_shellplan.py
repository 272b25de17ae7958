"""``sagecode shell``'s docker argv (runtime.shellplan): golden for exec and throwaway."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.errors import UsageError
from imagebuild.paths import StatePaths
from runtime.config import RuntimeConfig
from runtime.engineinfo import EngineMode
from runtime.plan import HostFacts, Image
from runtime.shellplan import exec_argv, throwaway_argv
from runtime.usermap import HostUser, UserMapping, drop_env

WS = "/home/ec2-user/SageMaker"
HOME = f"{WS}/.sagecode/home"
USER = HostUser(1001, 1001, "ec2-user")
CONFIG = RuntimeConfig(StatePaths(Path(f"{WS}/.sagecode")), Path(WS), USER, Path("/home/ec2-user"))
ROOTLESS = UserMapping(EngineMode.ROOTLESS, owner_uid=1001)
ROOTFUL = UserMapping(EngineMode.ROOTFUL, env=drop_env(USER), host_network=True, owner_uid=1001)
IMAGE = Image("sagecode:0123456789ab", "c")


def test_exec_rootful_runs_as_the_host_user() -> None:
    """On a rootful engine the shell joins code-server's user (the host user's ids)."""
    assert exec_argv(CONFIG, ROOTFUL, [], tty=True) == [
        "exec", "--interactive", "--tty", "--user", "1001:1001", "--workdir", WS,
        "sagecode", "/bin/zsh", "-l",
    ]  # fmt: skip


def test_exec_rootless_stays_root_and_runs_the_command() -> None:
    """Rootless: container root is the host user; a command replaces the login shell; no tty when piped."""
    assert exec_argv(CONFIG, ROOTLESS, ["touch", "f"], tty=False) == [
        "exec", "--interactive", "--workdir", WS, "sagecode", "touch", "f",
    ]  # fmt: skip


def test_throwaway_has_editors_mounts_and_user_but_no_port() -> None:
    """No editor running: a removed-on-exit container with the same env and mounts, no publish."""
    argv = throwaway_argv(CONFIG, ROOTFUL, IMAGE, HostFacts(), ["id"], tty=False, name="sagecode-shell-7")
    assert argv == [
        "run", "--rm", "--init", "--interactive", "--name", "sagecode-shell-7",
        "--label", "org.sagecode.role=shell",
        "--env", f"HOME={HOME}", "--env", f"XDG_DATA_HOME={HOME}/.local/share",
        "--env", "SHELL=/bin/zsh", "--env", "TERM=xterm-256color",
        "--env", "SAGECODE_UID=1001", "--env", "SAGECODE_GID=1001", "--env", "SAGECODE_USER=ec2-user",
        "--mount", f"type=bind,source={WS},target={WS}", "--mount", f"type=bind,source={HOME},target={HOME}",
        "--workdir", WS, "sagecode:0123456789ab", "id",
    ]  # fmt: skip


def test_throwaway_refuses_a_flag_first() -> None:
    """A first argument starting with '-' would start code-server: refused with how to say it."""
    with pytest.raises(UsageError, match="name the program first"):
        throwaway_argv(CONFIG, ROOTLESS, IMAGE, HostFacts(), ["-c", "x"], tty=False, name="n")
