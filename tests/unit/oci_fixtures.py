"""Small OCI image layouts in a tar, as the build saves them, and a fake engine that pulls
over HTTP the way the real one does (manifest by digest, then every blob, each checked)."""

from __future__ import annotations

import hashlib
import io
import json
import tarfile
import urllib.request
from collections.abc import Iterable
from pathlib import Path
from typing import Optional

from imagebuild.errors import EngineError

MANIFEST_TYPE = "application/vnd.oci.image.manifest.v1+json"
LAYERS = (b"base layer bytes" * 100, b"code-server layer" * 300, b"agents" * 50)


def digest(data: bytes) -> str:
    return "sha256:" + hashlib.sha256(data).hexdigest()


def oci_layout(folder: Path, image: str = "sagecode:aaaa",
               layers: Iterable[bytes] = LAYERS) -> dict[str, bytes]:
    """Save ``image`` into the OCI layout ``folder`` as ``buildx --output type=oci,tar=false``
    does: the blobs it lacks, ``index.json`` naming the image by its full name beside the
    images already there; returns the image's blobs by digest."""
    blobs, manifest = _image(image, layers)
    for d, data in blobs.items():
        path = folder / "blobs" / d.replace(":", "/")
        path.parent.mkdir(parents=True, exist_ok=True)
        if not path.exists():
            path.write_bytes(data)
    name = image if "/" in image else f"docker.io/library/{image}"
    index = folder / "index.json"
    entries = json.loads(index.read_text())["manifests"] if index.exists() else []
    entries = [e for e in entries if e["annotations"]["org.opencontainers.image.ref.name"] != name]
    entries.append({"mediaType": MANIFEST_TYPE, "digest": digest(manifest), "size": len(manifest),
                    "annotations": {"org.opencontainers.image.ref.name": name}})
    index.write_text(json.dumps({"schemaVersion": 2, "manifests": entries}))
    (folder / "oci-layout").write_text('{"imageLayoutVersion":"1.0.0"}')
    return blobs


def _image(image: str, layers: Iterable[bytes]) -> tuple[dict[str, bytes], bytes]:
    """Every blob of an image of ``layers`` by digest, and its manifest."""
    layers = list(layers)
    config = json.dumps({"architecture": "amd64", "os": "linux", "image": image,
                         "rootfs": {"type": "layers", "diff_ids": [digest(x) for x in layers]}}).encode()
    manifest = json.dumps({
        "schemaVersion": 2, "mediaType": MANIFEST_TYPE,
        "config": {"mediaType": "application/vnd.oci.image.config.v1+json", "digest": digest(config),
                   "size": len(config)},
        "layers": [{"mediaType": "application/vnd.oci.image.layer.v1.tar+zstd", "digest": digest(x),
                    "size": len(x)} for x in layers],
    }).encode()
    return {digest(x): x for x in (config, manifest, *layers)}, manifest


def oci_tar(path: Path, image: str = "sagecode:aaaa", layers: Iterable[bytes] = LAYERS,
            drop: Iterable[str] = ()) -> dict[str, bytes]:
    """Write an OCI layout tar holding ``image``; returns every blob by digest.

    ``drop`` names blobs left out of the tar (a damaged save)."""
    blobs, manifest = _image(image, layers)
    name = image if "/" in image else f"docker.io/library/{image}"
    index = json.dumps({"schemaVersion": 2, "manifests": [{
        "mediaType": MANIFEST_TYPE, "digest": digest(manifest), "size": len(manifest),
        "annotations": {"io.containerd.image.name": name,
                        "org.opencontainers.image.ref.name": image.rpartition(":")[2]},
    }]}).encode()
    with tarfile.open(path, "w") as tar:
        for member, data in [*((f"blobs/{d.replace(':', '/')}", b) for d, b in blobs.items()
                               if d not in set(drop)),
                             ("index.json", index), ("oci-layout", b'{"imageLayoutVersion":"1.0.0"}')]:
            info = tarfile.TarInfo(member)
            info.size = len(data)
            tar.addfile(info, io.BytesIO(data))
    return blobs


class PullingEngine:
    """Pulls as the engine does: the manifest by digest, then each blob, checking each digest.

    ``unpacked`` holds layers it already has (it fetches those not, like Docker before 29);
    ``reachable=False`` is a rootless engine, whose 127.0.0.1 is its own."""

    def __init__(self, unpacked: Iterable[str] = (), reachable: bool = True) -> None:
        self.images: dict[str, str] = {}
        self.unpacked = set(unpacked)
        self.reachable = reachable
        self.loaded: list[bytes] = []
        self.untagged: list[str] = []

    def image_id(self, ref: str) -> Optional[str]:
        return self.images.get(ref)

    def pull(self, ref: str) -> None:
        if not self.reachable:
            raise EngineError(f"docker pull {ref} failed: connection refused")
        address, _, rest = ref.partition("/")
        name, _, wanted = rest.partition("@")
        base = f"http://{address}/v2/{name}"
        manifest = self._get(f"{base}/manifests/{wanted}", wanted)
        layers = [d["digest"] for d in json.loads(manifest)["layers"]]
        self._get(f"{base}/blobs/{json.loads(manifest)['config']['digest']}",
                  json.loads(manifest)["config"]["digest"])
        for layer in layers:
            if layer not in self.unpacked:
                self._get(f"{base}/blobs/{layer}", layer)
        self.images[ref] = wanted

    @staticmethod
    def _get(url: str, expected: str) -> bytes:
        with urllib.request.urlopen(url, timeout=10) as answer:
            data = answer.read()
        if digest(data) != expected:
            raise EngineError(f"docker pull failed: unexpected commit digest {digest(data)}, "
                              f"expected {expected}")
        return bytes(data)

    def tag(self, ref: str, new: str) -> None:
        self.images[new] = self.images[ref]

    def untag(self, ref: str) -> None:
        self.untagged.append(ref)
        self.images.pop(ref, None)

    def remove(self, ref: str) -> None:
        self.images.pop(ref, None)

    def load(self, chunks: Iterable[bytes]) -> list[str]:
        data = b"".join(chunks)
        self.loaded.append(data)
        with tarfile.open(fileobj=io.BytesIO(data)) as tar:
            index = json.loads(tar.extractfile("index.json").read())  # type: ignore[union-attr]
        name = index["manifests"][0]["annotations"]["io.containerd.image.name"]
        name = name.removeprefix("docker.io/library/")
        self.images[name] = index["manifests"][0]["digest"]
        return [name]
