"""Turn the build's wants into exact versions (the lock), before anything is built."""

from __future__ import annotations

import shutil
from concurrent.futures import ThreadPoolExecutor
from typing import Optional

from imagebuild import layers
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.errors import UsageError, VersionError
from imagebuild.github import GitHubReleases
from imagebuild.layers.code_server import asset_name
from imagebuild.layers.model import Want
from imagebuild.manifest import read as read_lock
from imagebuild.versions import NpmClient, PipClient, resolve_code_server, validate_version

Versions = dict[str, str]
# The command-line flag of each want, so a bad version names what to change.
FLAGS = {"code-server": "--code-server", "awscli": "--aws-cli", "mise": "--mise",
         "claude-code": "--claude-code", "cline": "--cline"}
EXAMPLES = {"code-server": "4.139.1", "awscli": "2.27.0"}


def resolve(config: BuildConfig, console: Console, npm: Optional[NpmClient] = None) -> Versions:
    """Exact versions for every want: from ``--lock`` if given, else resolved now."""
    wants = layers.wants(config)
    if config.lock_file:
        return _from_lock(config, wants)
    for want in wants:
        validate_version(FLAGS.get(want.key, want.key), want.spec, ranges=want.source in ("npm", "pypi"),
                         example=EXAMPLES.get(want.key, "1.2.3"))
    for want in wants:
        console.step(f"resolving {want.key} {want.spec}")
    # Each lookup is a registry round trip through its own client (about 0.5 s): all at
    # once. The first failure in the wants' order is the one reported.
    with ThreadPoolExecutor(max_workers=max(1, len(wants))) as pool:
        found = [pool.submit(_resolve_one, config, want, npm) for want in wants]
    out: Versions = {}
    for future in found:
        out.update(future.result())
    return out


def _from_lock(config: BuildConfig, wants: tuple[Want, ...]) -> Versions:
    assert config.lock_file is not None
    versions = dict(read_lock(config.lock_file).versions)
    missing = [w.key for w in wants if w.key not in versions]
    if missing:
        raise UsageError(
            f"{config.lock_file} has no version for {', '.join(missing)}",
            "use a lock from a build with the same layers, or drop --lock",
        )
    return versions


def _npm(npm: Optional[NpmClient]) -> NpmClient:
    if npm is not None:
        return npm
    if shutil.which("npm") is None:
        raise VersionError(
            "resolving npm-hosted versions needs the npm client, which is not installed",
            "install npm (e.g. conda install nodejs), or reuse a build's versions with --lock FILE",
        )
    return NpmClient()


def _resolve_one(config: BuildConfig, want: Want, npm: Optional[NpmClient]) -> Versions:
    if want.key == "code-server":
        return _code_server(config, want, npm)
    if want.source == "npm":
        return {want.key: _npm(npm).view_versions(want.package, want.spec)}
    pypi = want.source == "pypi"
    version = PipClient().view_version(want.package, want.spec) if pypi else _exact(want)
    # The source goes into the lock too, so --lock rebuilds from where the version came.
    return {want.key: version, f"{want.key}-source": want.source}


def _exact(want: Want) -> str:
    """A source with no version index we can reach (AWS's v2 installer): X.Y.Z as given."""
    version = validate_version(want.key, want.spec, example="2.27.0")
    if version == "latest":
        raise UsageError(f"{want.package} from {want.source} has no version index to resolve 'latest'",
                         "give its exact version X.Y.Z (e.g. 2.27.0)")
    return version


def _code_server(config: BuildConfig, want: Want, npm: Optional[NpmClient]) -> Versions:
    github = GitHubReleases(
        "coder/code-server", config.github_api, config.github_web, config.github_token
    )
    source = want.source
    client = _npm(npm) if source == "npm" else (npm or NpmClient())
    release = resolve_code_server(want.spec, source, github=github, npm=client)  # type: ignore[arg-type]
    out = {"code-server": release.version, "code-server-source": release.source}
    asset = release.assets.get(asset_name(release.version, config.platform))
    if release.source == "github":
        if asset is None:
            raise VersionError(
                f"code-server {release.version} has no linux-{config.platform} tarball on GitHub",
                "use --code-server-source npm",
            )
        out["code-server-url"] = asset.url
        if asset.sha256:
            out["code-server-sha256"] = asset.sha256
    return out
