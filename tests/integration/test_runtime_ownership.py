"""Files the editor writes on the volume belong to the user who launched it, not root.

Run for real by ``TEST_USER`` (ec2-user) on a rootful engine (the entrypoint drops to the
user's ids) and on that user's rootless engine (container root is the user). The
userns-remap engine has the same checks in test_runtime_remap.py (it restarts the daemon).
"""

from __future__ import annotations

import pytest

from tests.integration.runtime_support import Sandbox, assert_files_are_the_users

pytest_plugins = ["tests.integration.runtime_fixtures"]
pytestmark = [pytest.mark.engine, pytest.mark.image]


def test_ownership_files_from_editor_terminal_belong_to_user(user_sandbox: Sandbox) -> None:
    """As ec2-user, rootful and rootless: the terminal's files and the editor's state are theirs."""
    assert user_sandbox.account.uid != 0
    assert_files_are_the_users(user_sandbox)
