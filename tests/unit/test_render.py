"""Rendering layers to a multi-stage Dockerfile: golden text and content hashing."""

from __future__ import annotations

import dataclasses
import os
from pathlib import Path

from imagebuild import layers
from imagebuild.config import BuildConfig
from imagebuild.layers import code_server
from imagebuild.render import render
from tests.conftest import VERSIONS

GOLDEN = Path(__file__).parent / "golden"


def _check_golden(name: str, text: str) -> None:
    path = GOLDEN / name
    if os.environ.get("UPDATE_GOLDEN"):
        path.write_text(text)
    assert text == path.read_text()


def test_render_npm_golden(config: BuildConfig) -> None:
    """The default composition renders to the reviewed Dockerfile text."""
    _check_golden("npm.Dockerfile", render(layers.compose(config, VERSIONS), config.base_image).dockerfile)


def test_render_github_golden(config: BuildConfig) -> None:
    """The GitHub source downloads the tarball and checks GitHub's digest."""
    versions = {**VERSIONS, "code-server-source": "github", "code-server-url": "https://x/cs.tgz",
                "code-server-sha256": "ab" * 32}
    text = render(layers.compose(config, versions), config.base_image).dockerfile
    _check_golden("github.Dockerfile", text)
    assert f"fetch-release https://x/cs.tgz {'ab' * 32} /opt/code-server" in text


def test_render_build_tools_stay_in_builder(config: BuildConfig) -> None:
    """Compilers are installed in the code-server stage, never in base or the final stage."""
    text = render(layers.compose(config, VERSIONS), config.base_image).dockerfile
    base_and_final = text.split("FROM node AS code-server")[0] + text.split("AS image")[1]
    assert "g++" in text
    assert "g++" not in base_and_final


def test_render_version_change_touches_only_its_stage(config: BuildConfig) -> None:
    """A new code-server version changes the code-server stage text and nothing before it."""
    old = render(layers.compose(config, VERSIONS), config.base_image).dockerfile
    new = render(layers.compose(config, {**VERSIONS, "code-server": "4.140.0"}), config.base_image).dockerfile
    prefix = old.split("FROM node AS code-server")[0]
    assert new.startswith(prefix)
    assert old != new


def test_render_content_hash_follows_inputs(config: BuildConfig) -> None:
    """The content hash changes with the base image and versions, and only then."""
    first = render(layers.compose(config, VERSIONS), config.base_image)
    again = render(layers.compose(config, VERSIONS), config.base_image)
    other_base = render(layers.compose(config, VERSIONS), "ubuntu:24.04")
    assert first.content == again.content != other_base.content
    assert len(first.short) == 12


def test_render_writes_context(config: BuildConfig, tmp_path: Path) -> None:
    """The context holds the Dockerfile, build helpers and each layer's files."""
    definition = render(layers.compose(config, VERSIONS), config.base_image)
    definition.write(tmp_path)
    names = sorted(str(p.relative_to(tmp_path)) for p in tmp_path.rglob("*") if p.is_file())
    assert names == [
        "Dockerfile", "build/apt-install.sh", "build/netenv.sh", "files/agents/trim-cline.sh",
        "files/code-server-natives.py", "files/install-node.sh",
        "files/trim-code-server.sh", "rootfs/etc/vim/vimrc.local", "rootfs/etc/zsh/zshrc.d/sagecode.zsh",
        "rootfs/usr/local/bin/code-server", "rootfs/usr/local/bin/sagecode-entrypoint",
        "rootfs/usr/local/bin/sagecode-mise-defaults", "rootfs/usr/local/lib/sagecode/extensions.py",
        "rootfs/usr/local/lib/sagecode/first_start.py", "rootfs/usr/local/share/sagecode/seeds/agents.json",
        "rootfs/usr/local/share/sagecode/seeds/agents/aws-config",
        "rootfs/usr/local/share/sagecode/seeds/agents/claude-settings.json",
        "rootfs/usr/local/share/sagecode/seeds/agents/cline-state.json",
        "rootfs/usr/local/share/sagecode/seeds/editor.json",
        "rootfs/usr/local/share/sagecode/seeds/editor/extensions.txt",
        "rootfs/usr/local/share/sagecode/seeds/editor/machine-settings.json",
        "rootfs/usr/local/share/sagecode/seeds/editor/user-settings.jsonc",
    ]


def test_render_github_without_digest_skips_check(config: BuildConfig) -> None:
    """Without a digest from GitHub there is no checksum line (the README says so)."""
    stage = code_server.github_stage("https://x/cs.tgz", None)[-1]
    assert "sha256sum" not in " ".join(stage.run)


def test_render_without_layers(config: BuildConfig) -> None:
    """A minimal image (no node, no code-server) still has base and entrypoint."""
    off = frozenset({"node", "code-server", "mise", "agents", "editor"})
    small = dataclasses.replace(config, disabled=off)
    text = render(layers.compose(small, VERSIONS), config.base_image).dockerfile
    assert "AS node" not in text
    assert 'ENTRYPOINT ["/usr/local/bin/sagecode-entrypoint"]' in text
