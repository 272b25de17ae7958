"""The saved tar as a read-only registry on 127.0.0.1: what it answers, and what it refuses."""

from __future__ import annotations

import io
import socket
import tarfile
import time
import urllib.error
import urllib.request
from pathlib import Path

import pytest

from imagebuild import tarserve
from tests.unit.oci_fixtures import LAYERS, MANIFEST_TYPE, PullingEngine, digest, oci_tar


@pytest.fixture
def saved(tmp_path: Path) -> tuple[Path, dict[str, bytes]]:
    tar = tmp_path / "sagecode-aaaa.tar"
    return tar, oci_tar(tar)


def _get(url: str, method: str = "GET",
         headers: dict[str, str] | None = None) -> tuple[int, dict[str, str], bytes]:
    request = urllib.request.Request(url, method=method, headers=headers or {})
    try:
        with urllib.request.urlopen(request, timeout=10) as answer:
            return answer.status, dict(answer.headers), answer.read()
    except urllib.error.HTTPError as exc:
        return exc.code, dict(exc.headers), exc.read()


def test_index_finds_the_image_and_its_blobs(saved: tuple[Path, dict[str, bytes]]) -> None:
    tar, blobs = saved
    image = tarserve.index(tar, "sagecode:aaaa")
    assert image.media_type == MANIFEST_TYPE
    assert image.layers == tuple(digest(x) for x in LAYERS)
    assert set(image.blobs) == set(blobs)
    assert tarserve.read(image.blobs[image.manifest]) == blobs[image.manifest]
    assert image.layer_bytes == sum(len(b) for b in blobs.values())


@pytest.mark.parametrize("problem", ["not a tar", "no index", "other image", "lost blob"])
def test_index_refuses_what_it_cannot_serve(tmp_path: Path, problem: str) -> None:
    tar = tmp_path / "x.tar"
    if problem == "not a tar":
        tar.write_bytes(b"a saved image")
    elif problem == "no index":
        with tarfile.open(tar, "w") as t:
            info = tarfile.TarInfo("manifest.json")
            t.addfile(info, io.BytesIO(b""))
    elif problem == "other image":
        oci_tar(tar, image="sagecode:bbbb")
    else:
        oci_tar(tar, drop=[digest(LAYERS[1])])
    with pytest.raises(tarserve.NotServableError):
        tarserve.index(tar, "sagecode:aaaa")


def test_serves_the_registry_api_read_only(saved: tuple[Path, dict[str, bytes]]) -> None:
    tar, blobs = saved
    image = tarserve.index(tar, "sagecode:aaaa")
    sent: list[int] = []
    with tarserve.serving(image, sent.append) as server:
        host = server.address
        assert host.startswith("127.0.0.1:")
        base = f"http://{host}/v2/{tarserve.REPOSITORY}"
        assert _get(f"http://{host}/v2/")[0] == 200

        status, headers, body = _get(f"{base}/manifests/{image.manifest}")
        assert (status, headers["Content-Type"], headers["Docker-Content-Digest"]) == (
            200, MANIFEST_TYPE, image.manifest)
        assert body == blobs[image.manifest]

        layer = image.layers[1]
        status, headers, body = _get(f"{base}/blobs/{layer}", "HEAD")
        assert (status, int(headers["Content-Length"]), body) == (200, len(blobs[layer]), b"")
        assert layer not in server.fetched
        status, _, body = _get(f"{base}/blobs/{layer}")
        assert (status, body) == (200, blobs[layer])
        assert layer in server.fetched
        status, headers, body = _get(f"{base}/blobs/{layer}", headers={"Range": "bytes=10-"})
        assert (status, body) == (206, blobs[layer][10:])
        assert headers["Content-Range"] == f"bytes 10-{len(blobs[layer]) - 1}/{len(blobs[layer])}"

        assert _get(f"{base}/manifests/latest")[0] == 404  # only by digest
        assert _get(f"http://{host}/v2/other/blobs/{layer}")[0] == 404
        assert _get(f"{base}/blobs/sha256:{'0' * 64}")[0] == 404
        assert _get(f"{base}/blobs/{layer}", "PUT")[0] == 501
    # The meter counts after each send, in the server's thread: the client may be ahead of it.
    deadline = time.monotonic() + 5
    while sum(sent) < 2 * len(blobs[layer]) - 10 and time.monotonic() < deadline:
        time.sleep(0.01)
    assert sum(sent) == 2 * len(blobs[layer]) - 10


def test_a_tls_hello_gets_an_http_answer(saved: tuple[Path, dict[str, bytes]]) -> None:
    """The engine tries HTTPS first and falls back only on an answer starting ``HTTP/``."""
    image = tarserve.index(saved[0], "sagecode:aaaa")
    with tarserve.serving(image) as server:
        host, port = server.address.split(":")
        with socket.create_connection((host, int(port)), timeout=5) as s:
            s.sendall(b"\x16\x03\x01\x00\xa5\x01\x00\x00\xa1\x03\x03")
            assert s.recv(5) == b"HTTP/"


def test_completion_holds_only_the_skipped_layers(saved: tuple[Path, dict[str, bytes]]) -> None:
    tar, blobs = saved
    image = tarserve.index(tar, "sagecode:aaaa")
    engine = PullingEngine(unpacked=[image.layers[0]])
    with tarserve.serving(image) as server:
        engine.pull(server.reference(image))
    missing = tarserve.skipped(image, server.fetched)
    assert missing == [image.layers[0]]
    data = b"".join(tarserve.completion(image, missing))
    with tarfile.open(fileobj=io.BytesIO(data)) as t:
        names = {m.name: t.extractfile(m).read() for m in t if m.isfile()}  # type: ignore[union-attr]
    wanted = {image.manifest, image.config, image.layers[0]}
    assert {n for n in names if n.startswith("blobs/")} == {"blobs/" + d.replace(":", "/") for d in wanted}
    for d in wanted:
        assert names["blobs/" + d.replace(":", "/")] == blobs[d]
    assert "index.json" in names
    assert "oci-layout" in names
