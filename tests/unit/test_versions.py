"""Version resolution against local fakes: GitHub's API and web, an npm registry, a pip index.

npm and pip are the real clients, pointed at the fakes through their usual settings.
"""

from __future__ import annotations

import contextlib
import json
import logging
import os
import shutil
import socket
import threading
import time
from collections.abc import Iterator
from dataclasses import dataclass, field
from http.server import BaseHTTPRequestHandler, ThreadingHTTPServer
from typing import Any

import pytest
import requests

from imagebuild.errors import VersionError
from imagebuild.versions import (
    GitHubReleases,
    NpmClient,
    PipClient,
    Release,
    ReleaseNotFoundError,
    highest_semver,
    resolve_code_server,
    resolve_github_release,
    validate_version,
)

API_LATEST = "/api/repos/coder/code-server/releases/latest"
API_TAG = "/api/repos/coder/code-server/releases/tags/v4.100.0"
WEB_LATEST = "/web/coder/code-server/releases/latest"
WEB_TAG = "/web/coder/code-server/releases/tag/v4.100.0"
SHA = "ab" * 32
RELEASE_DOC = {
    "tag_name": "v4.139.1",
    "assets": [
        {
            "name": "cs-linux-amd64.tar.gz",
            "browser_download_url": "https://x/a",
            "digest": f"sha256:{SHA}",
        },
        {"name": "cs_amd64.deb", "browser_download_url": "https://x/b", "digest": None},
    ],
}
REDIRECT = {"Location": "https://github.com/coder/code-server/releases/tag/v4.140.0"}
needs_npm = pytest.mark.skipif(shutil.which("npm") is None, reason="npm is not on PATH")


@dataclass
class Reply:
    """One scripted HTTP answer; a ``str`` body is sent as is, anything else as JSON."""

    status: int = 200
    body: Any = None
    headers: dict[str, str] = field(default_factory=dict)
    content_type: str = "application/json"


@dataclass
class FakeServer:
    """Answers each path with its scripted replies in order (the last repeats)."""

    base: str = ""
    routes: dict[str, list[Reply]] = field(default_factory=dict)
    seen: list[tuple[str, str, dict[str, str]]] = field(default_factory=list)

    def script(self, path: str, *replies: Reply) -> None:
        self.routes[path] = list(replies)

    def reply_for(self, path: str) -> Reply:
        replies = self.routes.get(path) or [Reply(404, {"message": "Not Found"})]
        return replies.pop(0) if len(replies) > 1 else replies[0]

    def hits(self, path: str) -> int:
        return sum(1 for _, seen_path, _ in self.seen if seen_path == path)


def _handler_for(fake: FakeServer) -> type[BaseHTTPRequestHandler]:
    class Handler(BaseHTTPRequestHandler):
        def do_GET(self) -> None:
            self._answer(send_body=True)

        def do_HEAD(self) -> None:
            self._answer(send_body=False)

        def _answer(self, *, send_body: bool) -> None:
            fake.seen.append((self.command, self.path, dict(self.headers)))
            reply = fake.reply_for(self.path)
            body = reply.body if isinstance(reply.body, str) else json.dumps(reply.body)
            data = body.encode() if reply.body is not None else b""
            self.send_response(reply.status)
            self.send_header("Content-Type", reply.content_type)
            self.send_header("Content-Length", str(len(data)))
            for name, value in reply.headers.items():
                self.send_header(name, value)
            self.end_headers()
            if send_body:
                self.wfile.write(data)

        def log_message(self, format: str, *args: Any) -> None:
            """Keep the test output quiet."""

    return Handler


@pytest.fixture
def fake() -> Iterator[FakeServer]:
    server = FakeServer()
    httpd = ThreadingHTTPServer(("127.0.0.1", 0), _handler_for(server))
    server.base = f"http://127.0.0.1:{httpd.server_address[1]}"
    # A short poll interval: shutdown() waits for one, and every test stops a server.
    thread = threading.Thread(target=httpd.serve_forever, args=(0.01,), daemon=True)
    thread.start()
    yield server
    httpd.shutdown()
    httpd.server_close()


