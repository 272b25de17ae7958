"""Shared fixtures: configuration objects pointing at temporary state."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.config import BuildConfig
from imagebuild.paths import StatePaths

VERSIONS = {
    "node": "24.22.3",
    "npm": "11.6.2",
    "code-server": "4.139.1",
    "code-server-source": "npm",
    "awscli": "1.46.3",
    "awscli-source": "pypi",
    "mise": "2026.9.15",
    "claude-code": "2.1.332",
    "cline": "3.0.65",
}


@pytest.fixture
def state(tmp_path: Path) -> StatePaths:
    """A fresh persistent state directory."""
    return StatePaths(tmp_path / "state")


@pytest.fixture
def config(state: StatePaths) -> BuildConfig:
    """The default build configuration on amd64, with temporary state."""
    return BuildConfig(state=state, platform="amd64", base_image="local/debian:bookworm")
