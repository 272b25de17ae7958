"""Resolving the wants: every lookup at once, the answers and errors in the wants' order."""

from __future__ import annotations

import dataclasses
import time
from pathlib import Path

import pytest

from imagebuild import resolve
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.errors import VersionError
from imagebuild.versions import NpmClient


def _fake_npm(tmp_path: Path, body: str) -> NpmClient:
    """An npm client whose `npm view PKG@SPEC version --json` runs ``body`` (PKG in $2)."""
    fake = tmp_path / "npm"
    fake.write_text(f"#!/bin/sh\npkg=${{2%@*}}\n{body}\n")
    fake.chmod(0o755)
    return NpmClient(command=(str(fake),))


def _config(config: BuildConfig) -> BuildConfig:
    # awscli resolves through pip: leave it out, every other want is an npm lookup
    return dataclasses.replace(config, code_server_source="npm", disabled=frozenset({"awscli"}))


def test_lookups_run_at_once(config: BuildConfig, tmp_path: Path) -> None:
    """Six lookups of 0.5 s each take about one lookup's time, each answer under its key."""
    answer = "case $pkg in *claude*) echo '\"2.1.0\"';; *) echo '\"1.0.0\"';; esac"
    npm = _fake_npm(tmp_path, f"sleep 0.5; {answer}")
    start = time.monotonic()
    versions = resolve.resolve(_config(config), Console(quiet=True), npm=npm)
    elapsed = time.monotonic() - start
    assert versions["claude-code"] == "2.1.0"
    assert versions["cline"] == versions["mise"] == versions["code-server"] == "1.0.0"
    assert elapsed < 2.0, f"lookups ran one after another ({elapsed:.1f} s)"


def test_first_failure_in_order_is_reported(config: BuildConfig, tmp_path: Path) -> None:
    """Two lookups fail: the error names the one the build asks for first (code-server before
    Cline), however the threads finish."""
    failing = "case $pkg in code-server) sleep 0.3; exit 1;; cline) exit 1;; esac"
    npm = _fake_npm(tmp_path, f"{failing}; echo '\"1.0.0\"'")
    with pytest.raises(VersionError, match="code-server"):
        resolve.resolve(_config(config), Console(quiet=True), npm=npm)