@pytest.fixture(autouse=True)
def _no_proxy_for_fakes(monkeypatch: pytest.MonkeyPatch) -> None:
    for name in ("NO_PROXY", "no_proxy"):
        monkeypatch.setenv(name, "127.0.0.1")


class FakeTime:
    """A clock that only moves when the code under test sleeps."""

    def __init__(self) -> None:
        self.now = 0.0
        self.sleeps: list[float] = []

    def clock(self) -> float:
        return self.now

    def sleep(self, seconds: float) -> None:
        self.sleeps.append(seconds)
        self.now += seconds


def _github(fake: FakeServer, clock: FakeTime, **options: Any) -> GitHubReleases:
    defaults: dict[str, Any] = {"api_base": f"{fake.base}/api", "web_base": f"{fake.base}/web"}
    return GitHubReleases(**{**defaults, **options}, sleep=clock.sleep, clock=clock.clock)


def _resolve(fake: FakeServer, clock: FakeTime, spec: str = "latest", **options: Any) -> Release:
    defaults: dict[str, Any] = {"api_base": f"{fake.base}/api", "web_base": f"{fake.base}/web"}
    options = {**defaults, **options}
    return resolve_github_release(spec, sleep=clock.sleep, clock=clock.clock, **options)


def test_resolve_github_release_latest_reads_version_and_digests(fake: FakeServer) -> None:
    """The latest release's version comes from its tag and each asset keeps its sha256."""
    fake.script(API_LATEST, Reply(body=RELEASE_DOC))
    release = _resolve(fake, FakeTime())
    assert release.version == "4.139.1"
    assert release.assets["cs-linux-amd64.tar.gz"].sha256 == SHA
    assert release.assets["cs_amd64.deb"].sha256 is None
    assert release.source == "github"


def test_resolve_github_release_pinned_tag_asks_for_that_tag(fake: FakeServer) -> None:
    """A pinned "v4.100.0" is looked up at /releases/tags/v4.100.0."""
    fake.script(API_TAG, Reply(body={"tag_name": "v4.100.0", "assets": []}))
    assert _resolve(fake, FakeTime(), "v4.100.0").version == "4.100.0"
    assert fake.hits(API_TAG) == 1


def test_resolve_github_release_sends_token_as_bearer(fake: FakeServer) -> None:
    """A token goes in the Authorization header as a Bearer token."""
    fake.script(API_LATEST, Reply(body=RELEASE_DOC))
    _resolve(fake, FakeTime(), token="ghp_secret")
    assert fake.seen[0][2]["Authorization"] == "Bearer ghp_secret"


def test_resolve_github_release_without_token_sends_no_authorization(fake: FakeServer) -> None:
    """Without a token the request is anonymous."""
    fake.script(API_LATEST, Reply(body=RELEASE_DOC))
    _resolve(fake, FakeTime())
    assert "Authorization" not in fake.seen[0][2]


def test_resolve_github_release_waits_retry_after_on_429(fake: FakeServer) -> None:
    """A 429 with Retry-After is retried after exactly that many seconds."""
    fake.script(API_LATEST, Reply(429, {}, {"Retry-After": "7"}), Reply(body=RELEASE_DOC))
    clock = FakeTime()
    assert _resolve(fake, clock).version == "4.139.1"
    assert clock.sleeps == [7.0]


def test_resolve_github_release_waits_for_near_rate_limit_reset(fake: FakeServer) -> None:
    """A 403 with no requests left waits until X-RateLimit-Reset when that is soon."""
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3)}
    fake.script(API_LATEST, Reply(403, {}, reset), Reply(body=RELEASE_DOC))
    clock = FakeTime()
    assert _resolve(fake, clock).version == "4.139.1"
    assert len(clock.sleeps) == 1
    assert 1.0 < clock.sleeps[0] <= 3.0


