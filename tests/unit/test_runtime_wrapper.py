"""The wrapper's supervision around the engine, with a host process for the container (runtime.wrapper)."""

from __future__ import annotations

import logging
import os
import signal
import subprocess
import threading
import time
from collections.abc import Sequence
from dataclasses import replace
from pathlib import Path
from typing import Any

import pytest

from imagebuild.manifest import Manifest
from imagebuild.paths import StatePaths
from runtime import wrapper
from runtime.args import parse_args
from runtime.config import RuntimeConfig
from runtime.credrelay import RelayMount
from runtime.plan import Image
from runtime.usermap import HostUser
from runtime.wrapper import Wrapper
from tests.integration.runtime_support import get
from tests.unit.runtime_fakes import FakeContainers

CURRENT = Manifest(
    image="sagecode:0123456789ab",
    content="0123456789ab" * 4,
    versions={"code-server": "4.100.0"},
    layers=("base",),
    base_image="ubuntu:22.04",
    platform="amd64",
)
ROOTFUL = {"SecurityOptions": ["name=seccomp,profile=builtin"]}


def make(tmp_path: Path, command: Sequence[str] = ("true",), **info: Any) -> Wrapper:
    """A wrapper on a state folder in ``tmp_path`` whose "container" is ``command`` on the host."""
    state = StatePaths(tmp_path / "state")
    state.images.mkdir(parents=True)
    state.logs.mkdir(parents=True)
    (state.images / "current.json").write_text(CURRENT.to_json())
    config = RuntimeConfig(state, tmp_path, HostUser(1000, 1000, "ec2-user"), tmp_path)
    engine = FakeContainers(info or ROOTFUL, {CURRENT.image: {}}, command)
    return Wrapper(config, engine, logging.getLogger("test"))


def editor_log(run: Wrapper) -> Path:
    """Where the container's output is copied."""
    return run.config.state.logs / "editor.log"


def test_wrapper_plan_maps_user_from_engine_info(tmp_path: Path) -> None:
    """The plan drops to the host user on a rootful engine, as ``docker info`` describes it."""
    assert "SAGECODE_UID=1000" in make(tmp_path).plan(parse_args([]), Image("i", "c"))


