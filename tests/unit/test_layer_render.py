"""How layers reach the final stage: few steps, and files with the modes the layers say."""

from __future__ import annotations

import dataclasses
import os
import stat
import subprocess
from collections.abc import Iterator
from pathlib import Path

import pytest

from imagebuild import layers
from imagebuild.config import BuildConfig
from imagebuild.errors import UsageError
from imagebuild.layers.model import Layer, Link, Stage
from imagebuild.render import _group, render
from tests.conftest import VERSIONS


@pytest.fixture
def strict_umask() -> Iterator[None]:
    """A umask that would make 0700 directories."""
    old = os.umask(0o077)
    try:
        yield
    finally:
        os.umask(old)


def test_final_stage_has_few_steps(config: BuildConfig) -> None:
    """Files and links go in one COPY and nothing runs on the assembled image: a RUN there
    makes BuildKit merge every layer's snapshot (2026-12-06: 3.4 s of a full-image bump)."""
    final = render(layers.compose(config, VERSIONS), config.base_image).dockerfile.split("AS image")[1]
    steps = [line for line in final.splitlines() if line.startswith(("COPY", "RUN"))]
    copies = [line for line in steps if line.startswith("COPY --link --from=")]
    assert len(steps) == len(copies) + 1
    assert "COPY --link rootfs/ /" in steps


def test_a_layer_with_local_steps_gets_one_run(config: BuildConfig) -> None:
    """A layer that still needs a step on the image (kiro links whatever its installer
    made) gets it, in one RUN after the files."""
    composed = layers.compose(dataclasses.replace(config, extra_layers=frozenset({"kiro"})), VERSIONS)
    final = render(composed, config.base_image).dockerfile.split("AS image")[1]
    steps = [line for line in final.splitlines() if line.startswith(("COPY", "RUN"))]
    assert steps[-1].startswith("RUN ")
    assert "/opt/kiro/bin" in steps[-1]
    assert steps[-2] == "COPY --link rootfs/ /"


def test_links_are_laid_out_in_the_context(config: BuildConfig, tmp_path: Path) -> None:
    """Links go into rootfs/ as symbolic links to their targets in the image, and a
    link's target is part of the content hash."""
    composed = layers.compose(config, VERSIONS)
    definition = render(composed, config.base_image)
    definition.write(tmp_path / "context")
    rootfs = tmp_path / "context/rootfs"
    assert str((rootfs / "usr/local/bin/aws").readlink()) == "/opt/awscli/bin/aws"
    assert str((rootfs / "usr/local/bin/claude").readlink()) == "/opt/agents/bin/claude"
    agents = next(x for x in composed if x.name == "agents")
    moved = tuple(dataclasses.replace(x, target=x.target + ".other") for x in agents.links)
    changed = [dataclasses.replace(x, links=moved) if x is agents else x for x in composed]
    assert render(changed, config.base_image).content != definition.content


def test_rootfs_modes_and_directories(config: BuildConfig, tmp_path: Path, strict_umask: None) -> None:
    """Each file gets its layer's mode; directories are 0755 even under a strict umask."""
    render(layers.compose(config, VERSIONS), config.base_image).write(tmp_path / "context")
    rootfs = tmp_path / "context/rootfs"
    assert stat.S_IMODE((rootfs / "usr/local/bin/sagecode-entrypoint").stat().st_mode) == 0o755
    assert stat.S_IMODE((rootfs / "etc/vim/vimrc.local").stat().st_mode) == 0o644
    dirs = [p for p in rootfs.rglob("*") if p.is_dir()]
    assert dirs
    assert {stat.S_IMODE(p.stat().st_mode) for p in [rootfs, *dirs]} == {0o755}


def test_content_hash_follows_file_modes(config: BuildConfig) -> None:
    """A file's mode is part of what the image is: it changes the content hash."""
    composed = layers.compose(config, VERSIONS)
    entry = composed[-1]
    private = tuple(dataclasses.replace(f, mode=0o700) for f in entry.files)
    changed = (*composed[:-1], dataclasses.replace(entry, files=private))
    assert render(changed, config.base_image).content != render(composed, config.base_image).content


def test_local_steps_fail_the_build_on_any_failure(config: BuildConfig, tmp_path: Path) -> None:
    """The joined RUN stops at the first failing step, even one inside a && list."""
    script = " && ".join(_group(s) for s in ("false && true", f"touch {tmp_path}/ran"))
    assert subprocess.run(["sh", "-c", script], check=False).returncode != 0
    assert not (tmp_path / "ran").exists()


def test_two_things_at_one_path_are_refused(config: BuildConfig) -> None:
    """A link where another layer puts a file is refused when rendering, with both names."""
    composed = layers.compose(config, VERSIONS)
    entrypoint = next(x for x in composed if x.name == "entrypoint")
    agents = next(x for x in composed if x.name == "agents")
    clash = Link(entrypoint.files[0].dest, "/bin/true")
    changed = [dataclasses.replace(x, links=(*x.links, clash)) if x is agents else x for x in composed]
    with pytest.raises(UsageError, match=f"layers agents and entrypoint both put {entrypoint.files[0].dest}"):
        render(changed, config.base_image)
    twice = [dataclasses.replace(x, links=(*x.links, x.links[0])) if x is agents else x for x in composed]
    with pytest.raises(UsageError, match="layer agents puts twice"):
        render(twice, config.base_image)


def test_a_trunk_must_hold_only_the_images_own_steps(config: BuildConfig) -> None:
    """The image starts from code-server's stage, which grows on Node's; a trunk that is
    not its layer's stage, skips the trunk before it, or has build tools on its chain is
    refused."""
    composed = layers.compose(config, VERSIONS)
    assert "FROM code-server AS image" in render(composed, config.base_image).dockerfile
    cs = next(x for x in composed if x.name == "code-server")

    def with_code_server(trunk: str, stages: tuple[Stage, ...] = cs.stages) -> list[Layer]:
        return [dataclasses.replace(x, trunk=trunk, stages=stages) if x is cs else x for x in composed]

    with pytest.raises(ValueError, match="its trunk node-runtime is not one of its stages"):
        render(with_code_server("node-runtime"), config.base_image)
    with pytest.raises(ValueError, match="with build tools"):
        render(with_code_server("code-server-natives"), config.base_image)
    orphan = Stage(name="code-server-bare", parent="base")
    with pytest.raises(ValueError, match="does not descend from node-runtime"):
        render(with_code_server("code-server-bare", (*cs.stages, orphan)), config.base_image)
