"""``--trust-ca``: the build's CA bundle in the image's trust store (opt-in).

Every build step already trusts the bundle through a secret mount, which never reaches a
layer. This layer is for tools *inside* the running container behind the same
TLS-inspecting proxy: it copies the bundle's certificates into the system store, so the
bundle IS then in a layer of the image (certificates are public, but that is the point
of asking). A COPY cannot read a secret, so a builder stage reads the secret mount and
writes the store, and the image copies the store.
"""

from __future__ import annotations

import hashlib
from pathlib import Path
from typing import Optional

from imagebuild.errors import UsageError
from imagebuild.layers.model import Copy, File, Layer, Stage

STORE = "/etc/ssl/certs"
ADDED = "/usr/local/share/ca-certificates/sagecode"
SYSTEM_BUNDLE = f"{STORE}/ca-certificates.crt"
# Node, Python requests/pip and the AWS SDKs/CLI read their own variables, not the store.
ENV = tuple((name, SYSTEM_BUNDLE) for name in
            ("NODE_EXTRA_CA_CERTS", "REQUESTS_CA_BUNDLE", "AWS_CA_BUNDLE"))


def digest(bundle: Optional[Path]) -> str:
    """The bundle's SHA-256: in the build text, so a new bundle is a new build step."""
    if bundle is None:
        raise UsageError("--trust-ca needs the bundle to trust", "pass --ca-bundle FILE too")
    try:
        return hashlib.sha256(bundle.read_bytes()).hexdigest()
    except OSError as exc:
        raise UsageError(f"cannot read the CA bundle {bundle}: {exc.strerror}",
                         "pass a readable PEM file") from None


def layer(bundle: Optional[Path]) -> Layer:
    """The system store with the bundle's certificates, and the variables pointing at it."""
    return Layer(
        name="trust-ca",
        summary="the build's CA bundle in the system trust store (--trust-ca)",
        stages=(Stage(
            name="trust-ca",
            files=(File("install-ca.sh", "/usr/local/bin/install-ca", 0o755),),
            run=(f"install-ca {digest(bundle)}",),
        ),),
        copies=(Copy("trust-ca", STORE, STORE), Copy("trust-ca", ADDED, ADDED)),
        env=ENV,
        verify=(f"test -s {SYSTEM_BUNDLE}", f"test -d {ADDED}"),
    )
