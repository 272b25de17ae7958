"""The build's configuration: one frozen object, read from the environment in one place.

Precedence: defaults < environment (``SAGECODE_*``) < command-line flags (the CLI applies
them with ``dataclasses.replace``).
"""

from __future__ import annotations

import os
import platform as _platform
from collections.abc import Mapping
from dataclasses import dataclass, field
from pathlib import Path
from typing import Optional

from imagebuild.errors import UsageError
from imagebuild.paths import StatePaths, state_paths

DEFAULT_BASE_IMAGE = "ubuntu:22.04"
CODE_SERVER_SOURCES = ("auto", "github", "npm")
# Variables passed into build steps through a secret (never a layer): registries and
# mirrors may carry credentials (a CodeArtifact token, for one).
PASSTHROUGH_ENV = (
    "npm_config_registry", "NPM_CONFIG_REGISTRY", "PIP_INDEX_URL", "PIP_EXTRA_INDEX_URL",
    "PIP_TRUSTED_HOST", "SAGECODE_APT_MIRROR",
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
    #: ``amd64`` or ``arm64``.
    platform: str = field(default_factory=host_platform)
    #: Image repository name; tags are the content hash and ``latest``.
    image_name: str = "sagecode"
    #: Registry reference for the build cache instead of the local cache directory.
    cache_ref: Optional[str] = None
    #: Image to pull (tag or digest) when restoring finds nothing usable, instead of building.
    image_ref: Optional[str] = None
    #: Upper bound for the local build cache, in MiB.
    cache_cap_mb: int = 6144
    #: How many saved image tars to keep (newest first).
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


def _path(env: Mapping[str, str], name: str) -> Optional[Path]:
    return Path(env[name]).expanduser() if env.get(name) else None


def from_env(env: Optional[Mapping[str, str]] = None) -> BuildConfig:
    """The configuration from defaults and ``SAGECODE_*`` variables (the only reader)."""
    env = dict(os.environ) if env is None else env
    disabled = frozenset(x for x in env.get("SAGECODE_DISABLE_LAYERS", "").split(",") if x)
    return BuildConfig(
        state=state_paths(env),
        base_image=env.get("SAGECODE_BASE_IMAGE") or DEFAULT_BASE_IMAGE,
        code_server=env.get("SAGECODE_CODE_SERVER") or "latest",
        code_server_source=env.get("SAGECODE_CODE_SERVER_SOURCE") or "auto",
        disabled=disabled,
        cache_ref=env.get("SAGECODE_CACHE_REF") or None,
        image_ref=env.get("SAGECODE_IMAGE_REF") or None,
        cache_cap_mb=_int(env, "SAGECODE_CACHE_CAP_MB", 6144),
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
    if config.keep < 1 or config.cache_cap_mb < 0:
        raise UsageError("--keep must be at least 1 and --cache-cap-mb not negative", "fix the flag")
