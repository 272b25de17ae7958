"""Reading a saved image tar (OCI layout, zstd or gzip layers) without loading it.

``scan_tar`` walks every layer of every file: build tools are found by name, secrets by
content, and the image config (environment, labels, history) is searched as well.
"""

from __future__ import annotations

import gzip
import json
import re
import tarfile
from pathlib import Path
from typing import IO, Any, cast

# Compilers and make by file name (the driver, its target-prefixed twin, the compiler proper).
BUILD_TOOL = re.compile(r"(^|/)(usr/(local/)?bin/(gcc|g\+\+|cc|c\+\+|make|[a-z0-9_]+-linux-gnu-g(cc|\+\+))"
                        r"(-\d+)?|usr/lib/gcc/.*/cc1(plus)?)$")
CHUNK = 4 << 20


def _blob(outer: tarfile.TarFile, digest: str) -> IO[bytes]:
    member = outer.extractfile(f"blobs/{digest.replace(':', '/')}")
    assert member is not None
    return member


def _manifest(outer: tarfile.TarFile) -> dict[str, Any]:
    index = outer.extractfile("index.json")
    assert index is not None
    doc: dict[str, Any] = json.load(index)
    while "layers" not in doc:  # an index (or a list) points at the image manifest
        doc = json.load(_blob(outer, doc["manifests"][0]["digest"]))
    return doc


def _layer_stream(outer: tarfile.TarFile, layer: dict[str, Any]) -> IO[bytes]:
    raw = _blob(outer, layer["digest"])
    if layer["mediaType"].endswith("zstd"):
        import zstandard  # noqa: PLC0415 - test extra; only the tar scan needs it

        return zstandard.ZstdDecompressor().stream_reader(raw)
    return cast(IO[bytes], gzip.GzipFile(fileobj=raw)) if layer["mediaType"].endswith("gzip") else raw


def _search(stream: IO[bytes], needles: list[bytes]) -> set[bytes]:
    found, tail, width = set(), b"", max(map(len, needles))
    while chunk := stream.read(CHUNK):
        buf = tail + chunk
        found |= {n for n in needles if n in buf}
        tail = buf[-width:]
    return found


def scan_tar(path: Path, needles: list[bytes]) -> tuple[list[str], set[bytes]]:
    """Build tools by file name and ``needles`` in file contents, in every layer of ``path``;
    the image config (environment, history) is searched for the needles too."""
    tools: list[str] = []
    found: set[bytes] = set()
    with tarfile.open(path) as outer:
        manifest = _manifest(outer)
        found |= _search(_blob(outer, manifest["config"]["digest"]), needles)
        for layer in manifest["layers"]:
            with tarfile.open(fileobj=_layer_stream(outer, layer), mode="r|") as tar:
                for member in tar:
                    if BUILD_TOOL.search(member.name):
                        tools.append(member.name)
                    if member.isfile():
                        data = tar.extractfile(member)
                        found |= _search(data, needles) if data else set()
    return tools, found
