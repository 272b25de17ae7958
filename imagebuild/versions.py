"""Every "latest" becomes an exact version before a build starts.

The content hash of a build, and so its cache and its saved image, only means something
when the build text names exact versions. Versions come from GitHub releases, or from the
user's own npm and pip clients: never from a registry address written here, so a mirror,
a CA file or a proxy configured for those clients applies unchanged.
"""

from __future__ import annotations

import json
import logging
import re
import subprocess
import sys
import time
from collections.abc import Iterable, Sequence
from dataclasses import dataclass
from typing import Callable, Literal, Optional

import requests

from imagebuild.errors import VersionError
from imagebuild.github import (
    GITHUB_API,
    GITHUB_WEB,
    Asset,
    GitHubReleases,
    GitHubUnavailableError,
    Release,
    ReleaseNotFoundError,
)

__all__ = [
    "Asset",
    "GitHubReleases",
    "GitHubUnavailableError",
    "NpmClient",
    "PipClient",
    "Release",
    "ReleaseNotFoundError",
    "highest_semver",
    "resolve_code_server",
    "resolve_github_release",
    "validate_version",
]

log = logging.getLogger("imagebuild.versions")

_NUMBER = r"(?:0|[1-9]\d*)"
_RELEASE = rf"{_NUMBER}\.{_NUMBER}\.{_NUMBER}"
_EXACT = re.compile(rf"v?({_RELEASE})")
_MAJOR = re.compile(rf"({_NUMBER})(?:\.x)?")
_SEMVER = re.compile(rf"({_NUMBER})\.({_NUMBER})\.({_NUMBER})(?:-([0-9A-Za-z.-]+))?(?:\+.*)?")
_EXACT_RELEASE = re.compile(_RELEASE)
NPM_FIX = "check the version exists (npm view PACKAGE versions) and npm's registry and proxy"
PIP_FIX = "check the version exists (pip index versions PACKAGE) and pip's index and proxy"
CodeServerSource = Literal["auto", "github", "npm"]


def validate_version(name: str, spec: str, *, ranges: bool = False, example: str = "1.2.3") -> str:
    """``spec`` normalised: "latest", "X.Y.Z" without a "v", or with ``ranges`` "N"/"N.x"."""
    text = spec.strip()
    exact = _EXACT.fullmatch(text)
    if exact:
        return exact.group(1)
    if text == "latest" or (ranges and _MAJOR.fullmatch(text)):
        return text
    shown = spec if spec.isprintable() else repr(spec)
    forms = "latest, X.Y.Z, N or N.x" if ranges else "latest or X.Y.Z"
    raise VersionError(f"{name} {shown} is not a version", f"use {forms}, e.g. {example}")


def highest_semver(versions: Iterable[str]) -> str:
    """The highest of ``versions`` by semver precedence (a pre-release sorts below its release)."""
    return max(versions, key=semver_key)


def semver_key(version: str) -> tuple[int, int, int, int, str]:
    match = _SEMVER.fullmatch(version)
    if match is None:
        raise VersionError(f"{version!r} is not a semantic version")
    major, minor, patch, pre = match.groups()
    return (int(major), int(minor), int(patch), 0 if pre else 1, pre or "")


def resolve_github_release(
    spec: str,
    *,
    repo: str = "coder/code-server",
    api_base: str = GITHUB_API,
    web_base: str = GITHUB_WEB,
    token: Optional[str] = None,
    session: Optional[requests.Session] = None,
    deadline_s: float = 60.0,
    sleep: Callable[[float], None] = time.sleep,
    clock: Callable[[], float] = time.monotonic,
) -> Release:
    """The GitHub release ``spec`` names: the API first, the web redirect if the API fails."""
    version = validate_version(repo.rsplit("/", 1)[-1], spec)
    releases = GitHubReleases(
        repo=repo,
        api_base=api_base,
        web_base=web_base,
        token=token,
        session=session,
        deadline_s=deadline_s,
        sleep=sleep,
        clock=clock,
    )
    return releases.release(version)


def resolve_code_server(
    spec: str,
    source: CodeServerSource = "auto",
    *,
    github: Optional[GitHubReleases] = None,
    npm: Optional[NpmClient] = None,
) -> Release:
    """code-server's exact version; ``auto`` asks GitHub, then npm when GitHub fails."""
    version = validate_version("code-server", spec, example="4.139.1")
    github = GitHubReleases() if github is None else github
    npm = NpmClient() if npm is None else npm
    if source == "npm":
        return _code_server_from_npm(npm, version)
    if source == "github":
        return github.release(version)
    if source != "auto":
        raise VersionError(f"unknown code-server source {source!r}", "use auto, github or npm")
    return _github_then_npm(github, npm, version)


def _github_then_npm(github: GitHubReleases, npm: NpmClient, version: str) -> Release:
    try:
        return github.release(version)
    except ReleaseNotFoundError:
        raise  # GitHub answered: npm publishes the same releases, so it would not help.
    except VersionError as github_error:
        log.warning("code-server %s: GitHub failed (%s); asking npm", version, github_error)
        try:
            return _code_server_from_npm(npm, version)
        except VersionError as npm_error:
            what = f"{github_error.what}; npm fallback: {npm_error.what}"
            raise VersionError(what, github_error.fix or npm_error.fix) from npm_error