def test_wrapper_plan_warns_about_foreign_remap_owner(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """A remap onto another uid is logged: files on the volume would not be the user's."""
    run = make(tmp_path, SecurityOptions=["name=userns"], DockerRootDir="/var/lib/docker/231072.231072")
    run.plan(parse_args([]), Image("i", "c"))
    assert "belong to uid 231072" in caplog.text


def test_wrapper_copies_container_output_to_editor_log(
    tmp_path: Path, capfd: pytest.CaptureFixture[str]
) -> None:
    """Everything the container prints lands in logs/editor.log and on stderr (Jupyter's log)."""
    run = make(tmp_path, ["sh", "-c", "echo listening; echo done >&2"])
    assert run.supervise(["run", "x"]) == 0
    assert editor_log(run).read_text() == "listening\ndone\n"
    assert "listening\ndone\n" in capfd.readouterr().err


def test_wrapper_run_replaces_leftover_and_rotates_editor_log(tmp_path: Path) -> None:
    """A launch removes a leftover container first and keeps the last run's log as editor.log.1."""
    run = make(tmp_path, ["echo", "new run"])
    editor_log(run).write_text("old run\n")
    assert run.run(parse_args(["--bind-addr", "127.0.0.1:9000"])) == 0
    calls = run.containers.calls  # type: ignore[attr-defined]
    assert calls[0] == ("rm", "sagecode")
    assert calls[1][:2] == ("run", "run")
    assert editor_log(run).read_text() == "new run\n"
    assert (run.config.state.logs / "editor.log.1").read_text() == "old run\n"
    assert (run.config.state.run / "editor.pid").read_text() == f"{os.getpid()}\n"


def test_wrapper_sigterm_stops_container_and_exits_zero(tmp_path: Path) -> None:
    """SIGTERM makes the wrapper stop the container (docker stop) and exit 0 within seconds."""
    run = make(tmp_path, ["sleep", "30"])
    threading.Timer(0.5, os.kill, (os.getpid(), signal.SIGTERM)).start()
    started = time.monotonic()
    assert run.supervise(["run", "x"]) == 0
    assert time.monotonic() - started < 5
    assert ("stop", "sagecode", "10") in run.containers.calls  # type: ignore[attr-defined]


def test_wrapper_quick_failure_is_paced(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> None:
    """A container that fails at once returns its status only after MIN_LIFETIME (no JSP spin)."""
    monkeypatch.setattr(wrapper, "MIN_LIFETIME", 0.6)
    started = time.monotonic()
    assert make(tmp_path, ["sh", "-c", "exit 3"]).supervise(["run", "x"]) == 3
    assert time.monotonic() - started >= 0.6


def test_wrapper_supersede_signals_the_running_wrapper(tmp_path: Path) -> None:
    """A second launch asks the wrapper named in editor.pid to stop, with SIGTERM."""
    run = make(tmp_path)
    other = subprocess.Popen(["sleep", "30"])
    run.config.state.run.mkdir(parents=True)
    (run.config.state.run / "editor.pid").write_text(f"{other.pid}\n")
    run._supersede()
    assert other.wait(5) == -signal.SIGTERM


def test_wrapper_config_error_is_one_line_and_paced(
    monkeypatch: pytest.MonkeyPatch, capsys: pytest.CaptureFixture[str]
) -> None:
    """A bad command line ends with status 1, one ``sagecode:`` line, after MIN_LIFETIME."""
    monkeypatch.setattr(wrapper, "MIN_LIFETIME", 0.3)
    started = time.monotonic()
    assert wrapper.main(["--bind-addr", "nowhere"]) == 1
    assert time.monotonic() - started >= 0.3
    err = capsys.readouterr().err
    assert err.startswith("sagecode: --bind-addr needs HOST:PORT")
    assert err.count("\n") == 1


def test_wrapper_relays_credentials_under_remap_onto_the_user(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Remapped onto this user, container root owns the relay folder: the editor gets the relay."""
    run = make(tmp_path, SecurityOptions=["name=userns"], DockerRootDir="/var/lib/docker/1000.1000")
    argv = run.plan(parse_args([]), Image("i", "c"), RelayMount(tmp_path / "relay", "eu-west-1"))
    assert f"type=bind,source={tmp_path / 'relay'},target=/run/sagecode-credentials,readonly" in argv
    assert run.forwarder_user == ()  # container root: the user itself
    assert "credential relay" not in caplog.text


def test_wrapper_no_relay_under_remap_onto_another_uid(
    tmp_path: Path, caplog: pytest.LogCaptureFixture
) -> None:
    """Remapped onto another uid, the relay's private folder is closed to the editor: said, not mounted."""
    run = make(tmp_path, SecurityOptions=["name=userns"], DockerRootDir="/var/lib/docker/231072.231072")
    argv = run.plan(parse_args([]), Image("i", "c"), RelayMount(tmp_path / "relay", "eu-west-1"))
    assert not [arg for arg in argv if "sagecode-credentials" in arg]
    assert run.forwarder_user is None
    assert "userns-remap onto uid 231072, not this user: the editor cannot open" in caplog.text


@pytest.mark.parametrize("page", [True, False])
def test_wrapper_answers_on_its_socket_while_restoring_unless_turned_off(
    tmp_path: Path, monkeypatch: pytest.MonkeyPatch, page: bool
) -> None:
    """With the image missing, the socket answers 503 during the restore (SAGECODE_WAIT_PAGE=off:
    nothing listens), and is free again when the container starts."""
    run = make(tmp_path, ["true"])
    run.config = replace(run.config, wait_page=page)
    run.containers.images.clear()  # type: ignore[attr-defined]  # the restart wiped the engine
    sock = tmp_path / "proxy" / "socket"
    sock.parent.mkdir()
    seen: list[object] = []

    def restore(command: Sequence[str], **kwargs: Any) -> None:
        try:
            seen.append(get(None, sock, "/")[0])
        except OSError as exc:
            seen.append(type(exc).__name__)
        run.containers.images[CURRENT.image] = {}  # type: ignore[attr-defined]

    monkeypatch.setattr(subprocess, "run", restore)
    assert run.run(parse_args(["--socket", str(sock)])) == 0
    assert seen == ([503] if page else ["FileNotFoundError"])
    assert not sock.exists()
