"""The entrypoint: a login shell, code-server, or any command (see files/entrypoint.sh).

It also owns the first-start script, which the entrypoint runs before the session:
layers with per-user defaults ship seeds (``seed_files``) that it applies once per home.
"""

from __future__ import annotations

from collections.abc import Sequence

from imagebuild.layers.model import File, Layer

ENTRYPOINT = "/usr/local/bin/sagecode-entrypoint"
LIB = "/usr/local/lib/sagecode"
SEEDS = "/usr/local/share/sagecode/seeds"


def seed_files(layer: str, templates: Sequence[str]) -> tuple[File, ...]:
    """A layer's seed list (``files/<layer>/seeds.json``) and its templates, in SEEDS."""
    spec = File(f"{layer}/seeds.json", f"{SEEDS}/{layer}.json")
    return (spec, *(File(f"{layer}/{name}", f"{SEEDS}/{layer}/{name}") for name in templates))


def layer(aws_region: str, bedrock_model: str) -> Layer:
    """The entrypoint and first-start scripts; the default shell is zsh.

    The Bedrock region and model are the image's defaults for the seeds; at run time
    ``AWS_REGION`` and ``SAGECODE_BEDROCK_MODEL`` override them.
    """
    return Layer(
        name="entrypoint",
        summary="dual-mode entrypoint (shell, code-server, or a command) and first start",
        files=(
            File("entrypoint.sh", ENTRYPOINT, 0o755),
            File("first_start.py", f"{LIB}/first_start.py"),
            File("extensions.py", f"{LIB}/extensions.py"),
        ),
        env=(("SHELL", "/bin/zsh"), ("SAGECODE_AWS_REGION", aws_region),
             ("SAGECODE_BEDROCK_MODEL", bedrock_model)),
        entrypoint=(ENTRYPOINT,),
        verify=(
            f"test -x {ENTRYPOINT}",
            f"python3 -c 'import ast, sys; ast.parse(open(sys.argv[1]).read())' {LIB}/first_start.py",
        ),
    )
