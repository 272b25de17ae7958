"""Bad input through the real ``python -m imagebuild`` (a subprocess, no --dry-run): one error
line, exit code 2, the engine never asked (a fake ``docker`` records every call), no saved
image, temp or partial file."""

from __future__ import annotations

import subprocess
import sys
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
RECORDER = """#!/bin/bash
echo "$*" >> "${0%/*}/calls"
exit 1
"""
CASES = {
    "version": (["--code-server", "4.x.y.z"], "--code-server 4.x.y.z is not a version"),
    "aws-cli-version": (["--aws-cli-source", "v2", "--aws-cli", "2"], "--aws-cli"),
    "unknown-layer": (["--without", "emacs"], "unknown layer(s): emacs"),
    "optional-layer": (["--with", "shell"], "--with takes only"),
    "missing-ca": (["--ca-bundle", "/nonexistent/ca.pem"], "cannot read the CA bundle /nonexistent/ca.pem"),
    "ca-is-a-dir": (["--ca-bundle", "/"], "cannot read the CA bundle /"),
    "trust-ca-without-ca": (["--trust-ca"], "--trust-ca installs the --ca-bundle FILE"),
    "region": (["--aws-region", "moon"], "'moon' is not an AWS region"),
    "keep": (["--keep", "0"], "--keep must be at least 1"),
    "push-repo": (["--push", "repo:tag"], "repo:tag"),
}


def _run(tmp_path: Path, *argv: str, state: Path | None = None) -> subprocess.CompletedProcess[str]:
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir(exist_ok=True)
    (bin_dir / "docker").write_text(RECORDER)
    (bin_dir / "docker").chmod(0o755)
    cmd = [sys.executable, "-m", "imagebuild", "--state-dir", str(state or tmp_path / "state"), *argv]
    return subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
                          env={"PATH": str(bin_dir), "HOME": str(tmp_path), "TMPDIR": str(tmp_path)})


def _assert_refused(tmp_path: Path, result: subprocess.CompletedProcess[str], message: str) -> None:
    lines = [line for line in result.stderr.splitlines() if not line.startswith("==>")]
    assert result.returncode == 2, result.stderr
    assert result.stdout == ""
    assert len(lines) == 1, result.stderr
    assert lines[0].startswith("error: ")
    assert message in lines[0]
    assert not (tmp_path / "bin" / "calls").exists()  # the engine was never asked
    leftovers = [p for p in tmp_path.rglob("*") if p.suffix in (".tar", ".json") or "partial" in p.name
                 or p.name.startswith("sagecode-")]
    assert leftovers == []


@pytest.mark.parametrize(("argv", "message"), CASES.values(), ids=CASES.keys())
def test_cli_bad_flag_is_refused_before_any_work(tmp_path: Path, argv: list[str], message: str) -> None:
    """Each bad flag: exit 2, one 'error:' line naming it, no engine call, nothing written."""
    _assert_refused(tmp_path, _run(tmp_path, *argv), message)


@pytest.mark.parametrize("text", ["{nope", '{"schema": 1}', "[]", ""],
                         ids=["syntax", "fields", "list", "empty"])
def test_cli_unparsable_lock_is_refused_before_any_work(tmp_path: Path, text: str) -> None:
    """A lock file that does not parse as a sagecode lock: one line, nothing done."""
    lock = tmp_path / "lock.txt"
    lock.write_text(text)
    _assert_refused(tmp_path, _run(tmp_path, "--lock", str(lock)), "is not a sagecode lock")


def test_cli_unwritable_state_dir_is_refused_before_any_work(tmp_path: Path) -> None:
    """A persistent dir that cannot be created (a file is in the way): one line naming --state-dir."""
    blocker = tmp_path / "blocker"
    blocker.write_text("")
    result = _run(tmp_path, state=blocker / "state")
    _assert_refused(tmp_path, result, f"cannot create {blocker / 'state'}")
    assert "--state-dir" in result.stderr


@pytest.mark.parametrize(("name", "value", "message"), [
    ("SAGECODE_KEEP_IMAGES", "two", "SAGECODE_KEEP_IMAGES='two' is not a whole number"),
    ("SAGECODE_CACHE_MODE", "maximum", "SAGECODE_CACHE_MODE='maximum' is not a cache mode"),
    ("SAGECODE_RESTORE_VIA", "copy", "SAGECODE_RESTORE_VIA='copy' is not a way to restore"),
])
def test_cli_bad_environment_value_is_refused_before_any_work(tmp_path: Path, name: str, value: str,
                                                              message: str) -> None:
    """A SAGECODE_* setting that is not valid: one line naming the variable."""
    bin_dir = tmp_path / "bin"
    bin_dir.mkdir()
    (bin_dir / "docker").write_text(RECORDER)
    (bin_dir / "docker").chmod(0o755)
    cmd = [sys.executable, "-m", "imagebuild", "--state-dir", str(tmp_path / "state")]
    result = subprocess.run(cmd, check=False, capture_output=True, text=True, timeout=60, cwd=ROOT,
                            env={"PATH": str(bin_dir), "HOME": str(tmp_path), name: value})
    _assert_refused(tmp_path, result, message)
