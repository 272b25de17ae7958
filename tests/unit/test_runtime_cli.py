"""The ``sagecode`` command (runtime.cli) with no engine: a docker that is down."""

from __future__ import annotations

import os
import pwd
from pathlib import Path

import pytest

from imagebuild.errors import SagecodeError
from runtime import cli

DOWN_DOCKER = (
    "#!/bin/sh\necho 'Cannot connect to the Docker daemon at unix:///var/run/docker.sock.' >&2\nexit 1\n"
)


@pytest.fixture
def host(tmp_path: Path, monkeypatch: pytest.MonkeyPatch) -> Path:
    """A host HOME with a state folder, whose docker says the engine is down."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(DOWN_DOCKER)
    (bin_dir / "docker").chmod(0o755)
    monkeypatch.setenv("PATH", f"{bin_dir}:{os.environ['PATH']}")
    monkeypatch.setenv("HOME", str(tmp_path))
    monkeypatch.setenv("SAGECODE_STATE_DIR", str(tmp_path / "state"))
    monkeypatch.delenv("DOCKER_HOST", raising=False)
    return tmp_path


def test_cli_home_twice_changes_nothing(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sagecode home`` twice leaves byte-identical files and says the hint is unchanged."""
    assert cli.main(["home"]) == 0
    files = {p: p.read_bytes() for p in [host / ".bashrc", host / "state" / "home" / ".zshrc"]}
    assert "updated" in capsys.readouterr().out
    assert cli.main(["home"]) == 0
    assert {p: p.read_bytes() for p in files} == files
    assert f"host hint: {host / '.bashrc'} (unchanged)" in capsys.readouterr().out


def test_cli_home_records_the_phase(host: Path) -> None:
    """``--phase running --log F`` is written for the host hint."""
    assert cli.main(["home", "--phase", "running", "--log", str(host / "hook.log"), "--no-hint"]) == 0
    assert (host / "state" / "run" / "setup-state").read_text() == f"running {host / 'hook.log'}\n"
    assert not (host / ".bashrc").exists()


@pytest.mark.skipif(os.geteuid() != 0, reason="needs root to own a folder for someone else")
def test_cli_home_as_root_refuses_a_users_state(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """Root (a lifecycle hook) must not create the user's home: one line saying how to run it."""
    os.chown(host, 1001, 1001)
    try:  # ec2-user where an earlier test (or the instance) made uid 1001; the number otherwise
        owner = pwd.getpwuid(1001).pw_name
    except KeyError:
        owner = "1001"
    assert cli.main(["home"]) == 2
    err = capsys.readouterr().err
    assert err.startswith(f"sagecode: sagecode home must run as {owner}, the owner of")
    assert err.endswith(f"(run: runuser -u {owner} -- sagecode home)\n")
    assert not (host / "state").exists()


def test_cli_error_is_one_line_and_debug_shows_traceback(
    host: Path, capsys: pytest.CaptureFixture[str]
) -> None:
    """An error is one ``sagecode:`` line with exit 2; ``--debug`` raises it instead."""
    assert cli.main(["shell", "true"]) == 2
    assert capsys.readouterr().err == (
        "sagecode: docker info: the Docker engine is not running (start Docker, then retry)\n"
    )
    with pytest.raises(SagecodeError):
        cli.main(["--debug", "shell", "true"])


def test_cli_status_with_engine_down_still_reports(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """status prints every line and exits 0 when the engine does not answer."""
    assert cli.main(["status"]) == 0
    out = capsys.readouterr().out.splitlines()
    labels = [line.split(":")[0] for line in out]
    assert labels == ["image", "saved", "engine", "container", "url", "heartbeat"]
    assert "engine:    not answering" in out[2]


def test_cli_doctor_problem_exits_nonzero(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """With the engine down doctor says so (with the fix), still checks the rest, and exits 1."""
    env = host / "jupyter-env"
    meta = env / "lib" / "python3.11" / "site-packages" / "jupyter_server_proxy-4.6.1.dist-info"
    meta.mkdir(parents=True)
    (meta / "METADATA").write_text("Metadata-Version: 2.1\nName: jupyter-server-proxy\nVersion: 4.6.1\n")
    assert cli.main(["doctor", "--jupyter-env", str(env)]) == 1
    out = capsys.readouterr().out.splitlines()
    assert out[0].startswith("OK       host glibc: ")
    assert out[1].startswith("problem  engine: docker info: the Docker engine is not running")
    assert out[2] == "         fix: start Docker, then retry"
    assert f"OK       jupyter-server-proxy: 4.6.1 in {env}" in out
    assert out[-1].startswith("1 problem(s)")


def test_cli_logs_shows_each_log_with_a_header(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """logs prints a header and the last lines of each log; none yet says so."""
    assert cli.main(["logs"]) == 0
    assert capsys.readouterr().out.startswith("no logs yet in")
    logs = host / "state" / "logs"
    logs.mkdir(parents=True)
    (logs / "editor.log").write_text("".join(f"{i}\n" for i in range(10)))
    assert cli.main(["logs", "-n", "2"]) == 0
    assert capsys.readouterr().out == f"==> {logs / 'editor.log'} <==\n8\n9\n"


def test_cli_jupyter_is_passed_to_its_setup(host: Path, capsys: pytest.CaptureFixture[str]) -> None:
    """``sagecode jupyter ...`` is the launcher card's setup command, arguments untouched."""
    assert cli.main(["jupyter", "uninstall", "--env", str(host / "nowhere")]) == 2
    assert "has no bin/python" in capsys.readouterr().err