def test_resolve_github_release_retries_at_once_when_reset_passed(fake: FakeServer) -> None:
    """A rate-limit reset already in the past means retry without waiting."""
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) - 100)}
    fake.script(API_LATEST, Reply(403, {}, reset), Reply(body=RELEASE_DOC))
    clock = FakeTime()
    assert _resolve(fake, clock).version == "4.139.1"
    assert clock.sleeps == [0.0]


def test_resolve_github_release_far_reset_falls_back_to_redirect(fake: FakeServer) -> None:
    """A reset past the deadline is not waited for: the web redirect answers at once."""
    reset = {"X-RateLimit-Remaining": "0", "X-RateLimit-Reset": str(int(time.time()) + 3600)}
    fake.script(API_LATEST, Reply(403, {}, reset))
    fake.script(WEB_LATEST, Reply(302, None, REDIRECT))
    clock = FakeTime()
    release = _resolve(fake, clock)
    assert (release.version, dict(release.assets), release.source) == ("4.140.0", {}, "github-web")
    assert clock.sleeps == []
    assert fake.hits(API_LATEST) == 1
    assert fake.seen[-1][0] == "HEAD"


def test_resolve_github_release_api_500s_fall_back_to_redirect(fake: FakeServer) -> None:
    """Server errors are retried with backoff, then the web redirect is used."""
    fake.script(API_LATEST, Reply(500, {}))
    fake.script(WEB_LATEST, Reply(302, None, REDIRECT))
    clock = FakeTime()
    assert _resolve(fake, clock).version == "4.140.0"
    assert fake.hits(API_LATEST) == 4
    assert clock.sleeps == [1.0, 2.0, 4.0]


def test_resolve_github_release_backoff_never_waits_past_deadline(fake: FakeServer) -> None:
    """With a 5 s deadline the 4 s backoff step is skipped rather than overrun."""
    fake.script(API_LATEST, Reply(503, {}))
    fake.script(WEB_LATEST, Reply(302, None, REDIRECT))
    clock = FakeTime()
    assert _resolve(fake, clock, deadline_s=5.0).version == "4.140.0"
    assert clock.sleeps == [1.0, 2.0]


def test_resolve_github_release_retries_refused_connections(fake: FakeServer) -> None:
    """A refused connection to the API is retried, then the redirect answers."""
    fake.script(WEB_LATEST, Reply(302, None, REDIRECT))
    clock = FakeTime()
    release = _resolve(fake, clock, api_base="http://127.0.0.1:9", deadline_s=2.0)
    assert release.version == "4.140.0"
    assert clock.sleeps == [1.0]


def test_resolve_github_release_pinned_tag_falls_back_to_tag_page(fake: FakeServer) -> None:
    """When the API is down a pinned version is confirmed by its release page."""
    fake.script(API_TAG, Reply(502, {}))
    fake.script(WEB_TAG, Reply(200, None))
    assert _resolve(fake, FakeTime(), "4.100.0", deadline_s=0.5).version == "4.100.0"


def test_resolve_github_release_all_failing_names_github_token(fake: FakeServer) -> None:
    """Rate limited and no redirect: one VersionError line that says to set GITHUB_TOKEN."""
    fake.script(API_LATEST, Reply(429, {}, {"Retry-After": "3600"}))
    fake.script(WEB_LATEST, Reply(500, None))
    with pytest.raises(VersionError, match="GITHUB_TOKEN") as caught:
        _resolve(fake, FakeTime())
    assert "\n" not in str(caught.value)


def test_resolve_github_release_unknown_tag_raises_not_found(fake: FakeServer) -> None:
    """A 404 for a pinned tag is final: no retry, no web fallback."""
    with pytest.raises(ReleaseNotFoundError, match=r"no release 4\.100\.0"):
        _resolve(fake, FakeTime(), "4.100.0")
    assert [path for _, path, _ in fake.seen] == [API_TAG]


