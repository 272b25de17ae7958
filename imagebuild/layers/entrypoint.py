"""The entrypoint: a login shell, code-server, or any command (see files/entrypoint.sh)."""

from __future__ import annotations

from imagebuild.layers.model import File, Layer

ENTRYPOINT = "/usr/local/bin/sagecode-entrypoint"


def layer() -> Layer:
    """The entrypoint script; the default shell is zsh."""
    return Layer(
        name="entrypoint",
        summary="dual-mode entrypoint (shell, code-server, or a command)",
        files=(File("entrypoint.sh", ENTRYPOINT, 0o755),),
        env=(("SHELL", "/bin/zsh"),),
        entrypoint=(ENTRYPOINT,),
        verify=(f"test -x {ENTRYPOINT}",),
    )
