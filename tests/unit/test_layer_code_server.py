"""code-server from GitHub: the build platform's asset, checked against GitHub's digest.

A fake GitHub (API and downloads) on 127.0.0.1 answers the real resolver; the rendered
download step then runs for real in ``sh`` against it.
"""

from __future__ import annotations

import dataclasses
import hashlib
import io
import json
import tarfile
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild import layers, resolve
from imagebuild.config import BuildConfig
from imagebuild.console import Console
from imagebuild.errors import UsageError, VersionError
from imagebuild.layers import code_server
from imagebuild.render import render
from imagebuild.versions import NpmClient
from tests.conftest import VERSIONS
from tests.unit.layer_fixtures import run_sh, script, serve

VERSION = "4.139.1"
ONLY_CODE_SERVER = frozenset({"awscli", "mise", "agents", "editor"})


def _tarball(platform: str) -> bytes:
    """A release-shaped tarball whose launcher names its platform."""
    data = f"#!/bin/sh\necho {VERSION} {platform}\n".encode()
    out = io.BytesIO()
    with tarfile.open(fileobj=out, mode="w:gz") as tar:
        info = tarfile.TarInfo(f"code-server-{VERSION}-linux-{platform}/bin/code-server")
        info.size, info.mode = len(data), 0o755
        tar.addfile(info, io.BytesIO(data))
    return out.getvalue()


def _publish(www: Path, base: str, platforms: tuple[str, ...], wrong_digest: bool = False) -> None:
    """The release JSON the API answers, and its assets."""
    assets = []
    for platform in platforms:
        blob = _tarball(platform)
        (www / "dl").mkdir(exist_ok=True)
        (www / "dl" / f"{platform}.tgz").write_bytes(blob)
        digest = hashlib.sha256(b"something else" if wrong_digest else blob).hexdigest()
        assets.append({"name": code_server.asset_name(VERSION, platform),
                       "browser_download_url": f"{base}/dl/{platform}.tgz", "digest": f"sha256:{digest}"})
    release = www / "repos/coder/code-server/releases/tags" / f"v{VERSION}"
    release.parent.mkdir(parents=True, exist_ok=True)
    release.write_text(json.dumps({"tag_name": f"v{VERSION}", "assets": assets}))


@pytest.fixture
def github(tmp_path: Path) -> Iterator[tuple[Path, str]]:
    """A fake GitHub: the folder it serves and its base URL."""
    www = tmp_path / "www"
    www.mkdir()
    with serve(www) as base:
        yield www, base


@pytest.fixture
def npm(tmp_path: Path) -> NpmClient:
    """An npm client that knows one version of everything (Node and npm here)."""
    fake = tmp_path / "npm"
    fake.write_text("#!/bin/sh\necho '\"24.22.3\"'\n")
    fake.chmod(0o755)
    return NpmClient(command=(str(fake),))


def _github_only(config: BuildConfig, base: str, platform: str) -> BuildConfig:
    return dataclasses.replace(
        config, code_server=VERSION, code_server_source="github", github_api=base, github_web=base,
        platform=platform, disabled=ONLY_CODE_SERVER,
    )


def _versions(config: BuildConfig, base: str, platform: str, npm: NpmClient) -> dict[str, str]:
    return resolve.resolve(_github_only(config, base, platform), Console(quiet=True), npm=npm)


def _download_step(config: BuildConfig, versions: dict[str, str], prefix: Path) -> str:
    """The code-server stage's rendered download command, pointed at ``prefix``."""
    composed = layers.compose(dataclasses.replace(config, disabled=ONLY_CODE_SERVER), versions)
    layer = next(x for x in composed if x.name == "code-server")
    return _runnable(layer.stages[-1].run[0]).replace(code_server.PREFIX, str(prefix))


def _runnable(command: str) -> str:
    """A stage's step with its helper scripts run from the source tree."""
    for name in ("fetch-release", "trim-code-server"):
        command = command.replace(f"sh {code_server.HELPERS_MOUNT}/{name}", f"sh {script(name + '.sh')}", 1)
    return command


@pytest.mark.parametrize("platform", ["amd64", "arm64"])
def test_github_source_picks_the_build_platform(config: BuildConfig, github: tuple[Path, str],
                                                npm: NpmClient, platform: str) -> None:
    """The lock names the build platform's tarball and GitHub's digest of it."""
    www, base = github
    _publish(www, base, ("amd64", "arm64"))
    versions = _versions(config, base, platform, npm)
    blob = (www / "dl" / f"{platform}.tgz").read_bytes()
    assert versions["code-server-url"] == f"{base}/dl/{platform}.tgz"
    assert versions["code-server-sha256"] == hashlib.sha256(blob).hexdigest()