def test_github_releases_sets_a_timeout_on_every_request(fake: FakeServer) -> None:
    """Every request, API and web, carries a timeout."""
    timeouts: list[Any] = []

    class RecordingSession(requests.Session):
        def request(self, *args: Any, **kwargs: Any) -> Any:
            timeouts.append(kwargs.get("timeout"))
            return super().request(*args, **kwargs)

    fake.script(API_LATEST, Reply(500, {}))
    fake.script(WEB_LATEST, Reply(302, None, REDIRECT))
    _github(fake, FakeTime(), session=RecordingSession()).release("latest")
    assert len(timeouts) == 5
    assert all(isinstance(value, float) and value > 0 for value in timeouts)


def test_release_assets_are_read_only() -> None:
    """A frozen Release cannot be changed through its assets mapping."""
    release = Release("1.2.3", {})
    with pytest.raises(TypeError):
        release.assets["x"] = release.assets.get("y")  # type: ignore[index]


@pytest.mark.parametrize(
    ("spec", "ranges", "expected"),
    [
        ("latest", False, "latest"),
        ("4.139.1", False, "4.139.1"),
        ("v4.139.1", False, "4.139.1"),
        (" 4.139.1 ", False, "4.139.1"),
        ("24", True, "24"),
        ("24.x", True, "24.x"),
    ],
)
def test_validate_version_accepts_documented_forms(spec: str, ranges: bool, expected: str) -> None:
    """latest, X.Y.Z (a leading v is dropped) and, for npm-style tools, N and N.x are valid."""
    assert validate_version("tool", spec, ranges=ranges) == expected


@pytest.mark.parametrize(
    ("spec", "ranges"),
    [
        ("4.x.y.z", False),
        ("", False),
        ("4.139", False),
        ("24", False),
        ("1.2.3-rc.1", False),
        ("01.2.3", False),
        ("latest; rm -rf /", True),
        ("24.1.x", True),
        ("v24", True),
    ],
)
def test_validate_version_rejects_other_values(spec: str, ranges: bool) -> None:
    """Anything else raises a one-line VersionError naming the value and the accepted forms."""
    with pytest.raises(VersionError, match="is not a version") as caught:
        validate_version("--tool", spec, ranges=ranges)
    assert "\n" not in str(caught.value)
    assert "X.Y.Z" in str(caught.value)


def test_validate_version_message_names_flag_and_example() -> None:
    """The message reads as the CLI prints it, flag and example included."""
    with pytest.raises(VersionError) as caught:
        validate_version("--code-server", "4.x.y.z", example="4.139.1")
    expected = "--code-server 4.x.y.z is not a version (use latest or X.Y.Z, e.g. 4.139.1)"
    assert str(caught.value) == expected


def test_highest_semver_compares_numbers_and_ranks_prereleases_lower() -> None:
    """10 beats 9 numerically, and a release beats its own pre-release."""
    assert highest_semver(["24.9.1", "24.10.0", "24.10.0-rc.1"]) == "24.10.0"


def _packument(name: str, versions: list[str], latest: str) -> dict[str, Any]:
    entries = {version: {"name": name, "version": version} for version in versions}
    return {"name": name, "dist-tags": {"latest": latest}, "versions": entries}


@pytest.fixture
def npm_registry(fake: FakeServer, monkeypatch: pytest.MonkeyPatch, tmp_path: Any) -> FakeServer:
    versions = ["24.0.0", "24.9.1", "24.10.0", "25.0.0", "26.0.0-rc.1"]
    fake.script("/node-like", Reply(body=_packument("node-like", versions, "25.0.0")))
    fake.script("/code-server", Reply(body=_packument("code-server", ["4.139.1"], "4.139.1")))
    monkeypatch.setenv("npm_config_registry", f"{fake.base}/")
    monkeypatch.setenv("npm_config_cache", str(tmp_path / "npm-cache"))
    monkeypatch.setenv("npm_config_update_notifier", "false")
    return fake


