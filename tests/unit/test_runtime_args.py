"""The wrapper's reading of code-server's command line (runtime.args)."""

from __future__ import annotations

import pytest

from imagebuild.errors import UsageError
from runtime.args import BindAddr, CodeServerArgs, parse_args, parse_bind_addr

JSP = ["--auth", "none", "--disable-telemetry", "--bind-addr", "127.0.0.1:8888"]


def test_args_jupyter_server_proxy_command_line() -> None:
    """The command line JSP passes yields the address, the auth and the rest in order."""
    assert parse_args(JSP) == CodeServerArgs(
        bind=BindAddr("127.0.0.1", 8888), auth="none", passthrough=("--disable-telemetry",)
    )


def test_args_equals_form_reads_like_space_form() -> None:
    """``--bind-addr=H:P`` and ``--auth=X`` mean what the two-argument forms mean."""
    assert parse_args(["--auth=none", "--disable-telemetry", "--bind-addr=127.0.0.1:8888"]) == parse_args(JSP)


def test_args_socket_and_mode() -> None:
    """``--socket`` and ``--socket-mode`` are taken out of the pass-through arguments."""
    parsed = parse_args(["--socket", "/tmp/jsp-x/socket", "--socket-mode=600", "--auth", "none"])
    assert (parsed.socket, parsed.socket_mode, parsed.bind, parsed.passthrough) == (
        "/tmp/jsp-x/socket",
        "600",
        None,
        (),
    )


def test_args_unknown_flags_pass_through_unchanged() -> None:
    """Flags the wrapper does not know are kept, in order, for code-server to judge."""
    argv = ["--idle-timeout-seconds=600", "--frobnicate", "--trusted-origins", "x.example", "-e"]
    assert parse_args(argv).passthrough == tuple(argv)


def test_args_value_of_a_known_flag_is_not_a_folder() -> None:
    """A code-server flag's separate value stays with it; the last bare argument is the folder."""
    parsed = parse_args(["--locale", "de", "/home/ec2-user/SageMaker/project"])
    assert parsed.passthrough == ("--locale", "de")
    assert parsed.folder == "/home/ec2-user/SageMaker/project"


def test_args_value_flag_before_another_flag_takes_no_value() -> None:
    """As in code-server, a value that starts with ``-`` is the next flag, not the value."""
    assert parse_args(["--locale", "--disable-proxy"]).passthrough == ("--locale", "--disable-proxy")


def test_args_arguments_after_double_dash_are_paths() -> None:
    """After ``--`` even a dash-led argument is a path to open."""
    parsed = parse_args(["--", "-odd-name"])
    assert (parsed.passthrough, parsed.paths) == (("--",), ("-odd-name",))


def test_args_no_folder_by_default() -> None:
    """Without a bare argument there is no folder (the plan opens the workspace)."""
    assert parse_args(JSP).folder is None


def test_args_ipv6_bind_addr() -> None:
    """A bracketed IPv6 host is accepted and printed back with its brackets."""
    address = parse_bind_addr("[::1]:8080")
    assert (address, str(address)) == (BindAddr("::1", 8080), "[::1]:8080")


@pytest.mark.parametrize(
    "value", ["8080", "127.0.0.1", "127.0.0.1:", ":8080", "h:0", "h:65536", "h:80a", "a b:80", "[::1"]
)
def test_args_malformed_bind_addr_is_usage_error(value: str) -> None:
    """A ``--bind-addr`` that is not HOST:PORT stops the wrapper with a one-line UsageError."""
    with pytest.raises(UsageError, match="--bind-addr needs HOST:PORT") as caught:
        parse_args(["--bind-addr", value])
    assert "\n" not in str(caught.value)


@pytest.mark.parametrize("argv", [["--bind-addr"], ["--socket"], ["--auth="], ["--socket", "--auth"]])
def test_args_missing_value_is_usage_error(argv: list[str]) -> None:
    """A flag the wrapper needs a value for, given none, is a UsageError."""
    with pytest.raises(UsageError, match="needs a value"):
        parse_args(argv)


@pytest.mark.parametrize("flag", ["--host", "--port"])
def test_args_deprecated_host_and_port_are_refused(flag: str) -> None:
    """``--host``/``--port`` would move code-server off the published port, so they are refused."""
    with pytest.raises(UsageError, match="--bind-addr"):
        parse_args([flag, "9000"])
