"""The build's configuration: one frozen object, read from the environment in one place.

Precedence: defaults < environment (``SAGECODE_*``) < command-line flags (the CLI applies
them with ``dataclasses.replace``).
"""

from __future__ import annotations

import os
import platform as _platform
import re
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from imagebuild.errors import UsageError
from imagebuild.paths import StatePaths, state_paths

DEFAULT_BASE_IMAGE = "ubuntu:22.04"
CODE_SERVER_SOURCES = ("auto", "github", "npm")
AWS_CLI_SOURCES = ("pypi", "v2")
CACHE_MODES = ("auto", "min", "max", "off")
#: How ``restore`` hands the saved image to the engine: ``pull`` from 127.0.0.1, falling back
#: to a load where the engine cannot reach it (the default), or always ``load``.
RESTORE_WAYS = ("pull", "load")
# The predecessor's Amazon Bedrock defaults.
DEFAULT_AWS_REGION = "us-east-1"
DEFAULT_BEDROCK_MODEL = "us.anthropic.claude-opus-4-6-v1"
_REGION = re.compile(r"[a-z]{2}(-[a-z]+)+-\d+")
_MODEL = re.compile(r"[A-Za-z0-9][A-Za-z0-9._:/-]*")
# Variables passed into build steps through a secret (never a layer): registries and
# mirrors may carry credentials (a CodeArtifact token, for one), and so may proxy URLs.
# Proxies travel this way rather than as buildx's predefined proxy build args so that
# every secret-bearing variable takes the one route that is checked to leave no trace.
PASSTHROUGH_ENV = (
    "npm_config_registry", "NPM_CONFIG_REGISTRY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST", "SAGECODE_APT_MIRROR",
    "HTTP_PROXY", "HTTPS_PROXY", "NO_PROXY", "http_proxy", "https_proxy", "no_proxy",
)


def host_platform() -> str:
    """``amd64`` or ``arm64``, as Docker names the host's architecture."""
    machine = _platform.machine().lower()
    return {"x86_64": "amd64", "aarch64": "arm64", "arm64": "arm64"}.get(machine, machine)


@dataclass(frozen=True)
class BuildConfig:
    """Everything a build needs to know. Every field has a documented default."""

    state: StatePaths
    #: The image the build starts from; must have glibc >= 2.28 for code-server.
    base_image: str = DEFAULT_BASE_IMAGE
    #: code-server version: ``latest`` or ``X.Y.Z``.
    code_server: str = "latest"
    #: Where code-server comes from: ``auto`` (GitHub, then npm), ``github`` or ``npm``.
    code_server_source: str = "auto"
    #: Node.js major (or exact) version for the image, and npm's.
    node: str = "24"
    npm: str = "11"
    #: Layers switched off by name.
    disabled: frozenset[str] = frozenset()
    #: Optional layers switched on by name (``kiro``, ``trust-ca``).
    extra_layers: frozenset[str] = frozenset()
    #: AWS CLI version and source: ``pypi`` (awscli v1, mirror-friendly) or ``v2`` (exact X.Y.Z).
    aws_cli: str = "latest"
    aws_cli_source: str = "pypi"
    #: mise, Claude Code and Cline versions (npm): ``latest``, ``X.Y.Z``, ``N`` or ``N.x``.
    mise: str = "latest"
    claude_code: str = "latest"
    cline: str = "latest"
    #: Amazon Bedrock defaults written into the home at first start (run-time env wins).
    aws_region: str = DEFAULT_AWS_REGION
    bedrock_model: str = DEFAULT_BEDROCK_MODEL
    #: ``amd64`` or ``arm64``.
    platform: str = field(default_factory=host_platform)
    #: Image repository name; tags are the content hash and ``latest``.
    image_name: str = "sagecode"
    #: Registry reference for the build cache instead of the local cache directory.
    cache_ref: Optional[str] = None
    #: Image to pull (tag or digest) when restoring finds nothing usable, instead of building.
    image_ref: Optional[str] = None
    #: Cache export: ``auto`` (none on the docker driver with the containerd store), min, max, off.
    cache_mode: str = "auto"
    #: Upper bound for the local build cache, in MiB.
    cache_cap_mb: int = 6144
    #: ``pull`` (default) or ``load``: see RESTORE_WAYS.
    restore_via: str = "pull"
    #: How many saved images to keep (newest first).
    keep: int = 1
    #: A CA bundle every download in the build trusts (mounted as a secret).
    ca_bundle: Optional[Path] = None
    #: Also install that bundle in the image so tools trust it at run time.
    trust_ca: bool = False
    #: Reproduce the versions of a previous build from its lock/manifest file.
    lock_file: Optional[Path] = None
    #: GitHub API and web bases (overridable for mirrors and tests) and optional token.
    github_api: str = "https://api.github.com"
    github_web: str = "https://github.com"
    github_token: Optional[str] = field(default=None, repr=False)
    #: Variables passed to build steps as a secret (see PASSTHROUGH_ENV).
    build_env: Mapping[str, str] = field(default_factory=dict, repr=False)

    @property
    def image_repo(self) -> str:
        """The image repository name."""
        return self.image_name


