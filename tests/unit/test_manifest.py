"""Manifests and lock files: round trip and bad input."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild import manifest
from imagebuild.errors import UsageError
from imagebuild.manifest import Manifest


def test_manifest_round_trip(tmp_path: Path) -> None:
    """A manifest written as JSON reads back equal."""
    m = Manifest(image="sagecode:abc", content="abc", versions={"b": "2", "a": "1"}, layers=("base",),
                 base_image="ubuntu:22.04", platform="amd64", tar="x.tar", tar_sha256="00", tar_bytes=3)
    path = tmp_path / "m.json"
    path.write_text(m.to_json())
    assert manifest.read(path) == m


@pytest.mark.parametrize("text", ["{", "[]", '{"schema": 99}', '{"schema": 1}'])
def test_manifest_bad_lock_is_one_line_error(tmp_path: Path, text: str) -> None:
    """A lock file that does not parse is a one-line UsageError saying what to use."""
    path = tmp_path / "lock.json"
    path.write_text(text)
    with pytest.raises(UsageError, match="not a sagecode lock") as err:
        manifest.read(path)
    assert "\n" not in str(err.value)


def test_manifest_missing_lock(tmp_path: Path) -> None:
    """A lock path that does not exist says so."""
    with pytest.raises(UsageError, match="does not exist"):
        manifest.read(tmp_path / "nope.json")
