"""code-server, from GitHub's release tarball or built from the npm registry.

Both sources leave the same tree in ``/opt/code-server`` of a stage that grows on Node's
trunk stage, and the image starts from it (``Layer.trunk``): a new version rebuilds the
code-server steps, and the image reuses their layers as the cache holds them.
"""

from __future__ import annotations

import shlex
from pathlib import Path
from typing import Optional

from imagebuild.errors import UsageError
from imagebuild.layers.model import Copy, File, Layer, Link, Stage
from imagebuild.layers.node import RUNTIME_STAGE

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
NATIVES_HELPER = File("code-server-natives.py", "/usr/local/bin/code-server-natives", 0o755)
FETCH_RELEASE = File("fetch-release.sh", "/usr/local/bin/fetch-release", 0o755)
# Where the compiled natives are mounted in the step that puts them in place.
NATIVES_MOUNT = "/run/sagecode-natives"
# The steps on the image's trunk mount their helpers from a stage of their own, so the
# helpers never become files of the image.
HELPERS_STAGE = "code-server-helpers"
HELPERS_MOUNT = "/run/sagecode-helpers"
HELPERS = Copy(HELPERS_STAGE, "/", HELPERS_MOUNT)
# Where the natives' split reads the downloaded tree.
FETCHED_MOUNT = "/run/sagecode-fetched"


def trim(platform: str) -> str:
    """Remove what code-server never uses on ``platform`` (see trim-code-server.sh)."""
    return f"{helper(TRIM)} {PREFIX} {NODE_ARCH[platform]}"


def helpers_stage(*files: File) -> Stage:
    """An empty stage holding ``files`` at its root, for the trunk's steps to mount."""
    return Stage(name=HELPERS_STAGE, parent="scratch",
                 files=tuple(File(f.source, "/" + Path(f.dest).name, f.mode) for f in files))


def helper(file: File) -> str:
    """How a trunk step runs ``file`` from the helpers' mount."""
    interpreter = "python3" if file.source.endswith(".py") else "sh"
    return f"{interpreter} {HELPERS_MOUNT}/{Path(file.dest).name}"


def npm_stages(version: str, platform: str) -> tuple[Stage, ...]:
    """Install code-server with npm on Node's trunk stage, its native modules compiled apart.

    The native modules (sqlite3, spdlog, kerberos...) are most of an npm build's time and
    rarely change between releases. ``code-server-natives`` compiles them from a copy of
    just their packages, split off the downloaded tree by a stage of its own, so the
    compile's cache key is those packages' bytes: after a version bump BuildKit takes it
    from the cache when they are unchanged, and only the download reruns. The download
    and the last step, which copies the compiled files in (only those that changed) and
    runs the other install scripts, are the image's own layers: no compiler nor header
    is on their chain, and their helpers are mounted, not copied.
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
            files=(NATIVES_HELPER,),
        ),
        helpers_stage(NATIVES_HELPER, TRIM),
        Stage(
            name="code-server-fetch",
            parent=RUNTIME_STAGE,
            mounts=(HELPERS,),
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
                "\nrm -rf /root/.npm /root/.cache /tmp/* &&"
                f"\n{trim(platform)}",
            ),
        ),
        Stage(
            name="code-server-natives-src",
            parent="code-server-tools",
            mounts=(Copy("code-server-fetch", PREFIX, FETCHED_MOUNT),),
            run=(f"code-server-natives split {FETCHED_MOUNT}/lib/node_modules/code-server {NATIVES} {arch}",),
        ),
        Stage(
            name="code-server-natives",
            parent="code-server-tools",
            copies=(Copy("code-server-natives-src", NATIVES, NATIVES),),
            run=(f"code-server-natives build {NATIVES} && rm -rf /root/.npm /root/.cache /tmp/*",),
        ),
        Stage(
            name="code-server",
            parent="code-server-fetch",
            mounts=(HELPERS, Copy("code-server-natives", NATIVES, NATIVES_MOUNT)),
            # -u: the packages' files the compile left as they were stay in the download's
            # layer; this step's layer gets the compiled ones (3.9 MB instead of 19.9 MB).
            run=(f"cp -au {NATIVES_MOUNT}/. {package}/ &&"
                 f"\n{helper(NATIVES_HELPER)} finish {package} {arch} &&"
                 "\nrm -rf /root/.npm /root/.cache /tmp/* &&"
                 f"\n{trim(platform)}",),
        ),
    )


def github_stage(url: str, sha256: Optional[str], platform: str = "amd64") -> tuple[Stage, ...]:
    """Download and unpack the release tarball on Node's trunk stage, checked against
    GitHub's digest if known, then trim it."""
    return (
        helpers_stage(FETCH_RELEASE, TRIM),
        Stage(
            name="code-server",
            parent=RUNTIME_STAGE,
            mounts=(HELPERS,),
            run=(f"{helper(FETCH_RELEASE)} {shlex.quote(url)} {sha256 or '-'} {PREFIX} &&"
                 f"\n{trim(platform)}",),
        ),
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
        stages = github_stage(url, sha256, platform)
        files, links = (), (Link("/usr/local/bin/code-server", f"{PREFIX}/bin/code-server"),)
    else:
        raise UsageError(f"unknown code-server source {source!r}", "use auto, github or npm")
    return Layer(
        name="code-server",
        summary=f"code-server from {source}",
        version=version,
        stages=stages,
        trunk="code-server",
        files=files,
        links=links,
        # The first run also prints where it wrote its config, so look for the line.
        verify=(f"code-server --version | grep -q '^{version} '",),
    )
