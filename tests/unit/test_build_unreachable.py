"""A build that fails after a step could not resolve a host says which host, and for
code-server from npm that needed GitHub, which version to pin."""

from __future__ import annotations

from collections.abc import Iterator
from pathlib import Path

import pytest
from python_on_whales import DockerException

from imagebuild import builder, engine
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.engine import BuildFailedError, BuildRequest, OnLine
from imagebuild.errors import EngineError
from imagebuild.layers.code_server import NPM_WITHOUT_GITHUB
from imagebuild.store import ImageStore
from tests.conftest import VERSIONS
from tests.unit.oci_fixtures import oci_layout
from tests.unit.test_builder_cache import FakeEngine

# What the build printed when 4.116.0's @vscode/ripgrep could not reach GitHub (2026-12-06).
RIPGREP = [
    "#19 1.596 GET https://api.github.com/repos/microsoft/ripgrep-prebuilt/releases/tags/v15.0.1",
    "#19 1.610 Error: getaddrinfo ENOTFOUND api.github.com",
    "#19 31.65 npm error command sh -c node ./lib/postinstall.js",
    '#19 ERROR: process "/bin/sh -c . /run/sagecode-build/netenv.sh && cp -a ..." did not complete'
    " successfully: exit code: 1",
]

FIX = "a step could not resolve ..."


@pytest.mark.parametrize(("line", "hosts"), [
    (RIPGREP[1], ["api.github.com"]),
    ("#7 0.5 npm error request to https://r.example failed, reason: getaddrinfo EAI_AGAIN r.example",
     ["r.example"]),
    ("#8 1.2 curl: (6) Could not resolve host: awscli.amazonaws.com", ["awscli.amazonaws.com"]),
    ("#9 0.3 wget: unable to resolve host address 'mise.jdx.dev'", ["mise.jdx.dev"]),
    ("#5 2.1 Err:1 http://deb.example bookworm InRelease  Temporary failure resolving 'deb.example'",
     ["deb.example"]),
    ("#19 1.551 > node ./lib/postinstall.js", []),
])  # fmt: skip
def test_unresolved_hosts_are_read_from_each_tools_message(line: str, hosts: list[str]) -> None:
    assert engine.unresolved(line) == hosts


def _stream(lines: list[str]) -> Iterator[tuple[str, bytes]]:
    for line in lines:
        yield "stderr", line.encode()
    raise DockerException(["docker", "buildx", "build"], 1)


def test_a_failed_build_names_the_hosts_it_could_not_resolve(monkeypatch: pytest.MonkeyPatch,
                                                              tmp_path: Path) -> None:  # fmt: skip
    monkeypatch.setattr(engine, "_stream", lambda _cmd: _stream([RIPGREP[1], RIPGREP[1], *RIPGREP[2:]]))
    seen: list[str] = []
    request = BuildRequest(context=tmp_path, tags=("sagecode:x",))
    with pytest.raises(BuildFailedError) as failed:
        engine.Engine(client=_Client()).build(request, seen.append)  # type: ignore[arg-type]
    assert failed.value.hosts == ("api.github.com",)
    assert "a step could not resolve api.github.com" in failed.value.fix
    assert "did not complete successfully" in failed.value.what
    assert len(seen) == 4  # every line still reached the console


class _Client:
    class client_config:  # noqa: N801 (python-on-whales' attribute)
        docker_cmd = ("docker",)


class _FailingEngine(FakeEngine):
    """An engine whose build fails as a step that could not resolve ``hosts`` does."""

    def __init__(self, hosts: tuple[str, ...]) -> None:
        super().__init__()
        self.hosts = hosts

    def build(self, request: BuildRequest, on_line: OnLine) -> None:
        assert request.layout is not None
        oci_layout(request.layout, request.tags[0])  # whole blobs, but no commit
        (request.layout / "ingest" / "x").mkdir(parents=True)  # and an unfinished one
        raise BuildFailedError("the image build failed: exit code: 1", FIX, self.hosts)


def _fails(config: BuildConfig, hosts: tuple[str, ...], source: str) -> EngineError:
    versions = {**VERSIONS, "code-server": "4.116.0", "code-server-source": source}
    with pytest.raises(EngineError) as failed:
        builder.build(builder.plan(config, versions), _FailingEngine(hosts), Console(quiet=True))  # type: ignore[arg-type]
    assert not list(config.state.images.glob("*.tar*"))
    assert not ImageStore(config.state.images).blobs()  # what the build saved is gone
    assert not (config.state.images / "oci" / "ingest").exists()
    return failed.value


def test_code_server_from_npm_that_needed_github_says_which_version_to_pin(config: BuildConfig) -> None:
    error = _fails(config, ("api.github.com",), "npm")
    assert "code-server 4.116.0 from npm runs an install script that downloads from GitHub" in error.fix
    assert f"pin --code-server {NPM_WITHOUT_GITHUB} or later" in error.fix
    assert "\n" not in str(error)


@pytest.mark.parametrize(("hosts", "source"), [
    (("api.github.com",), "github"), (("pypi.example",), "npm"), ((), "npm"),
])  # fmt: skip
def test_other_unresolved_hosts_keep_the_engines_own_fix(config: BuildConfig, hosts: tuple[str, ...],
                                                         source: str) -> None:  # fmt: skip
    assert _fails(config, hosts, source).fix == FIX