@needs_npm
def test_npm_client_resolves_latest_to_dist_tag(npm_registry: FakeServer) -> None:
    """latest is the registry's latest dist-tag, read by the real npm client."""
    assert NpmClient().view_versions("node-like", "latest") == "25.0.0"
    assert npm_registry.hits("/node-like") == 1


@needs_npm
def test_npm_client_resolves_major_to_its_highest_release(npm_registry: FakeServer) -> None:
    """A major like 24 resolves to the highest 24.x.y by semver, not by string order."""
    assert NpmClient().view_versions("node-like", "24") == "24.10.0"


@needs_npm
def test_npm_client_missing_package_raises_version_error(npm_registry: FakeServer) -> None:
    """A package the registry lacks is one VersionError line with npm's reason and a fix."""
    with pytest.raises(VersionError) as caught:
        NpmClient().view_versions("no-such-package", "latest")
    message = str(caught.value)
    assert "no-such-package@latest" in message
    assert "Not Found" in message
    assert "npm view PACKAGE versions" in message
    assert "\n" not in message


@needs_npm
def test_npm_client_runs_behind_its_command_prefix(
    npm_registry: FakeServer, monkeypatch: pytest.MonkeyPatch
) -> None:
    """The command prefix is what runs: here it alone points npm at the registry."""
    monkeypatch.setenv("npm_config_registry", "http://127.0.0.1:9/")
    client = NpmClient(command=("env", f"npm_config_registry={npm_registry.base}/", "npm"))
    assert client.view_versions("node-like", "24.x") == "24.10.0"


def test_npm_client_missing_command_raises_version_error() -> None:
    """No npm on PATH is a VersionError, not a FileNotFoundError."""
    with pytest.raises(VersionError, match="not found"):
        NpmClient(command=("no-such-npm-binary",)).view_versions("x", "latest")


@needs_npm
def test_resolve_code_server_auto_falls_back_to_npm_and_logs_why(
    npm_registry: FakeServer, caplog: pytest.LogCaptureFixture
) -> None:
    """When GitHub fails entirely, auto asks npm and logs the GitHub failure."""
    npm_registry.script(API_LATEST, Reply(500, {}))
    npm_registry.script(WEB_LATEST, Reply(500, None))
    github = _github(npm_registry, FakeTime(), deadline_s=0.5)
    with caplog.at_level(logging.WARNING, logger="imagebuild.versions"):
        release = resolve_code_server("latest", "auto", github=github)
    assert (release.version, dict(release.assets), release.source) == ("4.139.1", {}, "npm")
    assert "HTTP 500" in caplog.text


@needs_npm
def test_resolve_code_server_npm_source_never_asks_github(npm_registry: FakeServer) -> None:
    """source=npm goes straight to the npm client."""
    github = _github(npm_registry, FakeTime())
    assert resolve_code_server("latest", "npm", github=github).version == "4.139.1"
    assert npm_registry.hits(API_LATEST) == 0


def test_resolve_code_server_github_source_does_not_fall_back(fake: FakeServer) -> None:
    """source=github reports GitHub's failure instead of asking npm."""
    fake.script(API_LATEST, Reply(500, {}))
    fake.script(WEB_LATEST, Reply(500, None))
    npm = NpmClient(command=("no-such-npm-binary",))
    with pytest.raises(VersionError, match="HTTP 500"):
        resolve_code_server("latest", "github", github=_github(fake, FakeTime()), npm=npm)


