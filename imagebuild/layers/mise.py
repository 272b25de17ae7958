"""mise, the runtime manager, from the npm registry; runtimes are not in the image.

``@jdxcode/mise`` installs its binary from a per-platform package
(``@jdxcode/mise-linux-x64``/``-arm64``, same version); the stage packs that one directly
and keeps the single binary. Runtimes (the predecessor's node 22, python 3.13 to 3.10,
java 21) install on demand with ``sagecode-mise-defaults`` into mise's default folders
under HOME, which is the persistent home: they survive restarts, and the image stays
small. zsh activates mise (files/shell/zshrc.zsh).
"""

from __future__ import annotations

from imagebuild.layers.model import Copy, File, Layer, Stage, Want

NPM_ARCH = {"amd64": "x64", "arm64": "arm64"}
BINARY = "/usr/local/bin/mise"


def wants(spec: str) -> tuple[Want, ...]:
    """mise's version, from the npm package that names the platform packages."""
    return (Want("mise", "npm", "@jdxcode/mise", spec),)


def stage(version: str, platform: str) -> Stage:
    """Unpack the platform package's binary (no install scripts run)."""
    package = f"@jdxcode/mise-linux-{NPM_ARCH[platform]}@{version}"
    return Stage(
        name="mise",
        parent="node",
        run=(
            "mkdir -p /tmp/mise /opt/mise && cd /tmp/mise &&"
            f"\nnpm pack --loglevel=warn {package} >/dev/null &&"
            "\ntar xzf ./*.tgz && install -m 755 package/bin/mise /opt/mise/mise &&"
            "\ncd / && rm -rf /tmp/mise /root/.npm",
        ),
    )


def layer(version: str, platform: str) -> Layer:
    """The mise binary and the command that installs the usual runtimes."""
    return Layer(
        name="mise",
        summary="mise from the npm registry (runtimes on demand, in HOME)",
        version=version,
        stages=(stage(version, platform),),
        copies=(Copy("mise", "/opt/mise/mise", BINARY),),
        files=(File("mise-defaults.sh", "/usr/local/bin/sagecode-mise-defaults", 0o755),),
        verify=(
            f"mise --version | grep -q '{version}'",
            "sagecode-mise-defaults --dry-run | grep -q node@22",
        ),
    )
