"""Engine capabilities and the buildx argv, as plain data (no engine)."""

from __future__ import annotations

from pathlib import Path

import pytest

from imagebuild.builder import cache_mode
from imagebuild.engine import BuildRequest, Capabilities


@pytest.mark.parametrize(
    ("driver", "containerd", "buildx", "cache", "multi"),
    [
        ("docker", True, "v0.13.1", True, True),
        ("docker", False, "v0.13.1", False, False),
        ("docker", True, "v0.12.0", True, False),
        ("docker-container", False, "v0.20.0", True, False),
    ],
)
def test_capabilities_decide_cache_and_outputs(driver: str, containerd: bool, buildx: str,
                                               cache: bool, multi: bool) -> None:
    """Cache export needs containerd for the docker driver; one-build save needs that and 0.13."""
    caps = Capabilities("26.1.5", buildx, driver, containerd)
    assert caps.can_export_cache is cache
    assert caps.multi_output is multi


@pytest.mark.parametrize(
    ("version", "old"), [("20.10.9", True), ("20.10.10", False), ("26.1.5+dfsg1", False)]
)
def test_capabilities_flag_engines_without_clone3(version: str, old: bool) -> None:
    """Engines before 20.10.10 block clone3 and are refused."""
    assert Capabilities(version, "v0.13", "docker", True).too_old is old


def test_build_request_argv_with_layout_and_cache(tmp_path: Path) -> None:
    """One build stores the image, saves it into the layout folder and exports the cache;
    secrets by id only."""
    req = BuildRequest(context=tmp_path, tags=("sagecode:abc",), target="image",
                       labels={"b": "2", "a": "1"}, secrets=("id=ca-bundle,src=/ca.pem",),
                       cache_from=("type=local,src=/c",), cache_to="type=local,dest=/c,mode=max",
                       layout=tmp_path / "oci", tar_options="compression=zstd")
    assert req.argv() == [
        "buildx", "build", "--progress", "plain", "--provenance=false", "--tag=sagecode:abc",
        "--label=a=1", "--label=b=2", "--secret=id=ca-bundle,src=/ca.pem",
        "--cache-from=type=local,src=/c", "--cache-to=type=local,dest=/c,mode=max", "--target=image",
        "--output=type=image,name=sagecode:abc,compression=zstd",
        f"--output=type=oci,dest={tmp_path / 'oci'},tar=false,compression=zstd",
        str(tmp_path),
    ]


def test_build_request_argv_load_only(tmp_path: Path) -> None:
    """Without a layout folder the image is loaded with --load (any builder)."""
    argv = BuildRequest(context=tmp_path, tags=("t",)).argv()
    assert "--load" in argv
    assert not [a for a in argv if a.startswith("--output")]


def test_build_request_argv_push_uses_gzip_oci(tmp_path: Path) -> None:
    """A push exports every tag in one image output with gzip layers and OCI media types."""
    argv = BuildRequest(context=tmp_path, tags=("r/s:1", "r/s:latest"), load=False, push=True).argv()
    outputs = [a for a in argv if a.startswith("--output")]
    assert outputs == [
        '--output=type=image,"name=r/s:1,r/s:latest",push=true,'
        "compression=gzip,force-compression=true,oci-mediatypes=true"
    ]


@pytest.mark.parametrize(("requested", "mode"),
                         [("auto", "max"), ("min", "min"), ("max", "max"), ("off", "off")])
def test_cache_mode_auto_is_max(requested: str, mode: str) -> None:
    """auto exports every stage's layers (on the containerd store too: measured, no OOM)."""
    assert cache_mode(requested) == mode
