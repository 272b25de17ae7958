"""GitHub releases: the API first, the web ``/releases/latest`` redirect when the API fails.

Anonymous API calls are rate limited (60 an hour per address), and a notebook instance
often shares its address with others, so a rate limit is a normal event here: we wait
when GitHub says the limit resets soon, and otherwise fall back at once to the web
redirect, which is not rate limited but carries no digests.
"""

from __future__ import annotations

import contextlib
import logging
import re
import time
from collections.abc import Iterator, Mapping
from dataclasses import dataclass, field
from types import MappingProxyType
from typing import Any, Callable, Optional

import requests
from tenacity import RetryCallState, Retrying, retry_if_exception_type

from imagebuild.errors import VersionError

GITHUB_API = "https://api.github.com"
GITHUB_WEB = "https://github.com"
RATE_LIMIT_FIX = "set GITHUB_TOKEN to a GitHub token to lift the API rate limit, or retry later"
# One logger for everything version resolution decides, so one setting shows it all.
log = logging.getLogger("imagebuild.versions")
_TAG_URL = re.compile(r"/tag/v?(\d+\.\d+\.\d+)$")
_REDIRECTS = frozenset({301, 302, 303, 307, 308})
# GitHub asks clients hit by a secondary limit without a hint to wait at least a minute.
_UNHINTED_RATE_LIMIT_S = 60.0


@dataclass(frozen=True)
class Asset:
    """One downloadable file of a release; ``sha256`` is GitHub's digest when it has one."""

    name: str
    url: str
    sha256: Optional[str] = None


@dataclass(frozen=True)
class Release:
    """An exact version; ``assets`` by file name (empty when the source lists none)."""

    version: str
    assets: Mapping[str, Asset] = field(default_factory=dict)
    source: str = "github"

    def __post_init__(self) -> None:
        # A read-only view, so a frozen Release cannot be changed through its mapping.
        object.__setattr__(self, "assets", MappingProxyType(dict(self.assets)))


class ReleaseNotFoundError(VersionError):
    """GitHub answered, and the release does not exist: no other route will find it."""


class GitHubUnavailableError(VersionError):
    """GitHub could not answer (down, refused, rate limited): another route may work."""

    def __init__(self, what: str, fix: str = "", *, rate_limited: bool = False) -> None:
        super().__init__(what, fix)
        self.rate_limited = rate_limited


class _TransientError(Exception):
    """A failure worth retrying; ``wait_s`` is the server's own hint, if it gave one."""

    def __init__(self, reason: str, wait_s: Optional[float] = None, *, limited: bool = False):
        super().__init__(reason)
        self.wait_s = wait_s
        self.limited = limited


