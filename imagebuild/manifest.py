"""The manifest written beside each saved image: what it is, which versions, where it is saved.

The same JSON serves as a lock file: ``--lock FILE`` rebuilds with its ``versions``.
"""

from __future__ import annotations

import json
from collections.abc import Mapping
from dataclasses import asdict, dataclass, field
from datetime import datetime, timezone
from pathlib import Path
from typing import Any

from imagebuild.errors import UsageError

SCHEMA = 1


@dataclass(frozen=True)
class Manifest:
    """A built image and, once saved, where: a tar (``tar``), or the store's OCI layout
    folder, by its manifest's digest (``oci_manifest``). ``tar_bytes`` is the saved size
    (of the tar, or of the image's blobs in the folder)."""

    image: str
    content: str
    versions: Mapping[str, str]
    layers: tuple[str, ...]
    base_image: str
    platform: str
    created: str = field(default_factory=lambda: datetime.now(timezone.utc).isoformat(timespec="seconds"))
    tar: str = ""
    tar_sha256: str = ""
    tar_bytes: int = 0
    compression: str = ""
    oci_manifest: str = ""
    schema: int = SCHEMA

    @property
    def saved_as(self) -> str:
        """What the saved image is called in messages: its tar, or its manifest in the folder."""
        if self.oci_manifest:
            return f"oci/{self.oci_manifest.partition(':')[2][:12]}"
        return self.tar

    def to_json(self) -> str:
        """Stable, readable JSON."""
        data = asdict(self)
        data["layers"] = list(self.layers)
        data["versions"] = dict(sorted(self.versions.items()))
        return json.dumps(data, indent=2, sort_keys=True) + "\n"

    @classmethod
    def from_dict(cls, data: Mapping[str, Any]) -> Manifest:
        """Parse a manifest; a wrong shape raises ``ValueError``."""
        if data.get("schema") != SCHEMA:
            raise ValueError(f"unsupported schema {data.get('schema')!r}")
        fields = {k: data[k] for k in cls.__dataclass_fields__ if k in data}
        fields["layers"] = tuple(fields.get("layers", ()))
        fields["versions"] = {str(k): str(v) for k, v in dict(fields.get("versions", {})).items()}
        return cls(**fields)


def read(path: Path) -> Manifest:
    """Read a manifest or lock file; any problem is a one-line UsageError."""
    try:
        return Manifest.from_dict(json.loads(path.read_text()))
    except FileNotFoundError:
        raise UsageError(f"{path} does not exist", "give the path of a saved manifest (*.json)") from None
    except (ValueError, TypeError, KeyError, AttributeError) as exc:
        raise UsageError(
            f"{path} is not a sagecode lock/manifest ({exc})",
            "use a *.json written beside a saved image, or build without --lock",
        ) from None
