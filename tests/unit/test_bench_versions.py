"""Which code-server versions the build benchmark bumps through."""

from __future__ import annotations

import json
import subprocess

import pytest

from bench import build
from bench.common import BenchError

NPM = ["4.9.0", "4.116.0", "4.133.0", "4.134.0", "4.135.0-rc.1", "4.135.0", "4.136.2", "4.137.0"]


@pytest.fixture
def npm(monkeypatch: pytest.MonkeyPatch) -> None:
    """``npm view code-server versions --json`` answering with :data:`NPM`."""

    def run(argv: list[str], *_: object) -> subprocess.CompletedProcess[str]:
        assert argv == ["npm", "view", "code-server", "versions", "--json"]
        return subprocess.CompletedProcess(argv, 0, json.dumps(NPM), "")

    monkeypatch.setattr("imagebuild.versions._run", run)


@pytest.mark.usefixtures("npm")
@pytest.mark.parametrize(("reachable", "first"), [(False, "4.134.0"), (True, "4.9.0")])
def test_without_github_the_chain_starts_where_npm_alone_builds(
    reachable: bool, first: str, monkeypatch: pytest.MonkeyPatch
) -> None:
    monkeypatch.setattr(build, "github_reachable", lambda: reachable)
    every = build.buildable("code-server")
    assert every[0] == first
    assert every[-3:] == ["4.135.0", "4.136.2", "4.137.0"]  # no pre-releases, in version order


def test_npm_failing_to_list_is_one_line(monkeypatch: pytest.MonkeyPatch) -> None:
    def run(argv: list[str], *_: object) -> subprocess.CompletedProcess[str]:
        error = {"error": {"summary": "request to the registry failed, reason: getaddrinfo EAI_AGAIN"}}
        return subprocess.CompletedProcess(argv, 1, json.dumps(error), "")

    monkeypatch.setattr("imagebuild.versions._run", run)
    with pytest.raises(BenchError, match=r"npm view code-server versions failed: request .*EAI_AGAIN: check"):
        build.versions("code-server")


def test_too_few_versions_name_the_flag_to_lower() -> None:
    every = ["4.134.0", "4.135.0", "4.136.2"]
    assert build.newest(every, 2) == ["4.135.0", "4.136.2"]
    with pytest.raises(BenchError, match=r"only 3 code-server versions build here .*lower --bumps"):
        build.newest(every, 4)
    with pytest.raises(BenchError, match="only 0 code-server versions build here: lower --bumps"):
        build.newest([], 1)


def test_kept_data_bumps_walk_back_through_versions_the_engine_has_not_built() -> None:
    every = ["4.134.0", "4.135.0", "4.136.2", "4.137.0", "4.138.0", "4.139.1"]
    # the engine is filled with 4.139.1, npm's newest; each bump after must be new to it
    assert build.walk_back(every, 3) == ["4.138.0", "4.137.0", "4.136.2"]
    assert build.walk_back(every, 5) == ["4.138.0", "4.137.0", "4.136.2", "4.135.0", "4.134.0"]
    with pytest.raises(BenchError, match="lower --rounds"):
        build.walk_back(every, 6)


def test_cold_builds_cycle_through_the_bumped_versions_for_every_round() -> None:
    assert build.cycle(["4.138.0", "4.139.1"], 3) == ["4.138.0", "4.139.1", "4.138.0"]
    assert build.cycle(["a", "b", "c", "d"], 3) == ["a", "b", "c"]
