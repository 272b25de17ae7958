"""code-server, from GitHub's release tarball or built from the npm registry.

Both sources leave the same tree in ``/opt/code-server`` of their own stage, so a new
version rebuilds that stage and the final copy, nothing else.
"""

from __future__ import annotations

from typing import Optional

from imagebuild.errors import UsageError
from imagebuild.layers.model import Copy, Layer, Stage

PREFIX = "/opt/code-server"
# The npm route compiles native modules; these tools stay in the builder stage.
BUILD_TOOLS = ("g++", "make", "pkg-config", "libkrb5-dev", "python3")
GITHUB_ASSET = "code-server-{version}-linux-{platform}.tar.gz"


def npm_stage(version: str) -> Stage:
    """Build code-server with npm on the Node stage."""
    return Stage(
        name="code-server",
        parent="node",
        build_tools=BUILD_TOOLS,
        env=(("npm_config_nodedir", "/opt/node"),),
        run=(
            f"npm install -g -q --prefix {PREFIX} --unsafe-perm code-server@{version} &&"
            "\nrm -rf /root/.npm /root/.cache /tmp/*",
        ),
    )


def github_stage(url: str, sha256: Optional[str]) -> Stage:
    """Download and unpack the release tarball, checked against GitHub's digest if known."""
    check = f'echo "{sha256}  /tmp/cs.tgz" | sha256sum -c - >/dev/null &&' if sha256 else ""
    return Stage(
        name="code-server",
        run=(
            f"curl -fsSL --retry 3 -o /tmp/cs.tgz '{url}' &&"
            + (f"\n{check}" if check else "")
            + f"\nmkdir -p {PREFIX} && tar xzf /tmp/cs.tgz -C {PREFIX} --strip-components=1 &&"
            "\nrm /tmp/cs.tgz",
        ),
    )


def layer(version: str, source: str, url: str = "", sha256: Optional[str] = None) -> Layer:
    """code-server ``version`` from ``source`` (``npm`` or ``github``)."""
    if source == "npm":
        stage = npm_stage(version)
    elif source == "github":
        stage = github_stage(url, sha256)
    else:
        raise UsageError(f"unknown code-server source {source!r}", "use auto, github or npm")
    return Layer(
        name="code-server",
        summary=f"code-server from {source}",
        version=version,
        stages=(stage,),
        copies=(Copy("code-server", PREFIX, PREFIX),),
        run=(f"ln -sf {PREFIX}/bin/code-server /usr/local/bin/code-server",),
        verify=(f"code-server --version | head -1 | grep -q '^{version} '",),
    )
