"""What a restore's ``docker load`` spends its time on, measured without the engine.

A load reads the tar, stores its blobs in containerd's content store, decompresses each
layer and writes its files into a snapshot. The saved tar's layers are replayed here, one
after another as the engine applies them, in two ways:

- **decompress**: ``zstd -dc`` of every layer to ``/dev/null`` (the CPU part);
- **decompress + write the files**: the same piped into ``tar -x`` in a fresh folder per
  layer on the engine's disk, then ``sync`` (what an unpack must do at least).

What ``docker load`` takes beyond the second figure is the engine's own work (the content
store's copy of the blobs, metadata, its fsyncs).
"""

from __future__ import annotations

import json
import subprocess
import tarfile
import tempfile
import time
from pathlib import Path

from bench.common import BenchError, Row, clean, cold_caches

ZSTD = "application/vnd.oci.image.layer.v1.tar+zstd"


def layers(tar: Path, folder: Path) -> list[Path]:
    """The saved OCI tar's layer blobs, extracted into ``folder``, base layer first."""
    with tarfile.open(tar) as archive:
        index = json.load(_member(archive, "index.json"))
        digest = index["manifests"][0]["digest"].split(":", 1)[1]
        manifest = json.load(_member(archive, f"blobs/sha256/{digest}"))
        if manifest.get("mediaType", "").endswith("index.v1+json"):  # a one-platform index
            digest = manifest["manifests"][0]["digest"].split(":", 1)[1]
            manifest = json.load(_member(archive, f"blobs/sha256/{digest}"))
        found = []
        for layer in manifest["layers"]:
            if layer["mediaType"] != ZSTD:
                raise BenchError(f"layer {layer['digest']} is {layer['mediaType']}, not zstd")
            name = layer["digest"].split(":", 1)[1]
            archive.extract(f"blobs/sha256/{name}", folder, filter="fully_trusted")
            found.append(folder / "blobs" / "sha256" / name)
        return found


def _member(archive: tarfile.TarFile, name: str):  # type: ignore[no-untyped-def]
    handle = archive.extractfile(name)
    if handle is None:
        raise BenchError(f"{name} is missing from the saved tar")
    return handle


def decompress(blobs: list[Path]) -> float:
    """Seconds to decompress every layer, one after another."""
    start = time.monotonic()
    for blob in blobs:
        subprocess.run(["zstd", "-dcq", str(blob)], stdout=subprocess.DEVNULL, check=True)
    return time.monotonic() - start


def unpack(blobs: list[Path], folder: Path) -> float:
    """Seconds to decompress every layer into its own folder and sync the files to disk."""
    start = time.monotonic()
    for n, blob in enumerate(blobs):
        target = folder / f"layer-{n}"
        target.mkdir()
        with subprocess.Popen(["zstd", "-dcq", str(blob)], stdout=subprocess.PIPE) as zstd:
            subprocess.run(["tar", "-x", "--numeric-owner", "-C", str(target)], stdin=zstd.stdout, check=True)
        if zstd.returncode != 0:
            raise BenchError(f"zstd could not decompress {blob.name}")
    subprocess.run(["sync"], check=True)
    return time.monotonic() - start


def bench(tar: Path, rounds: int, work: Path) -> list[Row]:
    """The decompress and unpack figures, ``rounds`` times each."""
    folder = Path(tempfile.mkdtemp(prefix="sagecode-bench-unpack-", dir=work))
    try:
        blobs = layers(tar, folder / "tar")
        squeezed, written = [], []
        for n in range(rounds):
            squeezed.append(decompress(blobs))
            scratch = folder / f"unpack-{n}"
            scratch.mkdir()
            cold_caches()  # the blobs read from the disk, no deleted inodes of the last round cached
            written.append(unpack(blobs, scratch))
            clean(scratch)
    finally:
        clean(folder)
    return [
        Row(f"  breakdown: zstd decompress of the {len(blobs)} layers, one after another", squeezed),
        Row("  breakdown: decompress + write the files (tar -x per layer) + sync", written),
    ]
