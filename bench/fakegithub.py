"""A fake GitHub for code-server's release path, which this machine cannot reach for real.

The tarball is made from an npm-built image: its code-server package (native modules
compiled for this platform), its Node as ``lib/node`` and a ``bin/code-server`` launcher
that runs one with the other. That is the layout of the published ``linux-amd64``
tarballs. The server listens on the engine's bridge gateway, which both the resolver on
the host and the build's own steps can reach (a build step's 127.0.0.1 is its own).
Shared by the release-path integration test and ``python -m bench release``.
"""

from __future__ import annotations

import functools
import json
import re
import shutil
import subprocess
import tarfile
import threading
import uuid
from collections.abc import Iterator
from contextlib import contextmanager
from dataclasses import dataclass
from http.server import SimpleHTTPRequestHandler, ThreadingHTTPServer
from pathlib import Path
from typing import Any, Optional

from bench.common import BenchError, run
from imagebuild.layers import code_server
from imagebuild.store import file_sha256

PACKAGE = "/opt/code-server/lib/node_modules/code-server"
# The launcher a release carries, in our words: the bundled Node runs the package.
LAUNCHER = """#!/bin/sh
root=$(dirname "$(dirname "$(readlink -f "$0")")")
exec "$root/lib/node" "$root" "$@"
"""
# The environment that points the resolver at the fake (and keeps any proxy out of it).
ENV_NAMES = ("SAGECODE_GITHUB_API", "SAGECODE_GITHUB_WEB")


class _Quiet(SimpleHTTPRequestHandler):
    def log_message(self, format: str, *args: Any) -> None:
        pass


def _docker(*args: str) -> str:
    return run(["docker", *args], timeout=600).stdout


def bridge_gateway() -> str:
    """The engine's bridge address: the host as a build step sees it."""
    gateway = _docker("network", "inspect", "bridge", "--format",
                      "{{range .IPAM.Config}}{{.Gateway}}{{end}}").strip()  # fmt: skip
    if not gateway:
        raise BenchError("the engine's bridge network has no gateway address")
    return gateway


def unpack_tree(image: str, folder: Path) -> Path:
    """``image``'s npm-built code-server laid out as a release, in ``folder/tree``."""
    top = folder / "tree"
    container = f"sagecode-fakegithub-{uuid.uuid4().hex[:8]}"
    _docker("create", "--name", container, image)
    try:
        _docker("cp", f"{container}:{PACKAGE}", str(top))
        (top / "lib").mkdir(exist_ok=True)
        _docker("cp", "-L", f"{container}:/opt/node/bin/node", str(top / "lib/node"))
    finally:
        subprocess.run(["docker", "rm", "-f", container], capture_output=True, check=False)
    (top / "bin").mkdir(exist_ok=True)
    (top / "bin/code-server").write_text(LAUNCHER)
    (top / "bin/code-server").chmod(0o755)
    return top


def release_tarball(tree: Path, version: str, folder: Path) -> Path:
    """``code-server-VERSION-linux-amd64.tar.gz`` of ``tree``, its package.json saying
    ``version`` (a bump's other release, where only one build is at hand)."""
    manifest = tree / "package.json"
    text = manifest.read_text()
    manifest.write_text(re.sub(r'"version": "[^"]+"', f'"version": "{version}"', text, count=1))
    top = f"code-server-{version}-linux-amd64"
    tarball = folder / code_server.asset_name(version, "amd64")
    try:
        with tarfile.open(tarball, "w:gz", compresslevel=6) as tar:
            tar.add(tree, arcname=top)
    finally:
        manifest.write_text(text)
    return tarball


@dataclass
class FakeGitHub:
    """The served folder and its base URL."""

    www: Path
    base: str

    @property
    def env(self) -> dict[str, str]:
        """What makes ``python -m imagebuild`` ask this fake."""
        return dict.fromkeys(ENV_NAMES, self.base)

    def publish(self, version: str, tarball: Path, digest: Optional[str] = None) -> None:
        """The API's answer for tag ``version``: the asset and its digest (the real one
        unless ``digest`` says otherwise)."""
        (self.www / "dl").mkdir(parents=True, exist_ok=True)
        served = self.www / "dl" / tarball.name
        if not served.exists():
            try:  # the same file, not a second copy of a few hundred MB
                served.hardlink_to(tarball)
            except OSError:
                shutil.copyfile(tarball, served)
        digest = digest or file_sha256(served)
        release = self.www / "repos/coder/code-server/releases/tags" / f"v{version}"
        release.parent.mkdir(parents=True, exist_ok=True)
        asset = {"name": tarball.name, "browser_download_url": f"{self.base}/dl/{tarball.name}",
                 "digest": f"sha256:{digest}"}  # fmt: skip
        release.write_text(json.dumps({"tag_name": f"v{version}", "assets": [asset]}))


@contextmanager
def serve(www: Path) -> Iterator[FakeGitHub]:
    """Serve ``www`` on the bridge gateway until the block ends."""
    www.mkdir(parents=True, exist_ok=True)
    handler = functools.partial(_Quiet, directory=str(www))
    gateway = bridge_gateway()
    server = ThreadingHTTPServer((gateway, 0), handler)
    threading.Thread(target=server.serve_forever, daemon=True).start()
    try:
        yield FakeGitHub(www, f"http://{gateway}:{server.server_address[1]}")
    finally:
        server.shutdown()
        server.server_close()