@dataclass(frozen=True)
class GitHubReleases:
    """Looks up releases of ``repo``; total waiting never passes ``deadline_s``."""

    repo: str = "coder/code-server"
    api_base: str = GITHUB_API
    web_base: str = GITHUB_WEB
    token: Optional[str] = None
    session: Optional[requests.Session] = None
    deadline_s: float = 60.0
    timeout_s: float = 10.0
    max_attempts: int = 4
    sleep: Callable[[float], None] = time.sleep
    clock: Callable[[], float] = time.monotonic

    def release(self, version: str) -> Release:
        """The release for ``version`` ("latest" or an exact X.Y.Z), from the API or the web."""
        deadline = self.clock() + self.deadline_s
        with self._open() as session:
            try:
                return self._from_api(session, version, deadline)
            except GitHubUnavailableError as api_error:  # a 404 is final: no fallback
                return self._from_web(session, version, deadline, api_error)

    @contextlib.contextmanager
    def _open(self) -> Iterator[requests.Session]:
        if self.session is not None:
            yield self.session
            return
        with requests.Session() as session:
            yield session

    def _from_api(self, session: requests.Session, version: str, deadline: float) -> Release:
        path = "latest" if version == "latest" else f"tags/v{version}"
        url = f"{self.api_base}/repos/{self.repo}/releases/{path}"
        response = self._send(session, "GET", url, deadline, headers=self._api_headers())
        if response.status_code == 404:
            raise ReleaseNotFoundError(f"{self.repo} has no release {version}", _pick_fix(self.repo))
        if response.status_code != 200:
            raise GitHubUnavailableError(f"GitHub API answered HTTP {response.status_code} for {url}")
        try:
            return _parse_release(response.json(), url)
        except (ValueError, LookupError, TypeError, AttributeError) as error:
            raise GitHubUnavailableError(f"{url} returned an unreadable release ({error!r})") from error

    def _from_web(
        self, session: requests.Session, version: str, deadline: float, api: GitHubUnavailableError
    ) -> Release:
        try:
            found = self._web_version(session, version, deadline)
        except GitHubUnavailableError as web:
            fix = RATE_LIMIT_FIX if api.rate_limited else "check the network and proxy settings"
            raise GitHubUnavailableError(f"{api.what}; web fallback: {web.what}", fix) from web
        log.warning("GitHub API failed (%s); took %s from the web redirect", api.what, found)
        return Release(found, source="github-web")

    def _web_version(self, session: requests.Session, version: str, deadline: float) -> str:
        path = "latest" if version == "latest" else f"tag/v{version}"
        url = f"{self.web_base}/{self.repo}/releases/{path}"
        response = self._send(session, "HEAD", url, deadline, allow_redirects=False)
        if response.status_code == 404:
            raise ReleaseNotFoundError(f"{self.repo} has no release {version}", _pick_fix(self.repo))
        if version != "latest" and response.status_code == 200:
            return version
        match = _TAG_URL.search(response.headers.get("Location", ""))
        if response.status_code not in _REDIRECTS or match is None:
            raise GitHubUnavailableError(f"{url} answered HTTP {response.status_code} with no tag")
        return match.group(1)

    def _api_headers(self) -> dict[str, str]:
        headers = {"Accept": "application/vnd.github+json", "X-GitHub-Api-Version": "2022-11-28"}
        if self.token:
            headers["Authorization"] = f"Bearer {self.token}"
        return headers

    def _send(
        self, session: requests.Session, method: str, url: str, deadline: float, **kwargs: Any
    ) -> requests.Response:
        """One request, retried on transient failures while the deadline allows the wait."""
        retrying = Retrying(
            retry=retry_if_exception_type(_TransientError),
            stop=lambda state: self._should_stop(state, deadline),
            wait=_next_wait,
            sleep=self.sleep,
            reraise=True,
        )
        try:
            return retrying(self._attempt, session, method, url, deadline, **kwargs)
        except _TransientError as failure:
            raise GitHubUnavailableError(str(failure), rate_limited=failure.limited) from failure

    def _should_stop(self, state: RetryCallState, deadline: float) -> bool:
        # Give up at once when the wait would end past the deadline: waiting part of it
        # only to fail later would spend the time the fallback needs.
        out_of_time = self.clock() + _next_wait(state) > deadline
        return out_of_time or state.attempt_number >= self.max_attempts

    def _attempt(
        self, session: requests.Session, method: str, url: str, deadline: float, **kwargs: Any
    ) -> requests.Response:
        # A request may not outlast the deadline either, but always gets a second to try.
        timeout = max(1.0, min(self.timeout_s, deadline - self.clock()))
        try:
            response = session.request(method, url, timeout=timeout, **kwargs)
        except (requests.ConnectionError, requests.Timeout) as error:
            raise _TransientError(f"{method} {url} failed: {type(error).__name__}") from error
        _raise_if_transient(response, method, url)
        return response


def _next_wait(state: RetryCallState) -> float:
    """The server's hint when it gave one, else exponential backoff: 1, 2, 4 ... seconds."""
    error = state.outcome.exception() if state.outcome else None
    if isinstance(error, _TransientError) and error.wait_s is not None:
        return error.wait_s
    return float(min(2 ** (state.attempt_number - 1), 30))


def _raise_if_transient(response: requests.Response, method: str, url: str) -> None:
    status, headers = response.status_code, response.headers
    limited = status == 429 or (
        status == 403 and ("Retry-After" in headers or headers.get("X-RateLimit-Remaining") == "0")
    )
    if limited:
        wait_s = _rate_limit_wait(headers)
        raise _TransientError(
            f"GitHub rate limit (HTTP {status}) on {method} {url}, retry in {wait_s:.0f} s",
            wait_s,
            limited=True,
        )
    if status >= 500:
        raise _TransientError(f"{method} {url} answered HTTP {status}", _retry_after(headers))


def _rate_limit_wait(headers: Mapping[str, str]) -> float:
    retry_after = _retry_after(headers)
    if retry_after is not None:
        return retry_after
    reset = headers.get("X-RateLimit-Reset", "")
    if headers.get("X-RateLimit-Remaining") == "0" and reset.isdigit():
        return max(0.0, int(reset) - time.time())
    return _UNHINTED_RATE_LIMIT_S


def _retry_after(headers: Mapping[str, str]) -> Optional[float]:
    # Only the seconds form: GitHub never sends the HTTP-date form of Retry-After.
    value = headers.get("Retry-After", "").strip()
    return float(value) if value.isdigit() else None


def _parse_release(document: Any, url: str) -> Release:
    tag = document.get("tag_name", "") if isinstance(document, dict) else ""
    version = tag[1:] if tag.startswith("v") else tag
    if not re.fullmatch(r"\d+\.\d+\.\d+", version):
        raise GitHubUnavailableError(f"{url} returned tag {tag!r}, not vX.Y.Z")
    assets = [_parse_asset(item) for item in document.get("assets", [])]
    return Release(version, {asset.name: asset for asset in assets})


def _parse_asset(item: Mapping[str, Any]) -> Asset:
    digest = item.get("digest") or ""
    sha256 = digest.removeprefix("sha256:") if digest.startswith("sha256:") else None
    return Asset(item["name"], item["browser_download_url"], sha256)


def _pick_fix(repo: str) -> str:
    return f"pick a version listed at {GITHUB_WEB}/{repo}/releases, or use latest"
