"""The image's size (with what dominates it) and the wrapper's own start-up."""

from __future__ import annotations

import os
import subprocess
import sys
import tempfile
import time
from pathlib import Path

from bench.common import Row, run
from imagebuild.manifest import Manifest

# The wrapper's work before its first engine call: imports, argv, configuration.
WRAPPER_START = (
    "from runtime.wrapper import parse_args, load_config; "
    "parse_args(['--bind-addr', '127.0.0.1:8888', '--auth', 'none', '/tmp']); load_config()"
)


def layer_sizes(image: str) -> list[tuple[int, str]]:
    """(uncompressed bytes, step) for each history entry of ``image``, largest first."""
    fields = "{{.Size}}\t{{.CreatedBy}}"
    done = run(["docker", "history", "--no-trunc", "--human=false", "--format", fields, image])
    sizes = []
    for line in done.stdout.splitlines():
        size, _, step = line.partition("\t")
        sizes.append((int(size or 0), " ".join(step.split())))
    return sorted(sizes, reverse=True)


def stage_of(step: str) -> str:
    """A short name for a history step: the stage a COPY came from, or the step's start."""
    if "--from=" in step:
        return "COPY from stage " + step.split("--from=")[1].split(maxsplit=1)[0]
    if step.startswith("COPY rootfs/"):
        return "COPY rootfs/ (every layer's files)"
    return (step[:70] + "...") if len(step) > 70 else (step or "(base image)")


def size(manifest: Manifest) -> tuple[list[Row], list[str]]:
    """The image's uncompressed size against the 1.5 GB target, and its biggest parts."""
    sizes = layer_sizes(manifest.image)
    total = sum(s for s, _ in sizes)
    rows = [
        Row(
            f"image, uncompressed ({len(manifest.layers)} layers: {', '.join(manifest.layers)})",
            [float(total)], unit="B", target="<= 1,500 MB", met=total <= 1.5e9,
        ),
        Row("saved image (zstd, OCI)", [float(manifest.tar_bytes)], unit="B"),
    ]
    parts = [f"- {s / 1e6:,.0f} MB: {stage_of(step)}" for s, step in sizes if s >= 10e6]
    return rows, parts


def startup(rounds: int = 15) -> Row:
    """Process start to the wrapper's first engine call, against a bare interpreter's start."""
    env = {**os.environ, "SAGECODE_STATE_DIR": tempfile.mkdtemp(prefix="sagecode-bench-")}

    def once(code: str) -> float:
        start = time.monotonic()
        subprocess.run([sys.executable, "-c", code], check=True, env=env, cwd=Path("/"))
        return time.monotonic() - start

    once(WRAPPER_START)  # warm the page cache
    wrapper = [once(WRAPPER_START) for _ in range(rounds)]
    bare = [once("pass") for _ in range(rounds)]
    median = sorted(wrapper)[len(wrapper) // 2]
    return Row("wrapper start-up: interpreter, imports, argv, config", wrapper, baseline=bare,
               target="<= 0.3 s", met=median <= 0.3)  # fmt: skip
