"""Registry naming: repositories, tags derived from the lock, labels that describe the image."""

from __future__ import annotations

import pytest

from imagebuild.errors import UsageError
from imagebuild.manifest import Manifest
from imagebuild.registry import check_repo, manifest_labels, publish_tags

M = Manifest(image="sagecode:0123456789ab", content="0123456789abcdef", versions={"code-server": "4.139.1"},
             layers=("base", "code-server"), base_image="ubuntu:22.04", platform="amd64")


def test_publish_tags_derive_from_lock() -> None:
    """Tags: content hash, latest, the code-server version, and version plus base."""
    assert publish_tags("ghcr.io/o/sagecode", M) == [
        "ghcr.io/o/sagecode:0123456789ab", "ghcr.io/o/sagecode:latest",
        "ghcr.io/o/sagecode:4.139.1", "ghcr.io/o/sagecode:4.139.1-ubuntu-22.04",
    ]


@pytest.mark.parametrize("ref", ["ghcr.io/o/s:1", "r/s@sha256:00", "Bad/Name", ""])
def test_check_repo_rejects_tags_and_bad_names(ref: str) -> None:
    """--push takes a plain repository name."""
    with pytest.raises(UsageError, match="not a repository name"):
        check_repo(ref)


def test_check_repo_accepts_registry_with_port() -> None:
    """A loopback registry with a port is a repository name."""
    assert check_repo("127.0.0.1:5000/sagecode") == "127.0.0.1:5000/sagecode"


def test_manifest_labels_carry_versions_and_layers() -> None:
    """The labels hold what a pulled image needs to be described without its manifest."""
    labels = manifest_labels(M)
    assert labels["org.sagecode.layers"] == "base,code-server"
    assert labels["org.sagecode.versions"] == '{"code-server": "4.139.1"}'