def _code_server_from_npm(npm: NpmClient, version: str) -> Release:
    return Release(npm.view_versions("code-server", version), source="npm")


@dataclass(frozen=True)
class NpmClient:
    """Asks the npm client; ``command`` is its prefix, e.g. ``docker run ... npm``."""

    command: Sequence[str] = ("npm",)
    timeout_s: float = 60.0

    def view_versions(self, package: str, spec: str) -> str:
        """The highest published version of ``package`` matching ``spec``."""
        wanted = f"{package}@{validate_version(package, spec, ranges=True)}"
        listed = self._view(wanted, "version", wanted)
        versions = [item for item in listed if isinstance(item, str)]
        if not versions or len(versions) != len(listed):
            raise VersionError(f"npm has no version matching {wanted}", NPM_FIX)
        return highest_semver(versions)

    def stable_versions(self, package: str) -> list[str]:
        """Every published X.Y.Z release of ``package`` (no pre-releases), oldest first."""
        listed = self._view(package, "versions", f"{package} versions")
        releases = (v for v in listed if isinstance(v, str) and _EXACT_RELEASE.fullmatch(v))
        return sorted(releases, key=semver_key)

    def _view(self, target: str, field: str, shown: str) -> list[object]:
        """``npm view TARGET FIELD --json`` as a list (npm prints one match as a bare value);
        a failure or output that is not JSON is a VersionError naming ``npm view SHOWN``."""
        argv = [*self.command, "view", target, field, "--json"]
        result = _run(argv, self.timeout_s, target, NPM_FIX)
        if result.returncode != 0:
            reason = _npm_reason(result.stdout, result.stderr)
            raise VersionError(f"npm view {shown} failed: {reason}", NPM_FIX)
        try:
            found = json.loads(result.stdout) if result.stdout.strip() else []
        except ValueError as error:
            raise VersionError(f"npm view {shown} printed no JSON: {result.stdout[:80]!r}") from error
        return found if isinstance(found, list) else [found]


def _npm_reason(stdout: str, stderr: str) -> str:
    # With --json npm puts a one-line summary on stdout; its stderr ends with the path of
    # a debug log, which says nothing, so the last line before that is the next best.
    try:
        return " ".join(str(json.loads(stdout)["error"]["summary"]).split())
    except (ValueError, LookupError, TypeError):
        return _last_line(line for line in stderr.splitlines() if "complete log" not in line)


@dataclass(frozen=True)
class PipClient:
    """Asks pip, so ``PIP_INDEX_URL``, pip.conf and proxies apply as they do for installs."""

    command: Sequence[str] = (sys.executable, "-m", "pip")
    timeout_s: float = 60.0

    def view_version(self, package: str, spec: str) -> str:
        """The newest version of ``package`` matching ``spec`` (latest, X.Y.Z, N or N.x)."""
        wanted = validate_version(package, spec, ranges=True)
        argv = [*self.command, "--disable-pip-version-check", "index", "versions", package]
        result = _run(argv, self.timeout_s, package, PIP_FIX)
        if result.returncode != 0:
            reason = _last_line(result.stderr.splitlines())
            raise VersionError(f"pip index versions {package} failed: {reason}", PIP_FIX)
        return _pick_pip_version(result.stdout, package, wanted)


def _pick_pip_version(stdout: str, package: str, wanted: str) -> str:
    latest = re.search(r"^\S+ \((\S+)\)$", stdout, re.MULTILINE)
    listed = re.search(r"^Available versions: (.*)$", stdout, re.MULTILINE)
    if latest is None or listed is None:
        raise VersionError(f"pip index versions {package} printed {stdout[:80]!r}", PIP_FIX)
    if wanted == "latest":
        return latest.group(1)
    available = [item.strip() for item in listed.group(1).split(",")]
    prefix = f"{wanted.removesuffix('.x')}." if _MAJOR.fullmatch(wanted) else None
    # pip lists newest first, so the first match of a major is its newest release.
    for version in available:
        if version == wanted or (prefix and version.startswith(prefix)):
            return version
    raise VersionError(f"pip has no {package} {wanted}", PIP_FIX)


def _run(argv: list[str], timeout_s: float, what: str, fix: str) -> subprocess.CompletedProcess[str]:
    # The environment is inherited on purpose: registry, CA file and proxy settings
    # (npm_config_*, PIP_*, HTTPS_PROXY) must reach the client unchanged.
    try:
        return subprocess.run(
            argv,
            capture_output=True,
            text=True,
            timeout=timeout_s,
            stdin=subprocess.DEVNULL,
            check=False,
        )
    except FileNotFoundError as error:
        raise VersionError(f"cannot look up {what}: {argv[0]} not found", fix) from error
    except subprocess.TimeoutExpired as error:
        raise VersionError(f"{argv[0]} took over {timeout_s:.0f} s to look up {what}", fix) from error


def _last_line(lines: Iterable[str]) -> str:
    kept = [line.strip() for line in lines if line.strip()]
    return kept[-1] if kept else "no output"
