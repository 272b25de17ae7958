"""AI agent CLIs from the npm registry: Claude Code and Cline, in ``/opt/agents``.

Both packages pull their per-platform binaries as optional npm dependencies, so they
install through any npm mirror. Their Amazon Bedrock defaults (the predecessor's: region,
the ``default`` AWS profile, ``CLAUDE_CODE_USE_BEDROCK=1``, the model) are not in the
image's files but seeds the first-start script merges into the user's home, once.
"""

from __future__ import annotations

from imagebuild.layers.entrypoint import seed_files
from imagebuild.layers.model import Copy, File, Layer, Link, Stage, Want

PREFIX = "/opt/agents"
COMMANDS = ("claude", "cline")
SEEDS = ("claude-settings.json", "cline-state.json", "aws-config")


def wants(claude_code: str, cline: str) -> tuple[Want, ...]:
    """Both CLIs' versions, resolved through npm."""
    return (
        Want("claude-code", "npm", "@anthropic-ai/claude-code", claude_code),
        Want("cline", "npm", "cline", cline),
    )


def stage(claude_code: str, cline: str) -> Stage:
    """Both CLIs in one npm prefix (their install scripts only pick platform binaries), and
    Cline's embedding packages removed in the same step when its command works without
    them. In a step of their own they stayed in the install's layer, which the build cache
    keeps on the volume: 26 MB more of it, and 5 s more to build (2026-12-05)."""
    return Stage(
        name="agents",
        parent="node",
        files=(File("agents/trim-cline.sh", "/usr/local/bin/trim-cline", 0o755),),
        run=(
            f"npm install -g --loglevel=warn --prefix {PREFIX}"
            f" @anthropic-ai/claude-code@{claude_code} cline@{cline} &&"
            f"\ntrim-cline {PREFIX} &&"
            "\nrm -rf /root/.npm /root/.cache /tmp/*",
        ),
    )


def layer(claude_code: str, cline: str) -> Layer:
    """The CLIs on PATH, and their Bedrock defaults for the first start."""
    return Layer(
        name="agents",
        summary="Claude Code and Cline from the npm registry",
        version=f"claude-code {claude_code}, cline {cline}",
        stages=(stage(claude_code, cline),),
        copies=(Copy("agents", PREFIX, PREFIX),),
        files=seed_files("agents", SEEDS),
        # The prefix belongs to root and is rebuilt with the image: no self-updates.
        env=(("DISABLE_AUTOUPDATER", "1"),),
        links=tuple(Link(f"/usr/local/bin/{c}", f"{PREFIX}/bin/{c}") for c in COMMANDS),
        verify=(
            f"claude --version | grep -q '{claude_code}'",
            f"cline --version | grep -q '{cline}'",
        ),
    )