def test_github_source_without_platform_asset_is_refused(config: BuildConfig, github: tuple[Path, str],
                                                          npm: NpmClient) -> None:
    """A release with no tarball for the build platform is a one-line error naming npm."""
    www, base = github
    _publish(www, base, ("amd64",))
    with pytest.raises(VersionError, match="no linux-arm64 tarball") as err:
        _versions(config, base, "arm64", npm)
    assert "--code-server-source npm" in str(err.value)


def test_github_asset_name_refuses_unknown_platform() -> None:
    """Only amd64 and arm64 have code-server releases."""
    assert code_server.asset_name(VERSION, "arm64") == f"code-server-{VERSION}-linux-arm64.tar.gz"
    with pytest.raises(UsageError, match="linux/riscv64"):
        code_server.asset_name(VERSION, "riscv64")


def test_github_download_step_digest_match_unpacks(config: BuildConfig, github: tuple[Path, str],
                                                   npm: NpmClient, tmp_path: Path) -> None:
    """With GitHub's digest matching, the rendered step unpacks the release into the prefix."""
    www, base = github
    _publish(www, base, ("amd64", "arm64"))
    versions = _versions(config, base, "arm64", npm)
    prefix = tmp_path / "opt"
    result = run_sh(_download_step(config, versions, prefix))
    assert result.returncode == 0, result.stderr
    assert (prefix / "bin/code-server").read_text().endswith(f"echo {VERSION} arm64\n")


def test_github_download_step_digest_mismatch_refuses(config: BuildConfig, github: tuple[Path, str],
                                                      npm: NpmClient, tmp_path: Path) -> None:
    """A tarball that is not what GitHub's digest says fails the step and unpacks nothing."""
    www, base = github
    _publish(www, base, ("amd64",), wrong_digest=True)
    versions = _versions(config, base, "amd64", npm)
    prefix = tmp_path / "opt"
    result = run_sh(_download_step(config, versions, prefix))
    assert result.returncode != 0
    assert "refusing it" in result.stderr
    assert not prefix.exists()


def test_github_download_step_without_digest_says_so(tmp_path: Path) -> None:
    """When GitHub published no digest, the step unpacks and says it could not check."""
    www = tmp_path / "www"
    www.mkdir()
    (www / "cs.tgz").write_bytes(_tarball("amd64"))
    with serve(www) as base:
        stage = code_server.github_stage(f"{base}/cs.tgz", None)[-1]
        result = run_sh(_runnable(stage.run[0]).replace(code_server.PREFIX, str(tmp_path / "opt")))
    assert result.returncode == 0
    assert "no digest" in result.stderr


@pytest.mark.parametrize("source", ["npm", "github"])
def test_code_server_stage_trims_for_the_platform(config: BuildConfig, source: str) -> None:
    """Both sources trim in their last step, for the build's arch, with the helper mounted,
    and the image starts from that stage rather than copying it."""
    arm = dataclasses.replace(config, platform="arm64")
    versions = {**VERSIONS, "code-server-source": source, "code-server-url": "https://example.invalid/cs.tgz"}
    composed = layers.compose(arm, versions)
    layer = next(x for x in composed if x.name == "code-server")
    assert layer.stages[-1].name == "code-server"
    trim = f"\nsh {code_server.HELPERS_MOUNT}/trim-code-server /opt/code-server arm64"
    assert layer.stages[-1].run[-1].endswith(trim)
    helpers = next(s for s in layer.stages if s.name == code_server.HELPERS_STAGE)
    assert "/trim-code-server" in [f.dest for f in helpers.files]
    assert (layer.copies, layer.trunk) == ((), "code-server")
    assert "FROM code-server AS image" in render(composed, config.base_image).dockerfile


def test_npm_download_is_trimmed_in_its_own_step(config: BuildConfig) -> None:
    """The npm download step trims, so the layer it leaves (rebuilt at every bump, exported
    with the cache and the image's own) holds only what the image keeps."""
    versions = {**VERSIONS, "code-server-source": "npm"}
    layer = next(x for x in layers.compose(config, versions) if x.name == "code-server")
    fetch = next(s for s in layer.stages if s.name == "code-server-fetch").run[-1]
    assert "code-server-natives split" not in fetch
    assert fetch.endswith(f"\nsh {code_server.HELPERS_MOUNT}/trim-code-server /opt/code-server x64")
