"""The fake GitHub's release tarball and API answer, without an engine."""

from __future__ import annotations

import hashlib
import json
import tarfile
from pathlib import Path

from bench.fakegithub import LAUNCHER, FakeGitHub, release_tarball


def _tree(root: Path) -> Path:
    tree = root / "tree"
    (tree / "bin").mkdir(parents=True)
    (tree / "bin/code-server").write_text(LAUNCHER)
    (tree / "package.json").write_text('{\n  "name": "code-server",\n  "version": "4.139.1"\n}\n')
    return tree


def test_release_tarball_is_laid_out_as_a_release_and_says_its_version(tmp_path: Path) -> None:
    """One top folder named as GitHub's; its package.json names the version asked for; the
    tree it was made from is left as it was."""
    tree = _tree(tmp_path)
    before = (tree / "package.json").read_text()
    tarball = release_tarball(tree, "4.140.0", tmp_path)
    assert tarball.name == "code-server-4.140.0-linux-amd64.tar.gz"
    with tarfile.open(tarball) as tar:
        names = tar.getnames()
        manifest = tar.extractfile("code-server-4.140.0-linux-amd64/package.json")
        assert manifest is not None
        assert json.loads(manifest.read())["version"] == "4.140.0"
    assert "code-server-4.140.0-linux-amd64/bin/code-server" in names
    assert (tree / "package.json").read_text() == before


def test_publish_answers_with_the_asset_and_its_digest(tmp_path: Path) -> None:
    """The API's JSON names the served file and its SHA-256, or the digest given instead."""
    tarball = release_tarball(_tree(tmp_path), "4.140.0", tmp_path)
    fake = FakeGitHub(tmp_path / "www", "http://172.17.0.1:1234")
    fake.publish("4.140.0", tarball)
    answer = tmp_path / "www/repos/coder/code-server/releases/tags/v4.140.0"
    asset = json.loads(answer.read_text())["assets"][0]
    assert asset["browser_download_url"] == f"http://172.17.0.1:1234/dl/{tarball.name}"
    assert asset["digest"] == "sha256:" + hashlib.sha256(tarball.read_bytes()).hexdigest()
    fake.publish("4.140.0", tarball, digest="0" * 64)
    assert json.loads(answer.read_text())["assets"][0]["digest"] == "sha256:" + "0" * 64
    assert fake.env == {"SAGECODE_GITHUB_API": fake.base, "SAGECODE_GITHUB_WEB": fake.base}