def _int(env: Mapping[str, str], name: str, default: int) -> int:
    raw = env.get(name)
    if raw is None or raw == "":
        return default
    try:
        return int(raw)
    except ValueError:
        raise UsageError(f"{name}={raw!r} is not a whole number", f"set {name} to e.g. {default}") from None


def _names(env: Mapping[str, str], name: str) -> frozenset[str]:
    return frozenset(x.strip() for x in env.get(name, "").split(",") if x.strip())


def _path(env: Mapping[str, str], name: str) -> Optional[Path]:
    return Path(env[name]).expanduser() if env.get(name) else None


def from_env(env: Optional[Mapping[str, str]] = None) -> BuildConfig:
    """The configuration from defaults and ``SAGECODE_*`` variables (the only reader)."""
    env = dict(os.environ) if env is None else env
    return BuildConfig(
        state=state_paths(env),
        base_image=env.get("SAGECODE_BASE_IMAGE") or DEFAULT_BASE_IMAGE,
        code_server=env.get("SAGECODE_CODE_SERVER") or "latest",
        code_server_source=env.get("SAGECODE_CODE_SERVER_SOURCE") or "auto",
        disabled=_names(env, "SAGECODE_DISABLE_LAYERS"),
        extra_layers=_names(env, "SAGECODE_WITH_LAYERS"),
        aws_cli=env.get("SAGECODE_AWS_CLI") or "latest",
        aws_cli_source=env.get("SAGECODE_AWS_CLI_SOURCE") or "pypi",
        mise=env.get("SAGECODE_MISE") or "latest",
        claude_code=env.get("SAGECODE_CLAUDE_CODE") or "latest",
        cline=env.get("SAGECODE_CLINE") or "latest",
        aws_region=env.get("SAGECODE_AWS_REGION") or DEFAULT_AWS_REGION,
        bedrock_model=env.get("SAGECODE_BEDROCK_MODEL") or DEFAULT_BEDROCK_MODEL,
        trust_ca=env.get("SAGECODE_TRUST_CA", "").lower() in ("1", "true", "yes"),
        cache_ref=env.get("SAGECODE_CACHE_REF") or None,
        image_ref=env.get("SAGECODE_IMAGE_REF") or None,
        cache_mode=env.get("SAGECODE_CACHE_MODE") or "auto",
        cache_cap_mb=_int(env, "SAGECODE_CACHE_CAP_MB", 6144),
        restore_via=env.get("SAGECODE_RESTORE_VIA") or "pull",
        keep=_int(env, "SAGECODE_KEEP_IMAGES", 1),
        ca_bundle=_path(env, "SAGECODE_CA_BUNDLE"),
        github_api=env.get("SAGECODE_GITHUB_API") or "https://api.github.com",
        github_web=env.get("SAGECODE_GITHUB_WEB") or "https://github.com",
        github_token=env.get("GITHUB_TOKEN") or None,
        build_env={k: env[k] for k in PASSTHROUGH_ENV if env.get(k)},
    )


def check(config: BuildConfig) -> None:
    """Reject unusable input before any work starts (one-line errors)."""
    bundle = config.ca_bundle
    if bundle is not None and (not bundle.is_file() or not os.access(bundle, os.R_OK)):
        raise UsageError(f"cannot read the CA bundle {bundle}", "pass a readable PEM file to --ca-bundle")
    root = config.state.root
    try:
        root.mkdir(parents=True, exist_ok=True)
    except OSError as exc:
        raise UsageError(f"cannot create {root}: {exc.strerror}", "choose a writable --state-dir") from None
    if not os.access(root, os.W_OK):
        raise UsageError(f"{root} is not writable", "fix its permissions or choose another --state-dir")
    _check_layer_options(config)
    if config.cache_mode not in CACHE_MODES:
        raise UsageError(f"SAGECODE_CACHE_MODE={config.cache_mode!r} is not a cache mode",
                         f"use one of {', '.join(CACHE_MODES)}")
    if config.restore_via not in RESTORE_WAYS:
        raise UsageError(f"SAGECODE_RESTORE_VIA={config.restore_via!r} is not a way to restore",
                         f"use one of {', '.join(RESTORE_WAYS)}")
    if config.keep < 1 or config.cache_cap_mb < 0:
        raise UsageError("--keep must be at least 1 and --cache-cap-mb not negative", "fix the flag")


def _check_layer_options(config: BuildConfig) -> None:
    if config.aws_cli_source not in AWS_CLI_SOURCES:
        raise UsageError(f"unknown AWS CLI source {config.aws_cli_source!r}", "use pypi or v2")
    if not _REGION.fullmatch(config.aws_region):
        raise UsageError(f"{config.aws_region!r} is not an AWS region", "e.g. --aws-region us-east-1")
    if not _MODEL.fullmatch(config.bedrock_model):
        raise UsageError(f"{config.bedrock_model!r} is not a Bedrock model id",
                         f"e.g. --bedrock-model {DEFAULT_BEDROCK_MODEL}")
    if config.trust_ca and config.ca_bundle is None:
        raise UsageError("--trust-ca installs the --ca-bundle FILE, and none was given",
                         "add --ca-bundle FILE")
