"""Kiro CLI from its vendor installer: optional (``--with kiro``), never a failed build.

The installer is not pinned (it serves its newest release) and its site is unreachable
from no-internet instances and from CI; then the stage leaves an empty folder and the
build output says the layer was skipped. A successful or skipped run is cached like any
step: ``--no-cache`` tries again.
"""

from __future__ import annotations

from imagebuild.layers.model import Copy, File, Layer, Stage

URL = "https://cli.kiro.dev/install"
PREFIX = "/opt/kiro/bin"


def layer() -> Layer:
    """Whatever the vendor installer puts in ~/.local/bin, linked onto PATH."""
    return Layer(
        name="kiro",
        summary="Kiro CLI from its vendor installer (skipped when unreachable)",
        version="vendor installer",
        stages=(Stage(
            name="kiro",
            files=(File("install-kiro.sh", "/usr/local/bin/install-kiro", 0o755),),
            run=(f"install-kiro {URL} {PREFIX}",),
        ),),
        copies=(Copy("kiro", PREFIX, PREFIX),),
        run=(f"for f in {PREFIX}/*; do if [ -e \"$f\" ]; then ln -sf \"$f\" /usr/local/bin/; fi; done",),
        verify=(f"test -d {PREFIX}",),
    )