@pytest.fixture
def pip_index(fake: FakeServer, monkeypatch: pytest.MonkeyPatch) -> FakeServer:
    files = ["1.2.0", "1.10.0", "2.0.0", "2.1.0rc1"]
    links = "".join(f'<a href="/f/demo_pkg-{v}.tar.gz">demo_pkg-{v}.tar.gz</a>' for v in files)
    page = Reply(body=f"<html><body>{links}</body></html>", content_type="text/html")
    fake.script("/simple/demo-pkg/", page)
    monkeypatch.setenv("PIP_INDEX_URL", f"{fake.base}/simple/")
    monkeypatch.setenv("PIP_CONFIG_FILE", os.devnull)
    for name in ("PIP_FIND_LINKS", "PIP_EXTRA_INDEX_URL", "PIP_NO_INDEX"):
        monkeypatch.delenv(name, raising=False)
    return fake


@pytest.mark.parametrize(("spec", "expected"), [("latest", "2.0.0"), ("1", "1.10.0")])
def test_pip_client_resolves_from_pip_index_url(pip_index: FakeServer, spec: str, expected: str) -> None:
    """pip reads PIP_INDEX_URL; latest skips pre-releases and a major picks its newest."""
    assert PipClient().view_version("demo-pkg", spec) == expected


def test_pip_client_missing_package_raises_version_error(pip_index: FakeServer) -> None:
    """A package the index lacks is a one-line VersionError with pip's reason."""
    with pytest.raises(VersionError, match="No matching distribution") as caught:
        PipClient().view_version("missing-pkg", "latest")
    assert "\n" not in str(caught.value)


@pytest.fixture
def hanging() -> Iterator[tuple[str, list[socket.socket]]]:
    """A server that accepts connections and never answers (a stalled proxy or GitHub)."""
    listener = socket.create_server(("127.0.0.1", 0))
    held: list[socket.socket] = []

    def accept() -> None:
        with contextlib.suppress(OSError):
            while True:
                held.append(listener.accept()[0])

    threading.Thread(target=accept, daemon=True).start()
    yield f"http://127.0.0.1:{listener.getsockname()[1]}", held
    listener.close()
    for conn in held:
        conn.close()


def test_resolve_github_release_hanging_github_gives_up_in_bounded_time(
    hanging: tuple[str, list[socket.socket]],
) -> None:
    """API and web both accept and never answer: a VersionError within the deadline plus one timeout."""
    base, held = hanging
    github = GitHubReleases(api_base=f"{base}/api", web_base=f"{base}/web", deadline_s=2.0, timeout_s=1.0)
    started = time.monotonic()
    with pytest.raises(VersionError, match="Timeout") as caught:
        github.release("latest")
    assert time.monotonic() - started < 6.0
    assert len(held) >= 2  # the requests really were accepted, then left hanging
    assert "proxy" in caught.value.fix


def test_resolve_github_release_hanging_api_falls_back_to_redirect(
    hanging: tuple[str, list[socket.socket]], fake: FakeServer,
) -> None:
    """An API that never answers is given up on in time, and the web redirect names the version."""
    fake.script(WEB_LATEST, Reply(302, None, REDIRECT))
    github = GitHubReleases(api_base=f"{hanging[0]}/api", web_base=f"{fake.base}/web",
                            deadline_s=2.0, timeout_s=1.0)
    started = time.monotonic()
    assert github.release("latest").version == "4.140.0"
    assert time.monotonic() - started < 5.0


@needs_npm
def test_resolve_code_server_auto_hanging_github_falls_back_to_npm(
    hanging: tuple[str, list[socket.socket]], npm_registry: FakeServer,
) -> None:
    """source=auto with GitHub hanging: npm answers after a bounded wait."""
    github = GitHubReleases(api_base=f"{hanging[0]}/api", web_base=f"{hanging[0]}/web",
                            deadline_s=2.0, timeout_s=1.0)
    started = time.monotonic()
    assert resolve_code_server("latest", "auto", github=github).source == "npm"
    assert time.monotonic() - started < 10.0
