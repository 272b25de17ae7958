"""The load breakdown replays a saved OCI tar's zstd layers, base layer first, with the real zstd and tar."""

from __future__ import annotations

import hashlib
import io
import json
import shutil
import subprocess
import tarfile
from pathlib import Path

import pytest

from bench import unpack
from bench.common import BenchError

pytestmark = pytest.mark.skipif(shutil.which("zstd") is None, reason="zstd is not installed")


def _layer(files: dict[str, bytes]) -> bytes:
    raw = io.BytesIO()
    with tarfile.open(fileobj=raw, mode="w") as layer:
        for name, data in files.items():
            info = tarfile.TarInfo(name)
            info.size = len(data)
            layer.addfile(info, io.BytesIO(data))
    return subprocess.run(["zstd", "-q", "-c"], input=raw.getvalue(), capture_output=True, check=True).stdout


def _oci_tar(path: Path, layers: list[bytes], media: str = unpack.ZSTD) -> None:
    blobs: dict[str, bytes] = {}

    def add(data: bytes) -> str:
        digest = hashlib.sha256(data).hexdigest()
        blobs[digest] = data
        return f"sha256:{digest}"

    manifest = {"layers": [{"mediaType": media, "digest": add(blob)} for blob in layers]}
    index = {"manifests": [{"digest": add(json.dumps(manifest).encode())}]}
    with tarfile.open(path, "w") as archive:
        for name, data in [("index.json", json.dumps(index).encode()),
                           *((f"blobs/sha256/{d}", b) for d, b in blobs.items())]:  # fmt: skip
            info = tarfile.TarInfo(name)
            info.size = len(data)
            archive.addfile(info, io.BytesIO(data))


def test_layers_come_out_in_the_manifests_order_and_unpack_writes_each(tmp_path: Path) -> None:
    first, second = _layer({"etc/os": b"base\n"}), _layer({"opt/tool": b"tool\n"})
    _oci_tar(tmp_path / "image.tar", [first, second])
    blobs = unpack.layers(tmp_path / "image.tar", tmp_path / "blobs")
    assert [blob.read_bytes() for blob in blobs] == [first, second]
    assert unpack.decompress(blobs) >= 0
    (tmp_path / "out").mkdir()
    assert unpack.unpack(blobs, tmp_path / "out") >= 0
    assert (tmp_path / "out" / "layer-0" / "etc" / "os").read_text() == "base\n"
    assert (tmp_path / "out" / "layer-1" / "opt" / "tool").read_text() == "tool\n"


def test_a_gzip_layer_is_refused_with_its_digest(tmp_path: Path) -> None:
    _oci_tar(tmp_path / "image.tar", [b"x"], media="application/vnd.oci.image.layer.v1.tar+gzip")
    with pytest.raises(BenchError, match="not zstd"):
        unpack.layers(tmp_path / "image.tar", tmp_path / "blobs")
