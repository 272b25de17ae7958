"""Files the editor writes on the volume belong to the user who launched it, not root, and
have private modes.

Run for real by ``TEST_USER`` (ec2-user) on a rootful engine (the entrypoint drops to the
user's ids) and on that user's rootless engine (container root is the user). The
userns-remap engine has the same checks in test_runtime_remap.py (it restarts the daemon).
"""

from __future__ import annotations

import os
import stat
from pathlib import Path

import pytest

from tests.integration.runtime_support import Sandbox, assert_files_are_the_users

pytest_plugins = ["tests.integration.runtime_fixtures"]
pytestmark = [pytest.mark.engine, pytest.mark.image]


def test_ownership_files_from_editor_terminal_belong_to_user(user_sandbox: Sandbox) -> None:
    """As ec2-user, rootful and rootless: the terminal's files and the editor's state are theirs."""
    assert user_sandbox.account.uid != 0
    assert_files_are_the_users(user_sandbox)


def _walk(root: Path) -> list[tuple[Path, os.stat_result]]:
    return [(p, p.lstat()) for p in [root, *root.rglob("*")] if not p.is_symlink()]


def test_ownership_state_has_private_modes(user_sandbox: Sandbox) -> None:
    """After the editor ran: nothing on the volume is world-writable (sticky folders aside), the
    home is 700, and a private key left readable in ~/.ssh (or ~/.aws) is made 600 in a 700 folder."""
    home = user_sandbox.state / "home"
    planted = [home / ".ssh" / "id_ed25519", home / ".aws" / "credentials"]
    for key in planted:
        key.parent.mkdir(parents=True, exist_ok=True, mode=0o755)
        key.write_text("-----BEGIN OPENSSH PRIVATE KEY-----\nfake\n")
        key.chmod(0o644)
    for path, _ in _walk(home):
        os.chown(path, user_sandbox.account.uid, user_sandbox.account.gid)
    assert_files_are_the_users(user_sandbox)  # launches the editor and writes through it
    entries = _walk(user_sandbox.state)
    assert len(entries) > 20
    world_writable = [str(p) for p, st in entries
                      if st.st_mode & stat.S_IWOTH and (stat.S_ISREG(st.st_mode) or stat.S_ISDIR(st.st_mode))
                      and not st.st_mode & stat.S_ISVTX]
    assert world_writable == []
    assert stat.S_IMODE(home.stat().st_mode) == 0o700
    for key in planted:
        assert stat.S_IMODE(key.parent.stat().st_mode) == 0o700, key.parent
        assert stat.S_IMODE(key.stat().st_mode) == 0o600, key
