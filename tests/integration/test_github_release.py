"""code-server from a GitHub release, for real: the path an instance that reaches GitHub
takes by default (``--code-server-source auto``).

GitHub is unreachable here, so ``bench.fakegithub`` serves a release-shaped tarball made
from the session image's npm-built code-server, on the engine's bridge. The resolver asks
its API, the build downloads the tarball, checks GitHub's digest, unpacks and trims it, and
the image must then serve ``/healthz``. A digest that does not match must fail the build
in one line and leave the image built before current and present.
"""

from __future__ import annotations

import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from bench import fakegithub
from bench.fakegithub import FakeGitHub
from imagebuild.manifest import Manifest
from imagebuild.store import ImageStore
from tests.integration.conftest import BASE_IMAGE, CA_BUNDLE, imagebuild
from tests.integration.test_image import _healthz, code_server, docker

pytestmark = [pytest.mark.image, pytest.mark.engine]
ONLY_CODE_SERVER = ("--without", "shell,awscli,mise,agents,editor")


@pytest.fixture(scope="module")
def github(
    dev_image: Manifest, tmp_path_factory: pytest.TempPathFactory
) -> Iterator[tuple[FakeGitHub, Path]]:
    """The fake GitHub and the release tarball of the session image's code-server version."""
    folder = tmp_path_factory.mktemp("github")
    tree = fakegithub.unpack_tree(dev_image.image, folder)
    tarball = fakegithub.release_tarball(tree, dev_image.versions["code-server"], folder)
    with fakegithub.serve(folder / "www") as fake:
        yield fake, tarball


def build(
    state: Path, fake: FakeGitHub, version: str, check: bool = True
) -> subprocess.CompletedProcess[str]:
    """``python -m imagebuild`` with code-server from the fake GitHub only."""
    args = ["--base-image", BASE_IMAGE, "--code-server-source", "github", "--code-server", version,
            *ONLY_CODE_SERVER]
    if Path(CA_BUNDLE).is_file():
        args += ["--ca-bundle", CA_BUNDLE]
    return imagebuild(state, *args, check=check, env=fake.env)


def test_release_tarball_builds_an_image_that_serves(
    github: tuple[FakeGitHub, Path], dev_image: Manifest, tmp_path: Path
) -> None:
    """Downloaded, digest-checked, unpacked and trimmed in the build, and code-server
    serves; then a tarball GitHub's digest does not vouch for fails the build in one line,
    and the image built before stays current and in the engine."""
    fake, tarball = github
    version = dev_image.versions["code-server"]
    fake.publish(version, tarball)
    state = tmp_path / "state"
    build(state, fake, version)
    built = ImageStore(state / "images").current()
    assert built is not None
    assert built.versions["code-server-source"] == "github"
    assert built.versions["code-server-url"] == f"{fake.base}/dl/{tarball.name}"
    # the release's layout, not npm's: its own Node runs the package in place
    found = docker("run", "--rm", "--entrypoint", "sh", built.image, "-c",
                   "readlink -f /usr/local/bin/code-server; test -x /opt/code-server/lib/node && echo node")
    assert found.stdout.split() == ["/opt/code-server/bin/code-server", "node"]
    with code_server(built.image) as (port, _container):
        assert _healthz(port, 90) == 200

    fake.publish(version, tarball, digest="0" * 64)  # the digest is part of the image's content hash
    failed = build(state, fake, version, check=False)
    assert failed.returncode != 0
    assert "refusing it" in failed.stderr
    after = ImageStore(state / "images").current()
    assert after is not None
    assert after.image == built.image
    assert docker("image", "inspect", built.image, check=False).returncode == 0
