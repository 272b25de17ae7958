"""code-server, from GitHub's release tarball or built from the npm registry.

Both sources leave the same tree in ``/opt/code-server`` of their own stage, so a new
version rebuilds that stage and the final copy, nothing else.
"""

from __future__ import annotations

import shlex
from typing import Optional

from imagebuild.errors import UsageError
from imagebuild.layers.model import Copy, File, Layer, Link, Stage

PREFIX = "/opt/code-server"
# The packages that compile, with what they need to build, copied apart (builder stages only).
NATIVES = "/opt/code-server-natives"
# The npm route compiles native modules; these tools stay in the builder stage.
BUILD_TOOLS = ("g++", "make", "pkg-config", "libkrb5-dev", "python3")
PLATFORMS = ("amd64", "arm64")
NODE_ARCH = {"amd64": "x64", "arm64": "arm64"}
GITHUB_ASSET = "code-server-{version}-linux-{platform}.tar.gz"
# The oldest release whose npm install needs no GitHub: 4.116.0's @vscode/ripgrep 1.17
# downloads ripgrep from GitHub in its install script (1.18, from 4.134.0 on, takes it from
# npm), and 4.133.0 fails in the same step (measured 2026-12-05, GitHub unreachable).
NPM_WITHOUT_GITHUB = "4.134.0"


def asset_name(version: str, platform: str) -> str:
    """The GitHub release asset for ``platform`` (Docker's architecture name)."""
    if platform not in PLATFORMS:
        raise UsageError(f"code-server has no release for linux/{platform}", "build for amd64 or arm64")
    return GITHUB_ASSET.format(version=version, platform=platform)


NPM_INSTALL = "npm install --omit=dev --ignore-scripts --loglevel=warn"
TRIM = File("trim-code-server.sh", "/usr/local/bin/trim-code-server", 0o755)
# Where the compiled natives are mounted in the step that puts them in place.
NATIVES_MOUNT = "/run/sagecode-natives"


def trim(platform: str) -> str:
    """Remove what code-server never uses on ``platform`` (see trim-code-server.sh)."""
    return f"trim-code-server {PREFIX} {NODE_ARCH[platform]}"


def npm_stages(version: str, platform: str) -> tuple[Stage, ...]:
    """Install code-server with npm on the Node stage, its native modules compiled apart.

    The native modules (sqlite3, spdlog, kerberos...) are most of an npm build's time and
    rarely change between releases. ``code-server-natives`` compiles them from a copy of
    just their packages, so its cache key is those packages' bytes: after a version bump
    BuildKit takes it from the cache when they are unchanged, and only the download reruns.
    The last stage mounts the compiled packages rather than copying them in with a step of
    their own, and trims in the same step: each step on top of the downloaded tree added
    seconds to a bump. The download step trims too, once the natives are split out: its
    layer is new at every bump and goes into the cache (176 MB of zstd untrimmed, 124 MB
    trimmed); the last step's trim then only finds the natives' build leftovers.
    """
    package = f"{PREFIX}/lib/node_modules/code-server"
    arch = NODE_ARCH[platform]
    return (
        Stage(
            name="code-server-tools",
            parent="node",
            build_tools=BUILD_TOOLS,
            # node-gyp builds the native modules against the headers of the image's own Node.
            env=(("npm_config_nodedir", "/opt/node"),),
            # Both helpers come in here, cached with the tools: a COPY in a later stage, on
            # top of the downloaded tree, delayed the step after it by 3 to 6 s. Editing
            # either one reruns the natives' compile once (this stage is its parent).
            files=(File("code-server-natives.py", "/usr/local/bin/code-server-natives", 0o755), TRIM),
        ),
        Stage(
            name="code-server-fetch",
            parent="code-server-tools",
            # The package itself first, then its three dependency trees (its own, VS Code's,
            # the built-in extensions') at once, as each follows its own shrinkwrap.
            run=(
                f"mkdir -p {package} && cd {package} &&"
                f"\nnpm pack --loglevel=warn code-server@{version} >/dev/null &&"
                f"\ntar xzf code-server-{version}.tgz --strip-components=1 --no-same-owner &&"
                f"\nrm code-server-{version}.tgz &&"
                f"\n{{ {NPM_INSTALL} & a=$!;"
                f"\n(cd lib/vscode && {NPM_INSTALL}) & b=$!;"
                f"\n(cd lib/vscode/extensions && {NPM_INSTALL}) & c=$!;"
                "\nwait $a && wait $b && wait $c; } &&"
                f"\ncode-server-natives split {package} {NATIVES} {arch} &&"
                "\nrm -rf /root/.npm /root/.cache /tmp/* &&"
                f"\n{trim(platform)}",
            ),
        ),
        Stage(
            name="code-server-natives",
            parent="code-server-tools",
            copies=(Copy("code-server-fetch", NATIVES, NATIVES),),
            run=(f"code-server-natives build {NATIVES} && rm -rf /root/.npm /root/.cache /tmp/*",),
        ),
        Stage(
            name="code-server",
            parent="code-server-fetch",
            mounts=(Copy("code-server-natives", NATIVES, NATIVES_MOUNT),),
            run=(f"cp -a {NATIVES_MOUNT}/. {package}/ &&"
                 f"\ncode-server-natives finish {package} {arch} &&"
                 f"\nrm -rf {NATIVES} /root/.npm /root/.cache /tmp/* &&"
                 f"\n{trim(platform)}",),
        ),
    )


def github_stage(url: str, sha256: Optional[str], platform: str = "amd64") -> Stage:
    """Download and unpack the release tarball, checked against GitHub's digest if known,
    then trim it."""
    return Stage(
        name="code-server",
        files=(File("fetch-release.sh", "/usr/local/bin/fetch-release", 0o755), TRIM),
        run=(f"fetch-release {shlex.quote(url)} {sha256 or '-'} {PREFIX} &&\n{trim(platform)}",),
    )


def layer(version: str, source: str, url: str = "", sha256: Optional[str] = None,
          platform: str = "amd64") -> Layer:
    """code-server ``version`` from ``source`` (``npm`` or ``github``) for ``platform``."""
    if source == "npm":
        stages = npm_stages(version, platform)
        # A launcher pinned to the image's Node, not a link that finds `node` on PATH.
        files: tuple[File, ...] = (File("code-server.sh", "/usr/local/bin/code-server", 0o755),)
        links: tuple[Link, ...] = ()
    elif source == "github":
        stages = (github_stage(url, sha256, platform),)
        files, links = (), (Link("/usr/local/bin/code-server", f"{PREFIX}/bin/code-server"),)
    else:
        raise UsageError(f"unknown code-server source {source!r}", "use auto, github or npm")
    return Layer(
        name="code-server",
        summary=f"code-server from {source}",
        version=version,
        stages=stages,
        copies=(Copy("code-server", PREFIX, PREFIX),),
        files=files,
        links=links,
        # The first run also prints where it wrote its config, so look for the line.
        verify=(f"code-server --version | grep -q '^{version} '",),
    )
